"""UDP headers (RFC 768), checksum over the IPv4 or IPv6 pseudo-header."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from aioxdp.protocols.checksum import transport_checksum, transport_verifies
from aioxdp.protocols.errors import BadChecksumError, BadFieldError, need

HEADER_LEN = 8
IPPROTO_UDP = 17


@dataclass(frozen=True, slots=True)
class Udp:
    sport: int
    dport: int
    length: int = HEADER_LEN  # header and payload
    checksum: int = 0

    def build_into(
        self,
        buf: bytearray | memoryview,
        offset: int,
        payload: bytes | bytearray | memoryview,
        src: bytes,
        dst: bytes,
    ) -> int:
        length = HEADER_LEN + len(payload)
        if length > 0xFFFF:
            raise ValueError(f"payload: {len(payload)} bytes do not fit a UDP datagram")
        struct.pack_into("!HHHH", buf, offset, self.sport, self.dport, length, 0)
        buf[offset + HEADER_LEN : offset + length] = payload
        csum = transport_checksum(memoryview(buf)[offset : offset + length], src, dst, IPPROTO_UDP)
        struct.pack_into("!H", buf, offset + 6, csum or 0xFFFF)  # 0 means "no checksum"
        return length

    @classmethod
    def parse(
        cls,
        buf: bytes | bytearray | memoryview,
        offset: int = 0,
        end: int | None = None,
        *,
        src: bytes | None = None,
        dst: bytes | None = None,
    ) -> Udp:
        """Parse at ``offset``; with ``src``/``dst`` the checksum is verified."""
        end = len(buf) if end is None else end
        need(buf, offset, HEADER_LEN, "udp", "header")
        sport, dport, length, csum = struct.unpack_from("!HHHH", buf, offset)
        if length < HEADER_LEN or offset + length > end:
            raise BadFieldError(
                "udp", f"length {length} does not fit the {end - offset} bytes of the IP payload"
            )
        if not csum and src is not None and len(src) == 16:
            # optional over IPv4; over IPv6 a zero checksum is refused (RFC 8200 8.1)
            raise BadChecksumError("udp", "checksum 0 over IPv6, where it is required")
        if (
            csum
            and src is not None
            and dst is not None
            and not transport_verifies(
                memoryview(buf)[offset : offset + length], src, dst, IPPROTO_UDP
            )
        ):
            raise BadChecksumError("udp", f"checksum {csum:#06x} does not verify")
        return cls(sport, dport, length, csum)
