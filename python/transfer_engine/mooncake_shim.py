"""Make ``from mooncake.engine import TransferEngine`` resolve to this engine's compat
class, so an integration written for Mooncake runs with no code change.

    python3 -m transfer_engine.mooncake_shim install     # writes <site>/mooncake/
    python3 -m transfer_engine.mooncake_shim status
    python3 -m transfer_engine.mooncake_shim uninstall   # removes it again

``--site DIR`` picks the directory (default: this Python's site-packages, where
transfer_engine is importable from). install refuses, with exit status 1, when a real
Mooncake is importable or installed; uninstall only removes a package this command
wrote. The shim itself refuses to import when a real Mooncake appears on sys.path
later, so it never shadows one silently.
"""

import argparse
import importlib.metadata
import importlib.util
import shutil
import sys
import sysconfig
from pathlib import Path

MARKER = "__transfer_engine_shim__"
MOONCAKE_DISTRIBUTIONS = ("mooncake-transfer-engine", "mooncake-transfer-engine-cuda", "mooncake")

_INIT = f'''"""Not Mooncake: transfer_engine's stand-in (transfer_engine.mooncake_shim)."""
import os as _os
import sys as _sys

{MARKER} = True

_here = _os.path.dirname(_os.path.realpath(__file__))
for _entry in _sys.path:
    _other = _os.path.realpath(_os.path.join(_entry or ".", "mooncake"))
    if _other != _here and _os.path.isdir(_other):
        raise ImportError(
            "a real Mooncake is at " + _other + " and transfer_engine's shim at "
            + _here + " would shadow it: "
            + "run python3 -m transfer_engine.mooncake_shim uninstall"
        )
'''

_ENGINE = '''"""mooncake.engine, served by transfer_engine.compat (see mooncake_shim)."""
from transfer_engine.compat import TransferEngine, TransferNotify  # noqa: F401
'''


def _default_site():
    return Path(sysconfig.get_paths()["purelib"])


def _is_shim(package_dir):
    init = package_dir / "__init__.py"
    return init.is_file() and MARKER in init.read_text(errors="replace")


def real_mooncake(site):
    """Where a real Mooncake is (a path or distribution name), or None."""
    for name in MOONCAKE_DISTRIBUTIONS:
        try:
            importlib.metadata.distribution(name)
            return f"the installed distribution '{name}'"
        except importlib.metadata.PackageNotFoundError:
            pass
    if (site / "mooncake").exists() and not _is_shim(site / "mooncake"):
        return str(site / "mooncake")
    for entry in sys.path:
        candidate = Path(entry or ".").resolve() / "mooncake"
        if candidate.exists() and not _is_shim(candidate):
            return str(candidate)
    try:
        spec = importlib.util.find_spec("mooncake")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin and not _is_shim(Path(spec.origin).parent):
        return spec.origin
    return None


def install(site):
    real = real_mooncake(site)
    if real is not None:
        return f"refusing: a real Mooncake is installed ({real}); it would be shadowed", 1
    package = site / "mooncake"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(_INIT)
    (package / "engine.py").write_text(_ENGINE)
    return f"installed {package}: mooncake.engine.TransferEngine is transfer_engine's", 0


def uninstall(site):
    package = site / "mooncake"
    if not package.exists():
        return f"not installed in {site}", 0
    if not _is_shim(package):
        return f"refusing: {package} is not transfer_engine's shim", 1
    shutil.rmtree(package)
    return f"removed {package}", 0


def status(site):
    package = site / "mooncake"
    if _is_shim(package):
        return f"installed at {package}", 0
    real = real_mooncake(site)
    if real is not None:
        return f"not installed; a real Mooncake is present ({real})", 0
    return f"not installed in {site}", 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python3 -m transfer_engine.mooncake_shim",
        description="Serve 'mooncake.engine' with transfer_engine.compat.",
    )
    parser.add_argument("action", choices=["install", "uninstall", "status"])
    parser.add_argument("--site", type=Path, default=None, help="default: site-packages")
    args = parser.parse_args(argv)
    site = (args.site or _default_site()).resolve()
    message, code = {"install": install, "uninstall": uninstall, "status": status}[args.action](
        site
    )
    print(message, file=sys.stderr if code else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main())
