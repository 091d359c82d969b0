"""Each Mooncake caller's call sequence, replayed with transfer_engine.compat alone
across two processes, with their defaults (protocol "rdma"), checking the bytes:
SGLang's prefill -> decode KV transfer, vLLM's connector, LMCache's channel, and
Mooncake's own wheel tests."""

import ctypes
import logging
import time

import pytest
from helpers import pattern, run_threads, sha256

from transfer_engine import compat

KiB = 1 << 10
PAGE = 4 * KiB
HOST = "127.0.0.1"


def rdma_engine():
    """An engine initialized the way SGLang and vLLM do by default."""
    engine = compat.TransferEngine()
    result = engine.initialize(HOST, "P2PHANDSHAKE", "rdma", "")
    assert result == 0, engine.last_error
    return engine


def poll(engine, batch, timeout_s=60):
    """transfer_check_status until it is not 0 (pending), as callers poll it."""
    deadline = time.monotonic() + timeout_s
    while (state := engine.transfer_check_status(batch)) == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    return state


class Memory:
    """ctypes buffers the test owns, as a server's KV cache tensors would be."""

    def __init__(self, count, size):
        self.blocks = [ctypes.create_string_buffer(size) for _ in range(count)]
        self.addresses = [ctypes.addressof(b) for b in self.blocks]
        self.size = size

    def fill(self, index, seed):
        ctypes.memmove(self.addresses[index], pattern(seed, self.size), self.size)

    def bytes(self, index, offset=0, length=None):
        length = self.size - offset if length is None else length
        return ctypes.string_at(self.addresses[index] + offset, length)


@pytest.fixture
def decode(start_peer):
    """The decode side: KV buffers (4 layers x 64 KiB) and aux data in one batch."""
    return start_peer(api="compat", size=64 * KiB, flags=["--protocol=rdma", "--buffers=5x65536"])


