"""Builds the transfer_engine Python package for pip: the pure-Python modules of
python/transfer_engine, and the extension module transfer_engine._te built by the
project's CMake build (target te_python), which needs the packages
scripts/install_deps.sh installs. JOBS sets the build's parallelism (default 2).

    python3 -m pip install --no-build-isolation .
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
# Out of the way of the README's CMake build directory (build/); git ignores build*/.
BUILD_BASE = "build-pip"


def project_version():
    cmake = (ROOT / "CMakeLists.txt").read_text()
    return re.search(r"project\(transfer_engine VERSION ([0-9.]+)", cmake).group(1)


class CMakeBuild(build_ext):
    """Builds the module with CMake for this interpreter and puts it where setuptools
    packs it."""

    def build_extension(self, ext):
        build_dir = Path(self.build_temp).resolve() / "cmake"
        configure = [
            "cmake",
            "-S",
            str(ROOT),
            "-B",
            str(build_dir),
            "-DCMAKE_BUILD_TYPE=Release",
            "-DTE_BUILD_TESTS=OFF",
            "-DTE_BUILD_PYTHON=ON",
            f"-DPython3_EXECUTABLE={sys.executable}",
        ]
        if shutil.which("ninja") and not (build_dir / "CMakeCache.txt").exists():
            configure += ["-G", "Ninja"]
        subprocess.run(configure, check=True)
        jobs = os.environ.get("JOBS", "2")
        subprocess.run(
            ["cmake", "--build", str(build_dir), "--target", "te_python", "-j", jobs], check=True
        )
        built = next((build_dir / "python" / "transfer_engine").glob("_te.*"))
        destination = Path(self.get_ext_fullpath(ext.name))
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, destination)


setup(
    name="transfer_engine",
    version=project_version(),
    description="Python bindings of the te transfer engine",
    python_requires=">=3.9",
    packages=["transfer_engine"],
    package_dir={"": "python"},
    ext_modules=[Extension("transfer_engine._te", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    options={"build": {"build_base": BUILD_BASE}, "egg_info": {"egg_base": BUILD_BASE}},
    zip_safe=False,
)
