"""ARP for IPv4 over Ethernet (RFC 826)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from aioxdp.protocols.errors import BadFieldError, need

HEADER_LEN = 28
REQUEST = 1
REPLY = 2


@dataclass(frozen=True, slots=True)
class Arp:
    op: int
    sender_mac: bytes
    sender_ip: bytes
    target_mac: bytes
    target_ip: bytes

    def build_into(self, buf: bytearray | memoryview, offset: int = 0) -> int:
        struct.pack_into(
            "!HHBBH6s4s6s4s",
            buf,
            offset,
            1,
            0x0800,
            6,
            4,
            self.op,
            self.sender_mac,
            self.sender_ip,
            self.target_mac,
            self.target_ip,
        )
        return HEADER_LEN

    @classmethod
    def parse(cls, buf: bytes | bytearray | memoryview, offset: int = 0) -> Arp:
        need(buf, offset, HEADER_LEN, "arp", "header")
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = struct.unpack_from(
            "!HHBBH6s4s6s4s", buf, offset
        )
        if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4):
            raise BadFieldError("arp", f"not Ethernet/IPv4 ARP (htype {htype}, ptype {ptype:#x})")
        if op not in (REQUEST, REPLY):
            raise BadFieldError("arp", f"operation {op}")
        return cls(op, sha, spa, tha, tpa)
