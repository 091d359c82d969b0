"""Test helpers: a target process (peer.py) driven over its stdin and stdout, and
initiator engines.

Every wait on a peer is bounded, so a stuck peer fails the test instead of hanging
the suite.
"""

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from transfer_engine import TransferEngine

PEER_SCRIPT = Path(__file__).resolve().with_name("peer.py")
START_TIMEOUT_S = 30
REPLY_TIMEOUT_S = 30
STOP_TIMEOUT_S = 5


class Peer:
    """A peer.py process (see its docstring for the commands)."""

    def __init__(self, api="pythonic", transports="tcp", size=16 << 20, flags=()):
        """``flags``: more peer.py flags, e.g. ["--metadata=http://..."]."""
        command = [sys.executable, str(PEER_SCRIPT), f"--api={api}", f"--transports={transports}"]
        self.process = subprocess.Popen(
            command + [f"--size={size}", *flags],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        # A thread reads stdout so that every wait for a line can have a timeout.
        self._lines = queue.Queue()
        threading.Thread(target=self._read_lines, daemon=True).start()
        try:
            info = json.loads(self._reply(START_TIMEOUT_S))
        except BaseException:
            self.close()
            raise
        self.segment = info["segment"]
        self.address = info["address"]
        self.size = info["size"]
        self.buffers = info.get("buffers", [])

    def _read_lines(self):
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _reply(self, timeout):
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"the peer did not answer within {timeout} s") from None
        if line is None:
            raise RuntimeError(f"the peer exited with code {self.process.wait()}")
        return line

    def command(self, *words, timeout=REPLY_TIMEOUT_S):
        self.process.stdin.write(" ".join(str(w) for w in words) + "\n")
        self.process.stdin.flush()
        return self._reply(timeout)

    def fill(self, seed, offset, length):
        """Write pattern(seed, length) into the peer's buffer at ``offset``."""
        assert self.command("fill", seed, offset, length) == "ok"

    def digest(self, offset, length):
        """sha256 hex digest of the peer's bytes at ``offset``."""
        return self.command("digest", offset, length)

    def notifications(self, timeout):
        return json.loads(self.command("notifications", timeout, timeout=timeout + REPLY_TIMEOUT_S))

    def notify(self, segment, message):
        assert self.command("notify", segment, message) == "ok"

    def pause(self):
        os.kill(self.process.pid, signal.SIGSTOP)
        # SIGSTOP is only sent when kill returns: a thread running on another CPU
        # stops a moment later, and could still serve a request sent meanwhile.
        deadline = time.monotonic() + 10
        while not self._stopped():
            assert time.monotonic() < deadline, "the peer did not stop"
            time.sleep(0.001)

    def _stopped(self):
        task_dir = f"/proc/{self.process.pid}/task"
        for task in os.listdir(task_dir):
            try:
                with open(f"{task_dir}/{task}/stat") as stat:
                    # The state follows the command name, which is in parentheses.
                    if stat.read().rsplit(")", 1)[1].split()[0] not in ("T", "t"):
                        return False
            except FileNotFoundError:
                pass  # a thread that ended
        return True

    def resume(self):
        os.kill(self.process.pid, signal.SIGCONT)

    @contextlib.contextmanager
    def paused(self):
        """Stopped (SIGSTOP) inside the block: requests to it wait on the wire."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def close(self):
        if self.process.poll() is None:
            self.resume()  # a paused peer cannot exit
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.flush()
            except OSError:
                pass
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdin.close()
        self.process.stdout.close()


def make_engine(transports="tcp"):
    """An initiator on loopback; transports "auto" keeps the engine's default list."""
    options = {"local_segment_name": "127.0.0.1"}
    if transports != "auto":
        options["transports"] = transports.split(",")
    return TransferEngine(**options)
