"""Ethernet II headers, with at most one 802.1Q / 802.1ad tag."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from aioxdp.protocols.errors import BadFieldError, need

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
HEADER_LEN = 14
BROADCAST = b"\xff" * 6


def mac_bytes(mac: str | bytes) -> bytes:
    """``"02:a0:00:00:00:0a"`` -> 6 bytes; names the argument when malformed."""
    if isinstance(mac, bytes):
        if len(mac) != 6:
            raise ValueError(f"mac: 6 bytes expected, got {len(mac)}")
        return mac
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"mac: not a MAC address: {mac!r}")
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise ValueError(f"mac: not a MAC address: {mac!r}") from None


def mac_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


@dataclass(frozen=True, slots=True)
class Ethernet:
    """An Ethernet header. ``vlan`` is the VLAN id of a single tag, or None."""

    dst: bytes
    src: bytes
    ethertype: int
    vlan: int | None = None
    tpid: int = ETH_P_8021Q

    @property
    def header_len(self) -> int:
        return HEADER_LEN + (4 if self.vlan is not None else 0)

    def build_into(self, buf: bytearray | memoryview, offset: int = 0) -> int:
        """Write the header at ``offset``; returns its length."""
        if self.vlan is None:
            struct.pack_into("!6s6sH", buf, offset, self.dst, self.src, self.ethertype)
        else:
            struct.pack_into(
                "!6s6sHHH",
                buf,
                offset,
                self.dst,
                self.src,
                self.tpid,
                self.vlan & 0xFFF,
                self.ethertype,
            )
        return self.header_len

    def build(self) -> bytes:
        buf = bytearray(self.header_len)
        self.build_into(buf)
        return bytes(buf)

    @classmethod
    def parse(cls, buf: bytes | bytearray | memoryview, offset: int = 0) -> Ethernet:
        need(buf, offset, HEADER_LEN, "ethernet", "header")
        dst, src, ethertype = struct.unpack_from("!6s6sH", buf, offset)
        if ethertype in (ETH_P_8021Q, ETH_P_8021AD):
            need(buf, offset + HEADER_LEN, 4, "ethernet", "VLAN tag")
            tci, inner = struct.unpack_from("!HH", buf, offset + HEADER_LEN)
            if inner in (ETH_P_8021Q, ETH_P_8021AD):
                raise BadFieldError("ethernet", "more than one VLAN tag")
            return cls(dst, src, inner, tci & 0xFFF, ethertype)
        if ethertype < 0x0600:
            raise BadFieldError("ethernet", f"length field {ethertype} (802.3), not an EtherType")
        return cls(dst, src, ethertype)