def test_rdma_falls_back_with_one_warning(caplog):
    # Reset so the test sees the warning whatever ran before in this process.
    compat._mooncake_options._warned.discard("rdma")
    with caplog.at_level(logging.WARNING, logger="transfer_engine.compat"):
        first, second = rdma_engine(), rdma_engine()
    warnings = [r for r in caplog.records if "protocol 'rdma'" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert "TCP" in warnings[0].getMessage()
    assert first.get_rpc_port() != second.get_rpc_port()


def test_sglang_prefill_to_decode(decode):
    prefill = rdma_engine()
    layers, aux_index, layer_size = 4, 4, 64 * KiB
    kv = Memory(layers, layer_size)
    aux = Memory(1, PAGE)
    staging = Memory(1, 16 * KiB)
    assert prefill.batch_register_memory(kv.addresses, [layer_size] * layers) == 0
    assert prefill.register_memory(aux.addresses[0], PAGE) == 0
    assert prefill.register_memory(staging.addresses[0], staging.size) == 0
    for layer in range(layers):
        kv.fill(layer, seed=layer)
    aux.fill(0, seed=99)
    session = decode.segment
    peer_kv = decode.buffers[:layers]
    peer_aux = decode.buffers[aux_index]

    # One thread per layer, each writing its pages (every other page, reversed) as
    # batch_transfer_sync_write of page-sized slices.
    pages = list(range(0, layer_size // PAGE, 2))[::-1]

    def send_layer(layer):
        sources = [kv.addresses[layer] + p * PAGE for p in pages]
        targets = [peer_kv[layer] + p * PAGE for p in pages]
        return prefill.batch_transfer_sync_write(session, sources, targets, [PAGE] * len(pages))

    assert run_threads(send_layer, layers) == [0] * layers
    assert prefill.transfer_sync_write(session, aux.addresses[0], peer_aux, PAGE) == 0
    # A staging buffer: bytes written into it with the byte helper, then sent.
    staged = pattern(7, staging.size)
    assert prefill.write_bytes_to_buffer(staging.addresses[0], staged, len(staged)) == 0
    assert prefill.transfer_sync_write(session, staging.addresses[0], peer_aux, 1024) == 0

    for layer in range(layers):
        for p in (pages[0], pages[-1]):
            expected = sha256(kv.bytes(layer, p * PAGE, PAGE))
            assert decode.command("digest_at", peer_kv[layer] + p * PAGE, PAGE) == expected
        untouched = peer_kv[layer] + PAGE  # odd pages were not sent
        assert decode.command("digest_at", untouched, PAGE) == sha256(bytes(PAGE))
    expected_aux = staged[:1024] + aux.bytes(0, 1024)
    assert decode.command("digest_at", peer_aux, PAGE) == sha256(expected_aux)

    # The decode side dies: transfers and SGLang's probe of the session fail, bounded.
    decode.process.kill()
    decode.process.wait()
    started = time.monotonic()
    assert prefill.batch_transfer_sync_write(session, kv.addresses[:1], peer_kv[:1], [PAGE]) < 0
    assert prefill.send_probe(session) < 0
    assert prefill.transfer_sync_write(session, kv.addresses[0], peer_kv[0], 1) < 0
    assert time.monotonic() - started < 120  # bounded by the engine's timeouts


def test_vllm_connector_pattern(decode):
    engine = compat.TransferEngine()
    assert engine.initialize(HOST, "P2PHANDSHAKE", "rdma", "") == 0
    local = Memory(2, 64 * KiB)
    assert engine.batch_register_memory(local.addresses, [local.size] * 2) == 0
    remote = decode.buffers[:2]
    for i, address in enumerate(remote):
        assert decode.command("fill_at", address, 40 + i, 64 * KiB) == "ok"
    # vLLM reads the blocks the remote prefill produced, in block-sized pieces.
    blocks = 16 * KiB
    locals_, remotes = [], []
    for i in range(2):
        for offset in range(0, 64 * KiB, blocks):
            locals_.append(local.addresses[i] + offset)
            remotes.append(remote[i] + offset)
    lengths = [blocks] * len(locals_)
    assert engine.batch_transfer_sync_read(decode.segment, locals_, remotes, lengths) == 0
    for i in range(2):
        assert local.bytes(i) == pattern(40 + i, 64 * KiB)
    # And writes back (the producer side of the connector).
    local.fill(0, seed=50)
    written = engine.batch_transfer_sync_write(
        decode.segment, locals_[:4], remotes[:4], lengths[:4]
    )
    assert written == 0
    assert decode.command("digest_at", remote[0], 64 * KiB) == sha256(pattern(50, 64 * KiB))


def test_lmcache_channel(decode):
    engine = rdma_engine()
    local = Memory(1, 64 * KiB)
    assert engine.register_memory(local.addresses[0], local.size) == 0
    # LMCache learns where the peer's buffer starts from the segment.
    first = engine.get_first_buffer_address(decode.segment)
    assert first == min([decode.address, *decode.buffers])
    target = decode.buffers[0]
    local.fill(0, seed=60)
    batch = engine.batch_transfer_async_write(
        decode.segment, [local.addresses[0]], [target], [local.size]
    )
    assert batch != 0
    assert engine.get_batch_transfer_status([batch]) == 0
    assert decode.command("digest_at", target, local.size) == sha256(pattern(60, local.size))

    assert decode.command("fill_at", target, 61, 8 * KiB) == "ok"
    batch = engine.batch_transfer_async_read(
        decode.segment, [local.addresses[0]], [target], [8 * KiB]
    )
    assert batch != 0
    assert poll(engine, batch) == 1
    assert local.bytes(0, 0, 8 * KiB) == pattern(61, 8 * KiB)
    # Failure is 0, as LMCache tests it; an unknown batch is -1.
    unregistered = ctypes.create_string_buffer(64)  # local memory never registered
    assert engine.batch_transfer_async_write(
        decode.segment, [ctypes.addressof(unregistered)], [target], [64]
    ) == 0
    dead_session = "127.0.0.1:1"
    assert engine.batch_transfer_async_write(dead_session, [local.addresses[0]], [target], [1]) == 0
    assert engine.transfer_check_status(123456789) == -1
    assert engine.get_engine() is engine.engine is not None


def test_mooncake_wheel_style(start_peer):
    target = start_peer(api="compat", size=1 << 20, flags=["--protocol=rdma"])
    engine = rdma_engine()
    assert engine.get_localhost_name() == HOST
    buffer = engine.allocate_managed_buffer(1 << 20)
    assert buffer != 0
    data = pattern(70, 256 * KiB)
    assert engine.write_bytes_to_buffer(buffer, data, len(data)) == 0
    assert engine.transfer_sync_write(target.segment, buffer, target.address, len(data)) == 0
    assert target.digest(0, len(data)) == sha256(data)
    target.fill(71, 0, 128 * KiB)
    assert engine.transfer_sync_read(target.segment, buffer, target.address, 128 * KiB) == 0
    assert engine.read_bytes_from_buffer(buffer, 128 * KiB) == pattern(71, 128 * KiB)
    # Async: submit, then poll the status codes.
    assert engine.write_bytes_to_buffer(buffer, data[:4096], 4096) == 0
    batch = engine.transfer_submit_write(
        target.segment, buffer, target.address + 4096, 4096, transport_hint="tcp"
    )
    assert batch != 0
    assert poll(engine, batch) == 1
    assert target.digest(4096, 4096) == sha256(data[:4096])
    # The byte helpers take any local address, registered or not, as Mooncake's do.
    plain = ctypes.create_string_buffer(64)
    assert engine.write_bytes_to_buffer(ctypes.addressof(plain), b"x" * 64, 64) == 0
    assert engine.read_bytes_from_buffer(ctypes.addressof(plain), 64) == b"x" * 64
    assert engine.write_bytes_to_buffer(0, b"x", 1) < 0
    assert engine.read_bytes_from_buffer(0, 1) == b""
    assert engine.free_managed_buffer(buffer, 1 << 20) == 0
