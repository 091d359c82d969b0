"""The Python API inference servers already call (Mooncake's mooncake.engine).

An integration runs unchanged once ``python3 -m transfer_engine.mooncake_shim install``
has made ``from mooncake.engine import TransferEngine`` resolve here (it refuses when
a real Mooncake is installed); or switch its import line:

    from transfer_engine.compat import TransferEngine   # was: from mooncake.engine import ...

    engine = TransferEngine()
    engine.initialize("10.0.0.1", "P2PHANDSHAKE", "rdma", "")
    session = f"10.0.0.1:{engine.get_rpc_port()}"       # what peers pass as target_hostname

Method names, argument order and integer results follow that API: 0 on success and
a negative number on failure -- here minus the engine's status code (STATUS_CODES),
with the exception kept in ``last_error`` and logged. Differences and the MC_*
variables honoured: README.md, "Mooncake compatibility". In short:

- protocol "rdma" (and "efa") is a preference, as in Mooncake: the ucx transport when
  this build has it and an RDMA device is present (device_name: comma-separated
  devices), otherwise the same-host paths and TCP, with one warning. "tcp" uses the
  same-host paths too (TE_TRANSPORTS=tcp or MC_FORCE_TCP=1: TCP only). Protocols
  needing hardware paths this engine lacks (nvmeof, cxl, ...) fail with NotSupported.
- metadata_server: "P2PHANDSHAKE" (p2p), "etcd://h:p" or a bare "h:p" (etcd),
  "redis://...", "http://h:p/metadata". TE_* environment variables configure the
  rest (te::Config::FromEnv); MC_* variables override them.
- get_first_buffer_address gives the peer buffer with the lowest address (Mooncake:
  the first registered); transport_hint is accepted and the engine still picks the
  transport per request.
- get_notifies() returns notifications sent with the Pythonic API's notify();
  ``name`` is the sender's segment name. get_engine() and ``engine`` give that
  Pythonic engine.
"""

import ctypes
import logging
import os
import threading
import time

from . import _mooncake_options
from ._te import Opcode, Request
from .engine import TransferEngine as _PythonicEngine
from .errors import TransferError

P2PHANDSHAKE = "P2PHANDSHAKE"

_log = logging.getLogger(__name__)


class TransferNotify:
    """A notification: ``name`` is the sending engine's segment name."""

    def __init__(self, name="", msg=""):
        self.name = name
        self.msg = msg

    def __repr__(self):
        return f"TransferNotify(name={self.name!r}, msg={self.msg!r})"


