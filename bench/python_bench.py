"""Python initiators beside the C++ benchmark, in one run, against one target.

Starts a C++ transfer_engine_bench target (TCP only, on 127.0.0.1), then for each
workload and thread count runs, one after the other for --duration seconds each:
the Pythonic API (TransferEngine.transfer of one batch at a time), the compat API
(batch_transfer_sync_read/write) and the C++ initiator (transfer_engine_bench
--transport=tcp) with the same size, batch and threads; --rounds times in turn,
so that load from elsewhere hits all alike. It prints the median GB/s of each, the
median over rounds of the Python/C++ ratio of the round, and every run. GB/s are
10^9 bytes per second, as the C++ benchmark reports them.

    PYTHONPATH=build/python python3 bench/python_bench.py [--threads=1,2] [--rounds=3]

(It lives here rather than in python/: run as a script from there, the source
package python/transfer_engine, which has no compiled module, would shadow the
built one.)
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import transfer_engine
from transfer_engine import Opcode, Request, compat

TARGET_START_TIMEOUT_S = 30
TARGET_STOP_TIMEOUT_S = 5


def default_bench_binary():
    # Imported from a build tree (<build>/python/transfer_engine): the C++ benchmark
    # of that build.
    build = Path(transfer_engine.__file__).resolve().parents[2]
    return build / "tools" / "transfer_engine_bench"


def start_target(binary, args):
    """A C++ target big enough for the largest case; returns (process, segment name)."""
    command = [
        str(binary),
        "--transport=tcp",
        "--local_segment=127.0.0.1",
        f"--size={args.size}",
        f"--batch={args.batch}",
        f"--threads={max(args.threads)}",
    ]
    target = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    lines = []

    def read():
        for line in target.stdout:
            lines.append(line)
            if "--remote_segment=" in line:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(TARGET_START_TIMEOUT_S)
    match = re.search(r"--remote_segment=(\S+)", "".join(lines))
    if not match:
        stop_target(target)
        raise SystemExit(f"the C++ target did not start: {''.join(lines)!r}")
    return target, match.group(1)


def stop_target(target):
    target.terminate()
    try:
        target.wait(TARGET_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        target.kill()
        target.wait()


def run_cpp(binary, segment, workload, threads, args):
    """GB/s of the C++ initiator."""
    command = [
        str(binary),
        f"--remote_segment={segment}",
        "--transport=tcp",
        f"--workload={workload}",
        f"--size={args.size}",
        f"--batch={args.batch}",
        f"--threads={threads}",
        f"--duration={args.duration}",
        "--json",
    ]
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=args.duration + 60
    )
    result = json.loads(output.stdout.strip().splitlines()[-1])
    return result["bytes_per_second"] / 1e9


class PythonicInitiator:
    def __init__(self, segment_name, args):
        self.engine = transfer_engine.TransferEngine(
            local_segment_name="127.0.0.1", transports=["tcp"]
        )
        self.segment = self.engine.open_segment(segment_name)
        self.remote = self.segment.buffers
        self.local = self.engine.allocate(max(args.threads) * args.size * args.batch)

    def batch_runner(self, opcode, thread, args):
        """What one worker calls per batch; regions as the C++ benchmark lays them out."""
        region = args.size * args.batch
        local = self.local.address + thread * region
        remote = self.remote[thread % len(self.remote)].base + thread * region
        requests = [
            Request(opcode, self.segment, local + j * args.size, remote + j * args.size, args.size)
            for j in range(args.batch)
        ]
        return lambda: self.engine.transfer(requests)


class CompatInitiator:
    def __init__(self, segment_name, args):
        os.environ["TE_TRANSPORTS"] = "tcp"
        self.engine = compat.TransferEngine()
        if self.engine.initialize("127.0.0.1", compat.P2PHANDSHAKE, "tcp", "") != 0:
            raise SystemExit(f"compat initialize: {self.engine.last_error}")
        self.segment_name = segment_name
        self.remote = self.engine.engine.open_segment(segment_name).buffers
        self.local = self.engine.allocate_managed_buffer(
            max(args.threads) * args.size * args.batch
        )

    def batch_runner(self, opcode, thread, args):
        region = args.size * args.batch
        local = self.local + thread * region
        remote = self.remote[thread % len(self.remote)].base + thread * region
        buffers = [local + j * args.size for j in range(args.batch)]
        peers = [remote + j * args.size for j in range(args.batch)]
        lengths = [args.size] * args.batch
        call = (
            self.engine.batch_transfer_sync_read
            if opcode == Opcode.READ
            else self.engine.batch_transfer_sync_write
        )

        def run():
            if call(self.segment_name, buffers, peers, lengths) != 0:
                raise RuntimeError(f"compat transfer failed: {self.engine.last_error}")

        return run


def run_python(initiator, workload, threads, args):
    """GB/s of `threads` Python threads each running batches for --duration s."""
    opcode = Opcode.READ if workload == "read" else Opcode.WRITE
    runners = [initiator.batch_runner(opcode, t, args) for t in range(threads)]
    for run in runners:
        run()  # connections up before the clock starts
    stop = threading.Event()
    counts = [0] * threads
    errors = []

    def work(thread):
        try:
            while not stop.is_set():
                runners[thread]()
                counts[thread] += 1
        except Exception as error:  # reported after the run
            errors.append(error)
            stop.set()

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    start = time.monotonic()
    for worker in workers:
        worker.start()
    stop.wait(args.duration)
    stop.set()
    for worker in workers:
        worker.join()
    seconds = time.monotonic() - start
    if errors:
        raise errors[0]
    return sum(counts) * args.size * args.batch / seconds / 1e9


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", type=Path, default=None, help="transfer_engine_bench binary")
    parser.add_argument("--size", type=int, default=1 << 20, help="bytes per request")
    parser.add_argument("--batch", type=int, default=16, help="requests per batch")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--duration", type=int, default=3, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of every case")
    parser.add_argument("--workloads", default="read,write")
    parser.add_argument("--apis", default="pythonic,compat")
    args = parser.parse_args()
    args.threads = [int(t) for t in args.threads.split(",")]
    args.workloads = args.workloads.split(",")
    args.apis = args.apis.split(",")
    args.bench = args.bench or default_bench_binary()
    if not args.bench.exists():
        parser.error(f"no C++ benchmark at {args.bench}; give --bench")
    return args


def main():
    args = parse_args()
    initiators = {"pythonic": PythonicInitiator, "compat": CompatInitiator}
    target, segment = start_target(args.bench, args)
    try:
        python = {api: initiators[api](segment, args) for api in args.apis}
        print(
            f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  host: "
            f"{platform.node()}  cpus: {os.cpu_count()}  python: {platform.python_version()}  "
            f"seconds/run: {args.duration}  runs/case: {args.rounds} (medians; runs alternate)"
        )
        print(f"{'case (tcp)':24} {'api':9} {'Python GB/s':>11} {'C++ GB/s':>9} {'ratio':>6}  runs")
        ratios = []
        for workload in args.workloads:
            for threads in args.threads:
                runs = {api: [] for api in [*python, "C++"]}
                for _ in range(args.rounds):
                    for api, initiator in python.items():
                        runs[api].append(run_python(initiator, workload, threads, args))
                    runs["C++"].append(run_cpp(args.bench, segment, workload, threads, args))
                cpp = statistics.median(runs["C++"])
                case = f"{workload} {args.size >> 10}KiBx{args.batch} t={threads}"
                for api in python:
                    gbps = statistics.median(runs[api])
                    # Each run beside the C++ run of its round: load that drifts
                    # between rounds cancels out of the ratio.
                    ratio = statistics.median(p / c for p, c in zip(runs[api], runs["C++"]))
                    ratios.append(ratio)
                    pairs = " ".join(f"{p:.2f}/{c:.2f}" for p, c in zip(runs[api], runs["C++"]))
                    print(
                        f"{case:24} {api:9} {gbps:11.2f} {cpp:9.2f} {ratio:5.2f}x  {pairs}",
                        flush=True,
                    )
        print(f"lowest Python/C++ ratio: {min(ratios):.2f}x")
    finally:
        stop_target(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
