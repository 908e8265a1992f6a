"""Protocol codecs, and the protocol classes packets surface to.

Installed as ``aioxdp.protocols``. Each module builds a header into a
buffer and parses one from a buffer, checking bounds before every read;
a malformed header raises a :class:`DecodeError` subclass naming the fault.
"""

from aioxdp.protocols.errors import BadChecksumError, BadFieldError, DecodeError, TruncatedError

__all__ = ["BadChecksumError", "BadFieldError", "DecodeError", "TruncatedError"]
