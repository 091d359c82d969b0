"""Fixtures: peers started per test and stopped (killed if need be) on teardown,
also when the test failed."""

import pytest

from peer_process import Peer, make_engine


@pytest.fixture
def start_peer():
    """start_peer(api=..., transports=..., size=..., flags=...) -> a running Peer."""
    peers = []

    def start(**options):
        peers.append(Peer(**options))
        return peers[-1]

    yield start
    for peer in peers:
        peer.close()


@pytest.fixture
def engine():
    """A TCP-only initiator engine."""
    with make_engine() as initiator:
        yield initiator
