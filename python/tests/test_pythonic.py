"""transfer_engine.TransferEngine against a target in another process (peer.py)."""

import ctypes
import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from types import SimpleNamespace

import pytest
from helpers import pattern, run_threads, sha256
from peer_process import make_engine

from transfer_engine import (
    READ,
    WRITE,
    Permission,
    Request,
    TransferEngine,
    TransferError,
    TransferState,
)

MiB = 1 << 20
# Odd sizes, one slice exactly, and several slices (slice_size is 1 MiB).
SIZES = [1, 4097, MiB, 3 * MiB + 5]


def layout(sizes, gap=4096):
    """Offsets for regions of ``sizes`` with a gap between them."""
    offsets, offset = [], 0
    for size in sizes:
        offsets.append(offset)
        offset += size + gap
    return offsets


@pytest.fixture
def link(start_peer, engine):
    """A TCP peer, its segment opened by ``engine``, and 1 MiB of local memory."""
    peer = start_peer()
    segment = engine.open_segment(peer.segment)
    return SimpleNamespace(peer=peer, segment=segment, local=engine.allocate(MiB))


@pytest.fixture(params=["tcp", "auto"])
def pair(request, start_peer):
    """A peer and an initiator over TCP, then over the engine's default transports
    (same-host paths); the initiator has as much memory as the peer."""
    peer = start_peer(transports=request.param)
    with make_engine(request.param) as engine:
        segment = engine.open_segment(peer.segment)
        yield SimpleNamespace(
            peer=peer, engine=engine, segment=segment, local=engine.allocate(peer.size)
        )


def test_read_brings_the_peers_bytes(pair):
    offsets = layout(SIZES)
    for seed, (offset, size) in enumerate(zip(offsets, SIZES)):
        pair.peer.fill(seed, offset, size)
    requests = [
        Request(READ, pair.segment, pair.local.address + o, pair.peer.address + o, size)
        for o, size in zip(offsets, SIZES)
    ]
    assert pair.engine.transfer(requests) == sum(SIZES)
    view = memoryview(pair.local)
    for seed, (offset, size) in enumerate(zip(offsets, SIZES)):
        assert view[offset : offset + size] == pattern(seed, size)


def test_write_lands_in_the_peers_memory(pair):
    offsets = layout(SIZES)
    data = [os.urandom(size) for size in SIZES]
    for offset, chunk in zip(offsets, data):
        memoryview(pair.local)[offset : offset + len(chunk)] = chunk
    requests = [
        Request(WRITE, pair.segment, pair.local.address + o, pair.peer.address + o, len(chunk))
        for o, chunk in zip(offsets, data)
    ]
    assert pair.engine.transfer(requests) == sum(SIZES)
    for offset, chunk in zip(offsets, data):
        assert pair.peer.digest(offset, len(chunk)) == sha256(chunk)


def test_read_and_write_helpers(start_peer, engine):
    peer = start_peer()
    segment = engine.open_segment(peer.segment)
    assert [b.base for b in segment.buffers] == [peer.address]
    local = engine.allocate(2 * MiB)
    data = os.urandom(MiB)
    memoryview(local)[:MiB] = data
    assert engine.write(segment, local.address, peer.address + 4096, MiB) == MiB
    assert engine.read(segment, local.address + MiB, peer.address + 4096, MiB) == MiB
    assert memoryview(local)[MiB:] == data


