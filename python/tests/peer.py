"""A target process for the tests: one engine with one registered buffer.

Prints one JSON line {"segment", "address", "size"}, then answers one line per
command read from stdin:

    fill SEED OFFSET LENGTH      write pattern(SEED, LENGTH) at OFFSET       -> ok
    digest OFFSET LENGTH         sha256 of the bytes at OFFSET               -> hex
    notifications TIMEOUT        notifications received (waits up to TIMEOUT
                                 seconds for the first)            -> JSON [[sender, message]]
    notify SEGMENT MESSAGE       send MESSAGE to SEGMENT                     -> ok
    fill_at ADDRESS SEED LENGTH  fill at an absolute address (compat)        -> ok
    digest_at ADDRESS LENGTH     digest at an absolute address (compat)      -> hex
    quit

--api pythonic uses transfer_engine.TransferEngine and its Buffer; --api compat
uses transfer_engine.compat.TransferEngine (initialize(--hostname, --metadata)),
allocate_managed_buffer and the byte helpers, as a Mooncake-based server would;
with --buffers COUNTxSIZE it also registers COUNT buffers of its own memory in one
batch_register_memory (their addresses are "buffers" in the JSON line).
"""

import argparse
import ctypes
import hashlib
import json
import os
import sys
import time

from helpers import pattern

import transfer_engine
from transfer_engine import compat


class PythonicTarget:
    def __init__(self, transports, size):
        options = {"local_segment_name": "127.0.0.1"}
        if transports != "auto":
            options["transports"] = transports.split(",")
        self.engine = transfer_engine.TransferEngine(**options)
        self.buffer = self.engine.allocate(size)
        self.segment = self.engine.segment_name
        self.address = self.buffer.address

    def write(self, offset, data):
        memoryview(self.buffer)[offset : offset + len(data)] = data

    def read(self, offset, length):
        return bytes(memoryview(self.buffer)[offset : offset + length])

    def notifications(self, timeout):
        return [[n.sender, n.message] for n in self.engine.notifications(timeout=timeout)]

    def notify(self, segment, message):
        self.engine.notify(self.engine.open_segment(segment), message)


class CompatTarget:
    def __init__(self, transports, size, hostname, metadata, protocol="tcp", buffers=""):
        if transports != "auto":
            os.environ["TE_TRANSPORTS"] = transports  # the compat class reads TE_* variables
        self.engine = compat.TransferEngine()
        if self.engine.initialize(hostname, metadata, protocol, "") != 0:
            raise SystemExit(f"initialize failed: {self.engine.last_error}")
        p2p = metadata == compat.P2PHANDSHAKE
        self.segment = f"{hostname}:{self.engine.get_rpc_port()}" if p2p else hostname
        self.address = self.engine.allocate_managed_buffer(size)
        if self.address == 0:
            raise SystemExit(f"allocate_managed_buffer failed: {self.engine.last_error}")
        self.buffers = []
        if buffers:
            count, buffer_size = map(int, buffers.split("x"))
            self._memory = [ctypes.create_string_buffer(buffer_size) for _ in range(count)]
            self.buffers = [ctypes.addressof(m) for m in self._memory]
            if self.engine.batch_register_memory(self.buffers, [buffer_size] * count) != 0:
                raise SystemExit(f"batch_register_memory failed: {self.engine.last_error}")

    def write_at(self, address, data):
        if self.engine.write_bytes_to_buffer(address, data, len(data)) != 0:
            raise RuntimeError(f"write_bytes_to_buffer: {self.engine.last_error}")

    def read_at(self, address, length):
        return self.engine.read_bytes_from_buffer(address, length)

    def write(self, offset, data):
        if self.engine.write_bytes_to_buffer(self.address + offset, data, len(data)) != 0:
            raise RuntimeError(f"write_bytes_to_buffer: {self.engine.last_error}")

    def read(self, offset, length):
        return self.engine.read_bytes_from_buffer(self.address + offset, length)

    def notifications(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            received = self.engine.get_notifies()
            if received or time.monotonic() >= deadline:
                return [[n.name, n.msg] for n in received]
            time.sleep(0.01)

    def notify(self, segment, message):
        self.engine.engine.notify(self.engine.engine.open_segment(segment), message)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--api", choices=["pythonic", "compat"], default="pythonic")
    parser.add_argument("--transports", default="auto", help="comma-separated, or auto")
    parser.add_argument("--size", type=int, default=16 << 20)
    parser.add_argument("--hostname", default="127.0.0.1", help="compat: local_hostname")
    parser.add_argument("--metadata", default=compat.P2PHANDSHAKE, help="compat: metadata_server")
    parser.add_argument("--protocol", default="tcp", help="compat: initialize's protocol")
    parser.add_argument("--buffers", default="", help="compat: COUNTxSIZE more buffers")
    args = parser.parse_args()
    if args.api == "pythonic":
        target = PythonicTarget(args.transports, args.size)
    else:
        target = CompatTarget(
            args.transports, args.size, args.hostname, args.metadata, args.protocol, args.buffers
        )
    info = {"segment": target.segment, "address": target.address, "size": args.size}
    info["buffers"] = getattr(target, "buffers", [])
    print(json.dumps(info))
    sys.stdout.flush()
    for line in sys.stdin:
        command, _, rest = line.rstrip("\n").partition(" ")
        if command == "fill":
            seed, offset, length = map(int, rest.split())
            target.write(offset, pattern(seed, length))
            reply = "ok"
        elif command == "digest":
            offset, length = map(int, rest.split())
            reply = hashlib.sha256(target.read(offset, length)).hexdigest()
        elif command == "notifications":
            reply = json.dumps(target.notifications(float(rest)))
        elif command == "notify":
            segment, _, message = rest.partition(" ")
            target.notify(segment, message)
            reply = "ok"
        elif command == "fill_at":
            address, seed, length = map(int, rest.split())
            target.write_at(address, pattern(seed, length))
            reply = "ok"
        elif command == "digest_at":
            address, length = map(int, rest.split())
            reply = hashlib.sha256(target.read_at(address, length)).hexdigest()
        elif command == "quit":
            return
        else:
            reply = f"error: unknown command {command!r}"
        print(reply, flush=True)

if __name__ == "__main__":
    main()
