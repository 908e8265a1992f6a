"""A deterministic corpus of mutated frames, and a reference model of the forwarder.

``corpus(n, seed, ...)`` mutates valid ICMP, UDP, TCP and ARP frames: random
lengths and truncations, IHL, IP options, checksums, flags, fragments,
VLAN tags. ``expected_match(frame, rules)`` says, from first principles and
independently of the BPF C, whether the forwarder should match a frame.
"""

from __future__ import annotations

import random
import struct

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw


def templates(
    src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, ident: int, udp_port: int
) -> list[bytes]:
    eth = Ether(src=src_mac, dst=dst_mac)
    ip = IP(src=src_ip, dst=dst_ip)
    return [
        bytes(eth / ip / ICMP(type=0, id=ident, seq=7) / Raw(bytes(8) + b"x" * 48)),
        bytes(eth / ip / ICMP(type=8, id=ident, seq=7) / Raw(b"y" * 56)),
        bytes(eth / ip / UDP(sport=40000, dport=udp_port) / Raw(b"fuzz" * 8)),
        bytes(eth / ip / UDP(sport=40001, dport=udp_port + 1) / Raw(b"other")),
        bytes(
            eth
            / ip
            / TCP(
                sport=40002,
                dport=443,
                flags="S",
                options=[("MSS", 1460), ("WScale", 7), ("SAckOK", b""), ("Timestamp", (1, 0))],
            )
        ),
        bytes(eth / ip / TCP(sport=40003, dport=80, flags="PA") / Raw(b"GET / HTTP/1.0\r\n\r\n")),
        bytes(Ether(src=src_mac, dst=dst_mac) / ARP(op=2, hwsrc=src_mac, psrc=src_ip, pdst=dst_ip)),
        bytes(
            Ether(src=src_mac, dst="ff:ff:ff:ff:ff:ff")
            / ARP(op=1, hwsrc=src_mac, psrc=src_ip, pdst=dst_ip)
        ),
    ]


def _mutate(rng: random.Random, frame: bytes) -> bytes:
    f = bytearray(frame)
    if len(f) < 2:
        return bytes(f)
    kind = rng.randrange(12)
    ip = 14
    if kind == 0:  # truncate anywhere
        return bytes(f[: rng.randrange(0, len(f))])
    if kind == 1 and len(f) > ip:  # random IHL
        f[ip] = 0x40 | rng.randrange(16)
    elif kind == 2 and len(f) > ip + 20:  # IP options: grow the header
        words = rng.randrange(1, 11)
        f[ip] = 0x40 | (5 + words)
        f[ip + 20 : ip + 20] = bytes(rng.randrange(256) for _ in range(4 * words))
        total = len(f) - ip
        f[ip + 2 : ip + 4] = total.to_bytes(2, "big")
    elif kind == 3:  # break a checksum (IP or L4)
        at = rng.choice([ip + 10, ip + 11, ip + 22, ip + 23, ip + 36, ip + 37])
        if at < len(f):
            f[at] ^= rng.randrange(1, 256)
    elif kind == 4:  # fragment fields
        if len(f) > ip + 8:
            f[ip + 6 : ip + 8] = (
                rng.choice([0x2000, 0x0000, 0x0001, 0x1FFF, 0x2005, 0x4000])
            ).to_bytes(2, "big")
    elif kind == 5:  # VLAN tag (or two)
        tag = bytes([0x81, 0x00, 0x00, rng.randrange(1, 255)])
        f[12:12] = tag * rng.choice([1, 1, 2])
    elif kind == 6:  # total length lies
        if len(f) > ip + 4:
            f[ip + 2 : ip + 4] = rng.randrange(0, 2000).to_bytes(2, "big")
    elif kind == 7:  # TCP flags and data offset
        if len(f) > ip + 20 + 14:
            f[ip + 20 + 12] = rng.randrange(256)
            f[ip + 20 + 13] = rng.randrange(256)
    elif kind == 8:  # UDP length lies
        if len(f) > ip + 20 + 6:
            f[ip + 24 : ip + 26] = rng.randrange(0, 2000).to_bytes(2, "big")
    elif kind == 9:  # random bytes flipped
        for _ in range(rng.randrange(1, 6)):
            at = rng.randrange(len(f))
            f[at] = rng.randrange(256)
    elif kind == 10:  # garbage tail
        f += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    else:  # valid as is
        pass
    return bytes(f)


