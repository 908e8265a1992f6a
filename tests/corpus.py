"""A deterministic corpus of mutated frames.

``corpus(n, seed, ...)`` mutates valid ICMP, UDP, TCP and ARP frames, and
IPv6 ones (ICMPv6 echo, UDP, an extension-header chain, a later fragment,
neighbour discovery; addresses from 2001:2::/48, the lab's range): random
lengths and truncations, IHL, IP options, checksums, flags, fragments,
VLAN tags, and the fields rules look at (destination MAC, addresses, ports,
ICMP type and id). What the forwarder must do with each is said by
tests/forwarder_spec.py.
"""

from __future__ import annotations

import functools
import random

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6MLReport2,
    ICMPv6ND_NS,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    RouterAlert,
)
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
        *ipv6_templates(src_mac, dst_mac, ident, udp_port),
    ]


def ipv6_templates(src_mac: str, dst_mac: str, ident: int, udp_port: int) -> list[bytes]:
    """IPv6 frames: echo, UDP and TCP, extension-header chains (one within the
    forwarder's bound of 8, one past it, an atomic fragment), fragments, an
    error quoting our echo, and the link's own messages (NS, MLD)."""
    eth = Ether(src=src_mac, dst=dst_mac)
    ip6 = IPv6(src="2001:2::b", dst="2001:2::a")
    quoted = IPv6(src="2001:2::a", dst="2001:2::99") / ICMPv6EchoRequest(id=ident, seq=3)
    return [
        bytes(eth / ip6 / ICMPv6EchoRequest(id=ident, seq=7, data=b"r" * 24)),
        bytes(eth / ip6 / TCP(sport=40000, dport=udp_port, flags="S")),
        bytes(eth / ip6 / ICMPv6DestUnreach(code=3) / quoted),
        bytes(
            eth
            / ip6
            / IPv6ExtHdrDestOpt()
            / IPv6ExtHdrRouting(addresses=["2001:2::c"], segleft=0)
            / IPv6ExtHdrFragment(m=0, offset=0, id=9)
            / UDP(sport=40000, dport=udp_port)
            / Raw(b"chain" * 4)
        ),
        bytes(
            eth
            / ip6
            / functools.reduce(lambda a, b: a / b, [IPv6ExtHdrDestOpt() for _ in range(9)])
            / UDP(sport=40000, dport=udp_port)
        ),
        bytes(
            eth
            / IPv6(src="fe80::b", dst="ff02::16", hlim=1)
            / IPv6ExtHdrHopByHop(options=[RouterAlert()])
            / ICMPv6MLReport2()
        ),
        bytes(eth / ip6 / ICMPv6EchoReply(id=ident, seq=7, data=bytes(8) + b"x" * 48)),
        bytes(eth / ip6 / UDP(sport=40000, dport=udp_port) / Raw(b"fuzz" * 8)),
        bytes(
            eth
            / ip6
            / IPv6ExtHdrHopByHop()
            / IPv6ExtHdrFragment(m=1, id=5)
            / UDP(sport=40000, dport=udp_port)
            / Raw(b"frag" * 8)
        ),
        bytes(eth / ip6 / IPv6ExtHdrFragment(nh=17, offset=3, id=5) / Raw(b"z" * 24)),
        bytes(
            eth / IPv6(src="fe80::b", dst="ff02::1:ff00:a", hlim=255) / ICMPv6ND_NS(tgt="2001:2::a")
        ),
    ]


def _mutate6(rng: random.Random, f: bytearray) -> bytes:
    """IPv6's own fields: payload length, next headers and extension
    lengths, fragment offsets, an address, the ICMPv6 type."""
    ip = 14
    kind = rng.randrange(6)
    if kind == 0:  # payload length lies
        f[ip + 4 : ip + 6] = rng.randrange(0, 2000).to_bytes(2, "big")
    elif kind == 1:  # another next header in the fixed header
        f[ip + 6] = rng.choice([0, 6, 17, 43, 44, 58, 59, 60, 50])
    elif kind == 2 and len(f) > ip + 42:  # the first extension header's next header or length
        f[ip + 40 + rng.randrange(2)] = rng.choice([0, 6, 17, 44, 58, 60, 1, 255])
    elif kind == 3 and len(f) > ip + 44:  # a fragment offset and M flag, if that was one
        f[ip + 42 : ip + 44] = rng.choice([0x0000, 0x0001, 0x0018, 0x0019, 0xFFF8]).to_bytes(
            2, "big"
        )
    elif kind == 4:  # an address elsewhere in 2001:2::/48
        at = ip + rng.choice([8, 24]) + 15
        f[at] = rng.randrange(256)
    elif kind == 5 and len(f) > ip + 40:  # the ICMPv6 type, if ICMPv6 follows the fixed header
        f[ip + 40] = rng.choice([1, 3, 128, 129, 133, 135, 136, 143, 200])
    return bytes(f)


def _mutate(rng: random.Random, frame: bytes) -> bytes:
    f = bytearray(frame)
    if len(f) < 2:
        return bytes(f)
    kind = rng.randrange(16)
    ip = 14
    if f[12:14] == b"\x86\xdd" and len(f) > ip + 40 and rng.random() < 0.5:
        return _mutate6(rng, f)
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
    elif kind == 11:  # another destination MAC: a neighbour's, broadcast, multicast
        f[0:6] = rng.choice([b"\x02\xa0\x00\x00\x00\x99", b"\xff" * 6, b"\x01\x00\x5e\x00\x00\x01"])
    elif kind == 12 and len(f) > ip + 20:  # an address elsewhere in the lab's range
        at = ip + rng.choice([12, 16]) if f[12:14] == b"\x08\x00" else ip + rng.choice([14, 24])
        f[at : at + 4] = bytes([198, 18 + rng.randrange(2), rng.randrange(256), rng.randrange(256)])
    elif kind == 13 and len(f) > ip + 24:  # ports, or ICMP type and id, from a small set
        l4 = ip + 4 * (f[ip] & 0xF)
        if l4 + 8 <= len(f):
            at = l4 + rng.choice([0, 2, 4])
            f[at : at + 2] = rng.choice([53, 80, 443, 7000, 40000, 0x0800, 0x0300]).to_bytes(
                2, "big"
            )
    elif kind == 14:  # a priority tag (VLAN id 0) or an 802.1ad tag
        f[12:12] = rng.choice([b"\x81\x00\x00\x00", b"\x88\xa8\x00\x07", b"\x81\x00\x20\x07"])
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
