"""Test data both processes can generate, and running work in threads."""

import hashlib
import random
from concurrent.futures import ThreadPoolExecutor


def pattern(seed, length):
    """``length`` pseudo-random bytes determined by ``seed``."""
    return random.Random(seed).randbytes(length)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def run_threads(work, count, timeout=120):
    """work(0) ... work(count - 1) in ``count`` threads at once; their results, or the
    first exception one raised."""
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(work, range(count), timeout=timeout))