def test_submitted_batches_complete(start_peer, engine):
    peer = start_peer()
    segment = engine.open_segment(peer.segment)
    local = engine.allocate(8 * MiB)
    peer.fill(7, 0, 4 * MiB)
    written = os.urandom(4 * MiB)
    memoryview(local)[4 * MiB :] = written
    reads = [
        engine.submit([Request(READ, segment, local.address + o, peer.address + o, MiB)])
        for o in range(0, 4 * MiB, MiB)
    ]
    write = engine.submit(
        [
            Request(WRITE, segment, local.address + i * MiB, peer.address + i * MiB, MiB)
            for i in range(4, 8)
        ]
    )
    assert len(write) == 4
    assert [future.wait(timeout=30) for future in reads] == [MiB] * 4
    assert write.wait(timeout=30) == 4 * MiB
    assert all(future.done() for future in reads + [write])
    assert [s.state for s in write.status()] == [TransferState.COMPLETED] * 4
    assert [s.transferred_bytes for s in write.status()] == [MiB] * 4
    assert memoryview(local)[: 4 * MiB] == pattern(7, 4 * MiB)
    assert peer.digest(4 * MiB, 4 * MiB) == sha256(written)


def test_done_turns_true_without_waiting(link, engine):
    link.peer.fill(9, 0, MiB)
    request = Request(READ, link.segment, link.local.address, link.peer.address, MiB)
    future = engine.submit([request])
    deadline = time.monotonic() + 30
    while not future.done():
        assert time.monotonic() < deadline, "the transfer never ended"
        time.sleep(0.001)
    assert future.wait(timeout=0) == MiB
    assert memoryview(link.local) == pattern(9, MiB)


def test_wait_times_out_while_the_peer_is_stopped(link, engine):
    link.peer.fill(3, 0, MiB)
    with link.peer.paused():
        request = Request(READ, link.segment, link.local.address, link.peer.address, MiB)
        future = engine.submit([request])
        with pytest.raises(TimeoutError):
            future.wait(timeout=0.2)
        assert not future.done()
        assert future.status()[0].state == TransferState.PENDING
    assert future.wait(timeout=30) == MiB
    assert memoryview(link.local) == pattern(3, MiB)


def test_waiting_releases_the_gil(link, engine):
    # The read cannot finish before this thread resumes the stopped peer, which
    # needs the GIL: were it held while waiting, the read would time out first.
    link.peer.fill(4, 0, MiB)
    outcome = {}

    def read():
        try:
            outcome["bytes"] = engine.read(link.segment, link.local.address, link.peer.address, MiB)
        except TransferError as error:
            outcome["error"] = error

    reader = threading.Thread(target=read)
    with link.peer.paused():
        reader.start()
        time.sleep(0.3)
        assert reader.is_alive(), outcome
    reader.join(30)
    assert outcome == {"bytes": MiB}
    assert memoryview(link.local) == pattern(4, MiB)


def test_a_signal_interrupts_a_wait(link, engine):
    # The handler must run while the read waits on the stopped peer, not once it
    # returned: the peer is resumed well after the signal.
    peer, segment, local = link.peer, link.segment, link.local
    events = {}

    class Interrupted(Exception):
        pass

    def interrupt(signum, frame):
        events["handled"] = time.monotonic()
        raise Interrupted

    def resume():
        events["resumed"] = time.monotonic()
        peer.resume()

    previous = signal.signal(signal.SIGUSR1, interrupt)
    peer.pause()
    timers = [
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1)),
        # Dropping the interrupted batch waits for its bytes on the wire.
        threading.Timer(1.0, resume),
    ]
    try:
        for timer in timers:
            timer.start()
        with pytest.raises(Interrupted):
            engine.read(segment, local.address, peer.address, MiB)
    finally:
        for timer in timers:
            timer.join()
        signal.signal(signal.SIGUSR1, previous)
    assert events["handled"] < events["resumed"]
    assert engine.read(segment, local.address, peer.address, MiB) == MiB


def test_unregistered_remote_addresses_fail(link, engine):
    peer, segment, local = link.peer, link.segment, link.local
    with pytest.raises(TransferError) as error:
        engine.read(segment, local.address, peer.address + peer.size, 4096)
    assert error.value.code == "OutOfRange"
    assert error.value.value == 5
    future = engine.submit([Request(WRITE, segment, local.address, peer.address - 4096, 4096)])
    with pytest.raises(TransferError) as error:
        future.wait(timeout=30)
    assert error.value.code == "OutOfRange"
    assert "task 0" in error.value.message
    status = future.status()[0]
    assert status.state == TransferState.FAILED and status.error.startswith("OutOfRange")
    assert engine.read(segment, local.address, peer.address, 4096) == 4096