class TransferEngine:
    """Mooncake's TransferEngine API over this engine; see the module docstring."""

    def __init__(self):
        self._engine = None
        self._lock = threading.Lock()
        self._segments = {}  # target_hostname -> Segment, opened once
        self._batches = {}  # batch id -> (TransferFuture, deadline or None)
        self._managed = {}  # address -> Buffer of allocate_managed_buffer
        self._timeout_s = None  # MC_TRANSFER_TIMEOUT, for transfer_check_status
        self.last_error = None

    @property
    def engine(self):
        """The underlying transfer_engine.TransferEngine (None before initialize)."""
        return self._engine

    def get_engine(self):
        """Mooncake's accessor of the engine underneath: the Pythonic engine here."""
        return self._engine

    def get_localhost_name(self):
        """The host part of this engine's segment name ("" before initialize)."""
        return self._engine.segment_name.rpartition(":")[0] if self._engine else ""

    # ---- setup ----

    def initialize(self, local_hostname, metadata_server, protocol, device_name):
        # The type is the server's URL scheme; without one it is etcd, as in Mooncake
        # (P2PHANDSHAKE is p2p whatever the type).
        scheme, separator, _ = metadata_server.partition("://")
        metadata_type = scheme if separator else "etcd"
        return self.initialize_ext(
            local_hostname, metadata_server, protocol, device_name, metadata_type
        )

    def initialize_ext(self, local_hostname, metadata_server, protocol, device_name, metadata_type):
        def start():
            if self._engine is not None:
                raise TransferError("FailedPrecondition", "already initialized")
            options = {"local_segment_name": local_hostname}
            transports = _mooncake_options.transports_for(protocol, device_name)
            if transports is not None and "TE_TRANSPORTS" not in os.environ:
                options["transports"] = transports
            if metadata_server == P2PHANDSHAKE or metadata_type == "p2p":
                options["metadata_type"] = "p2p"
            else:
                options.update(_central_metadata(metadata_type, metadata_server))
            options.update(_mooncake_options.env_options(local_hostname))
            self._timeout_s = _mooncake_options.transfer_timeout_s()
            self._engine = _PythonicEngine.from_env(**options)

        return self._run("initialize", start)

    def get_rpc_port(self):
        try:
            return self._require().rpc_port
        except TransferError as error:
            return self._failed("get_rpc_port", error)

    # ---- memory ----

    def register_memory(self, buffer_addr, capacity, location="*"):
        def register():
            self._require().register(buffer_addr, capacity, location=_location(location))

        return self._run("register_memory", register)

    def unregister_memory(self, buffer_addr):
        def unregister():
            self._require().unregister(buffer_addr)

        return self._run("unregister_memory", unregister)

    def batch_register_memory(self, buffer_addresses, capacities, location="*"):
        if len(buffer_addresses) != len(capacities):
            return self._failed(
                "batch_register_memory",
                TransferError(
                    "InvalidArgument", "buffer_addresses and capacities differ in length"
                ),
            )

        def register():
            # All or none, and peers see them at once (one descriptor update).
            self._require().register_many(
                list(buffer_addresses), list(capacities), location=_location(location)
            )

        return self._run("batch_register_memory", register)

    def batch_unregister_memory(self, buffer_addresses):
        results = [self.unregister_memory(address) for address in buffer_addresses]
        return next((r for r in results if r != 0), 0)

    def allocate_managed_buffer(self, length):
        """Address of ``length`` bytes of new registered memory; 0 on failure."""
        try:
            buffer = self._require().allocate(length)
        except TransferError as error:
            self._failed("allocate_managed_buffer", error)
            return 0
        self._managed[buffer.address] = buffer
        return buffer.address

    def free_managed_buffer(self, buffer_addr, length):
        """Free memory from allocate_managed_buffer (``length`` is not needed here)."""
        buffer = self._managed.pop(buffer_addr, None)
        if buffer is None:
            return self._failed(
                "free_managed_buffer",
                TransferError("NotFound", f"no managed buffer at {buffer_addr:#x}"),
            )
        del buffer  # the last reference: unregisters and frees
        return 0

    def write_bytes_to_buffer(self, dest_address, src_ptr, length):
        """Copy ``length`` bytes of src_ptr (bytes-like) to any local address, as
        Mooncake's does (the address must be valid memory of this process)."""

        def write():
            source = memoryview(src_ptr).cast("B")
            if not 0 <= length <= len(source):
                raise TransferError(
                    "InvalidArgument", f"length {length} exceeds the {len(source)} bytes given"
                )
            _check_address(dest_address, length)
            ctypes.memmove(dest_address, bytes(source[:length]), length)

        return self._run("write_bytes_to_buffer", write)

    def read_bytes_from_buffer(self, source_address, length):
        """``length`` bytes at any local address; b"" for a null or negative one."""
        try:
            _check_address(source_address, length)
        except TransferError as error:
            self._failed("read_bytes_from_buffer", error)
            return b""
        return ctypes.string_at(source_address, length)

    # ---- transfers ----

    def transfer_sync_write(
        self, target_hostname, buffer, peer_buffer_address, length, transport_hint=None
    ):
        return self.batch_transfer_sync_write(
            target_hostname, [buffer], [peer_buffer_address], [length]
        )

    def transfer_sync_read(
        self, target_hostname, buffer, peer_buffer_address, length, transport_hint=None
    ):
        return self.batch_transfer_sync_read(
            target_hostname, [buffer], [peer_buffer_address], [length]
        )

    def batch_transfer_sync_write(
        self, target_hostname, buffers, peer_buffer_addresses, lengths, transport_hint=None
    ):
        return self._sync(Opcode.WRITE, target_hostname, buffers, peer_buffer_addresses, lengths)

    def batch_transfer_sync_read(
        self, target_hostname, buffers, peer_buffer_addresses, lengths, transport_hint=None
    ):
        return self._sync(Opcode.READ, target_hostname, buffers, peer_buffer_addresses, lengths)

    def batch_transfer_async_write(
        self, target_hostname, buffers, peer_buffer_addresses, lengths, transport_hint=None
    ):
        """A batch id for get_batch_transfer_status; 0 on failure."""
        return self._async(Opcode.WRITE, target_hostname, buffers, peer_buffer_addresses, lengths)

    def batch_transfer_async_read(
        self, target_hostname, buffers, peer_buffer_addresses, lengths, transport_hint=None
    ):
        """A batch id for get_batch_transfer_status; 0 on failure."""
        return self._async(Opcode.READ, target_hostname, buffers, peer_buffer_addresses, lengths)

    def transfer_submit_write(
        self, target_hostname, buffer, peer_buffer_address, length, transport_hint=None
    ):
        """A batch id for transfer_check_status; 0 on failure."""
        return self._async(
            Opcode.WRITE, target_hostname, [buffer], [peer_buffer_address], [length]
        )

    def transfer_check_status(self, batch_id):
        """1 done, 0 pending, -1 failed (or unknown id), -2 past MC_TRANSFER_TIMEOUT.
        A finished batch (1 or -1) is forgotten; a timed-out one goes on."""
        entry = self._batches.get(batch_id)
        if entry is None:
            self._failed("transfer_check_status", TransferError("NotFound", f"batch {batch_id}"))
            return -1
        future, deadline = entry
        if not future.done():
            return -2 if deadline is not None and time.monotonic() > deadline else 0
        self._batches.pop(batch_id, None)
        return 1 if self._run(f"batch {batch_id}", future.wait) == 0 else -1

    def get_batch_transfer_status(self, batch_ids):
        """Wait for the batches; 0 when all completed, else the first failure's code."""
        result = 0
        for batch_id in batch_ids:
            future, _ = self._batches.pop(batch_id, (None, None))
            if future is None:
                outcome = self._failed(
                    "get_batch_transfer_status",
                    TransferError("NotFound", f"unknown or already waited batch {batch_id}"),
                )
            else:
                outcome = self._run(f"batch {batch_id}", future.wait)
            result = result or outcome
        return result

    def get_first_buffer_address(self, segment_name):
        """The lowest-addressed buffer the peer exposes (fetched again, cheaply when
        unchanged); 0 on failure or when it has none."""
        try:
            segment = self._segment(segment_name)
            segment.refresh()
            buffers = segment.buffers
            if not buffers:
                raise TransferError("NotFound", f"segment '{segment_name}' exposes no buffer")
        except TransferError as error:
            self._failed("get_first_buffer_address", error)
            return 0
        return buffers[0].base

    def send_probe(self, target_hostname):
        """0 when the peer's engine answers now, negative otherwise (SGLang marks the
        session failed); a failed peer is opened afresh next time."""

        def probe():
            try:
                self._segment(target_hostname).refresh()
            except TransferError:
                with self._lock:
                    self._segments.pop(target_hostname, None)
                raise

        return self._run(f"probe of {target_hostname}", probe)

    def get_notifies(self):
        try:
            received = self._require().notifications()
        except TransferError as error:
            self._failed("get_notifies", error)
            return []
        return [TransferNotify(n.sender, n.message) for n in received]

    # ---- helpers ----

    def _require(self):
        if self._engine is None:
            raise TransferError("FailedPrecondition", "initialize() has not succeeded")
        return self._engine

    def _segment(self, target_hostname):
        with self._lock:
            segment = self._segments.get(target_hostname)
            if segment is None:
                segment = self._require().open_segment(target_hostname)
                self._segments[target_hostname] = segment
            return segment

    def _requests(self, opcode, target_hostname, buffers, peer_buffer_addresses, lengths):
        if not len(buffers) == len(peer_buffer_addresses) == len(lengths):
            raise TransferError(
                "InvalidArgument", "buffers, peer_buffer_addresses and lengths differ in length"
            )
        segment = self._segment(target_hostname)
        return [
            Request(opcode, segment, local, remote, length)
            for local, remote, length in zip(buffers, peer_buffer_addresses, lengths)
        ]

    def _sync(self, opcode, target_hostname, *lists):
        """lists: buffers, peer_buffer_addresses, lengths."""

        def transfer():
            self._require().transfer(self._requests(opcode, target_hostname, *lists))

        return self._run(f"{opcode.name} with {target_hostname}", transfer)

    def _async(self, opcode, target_hostname, *lists):
        """lists: buffers, peer_buffer_addresses, lengths."""
        try:
            future = self._require().submit(self._requests(opcode, target_hostname, *lists))
        except TransferError as error:
            self._failed(f"{opcode.name} with {target_hostname}", error)
            return 0  # Mooncake's callers test for 0
        deadline = None if self._timeout_s is None else time.monotonic() + self._timeout_s
        self._batches[future.id] = (future, deadline)
        return future.id

    def _run(self, what, action):
        """0 when action() returns, minus the status code when it raises TransferError."""
        try:
            action()
        except TransferError as error:
            return self._failed(what, error)
        return 0

    def _failed(self, what, error):
        self.last_error = error
        _log.warning("%s: %s", what, error)
        return -error.value


def _central_metadata(metadata_type, metadata_server):
    """Config fields for a central metadata server given the Mooncake way."""
    scheme, separator, rest = metadata_server.partition("://")
    if metadata_type == "etcd":
        # etcd takes host:port lists; Mooncake separates servers with ';'.
        servers = rest if separator else metadata_server
        return {"metadata_type": "etcd", "metadata_servers": servers.replace(";", ",")}
    if metadata_type in ("redis", "http"):
        # Both parse their URL form themselves (docs/metadata.md).
        return {"metadata_type": metadata_type, "metadata_servers": metadata_server}
    raise TransferError("NotSupported", f"metadata server type '{metadata_type}'")


def _location(location):
    # Mooncake's "*" means "let the engine find out", which is "" here.
    return "" if location == "*" else location


def _check_address(address, length):
    # What can be checked of a raw address: ctypes would crash on these.
    if not isinstance(address, int) or address <= 0 or length < 0:
        raise TransferError("InvalidArgument", f"bad address {address!r} or length {length}")
