"""TransferEngine: the Pythonic face of the C++ engine."""

import ctypes
import json
import os

from . import _te
from ._te import Opcode, Permission, Request


class TransferEngine(_te.Engine):
    """Moves bytes between this process's registered memory and peers' segments.

    Configuration (fields of te::Config, e.g. ``metadata_type``,
    ``local_segment_name``, ``transports``, ``transfer_timeout_ms``) comes from
    ``config`` -- a dict, or the path of a JSON file -- overridden by keyword
    arguments; with ``env=True`` the TE_* environment variables come first.
    Unknown fields raise TransferError("InvalidArgument").

    Every method is thread-safe and releases the GIL while it waits or moves data.
    Failures raise TransferError.
    """

    def __init__(self, config=None, *, env=False, **options):
        config_file = ""
        fields = {}
        if isinstance(config, (str, os.PathLike)):
            config_file = os.fspath(config)
        elif config is not None:
            fields.update(config)
        fields.update(options)
        super().__init__(env, config_file, json.dumps(fields))
        # Memoryviews of registered Python objects: holding them keeps the objects
        # alive and stops e.g. a bytearray from moving its memory while registered.
        self._views = {}

    @classmethod
    def from_file(cls, path, **options):
        """An engine configured by the JSON file at ``path``, then ``options``."""
        return cls(path, **options)

    @classmethod
    def from_env(cls, **options):
        """An engine configured by TE_* environment variables, then ``options``."""
        return cls(env=True, **options)

    def register(self, memory, length=None, permission=Permission.REMOTE_READ_WRITE, location=""):
        """Make memory usable in transfers; returns its address.

        ``memory`` is an address (``length`` required) or an object exporting a
        writable C-contiguous buffer (bytearray, numpy array, ctypes array, mmap);
        ``length`` then defaults to its size. A registered object is kept alive
        until unregister().
        """
        if isinstance(memory, int):
            if length is None:
                raise TypeError("register(address) needs a length")
            self._register(memory, length, permission, location)
            return memory
        view = _byte_view(memory)
        address = _address_of(view)
        self._register(address, len(view) if length is None else length, permission, location)
        self._views[address] = view
        return address

    def register_many(
        self, addresses, lengths, permission=Permission.REMOTE_READ_WRITE, location=""
    ):
        """Register raw address ranges all at once (all or none): one descriptor
        update for peers however many there are."""
        self._register_batch(addresses, lengths, permission, location)

    def unregister(self, memory):
        """Undo register(); ``memory`` is the address or the registered object.

        Waits until peers' copies touching the memory are done.
        """
        address = memory if isinstance(memory, int) else _address_of(_byte_view(memory))
        super().unregister(address)
        self._views.pop(address, None)

    def read(self, segment, local, remote, length):
        """Copy ``length`` bytes at ``remote`` in ``segment`` to ``local``; returns bytes moved."""
        return self.transfer([Request(Opcode.READ, segment, local, remote, length)])

    def write(self, segment, local, remote, length):
        """Copy ``length`` bytes at ``local`` to ``remote`` in ``segment``; returns bytes moved."""
        return self.transfer([Request(Opcode.WRITE, segment, local, remote, length)])

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _byte_view(memory):
    view = memoryview(memory).cast("B")  # TypeError unless C-contiguous
    if view.readonly:
        raise ValueError("read-only memory cannot be registered: transfers may write into it")
    return view


def _address_of(view):
    return ctypes.addressof(ctypes.c_char.from_buffer(view))