def test_unregistered_local_addresses_are_rejected(link, engine):
    scratch = ctypes.create_string_buffer(4096)
    request = Request(READ, link.segment, ctypes.addressof(scratch), link.peer.address, 4096)
    with pytest.raises(TransferError) as error:
        engine.submit([request])
    assert error.value.code == "InvalidArgument"
    assert "local range" in error.value.message
    with pytest.raises(TransferError) as error:
        engine.transfer([])
    assert error.value.code == "InvalidArgument"


def test_unknown_segments_fail(engine):
    with pytest.raises(TransferError) as error:
        engine.open_segment("127.0.0.1:1")  # nobody listens on port 1
    assert error.value.code == "Unavailable"
    with pytest.raises(TransferError) as error:
        engine.open_segment("")
    assert error.value.code == "InvalidArgument"


def test_closed_segments_are_unknown(link, engine):
    link.segment.close()
    with pytest.raises(TransferError) as error:
        engine.read(link.segment, link.local.address, link.peer.address, 4096)
    assert error.value.code == "NotFound"


def test_segments_of_another_engine_are_refused(link, engine):
    with make_engine() as other:
        foreign = other.open_segment(link.peer.segment)
        with pytest.raises(TransferError) as error:
            engine.read(foreign, link.local.address, link.peer.address, 4096)
        assert error.value.code == "InvalidArgument"
        with pytest.raises(TransferError) as error:
            engine.notify(foreign, "hello")
        assert error.value.code == "InvalidArgument"


def test_threads_transfer_at_once(start_peer, engine):
    peer = start_peer()
    segment = engine.open_segment(peer.segment)
    threads, region, rounds = 8, 256 << 10, 10
    local = engine.allocate(threads * region)

    def work(thread):
        base = thread * region
        for round_ in range(rounds):
            data = pattern(thread * 1000 + round_, region)
            memoryview(local)[base : base + region] = data
            engine.write(segment, local.address + base, peer.address + base, region)
            memoryview(local)[base : base + region] = bytes(region)
            future = engine.submit(
                [Request(READ, segment, local.address + base, peer.address + base, region)]
            )
            future.wait(timeout=30)
            assert memoryview(local)[base : base + region] == data
        return data

    for thread, data in enumerate(run_threads(work, threads)):
        assert peer.digest(thread * region, region) == sha256(data)


def test_notifications_go_both_ways(link, engine):
    peer = link.peer
    engine.notify(link.segment, "kv ready: req-1 ✓")
    assert peer.notifications(timeout=10) == [[engine.segment_name, "kv ready: req-1 ✓"]]
    peer.notify(engine.segment_name, "ack req-1")
    received = engine.notifications(timeout=10)
    assert [(n.sender, n.message) for n in received] == [(peer.segment, "ack req-1")]
    assert engine.notifications() == []


def test_buffers_are_zero_copy_views(engine):
    buffer = engine.allocate(1 << 16)
    assert buffer.address % 4096 == 0 and len(buffer) == buffer.size == 1 << 16
    view = memoryview(buffer)
    assert not view.readonly and view.nbytes == buffer.size
    view[:5] = b"hello"
    assert ctypes.string_at(buffer.address, 5) == b"hello"
    numpy = pytest.importorskip("numpy")
    array = buffer.numpy()
    assert array.ctypes.data == buffer.address and array.flags.writeable
    array[5:10] = numpy.frombuffer(b"world", dtype=numpy.uint8)
    assert ctypes.string_at(buffer.address, 10) == b"helloworld"
    del buffer, array
    gc.collect()
    assert view[:10] == b"helloworld"  # the view keeps the memory


