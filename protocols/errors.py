"""Decode errors: every codec raises one of these, never anything else.

``reason`` is a short stable name (used as a counter key by dispatchers);
the message says what was wrong and where.
"""

from __future__ import annotations


class DecodeError(ValueError):
    """A header could not be decoded. ``reason`` names the kind of fault."""

    reason = "malformed"

    def __init__(self, layer: str, message: str) -> None:
        super().__init__(f"{layer}: {message}")
        self.layer = layer


class TruncatedError(DecodeError):
    """The buffer ends before the header (or the length it declares) does."""

    reason = "truncated"


class BadChecksumError(DecodeError):
    """A checksum does not verify."""

    reason = "bad_checksum"


class BadFieldError(DecodeError):
    """A field holds a value the protocol does not allow (version, length...)."""

    reason = "bad_field"


def need(
    buf: bytes | bytearray | memoryview, offset: int, size: int, layer: str, what: str
) -> None:
    """Raise TruncatedError unless ``size`` bytes are available at ``offset``."""
    if offset < 0 or offset + size > len(buf):
        raise TruncatedError(
            layer, f"{what} needs {size} bytes at offset {offset}, buffer has {len(buf)}"
        )
