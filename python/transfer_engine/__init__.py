"""Python bindings of the te transfer engine.

    from transfer_engine import TransferEngine, Request, READ, WRITE

    engine = TransferEngine(local_segment_name="10.0.0.1")
    buf = engine.allocate(1 << 20)           # registered; memoryview(buf), buf.numpy()
    peer = engine.open_segment("10.0.0.2:17000")
    remote = peer.buffers[0].base
    engine.write(peer, buf.address, remote, 4096)
    future = engine.submit([Request(READ, peer, buf.address, remote, 4096)])
    future.wait()

The Mooncake-compatible class is transfer_engine.compat.TransferEngine.
"""

from ._te import (
    READ,
    WRITE,
    Buffer,
    BufferInfo,
    Notification,
    Opcode,
    Permission,
    Request,
    Segment,
    SegmentInfo,
    TransferFuture,
    TransferState,
    TransferStatus,
    transports,
)
from .engine import TransferEngine
from .errors import STATUS_CODES, TransferError

__all__ = [
    "READ",
    "WRITE",
    "STATUS_CODES",
    "Buffer",
    "BufferInfo",
    "Notification",
    "Opcode",
    "Permission",
    "Request",
    "Segment",
    "SegmentInfo",
    "TransferEngine",
    "TransferError",
    "TransferFuture",
    "TransferState",
    "TransferStatus",
    "transports",
]
