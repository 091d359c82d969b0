"""transfer_engine.compat.TransferEngine (Mooncake's method names and integer
results), as initiator against a compat target in another process."""

import ctypes
import os
import re
import socket
import subprocess
import sys
import threading
import time

import pytest
from helpers import pattern, run_threads, sha256

from transfer_engine import STATUS_CODES, TransferError, compat

MiB = 1 << 20
KiB = 1 << 10


def failed_with(code):
    """The integer a compat call returns for a failure with status `code`."""
    return -STATUS_CODES[code]


@pytest.fixture
def initiator(monkeypatch):
    monkeypatch.setenv("TE_TRANSPORTS", "tcp")
    engine = compat.TransferEngine()
    assert engine.initialize("127.0.0.1", compat.P2PHANDSHAKE, "tcp", "") == 0
    return engine


@pytest.fixture
def target(start_peer):
    return start_peer(api="compat")


def test_initialize_gives_a_p2p_segment(initiator):
    port = initiator.get_rpc_port()
    assert 0 < port < 65536
    assert initiator.engine.segment_name == f"127.0.0.1:{port}"
    # A port free a moment ago may be taken meanwhile by a parallel test: then another.
    for _attempt in range(5):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free_port = probe.getsockname()[1]
        fixed = compat.TransferEngine()
        if fixed.initialize(f"127.0.0.1:{free_port}", compat.P2PHANDSHAKE, "tcp", "") == 0:
            break
        assert "in use" in fixed.last_error.message, fixed.last_error
    else:
        pytest.fail("five ports in a row were taken before the engine could bind them")
    assert fixed.get_rpc_port() == free_port


def test_initialize_failures_are_negative(initiator):
    fresh = compat.TransferEngine()
    assert fresh.get_rpc_port() == failed_with("FailedPrecondition")
    assert fresh.transfer_sync_read("127.0.0.1:1", 0, 0, 1) == failed_with("FailedPrecondition")
    assert fresh.allocate_managed_buffer(4096) == 0
    assert fresh.initialize("127.0.0.1", compat.P2PHANDSHAKE, "nvmeof", "") == failed_with(
        "NotSupported"
    )
    assert fresh.last_error.code == "NotSupported"
    unknown_server = "zookeeper://h:1"
    assert fresh.initialize("127.0.0.1", unknown_server, "tcp", "") == failed_with("NotSupported")
    assert initiator.initialize("127.0.0.1", compat.P2PHANDSHAKE, "tcp", "") == failed_with(
        "FailedPrecondition"
    )


def test_metadata_server_strings():
    central = compat._central_metadata
    assert central("etcd", "10.0.0.1:2379") == {
        "metadata_type": "etcd",
        "metadata_servers": "10.0.0.1:2379",
    }
    assert central("etcd", "etcd://a:1;b:2")["metadata_servers"] == "a:1,b:2"
    assert central("redis", "redis://h:6379/2") == {
        "metadata_type": "redis",
        "metadata_servers": "redis://h:6379/2",
    }
    assert central("http", "http://h:8080/metadata")["metadata_servers"] == "http://h:8080/metadata"
    with pytest.raises(TransferError):
        central("consul", "consul://h")


def test_sync_read_and_write(target, initiator):
    local = initiator.allocate_managed_buffer(2 * MiB)
    assert local != 0 and local % 4096 == 0
    target.fill(5, 0, MiB)
    assert initiator.transfer_sync_read(target.segment, local, target.address, MiB) == 0
    assert initiator.read_bytes_from_buffer(local, MiB) == pattern(5, MiB)
    data = os.urandom(MiB + 3)
    assert initiator.write_bytes_to_buffer(local + 7, data, len(data)) == 0
    remote = target.address + MiB
    assert initiator.transfer_sync_write(target.segment, local + 7, remote, len(data)) == 0
    assert target.digest(MiB, len(data)) == sha256(data)


def test_batch_sync_read_and_write(target, initiator):
    count, size = 16, 64 * KiB
    local = initiator.allocate_managed_buffer(2 * count * size)
    data = os.urandom(count * size)
    assert initiator.write_bytes_to_buffer(local, data, len(data)) == 0
    offsets = [i * size for i in range(count)]
    remote = [target.address + 2 * offset for offset in offsets]  # every other block
    lengths = [size] * count
    assert (
        initiator.batch_transfer_sync_write(
            target.segment, [local + o for o in offsets], remote, lengths
        )
        == 0
    )
    for i, offset in enumerate(offsets):
        assert target.digest(2 * offset, size) == sha256(data[offset : offset + size])
    back = [local + count * size + o for o in offsets]
    assert initiator.batch_transfer_sync_read(target.segment, back, remote, lengths) == 0
    assert initiator.read_bytes_from_buffer(back[0], count * size) == data


