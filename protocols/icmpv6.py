"""ICMPv6 (RFC 4443) and neighbour discovery messages (RFC 4861).

The checksum covers the IPv6 pseudo-header, so building and verifying a
message need its source and destination addresses.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from aioxdp.protocols.checksum import transport_checksum, transport_verifies
from aioxdp.protocols.errors import BadChecksumError, BadFieldError, need
from aioxdp.protocols.icmp import EchoFields, echo_rest
from aioxdp.protocols.ipv6 import ip6_bytes

HEADER_LEN = 8
IPPROTO_ICMPV6 = 58
DEST_UNREACHABLE, PACKET_TOO_BIG, TIME_EXCEEDED, PARAMETER_PROBLEM = 1, 2, 3, 4
ECHO_REQUEST, ECHO_REPLY = 128, 129
ROUTER_SOLICIT, ROUTER_ADVERT, NEIGHBOR_SOLICIT, NEIGHBOR_ADVERT = 133, 134, 135, 136
OPT_SOURCE_LLADDR, OPT_TARGET_LLADDR = 1, 2
NA_ROUTER, NA_SOLICITED, NA_OVERRIDE = 0x80000000, 0x40000000, 0x20000000


@dataclass(frozen=True, slots=True)
class Icmpv6(EchoFields):
    """An ICMPv6 header; ``rest`` is the 4 type-specific bytes (id and seq
    for echo, the MTU for packet too big, the pointer for a parameter problem)."""

    type: int
    code: int = 0
    rest: bytes = b"\x00\x00\x00\x00"
    checksum: int = 0

    @classmethod
    def echo(cls, type_: int, ident: int, seq: int) -> Icmpv6:
        if type_ not in (ECHO_REQUEST, ECHO_REPLY):
            raise ValueError(f"type_: echo messages are 128 or 129, got {type_}")
        return cls(type_, 0, echo_rest(ident, seq))

    def build_into(
        self,
        buf: bytearray | memoryview,
        offset: int,
        payload: bytes | bytearray | memoryview,
        src: str | bytes,
        dst: str | bytes,
    ) -> int:
        """Write header and payload at ``offset``, the checksum over the
        pseudo-header of ``src`` and ``dst``; returns the length."""
        end = offset + HEADER_LEN + len(payload)
        struct.pack_into("!BBH4s", buf, offset, self.type, self.code, 0, self.rest)
        buf[offset + HEADER_LEN : end] = payload
        csum = transport_checksum(
            memoryview(buf)[offset:end], ip6_bytes(src), ip6_bytes(dst), IPPROTO_ICMPV6
        )
        struct.pack_into("!H", buf, offset + 2, csum)
        return end - offset

    @classmethod
    def parse(
        cls,
        buf: bytes | bytearray | memoryview,
        offset: int = 0,
        end: int | None = None,
        *,
        src: str | bytes | None = None,
        dst: str | bytes | None = None,
    ) -> Icmpv6:
        """Parse the message in ``buf[offset:end]``; with ``src`` and ``dst``
        the checksum is verified over their pseudo-header."""
        end = len(buf) if end is None else end
        need(buf, offset, HEADER_LEN, "icmpv6", "header")
        if end > len(buf) or end < offset + HEADER_LEN:
            raise BadFieldError(
                "icmpv6", f"message of {end - offset} bytes is shorter than its header"
            )
        type_, code, csum, rest = struct.unpack_from("!BBH4s", buf, offset)
        if (
            src is not None
            and dst is not None
            and not transport_verifies(
                memoryview(buf)[offset:end], ip6_bytes(src), ip6_bytes(dst), IPPROTO_ICMPV6
            )
        ):
            raise BadChecksumError("icmpv6", f"checksum {csum:#06x} does not verify")
        return cls(type_, code, rest, csum)


@dataclass(frozen=True, slots=True)
class Neighbor:
    """A neighbour solicitation or advertisement's body: the target address,
    the advertisement's flags, and the link-layer address option it carries
    (source for a solicitation, target for an advertisement), if any."""

    target: bytes
    lladdr: bytes | None = None
    flags: int = 0  # NA_ROUTER | NA_SOLICITED | NA_OVERRIDE (advertisements)

    def payload(self, type_: int) -> tuple[Icmpv6, bytes]:
        """The ICMPv6 header and body of this message as ``type_``."""
        if type_ not in (NEIGHBOR_SOLICIT, NEIGHBOR_ADVERT):
            raise ValueError(f"type_: neighbour messages are 135 or 136, got {type_}")
        body = ip6_bytes(self.target)
        if self.lladdr is not None:
            if len(self.lladdr) != 6:
                raise ValueError(f"lladdr: 6 bytes (a MAC) expected, got {len(self.lladdr)}")
            kind = OPT_SOURCE_LLADDR if type_ == NEIGHBOR_SOLICIT else OPT_TARGET_LLADDR
            body += bytes([kind, 1]) + self.lladdr
        flags = self.flags if type_ == NEIGHBOR_ADVERT else 0
        return Icmpv6(type_, 0, struct.pack("!I", flags)), body

    @classmethod
    def parse(cls, message: Icmpv6, body: bytes | bytearray | memoryview) -> Neighbor:
        """The body after a neighbour message's 8-byte header; options are
        walked in 8-byte units, each length checked (RFC 4861 4.6)."""
        if message.type not in (NEIGHBOR_SOLICIT, NEIGHBOR_ADVERT):
            raise BadFieldError("icmpv6", f"type {message.type} is not a neighbour message")
        if message.code != 0:
            raise BadFieldError("icmpv6", f"neighbour message with code {message.code}")
        need(body, 0, 16, "icmpv6", "target address")
        target, at, lladdr = bytes(body[:16]), 16, None
        wanted = OPT_SOURCE_LLADDR if message.type == NEIGHBOR_SOLICIT else OPT_TARGET_LLADDR
        while at < len(body):
            need(body, at, 2, "icmpv6", "option header")
            kind, units = body[at], body[at + 1]
            if units == 0:
                raise BadFieldError("icmpv6", f"option {kind} of length 0")
            need(body, at, units * 8, "icmpv6", f"option {kind}")
            if kind == wanted and units == 1:
                lladdr = bytes(body[at + 2 : at + 8])
            at += units * 8
        flags = int.from_bytes(message.rest, "big") & (NA_ROUTER | NA_SOLICITED | NA_OVERRIDE)
        return cls(target, lladdr, flags if message.type == NEIGHBOR_ADVERT else 0)
