"""IPv4 headers (RFC 791), options carried as raw bytes."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from aioxdp.protocols.checksum import internet_checksum, verifies
from aioxdp.protocols.errors import BadChecksumError, BadFieldError, TruncatedError, need

HEADER_LEN = 20
FLAG_DF = 0x4000
FLAG_MF = 0x2000


def ip_bytes(address: str | bytes) -> bytes:
    if isinstance(address, bytes):
        if len(address) != 4:
            raise ValueError(f"address: 4 bytes expected, got {len(address)}")
        return address
    try:
        return ipaddress.IPv4Address(address).packed
    except ValueError:
        raise ValueError(f"address: not an IPv4 address: {address!r}") from None


def ip_str(address: bytes) -> str:
    return str(ipaddress.IPv4Address(address))


@dataclass(frozen=True, slots=True)
class IPv4:
    """An IPv4 header. ``total_length`` covers header and payload."""

    src: bytes
    dst: bytes
    proto: int
    total_length: int = HEADER_LEN
    ttl: int = 64
    ident: int = 0
    tos: int = 0
    dont_fragment: bool = False
    more_fragments: bool = False
    fragment_offset: int = 0  # in 8-byte units
    options: bytes = b""
    checksum: int = 0  # as parsed; build_into computes it

    @property
    def header_len(self) -> int:
        return HEADER_LEN + len(self.options)

    @property
    def is_fragment(self) -> bool:
        return self.more_fragments or self.fragment_offset != 0

    def build_into(self, buf: bytearray | memoryview, offset: int = 0) -> int:
        if len(self.options) % 4 or len(self.options) > 40:
            raise ValueError(
                f"options: length must be a multiple of 4 up to 40, got {len(self.options)}"
            )
        flags = (FLAG_DF if self.dont_fragment else 0) | (FLAG_MF if self.more_fragments else 0)
        ihl = self.header_len // 4
        struct.pack_into(
            "!BBHHHBBH4s4s",
            buf,
            offset,
            0x40 | ihl,
            self.tos,
            self.total_length,
            self.ident,
            flags | (self.fragment_offset & 0x1FFF),
            self.ttl,
            self.proto,
            0,
            self.src,
            self.dst,
        )
        buf[offset + HEADER_LEN : offset + self.header_len] = self.options
        csum = internet_checksum(memoryview(buf)[offset : offset + self.header_len])
        struct.pack_into("!H", buf, offset + 10, csum)
        return self.header_len

    @classmethod
    def parse(
        cls, buf: bytes | bytearray | memoryview, offset: int = 0, *, verify: bool = True
    ) -> IPv4:
        need(buf, offset, HEADER_LEN, "ipv4", "header")
        vihl, tos, total, ident, frag, ttl, proto, csum, src, dst = struct.unpack_from(
            "!BBHHHBBH4s4s", buf, offset
        )
        if vihl >> 4 != 4:
            raise BadFieldError("ipv4", f"version {vihl >> 4}, not 4")
        hlen = (vihl & 0xF) * 4
        if hlen < HEADER_LEN:
            raise BadFieldError("ipv4", f"header length {hlen} below 20")
        need(buf, offset, hlen, "ipv4", "header with options")
        if total < hlen:
            raise BadFieldError("ipv4", f"total length {total} below header length {hlen}")
        if offset + total > len(buf):
            raise TruncatedError(
                "ipv4", f"total length {total} runs past the {len(buf) - offset} bytes there"
            )
        if verify and not verifies(memoryview(buf)[offset : offset + hlen]):
            raise BadChecksumError("ipv4", f"header checksum {csum:#06x} does not verify")
        return cls(
            src,
            dst,
            proto,
            total,
            ttl,
            ident,
            tos,
            bool(frag & FLAG_DF),
            bool(frag & FLAG_MF),
            frag & 0x1FFF,
            bytes(buf[offset + HEADER_LEN : offset + hlen]),
            csum,
        )