def test_batch_async_and_status(target, initiator):
    local = initiator.allocate_managed_buffer(8 * MiB)
    target.fill(21, 0, 4 * MiB)
    data = os.urandom(4 * MiB)
    assert initiator.write_bytes_to_buffer(local + 4 * MiB, data, len(data)) == 0
    reads = initiator.batch_transfer_async_read(
        target.segment,
        [local + i * MiB for i in range(4)],
        [target.address + i * MiB for i in range(4)],
        [MiB] * 4,
    )
    writes = initiator.batch_transfer_async_write(
        target.segment,
        [local + (4 + i) * MiB for i in range(4)],
        [target.address + (4 + i) * MiB for i in range(4)],
        [MiB] * 4,
    )
    assert reads > 0 and writes > 0 and reads != writes
    assert initiator.get_batch_transfer_status([reads, writes]) == 0
    assert initiator.read_bytes_from_buffer(local, 4 * MiB) == pattern(21, 4 * MiB)
    assert target.digest(4 * MiB, 4 * MiB) == sha256(data)
    assert initiator.get_batch_transfer_status([reads]) == failed_with("NotFound")


def test_bad_addresses_and_segments_are_negative(target, initiator):
    local = initiator.allocate_managed_buffer(MiB)
    past_end = target.address + (16 << 20)
    assert initiator.transfer_sync_read(target.segment, local, past_end, 4096) == failed_with(
        "OutOfRange"
    )
    assert initiator.last_error.code == "OutOfRange"
    scratch = ctypes.create_string_buffer(4096)
    assert initiator.transfer_sync_write(
        target.segment, ctypes.addressof(scratch), target.address, 4096
    ) == failed_with("InvalidArgument")
    assert initiator.transfer_sync_write("127.0.0.1:1", local, target.address, 4096) == failed_with(
        "Unavailable"
    )
    batch = initiator.batch_transfer_async_write(target.segment, [local], [past_end], [4096])
    assert batch > 0  # the target refuses it, not the submission
    assert initiator.get_batch_transfer_status([batch]) == failed_with("OutOfRange")
    assert initiator.batch_transfer_async_read("127.0.0.1:1", [local], [0], [1]) == 0
    assert initiator.last_error.code == "Unavailable"
    assert initiator.batch_transfer_sync_read(
        target.segment, [local, local], [target.address], [1, 1]
    ) == failed_with("InvalidArgument")
    assert initiator.get_batch_transfer_status([123456]) == failed_with("NotFound")
    assert initiator.transfer_sync_read(target.segment, local, target.address, 4096) == 0


def test_byte_helpers_check_lengths(initiator):
    local = initiator.allocate_managed_buffer(4096)
    assert initiator.write_bytes_to_buffer(local + 4000, b"x" * 96, 96) == 0
    assert initiator.write_bytes_to_buffer(local, b"abc", 4) == failed_with("InvalidArgument")
    # Any local address, registered or not, as in Mooncake.
    scratch = ctypes.create_string_buffer(16)
    assert initiator.write_bytes_to_buffer(ctypes.addressof(scratch), b"abc", 3) == 0
    assert initiator.read_bytes_from_buffer(ctypes.addressof(scratch), 3) == b"abc"


def test_managed_buffers(initiator):
    first = initiator.allocate_managed_buffer(MiB)
    second = initiator.allocate_managed_buffer(4096)
    assert 0 not in (first, second) and first != second
    assert initiator.write_bytes_to_buffer(second, b"kv", 2) == 0
    assert initiator.read_bytes_from_buffer(second, 2) == b"kv"
    assert initiator.free_managed_buffer(second, 4096) == 0
    assert initiator.free_managed_buffer(second, 4096) == failed_with("NotFound")
    assert initiator.allocate_managed_buffer(0) == 0


def test_register_memory(target, initiator):
    target.fill(31, 0, 64 * KiB)
    memory = ctypes.create_string_buffer(64 * KiB)
    address = ctypes.addressof(memory)
    assert initiator.register_memory(address, 64 * KiB) == 0
    assert initiator.register_memory(address, 64 * KiB) == failed_with("AlreadyExists")
    assert initiator.transfer_sync_read(target.segment, address, target.address, 64 * KiB) == 0
    assert memory.raw == pattern(31, 64 * KiB)
    assert initiator.unregister_memory(address) == 0
    assert initiator.unregister_memory(address) == failed_with("NotFound")
    result = initiator.transfer_sync_read(target.segment, address, target.address, 4096)
    assert result == failed_with("InvalidArgument")


def test_batch_register_memory(target, initiator):
    target.fill(41, 0, 3 * 4096)
    blocks = [ctypes.create_string_buffer(4096) for _ in range(3)]
    addresses = [ctypes.addressof(b) for b in blocks]
    assert initiator.batch_register_memory(addresses, [4096] * 3, "cpu:0") == 0
    remote = [target.address + i * 4096 for i in range(3)]
    assert initiator.batch_transfer_sync_read(target.segment, addresses, remote, [4096] * 3) == 0
    assert b"".join(b.raw for b in blocks) == pattern(41, 3 * 4096)
    assert initiator.batch_unregister_memory(addresses) == 0
    assert initiator.batch_transfer_sync_read(
        target.segment, addresses, remote, [4096] * 3
    ) == failed_with("InvalidArgument")
    # All or nothing: the second entry overlaps the first, so neither stays registered.
    assert initiator.batch_register_memory(addresses[:1] * 2, [4096] * 2) == failed_with(
        "AlreadyExists"
    )
    assert initiator.register_memory(addresses[0], 4096) == 0
    assert initiator.batch_register_memory(addresses, [4096]) == failed_with("InvalidArgument")


