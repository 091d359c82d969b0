"""The opt-in `mooncake` import shim (in fresh interpreters, with a temporary site
directory so the real system is untouched), the protocol mapping and the MC_*
environment variables of transfer_engine.compat."""

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import transfer_engine
from transfer_engine import STATUS_CODES, _mooncake_options, compat

if importlib.util.find_spec("mooncake") is not None:
    pytest.skip("a mooncake package is importable here already", allow_module_level=True)

# Where transfer_engine is importable from (the build tree in CTest).
PACKAGE_ROOT = str(Path(transfer_engine.__file__).resolve().parent.parent)


def python(code_or_args, *paths, env=None):
    """A fresh interpreter with PYTHONPATH = paths + the package's root."""
    environment = dict(os.environ if env is None else env)
    environment["PYTHONPATH"] = os.pathsep.join([*map(str, paths), PACKAGE_ROOT])
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else code_or_args
    return subprocess.run(
        [sys.executable, "-s", *args],  # -s: no user site-packages
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def shim(action, site, *paths):
    return python(["-m", "transfer_engine.mooncake_shim", action, f"--site={site}"], *paths)


IMPORT = "from mooncake.engine import TransferEngine; print(TransferEngine.__module__)"


def test_shim_install_import_uninstall(tmp_path):
    site = tmp_path / "site"
    assert "not installed" in shim("status", site).stdout
    installed = shim("install", site)
    assert installed.returncode == 0, installed.stderr
    assert "installed" in shim("status", site).stdout
    imported = python(IMPORT, site)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "transfer_engine.compat"
    # An integration's own code path: construct and initialize through the shim.
    run = python(
        "from mooncake.engine import TransferEngine\n"
        "e = TransferEngine()\n"
        "print(e.initialize('127.0.0.1', 'P2PHANDSHAKE', 'rdma', ''), e.get_rpc_port() > 0)",
        site,
    )
    assert run.stdout.split() == ["0", "True"], run.stderr
    assert shim("install", site).returncode == 0  # again: still ours, rewritten
    removed = shim("uninstall", site)
    assert removed.returncode == 0, removed.stderr
    assert not (site / "mooncake").exists()
    assert python(IMPORT, site).returncode != 0  # ModuleNotFoundError again


def fake_real_mooncake(directory):
    package = directory / "mooncake"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("# stands for a real Mooncake installation\n")
    (package / "engine.py").write_text("TransferEngine = 'real'\n")
    return package


def test_shim_refuses_a_real_mooncake(tmp_path):
    real = tmp_path / "real"
    fake_real_mooncake(real)
    site = tmp_path / "site"
    refused = shim("install", site, real)
    assert refused.returncode == 1
    assert "refusing" in refused.stderr and "real Mooncake" in refused.stderr
    assert not (site / "mooncake").exists()
    # A real one in the target directory itself is never removed.
    fake_real_mooncake(site)
    assert shim("install", site).returncode == 1
    assert shim("uninstall", site).returncode == 1
    assert (site / "mooncake" / "engine.py").read_text() == "TransferEngine = 'real'\n"


def test_shim_never_shadows_a_mooncake_that_appears_later(tmp_path):
    site = tmp_path / "site"
    assert shim("install", site).returncode == 0
    real = tmp_path / "real"
    fake_real_mooncake(real)
    shadowing = python(IMPORT, site, real)
    assert shadowing.returncode != 0
    assert "would shadow it" in shadowing.stderr


def test_protocol_mapping(monkeypatch, tmp_path):
    transports_for = _mooncake_options.transports_for
    assert transports_for("tcp", "") is None  # the engine's defaults
    assert transports_for("rdma", "mlx5_0") is None  # no ucx in this build: defaults
    with pytest.raises(compat.TransferError) as error:
        transports_for("nvmeof", "")
    assert error.value.code == "NotSupported"
    with pytest.raises(compat.TransferError) as error:
        transports_for("carrier-pigeon", "")
    assert error.value.code == "InvalidArgument"
    # Once a ucx transport is built, "rdma" with an RDMA device selects it, naming the
    # devices to UCX; without a device it falls back to the defaults.
    devices = tmp_path / "infiniband"
    (devices / "mlx5_0").mkdir(parents=True)
    (devices / "mlx5_1").mkdir()
    monkeypatch.setenv("TE_SYSFS_INFINIBAND", str(devices))
    monkeypatch.delenv("UCX_NET_DEVICES", raising=False)
    rows = [{"name": n, "built": True} for n in ("local", "shm", "cma", "tcp", "ucx")]
    monkeypatch.setattr(_mooncake_options._te, "transports", lambda: rows)
    assert transports_for("rdma", "mlx5_1") == ["local", "shm", "cma", "ucx", "tcp"]
    assert os.environ["UCX_NET_DEVICES"] == "mlx5_1:1"
    assert _mooncake_options.rdma_devices("") == ["mlx5_0", "mlx5_1"]
    assert transports_for("rdma", "mlx9_9") is None
    monkeypatch.setenv("TE_SYSFS_INFINIBAND", str(tmp_path / "none"))
    assert transports_for("rdma", "") is None


def test_built_transports_are_what_the_engine_accepts():
    built = [t["name"] for t in transfer_engine.transports() if t["built"]]
    assert {"local", "shm", "cma", "tcp"} <= set(built)
    engine = transfer_engine.TransferEngine(local_segment_name="127.0.0.1", transports=built)
    engine.close()


def initialize(hostname="127.0.0.1", protocol="tcp"):
    engine = compat.TransferEngine()
    return engine, engine.initialize(hostname, "P2PHANDSHAKE", protocol, "")


def own_transports(engine):
    segment = engine.engine.open_segment(engine.engine.segment_name)
    return sorted(segment.info().transports)


def test_mc_force_tcp(monkeypatch):
    monkeypatch.delenv("TE_TRANSPORTS", raising=False)
    engine, result = initialize()
    assert result == 0
    assert "shm" in own_transports(engine) or "cma" in own_transports(engine)
    monkeypatch.setenv("MC_FORCE_TCP", "1")
    forced, result = initialize(protocol="rdma")
    assert result == 0
    assert own_transports(forced) == ["tcp"]


def test_mc_transfer_timeout(monkeypatch):
    monkeypatch.setenv("MC_TRANSFER_TIMEOUT", "2.5")
    assert _mooncake_options.env_options("h")["transfer_timeout_ms"] == 2500
    engine, result = initialize()
    assert result == 0 and engine._timeout_s == 2.5
    monkeypatch.setenv("MC_TRANSFER_TIMEOUT", "soon")
    bad, result = initialize()
    assert result == -STATUS_CODES["InvalidArgument"]
    assert "MC_TRANSFER_TIMEOUT" in str(bad.last_error)


def test_mc_tcp_bind_address(monkeypatch):
    # 192.0.2.1 (TEST-NET) is not an address of this host: binding it fails ...
    _, result = initialize("192.0.2.1")
    assert result < 0
    # ... unless MC_TCP_BIND_ADDRESS binds elsewhere; peers are told 192.0.2.1.
    monkeypatch.setenv("MC_TCP_BIND_ADDRESS", "127.0.0.1")
    engine, result = initialize("192.0.2.1")
    assert result == 0, engine.last_error
    assert engine.engine.segment_name == f"192.0.2.1:{engine.get_rpc_port()}"
    with socket.create_connection(("127.0.0.1", engine.get_rpc_port()), timeout=10):
        pass


def test_mc_legacy_rpc_port_binding(monkeypatch):
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", _mooncake_options.LEGACY_RPC_PORT))
        except OSError:
            pytest.skip("port 12001 is in use on this machine")
    monkeypatch.setenv("MC_LEGACY_RPC_PORT_BINDING", "1")
    engine, result = initialize()
    assert result == 0, engine.last_error
    assert engine.get_rpc_port() == _mooncake_options.LEGACY_RPC_PORT
    # An explicit host:port still wins.
    assert _mooncake_options.env_options("h:7000") == {}
