"""The exception every engine failure raises."""

from . import _te

#: Every te::Status code by name, e.g. STATUS_CODES["NotFound"] == 2.
STATUS_CODES = dict(_te.STATUS_CODES)


class TransferError(RuntimeError):
    """An engine call or a transfer failed.

    ``code`` is the name of the engine's status code ("NotFound", "OutOfRange",
    "Unavailable", ...; see STATUS_CODES), ``value`` its number and ``message`` the
    engine's explanation.
    """

    def __init__(self, code, message):
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.value = STATUS_CODES.get(code, STATUS_CODES["Internal"])

    def __str__(self):
        return f"{self.code}: {self.message}"
