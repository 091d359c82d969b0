"""The Python API inference servers already call (Mooncake's mooncake.engine).

Switching an integration is its import line:

    from transfer_engine.compat import TransferEngine   # was: from mooncake.engine import ...

    engine = TransferEngine()
    engine.initialize("10.0.0.1", "P2PHANDSHAKE", "tcp", "")
    session = f"10.0.0.1:{engine.get_rpc_port()}"       # what peers pass as target_hostname

Method names, argument order and integer results follow that API: 0 on success and
a negative number on failure -- here minus the engine's status code (STATUS_CODES),
with the exception kept in ``last_error`` and logged. Differences:

- protocol "tcp" is the only one: the engine then also uses its same-host paths
  (shared memory, cross-memory attach) for peers on this machine; set
  TE_TRANSPORTS=tcp to use TCP only. Other protocols ("rdma", ...) fail with
  NotSupported; device_name is ignored.
- metadata_server: "P2PHANDSHAKE" (p2p), "etcd://h:p" or a bare "h:p" (etcd),
  "redis://...", "http://h:p/metadata". TE_* environment variables configure the
  rest (te::Config::FromEnv).
- batch_transfer_async_* return a positive batch id, negative on failure.
- write_bytes_to_buffer/read_bytes_from_buffer accept only memory registered or
  allocated through this object; read_bytes_from_buffer raises TransferError
  (there is no integer to return) for anything else.
- get_notifies() returns notifications sent with the Pythonic API's notify();
  ``name`` is the sender's segment name. ``engine`` is that Pythonic engine.
"""

import bisect
import ctypes
import logging
import threading

from ._te import Opcode, Request, transports
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
        self._batches = {}  # batch id -> TransferFuture of batch_transfer_async_*
        self._managed = {}  # address -> Buffer of allocate_managed_buffer
        self._regions = _Regions()  # what write/read_bytes may touch
        self.last_error = None

    @property
    def engine(self):
        """The underlying transfer_engine.TransferEngine (None before initialize)."""
        return self._engine

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
            # Mooncake's protocols name the transport between hosts: those of the
            # transport table that reach any host and are in this build.
            protocols = [t["name"] for t in transports() if t["built"] and t["reach"] == "any host"]
            if protocol not in protocols:
                names = ", ".join(f"'{p}'" for p in protocols)
                raise TransferError("NotSupported", f"protocol '{protocol}': this build has {names}")
            options = {"local_segment_name": local_hostname}
            if metadata_server == P2PHANDSHAKE or metadata_type == "p2p":
                options["metadata_type"] = "p2p"
            else:
                options.update(_central_metadata(metadata_type, metadata_server))
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
            self._regions.add(buffer_addr, capacity)

        return self._run("register_memory", register)

    def unregister_memory(self, buffer_addr):
        def unregister():
            self._require().unregister(buffer_addr)
            self._regions.remove(buffer_addr)

        return self._run("unregister_memory", unregister)

    def batch_register_memory(self, buffer_addresses, capacities, location="*"):
        if len(buffer_addresses) != len(capacities):
            return self._failed(
                "batch_register_memory",
                TransferError(
                    "InvalidArgument", "buffer_addresses and capacities differ in length"
                ),
            )
        for i, (address, capacity) in enumerate(zip(buffer_addresses, capacities)):
            result = self.register_memory(address, capacity, location)
            if result != 0:
                # All or nothing: undo the ones before.
                self.batch_unregister_memory(buffer_addresses[:i])
                return result
        return 0

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
        self._regions.add(buffer.address, buffer.size)
        return buffer.address

    def free_managed_buffer(self, buffer_addr, length):
        """Free memory from allocate_managed_buffer (``length`` is not needed here)."""
        buffer = self._managed.pop(buffer_addr, None)
        if buffer is None:
            return self._failed(
                "free_managed_buffer",
                TransferError("NotFound", f"no managed buffer at {buffer_addr:#x}"),
            )
        self._regions.remove(buffer_addr)
        del buffer  # the last reference: unregisters and frees
        return 0

    def write_bytes_to_buffer(self, dest_address, src_ptr, length):
        def write():
            source = memoryview(src_ptr).cast("B")
            if not 0 <= length <= len(source):
                raise TransferError(
                    "InvalidArgument", f"length {length} exceeds the {len(source)} bytes given"
                )
            self._regions.check(dest_address, length)
            destination = (ctypes.c_char * length).from_address(dest_address)
            memoryview(destination).cast("B")[:] = source[:length]

        return self._run("write_bytes_to_buffer", write)

    def read_bytes_from_buffer(self, source_address, length):
        self._regions.check(source_address, length)
        return ctypes.string_at(source_address, length)

    # ---- transfers ----

    def transfer_sync_write(self, target_hostname, buffer, peer_buffer_address, length):
        return self.batch_transfer_sync_write(
            target_hostname, [buffer], [peer_buffer_address], [length]
        )

    def transfer_sync_read(self, target_hostname, buffer, peer_buffer_address, length):
        return self.batch_transfer_sync_read(
            target_hostname, [buffer], [peer_buffer_address], [length]
        )

    def batch_transfer_sync_write(self, target_hostname, buffers, peer_buffer_addresses, lengths):
        return self._sync(Opcode.WRITE, target_hostname, buffers, peer_buffer_addresses, lengths)

    def batch_transfer_sync_read(self, target_hostname, buffers, peer_buffer_addresses, lengths):
        return self._sync(Opcode.READ, target_hostname, buffers, peer_buffer_addresses, lengths)

    def batch_transfer_async_write(self, target_hostname, buffers, peer_buffer_addresses, lengths):
        """A batch id for get_batch_transfer_status, negative on failure."""
        return self._async(Opcode.WRITE, target_hostname, buffers, peer_buffer_addresses, lengths)

    def batch_transfer_async_read(self, target_hostname, buffers, peer_buffer_addresses, lengths):
        """A batch id for get_batch_transfer_status, negative on failure."""
        return self._async(Opcode.READ, target_hostname, buffers, peer_buffer_addresses, lengths)

    def get_batch_transfer_status(self, batch_ids):
        """Wait for the batches; 0 when all completed, else the first failure's code."""
        result = 0
        for batch_id in batch_ids:
            future = self._batches.pop(batch_id, None)
            if future is None:
                outcome = self._failed(
                    "get_batch_transfer_status",
                    TransferError("NotFound", f"unknown or already waited batch {batch_id}"),
                )
            else:
                outcome = self._run(f"batch {batch_id}", future.wait)
            result = result or outcome
        return result

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
            return self._failed(f"{opcode.name} with {target_hostname}", error)
        self._batches[future.id] = future
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


class _Regions:
    """Address ranges registered through the compat object, for the byte helpers."""

    def __init__(self):
        self._lock = threading.Lock()
        self._starts = []  # sorted
        self._ends = {}  # start -> end

    def add(self, start, length):
        with self._lock:
            bisect.insort(self._starts, start)
            self._ends[start] = start + length

    def remove(self, start):
        with self._lock:
            if self._ends.pop(start, None) is not None:
                self._starts.remove(start)

    def check(self, address, length):
        with self._lock:
            i = bisect.bisect_right(self._starts, address) - 1
            inside = i >= 0 and address + length <= self._ends[self._starts[i]]
        if not inside:
            raise TransferError(
                "OutOfRange",
                f"[{address:#x}, +{length}) is not inside memory registered through this engine",
            )