def test_register_python_memory(link, engine):
    peer, segment = link.peer, link.segment
    peer.fill(11, 0, 4096)
    target = bytearray(4096)
    address = engine.register(target, permission=Permission.LOCAL_ONLY)
    assert engine.read(segment, address, peer.address, 4096) == 4096
    assert target == pattern(11, 4096)
    with pytest.raises(BufferError):
        target.extend(b"x")  # held in place while registered
    engine.unregister(target)
    with pytest.raises(TransferError) as error:
        engine.read(segment, address, peer.address, 4096)
    assert error.value.code == "InvalidArgument"
    target.extend(b"x")
    with pytest.raises(ValueError):
        engine.register(b"read-only bytes")
    with pytest.raises(TypeError):
        engine.register(address)  # an address needs a length


def test_configuration_sources(tmp_path, monkeypatch):
    path = tmp_path / "te.json"
    path.write_text(json.dumps({"local_segment_name": "127.0.0.1", "transports": ["tcp"]}))
    with TransferEngine.from_file(path) as engine:
        assert engine.segment_name.startswith("127.0.0.1:")
        assert engine.open_segment(engine.segment_name).info().transports == ["tcp"]
    config = {"local_segment_name": "127.0.0.1", "transports": ["tcp"]}
    with TransferEngine(config, transports=["local", "tcp"]) as engine:
        own = engine.open_segment(engine.segment_name)
        assert sorted(own.info().transports) == ["local", "tcp"]
    with pytest.raises(TransferError) as error:
        TransferEngine(no_such_field=1)
    assert error.value.code == "InvalidArgument"
    monkeypatch.setenv("TE_TRANSPORTS", "warp")
    with pytest.raises(TransferError) as error:
        TransferEngine.from_env(local_segment_name="127.0.0.1")
    assert error.value.code == "NotSupported"
    with TransferEngine(local_segment_name="127.0.0.1"):  # the environment is not read
        pass


def test_a_closed_engine_refuses_calls_but_keeps_buffers():
    engine = make_engine()
    buffer = engine.allocate(4096)
    engine.close()
    with pytest.raises(TransferError) as error:
        engine.allocate(4096)
    assert error.value.code == "FailedPrecondition"
    memoryview(buffer)[:3] = b"abc"
    assert ctypes.string_at(buffer.address, 3) == b"abc"


def test_exit_while_a_daemon_thread_waits():
    # Python unwinds a thread that takes the GIL during shutdown, which C++ frames
    # cannot survive: a daemon thread inside a transfer must not abort the exit.
    script = textwrap.dedent(
        """
        import threading
        from transfer_engine import READ, Request, TransferEngine

        target = TransferEngine(local_segment_name="127.0.0.1", transports=["tcp"])
        initiator = TransferEngine(local_segment_name="127.0.0.1", transports=["tcp"])
        remote, local = target.allocate(1 << 20), initiator.allocate(1 << 20)
        segment = initiator.open_segment(target.segment_name)
        request = Request(READ, segment, local.address, remote.address, 1 << 20)

        def copy_forever():
            while True:
                initiator.transfer([request])

        threading.Thread(target=copy_forever, daemon=True).start()
        initiator.transfer([request])
        print("exiting")
        """
    )
    for _ in range(5):  # the thread is caught at a random point of its loop
        run = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        assert (run.returncode, run.stdout) == (0, "exiting\n"), run.stderr


def test_transports_is_the_engines_transport_table():
    from transfer_engine import transports

    rows = {t["name"]: t for t in transports()}
    for name in ("local", "shm", "cma", "tcp"):
        assert rows[name]["built"], name
    assert rows["local"]["reach"] == "same process"
    assert rows["shm"]["reach"] == "same host"
    assert rows["tcp"]["reach"] == "any host"
    # Known by name before it is built: asking for it is a NotSupported naming it.
    assert "ucx" in rows
    if not rows["ucx"]["built"]:
        with pytest.raises(TransferError, match="ucx") as raised:
            TransferEngine(transports=["ucx"], rpc_host="127.0.0.1")
        assert raised.value.code == "NotSupported"
