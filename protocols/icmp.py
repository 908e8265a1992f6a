"""ICMP (RFC 792): the header codec, echo messages, and a protocol class."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aioxdp.protocols.checksum import internet_checksum, verifies
from aioxdp.protocols.errors import BadChecksumError, BadFieldError, need

if TYPE_CHECKING:
    pass

HEADER_LEN = 8
ECHO_REPLY = 0
DEST_UNREACHABLE = 3
ECHO_REQUEST = 8
TIME_EXCEEDED = 11
IPPROTO_ICMP = 1


def echo_rest(ident: int, seq: int) -> bytes:
    """The 4 type-specific bytes of an echo message (ICMP's and ICMPv6's)."""
    if not 0 <= ident <= 0xFFFF:
        raise ValueError(f"ident: must be 0..65535, got {ident}")
    if not 0 <= seq <= 0xFFFF:
        raise ValueError(f"seq: must be 0..65535, got {seq}")
    return struct.pack("!HH", ident, seq)


class EchoFields:
    """The id and sequence of an echo message, in its 4 type-specific bytes
    (ICMP's and ICMPv6's alike)."""

    __slots__ = ()
    rest: bytes

    @property
    def ident(self) -> int:
        return int.from_bytes(self.rest[:2], "big")

    @property
    def seq(self) -> int:
        return int.from_bytes(self.rest[2:4], "big")


@dataclass(frozen=True, slots=True)
class Icmp(EchoFields):
    """An ICMP header; ``rest`` is the 4 type-specific bytes (id and seq for echo)."""

    type: int
    code: int = 0
    rest: bytes = b"\x00\x00\x00\x00"
    checksum: int = 0

    @property
    def is_echo(self) -> bool:
        return self.type in (ECHO_REQUEST, ECHO_REPLY)

    @classmethod
    def echo(cls, type_: int, ident: int, seq: int) -> Icmp:
        if type_ not in (ECHO_REQUEST, ECHO_REPLY):
            raise ValueError(f"type_: echo messages are 0 or 8, got {type_}")
        return cls(type_, 0, echo_rest(ident, seq))

    def build_into(
        self,
        buf: bytearray | memoryview,
        offset: int,
        payload: bytes | bytearray | memoryview = b"",
    ) -> int:
        """Write header and payload at ``offset`` with the checksum; returns the length."""
        end = offset + HEADER_LEN + len(payload)
        struct.pack_into("!BBH4s", buf, offset, self.type, self.code, 0, self.rest)
        buf[offset + HEADER_LEN : end] = payload
        struct.pack_into("!H", buf, offset + 2, internet_checksum(memoryview(buf)[offset:end]))
        return end - offset

    @classmethod
    def parse(
        cls,
        buf: bytes | bytearray | memoryview,
        offset: int = 0,
        end: int | None = None,
        *,
        verify: bool = True,
    ) -> Icmp:
        """Parse the message in ``buf[offset:end]`` (end: the IP payload's end)."""
        end = len(buf) if end is None else end
        need(buf, offset, HEADER_LEN, "icmp", "header")
        if end > len(buf) or end < offset + HEADER_LEN:
            raise BadFieldError(
                "icmp", f"message of {end - offset} bytes is shorter than its header"
            )
        type_, code, csum, rest = struct.unpack_from("!BBH4s", buf, offset)
        if verify and not verifies(memoryview(buf)[offset:end]):
            raise BadChecksumError("icmp", f"checksum {csum:#06x} does not verify")
        return cls(type_, code, rest, csum)