def test_threads_call_at_once(target, initiator):
    threads, region, rounds = 8, 128 * KiB, 8
    local = initiator.allocate_managed_buffer(threads * region)

    def work(thread):
        base = thread * region
        for round_ in range(rounds):
            data = pattern(thread * 100 + round_, region)
            assert initiator.write_bytes_to_buffer(local + base, data, region) == 0
            half = region // 2
            batch = initiator.batch_transfer_async_write(
                target.segment,
                [local + base, local + base + half],
                [target.address + base, target.address + base + half],
                [half, half],
            )
            assert batch > 0
            assert initiator.get_batch_transfer_status([batch]) == 0
            assert initiator.write_bytes_to_buffer(local + base, bytes(region), region) == 0
            remote = target.address + base
            assert initiator.transfer_sync_read(target.segment, local + base, remote, region) == 0
            assert initiator.read_bytes_from_buffer(local + base, region) == data
        return data

    for thread, data in enumerate(run_threads(work, threads)):
        assert target.digest(thread * region, region) == sha256(data)


def test_calls_release_the_gil(target, initiator):
    # As in test_pythonic: only this thread can resume the stopped target.
    local = initiator.allocate_managed_buffer(2 * MiB)
    initiator.transfer_sync_read(target.segment, local, target.address, 1)  # opens the segment
    results = {}

    def read():
        results["sync"] = initiator.transfer_sync_read(target.segment, local, target.address, MiB)

    def wait():
        batch = initiator.batch_transfer_async_read(
            target.segment, [local + MiB], [target.address + MiB], [MiB]
        )
        results["async"] = initiator.get_batch_transfer_status([batch])

    workers = [threading.Thread(target=read), threading.Thread(target=wait)]
    with target.paused():
        for worker in workers:
            worker.start()
        time.sleep(0.3)
        assert all(worker.is_alive() for worker in workers), results
    for worker in workers:
        worker.join(30)
    assert results == {"sync": 0, "async": 0}


def test_get_notifies(target, initiator):
    target.notify(initiator.engine.segment_name, "prefill done")
    deadline = time.monotonic() + 10
    received = []
    while not received and time.monotonic() < deadline:
        received = initiator.get_notifies()
        time.sleep(0.01)
    assert [(n.name, n.msg) for n in received] == [(target.segment, "prefill done")]
    assert initiator.get_notifies() == []
    pythonic = initiator.engine
    pythonic.notify(pythonic.open_segment(target.segment), "decode ready")
    assert target.notifications(timeout=10) == [[pythonic.segment_name, "decode ready"]]


# A server of GET/PUT/DELETE ?key= only, following Mooncake's http metadata protocol.
KEY_ONLY_SERVER = os.path.join(
    os.path.dirname(__file__), "..", "..", "tests", "metadata", "key_only_metadata_server.py"
)


@pytest.fixture(params=["ours", "key_only"])
def metadata_server(request):
    """An http metadata server: ours (its path from CTest), or the key-only one, with
    which engines store each segment whole; the URL engines use."""
    if request.param == "ours":
        binary = os.environ.get("TE_METADATA_SERVER")
        if not binary:
            pytest.skip("TE_METADATA_SERVER (transfer_engine_metadata_server) is not set")
        command = [binary]
    else:
        command = [sys.executable, KEY_ONLY_SERVER]
    server = subprocess.Popen(
        command + ["--host=127.0.0.1", "--port=0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        reader = threading.Thread(
            target=lambda: lines.append(server.stdout.readline()), daemon=True
        )
        reader.start()
        reader.join(10)
        match = re.search(r"listening on (http://\S+)", lines[0] if lines else "")
        assert match, f"the metadata server did not start: {lines}"
        yield match.group(1) + "/metadata"
    finally:
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server.stdout.close()


def test_central_metadata_names(start_peer, metadata_server, monkeypatch):
    target = start_peer(
        api="compat", flags=["--hostname=kv-target", f"--metadata={metadata_server}"]
    )
    assert target.segment == "kv-target"
    monkeypatch.setenv("TE_TRANSPORTS", "tcp")
    initiator = compat.TransferEngine()
    assert initiator.initialize("kv-initiator", metadata_server, "tcp", "") == 0
    local = initiator.allocate_managed_buffer(MiB)
    target.fill(51, 0, MiB)
    assert initiator.transfer_sync_read("kv-target", local, target.address, MiB) == 0
    assert initiator.read_bytes_from_buffer(local, MiB) == pattern(51, MiB)
