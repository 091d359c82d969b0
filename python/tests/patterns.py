"""Test data both processes can generate from a seed."""

import random


def pattern(seed, length):
    """``length`` pseudo-random bytes determined by ``seed``."""
    return random.Random(seed).randbytes(length)
