"""Engine options from what a Mooncake caller gives: the protocol of initialize() and
the MC_* environment variables (README.md, "Mooncake compatibility").
"""

import logging
import os
from pathlib import Path

from . import _te
from .errors import TransferError

_log = logging.getLogger("transfer_engine.compat")
_warned = set()  # protocols whose fallback was already reported

# Mooncake's fixed RPC port, which MC_LEGACY_RPC_PORT_BINDING asks for.
LEGACY_RPC_PORT = 12001
# Protocols of Mooncake's that only a transport this engine lacks could carry.
_UNMAPPABLE = ("nvmeof", "cxl", "ascend", "hccl", "barex")
# Protocols whose GPU paths are cuda_ipc here (same host), else the defaults.
_GPU_PROTOCOLS = ("nvlink", "nvlink_intra", "hip")


def _true(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def rdma_devices(device_name):
    """RDMA devices to use: those of device_name (comma-separated) that exist, else
    every device the kernel lists. Empty without RDMA hardware."""
    root = Path(os.environ.get("TE_SYSFS_INFINIBAND", "/sys/class/infiniband"))
    present = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    wanted = [d.strip() for d in device_name.split(",") if d.strip()]
    return [d for d in wanted if d in present] if wanted else present


def transports_for(protocol, device_name):
    """The engine's transports for Mooncake's protocol; None keeps the defaults."""
    built = [t["name"] for t in _te.transports() if t["built"]]
    if protocol == "tcp":
        return None
    if protocol in ("rdma", "efa"):
        devices = rdma_devices(device_name)
        if "ucx" in built and devices:
            # UCX picks its devices from UCX_NET_DEVICES; a deployment's own setting wins.
            os.environ.setdefault("UCX_NET_DEVICES", ",".join(f"{d}:1" for d in devices))
            return [t for t in built if t != "tcp"] + ["tcp"]
        _warn_once(protocol, "no ucx transport with an RDMA device here" if "ucx" in built
                   else "this build has no ucx transport")
        return None
    if protocol in _GPU_PROTOCOLS:
        if "cuda_ipc" not in built:
            _warn_once(protocol, "this build has no cuda_ipc transport")
        return None
    if protocol in _UNMAPPABLE:
        raise TransferError(
            "NotSupported",
            f"protocol '{protocol}' needs a transport this engine does not have "
            f"(it has {', '.join(built)}; use 'tcp' or 'rdma')",
        )
    raise TransferError("InvalidArgument", f"unknown protocol '{protocol}'")


def _warn_once(protocol, why):
    if protocol not in _warned:
        _warned.add(protocol)
        _log.warning(
            "protocol '%s': %s; using the same-host paths (shm, cma) and TCP instead", protocol, why
        )


def env_options(local_hostname):
    """Engine options from the MC_* variables Mooncake deployments set."""
    options = {}
    if _true("MC_FORCE_TCP"):
        options["transports"] = ["tcp"]
    timeout_s = os.environ.get("MC_TRANSFER_TIMEOUT")
    if timeout_s:
        options["transfer_timeout_ms"] = _milliseconds("MC_TRANSFER_TIMEOUT", timeout_s)
    bind = os.environ.get("MC_TCP_BIND_ADDRESS")
    if bind:
        options["rpc_bind_host"] = bind
    slice_size = os.environ.get("MC_SLICE_SIZE")
    if slice_size:
        options["slice_size"] = _unsigned("MC_SLICE_SIZE", slice_size)
    if _true("MC_LEGACY_RPC_PORT_BINDING") and ":" not in local_hostname:
        options["local_segment_name"] = f"{local_hostname}:{LEGACY_RPC_PORT}"
    return options


def transfer_timeout_s():
    """MC_TRANSFER_TIMEOUT as a float, None when unset (transfer_check_status's -2)."""
    value = os.environ.get("MC_TRANSFER_TIMEOUT")
    return _milliseconds("MC_TRANSFER_TIMEOUT", value) / 1000 if value else None


def _unsigned(name, text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise TransferError("InvalidArgument", f"{name}={text!r} is not a whole number")
    return value


def _milliseconds(name, seconds):
    try:
        value = float(seconds)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise TransferError("InvalidArgument", f"{name}={seconds!r} is not a positive number")
    return max(10, round(value * 1000))
