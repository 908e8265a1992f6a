"""IPv6 headers (RFC 8200) and a bounded walk over extension headers.

:meth:`IPv6.parse` reads the fixed 40-byte header; :func:`upper_layer`
walks the extension headers after it (hop-by-hop, routing, fragment,
destination options) to the upper-layer protocol, at most
``MAX_EXTENSION_HEADERS`` of them, every length checked against the
payload the fixed header declares.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from aioxdp.protocols.errors import BadFieldError, TruncatedError, need

HEADER_LEN = 40
HOPOPTS, ROUTING, FRAGMENT, DSTOPTS, NO_NEXT_HEADER = 0, 43, 44, 60, 59
EXTENSION_HEADERS = frozenset({HOPOPTS, ROUTING, FRAGMENT, DSTOPTS})
# as many as a walk follows: RFC 8200 4.1 allows each at most once or twice,
# so a longer chain is malformed (or an attack on the walk)
MAX_EXTENSION_HEADERS = 8


def ip6_bytes(address: str | bytes) -> bytes:
    """An IPv6 address as its 16 bytes (a str in any RFC 4291 form, or bytes)."""
    if isinstance(address, bytes):
        if len(address) != 16:
            raise ValueError(f"address: 16 bytes expected, got {len(address)}")
        return address
    try:
        return ipaddress.IPv6Address(address).packed
    except ValueError:
        raise ValueError(f"address: not an IPv6 address: {address!r}") from None


def ip6_str(address: bytes) -> str:
    """The canonical text of 16 address bytes (RFC 5952)."""
    return str(ipaddress.IPv6Address(address))


@dataclass(frozen=True, slots=True)
class IPv6:
    """The fixed IPv6 header. ``payload_length`` counts every byte after it,
    extension headers included."""

    src: bytes
    dst: bytes
    next_header: int
    payload_length: int = 0
    hop_limit: int = 64
    traffic_class: int = 0
    flow_label: int = 0

    def build_into(self, buf: bytearray | memoryview, offset: int = 0) -> int:
        for name, value, top in (
            ("payload_length", self.payload_length, 0xFFFF),
            ("hop_limit", self.hop_limit, 0xFF),
            ("traffic_class", self.traffic_class, 0xFF),
            ("flow_label", self.flow_label, 0xFFFFF),
            ("next_header", self.next_header, 0xFF),
        ):
            if not 0 <= value <= top:
                raise ValueError(f"{name}: must be 0..{top}, got {value}")
        struct.pack_into(
            "!IHBB16s16s",
            buf,
            offset,
            6 << 28 | self.traffic_class << 20 | self.flow_label,
            self.payload_length,
            self.next_header,
            self.hop_limit,
            ip6_bytes(self.src),
            ip6_bytes(self.dst),
        )
        return HEADER_LEN

    @classmethod
    def parse(cls, buf: bytes | bytearray | memoryview, offset: int = 0) -> IPv6:
        need(buf, offset, HEADER_LEN, "ipv6", "header")
        first, length, next_header, hops, src, dst = struct.unpack_from("!IHBB16s16s", buf, offset)
        if first >> 28 != 6:
            raise BadFieldError("ipv6", f"version {first >> 28}, not 6")
        if offset + HEADER_LEN + length > len(buf):
            raise TruncatedError(
                "ipv6",
                f"payload length {length} runs past the {len(buf) - offset - HEADER_LEN} "
                "bytes after the header",
            )
        return cls(src, dst, next_header, length, hops, (first >> 20) & 0xFF, first & 0xFFFFF)


@dataclass(frozen=True, slots=True)
class UpperLayer:
    """Where the extension headers end: the upper-layer protocol and its offset
    in the buffer, the payload's end, and what a fragment header said."""

    proto: int
    offset: int
    end: int
    fragment: bool = False  # a fragment header was in the chain
    fragment_offset: int = 0  # in 8-byte units
    more_fragments: bool = False
    fragment_id: int = 0

    @property
    def first_fragment(self) -> bool:
        """False for a later fragment, which carries no upper-layer header."""
        return self.fragment_offset == 0


def upper_layer(buf: bytes | bytearray | memoryview, offset: int = 0) -> UpperLayer:
    """Walk the extension headers of the IPv6 packet at ``offset`` to its
    upper-layer protocol (NO_NEXT_HEADER if none follows). A later fragment
    stops the walk: what follows is not a header."""
    ip = IPv6.parse(buf, offset)
    end = offset + HEADER_LEN + ip.payload_length
    proto, at = ip.next_header, offset + HEADER_LEN
    fragment = more = False
    frag_offset = ident = 0
    for _ in range(MAX_EXTENSION_HEADERS):
        if proto not in EXTENSION_HEADERS:
            return UpperLayer(proto, at, end, fragment, frag_offset, more, ident)
        if at + 8 > end:
            raise TruncatedError("ipv6", f"extension header {proto} runs past the payload")
        if proto == FRAGMENT:
            nxt, _, field, ident = struct.unpack_from("!BBHI", buf, at)
            fragment, frag_offset, more = True, field >> 3, bool(field & 1)
            size = 8
        else:
            nxt, units = buf[at], buf[at + 1]
            size = (units + 1) * 8
            if at + size > end:
                raise TruncatedError(
                    "ipv6", f"extension header {proto} of {size} bytes runs past the payload"
                )
        proto, at = nxt, at + size
        if fragment and frag_offset:
            return UpperLayer(proto, at, end, True, frag_offset, more, ident)
    if proto in EXTENSION_HEADERS:
        raise BadFieldError(
            "ipv6", f"more than {MAX_EXTENSION_HEADERS} extension headers in one chain"
        )
    return UpperLayer(proto, at, end, fragment, frag_offset, more, ident)