def corpus(n: int, seed: int, bases: list[bytes]) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        frame = _mutate(rng, rng.choice(bases))
        if rng.random() < 0.3:
            frame = _mutate(rng, frame)
        out.append(frame.ljust(14, b"\x00"))  # an XDP frame has at least its Ethernet header
    return out


# -- the reference model --------------------------------------------------------


def key_of(frame: bytes) -> tuple[str, tuple[int, ...] | None]:
    """What the forwarder can see in a frame: ("ok"|"arp"|"fragment", fields) or a reason."""
    if len(frame) < 14:
        return "malformed", None
    kind, fields = _key_of_untagged(frame)
    (etype,) = struct.unpack_from("!H", frame, 12)
    if etype in (0x8100, 0x88A8) and kind in ("ok", "arp", "fragment"):
        return "vlan", None  # no rule names a VLAN: tagged frames go to the kernel
    return kind, fields


def _key_of_untagged(frame: bytes) -> tuple[str, tuple[int, ...] | None]:
    off = 14
    (etype,) = struct.unpack_from("!H", frame, 12)
    if etype in (0x8100, 0x88A8):
        if len(frame) < 18:
            return "malformed", None
        (etype,) = struct.unpack_from("!H", frame, 16)
        off = 18
    if etype == 0x0806:
        if len(frame) < off + 28:
            return "malformed", None
        htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", frame, off)
        if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4):
            return "not_ipv4", None
        spa = frame[off + 14 : off + 18]
        tpa = frame[off + 24 : off + 28]
        return "arp", (op, int.from_bytes(spa, "big"), int.from_bytes(tpa, "big"))
    if etype != 0x0800:
        return "not_ipv4", None
    if len(frame) < off + 20:
        return "malformed", None
    vihl = frame[off]
    hlen = (vihl & 0xF) * 4
    (total,) = struct.unpack_from("!H", frame, off + 2)
    if (
        vihl >> 4 != 4
        or hlen < 20
        or off + hlen > len(frame)
        or total < hlen
        or off + total > len(frame)
    ):
        return "malformed", None
    (frag,) = struct.unpack_from("!H", frame, off + 6)
    proto = frame[off + 9]
    src = int.from_bytes(frame[off + 12 : off + 16], "big")
    dst = int.from_bytes(frame[off + 16 : off + 20], "big")
    if frag & 0x3FFF:  # MF or an offset: no whole datagram to read ports from
        return "fragment", (proto, src, dst)
    l4 = off + hlen
    end = off + total  # the transport header lies within the datagram
    if proto == 17:
        if l4 + 8 > end:
            return "malformed", None
        sport, dport = struct.unpack_from("!HH", frame, l4)
        return "ok", (proto, src, dst, sport, dport, -1, -1)
    if proto == 6:
        if l4 + 20 > end:
            return "malformed", None
        doff = frame[l4 + 12] >> 4
        if doff < 5 or l4 + doff * 4 > end:
            return "malformed", None
        sport, dport = struct.unpack_from("!HH", frame, l4)
        return "ok", (proto, src, dst, sport, dport, -1, -1)
    if proto == 1:
        if l4 + 8 > end:
            return "malformed", None
        icmp_type = frame[l4]
        ident = struct.unpack_from("!H", frame, l4 + 4)[0] if icmp_type in (0, 8) else 0
        return "ok", (proto, src, dst, -1, -1, icmp_type, ident)
    return "ok", (proto, src, dst, -1, -1, -1, -1)
