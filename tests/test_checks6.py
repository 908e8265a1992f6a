"""The C checks of received IPv6 frames (aioxdp/_native/parse.c), table by
table: scapy builds each frame, and the expected status and fields are
written from RFC 8200 and 4443, not from the C."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Packet, Raw

from aioxdp._libs import ffi, lib

IDENT = 0x5151
B6, A6, FAR6 = "2001:2::b", "2001:2::a", "2001:2:1::9"
ETHER = Ether(src="02:a0:00:00:00:0b", dst="02:a0:00:00:00:0a")


def echo_check(frame: bytes, reply: Any = None) -> Any:
    r = reply if reply is not None else ffi.new("struct aioxdp_echo_reply *")
    r.status = lib.aioxdp_echo_check(ffi.from_buffer(frame), len(frame), IDENT, r)
    return r


def udp_check(frame: bytes) -> Any:
    d = ffi.new("struct aioxdp_udp_dgram *")
    d.status = lib.aioxdp_udp_check(ffi.from_buffer(frame), len(frame), d)
    return d


def v6(*headers: Packet, src: str = B6, hlim: int = 61) -> Packet:
    packet: Packet = ETHER / IPv6(src=src, dst=A6, hlim=hlim)
    for header in headers:
        packet = packet / header
    return packet


REPLY = ICMPv6EchoReply(id=IDENT, seq=7, data=b"r" * 24)
QUOTED = IPv6(src=A6, dst=FAR6) / ICMPv6EchoRequest(id=IDENT, seq=3, data=b"q" * 16)


def with_payload_length(frame: bytes, length: int) -> bytes:
    return frame[:18] + length.to_bytes(2, "big") + frame[20:]


ECHO_TABLE = [
    ("reply", bytes(v6(REPLY)), "OK"),
    ("reply behind hop-by-hop", bytes(v6(IPv6ExtHdrHopByHop(), REPLY)), "OK"),
    (
        "reply behind destination options and an atomic fragment",
        bytes(v6(IPv6ExtHdrDestOpt(), IPv6ExtHdrFragment(m=0, offset=0), REPLY)),
        "OK",
    ),
    (
        "reply, VLAN-tagged",
        bytes(ETHER / Dot1Q(vlan=7) / IPv6(src=B6, dst=A6, hlim=61) / REPLY),
        "OK",
    ),
    ("first fragment of a reply", bytes(v6(IPv6ExtHdrFragment(m=1), REPLY)), "FRAGMENT"),
    ("fragment of UDP", bytes(v6(IPv6ExtHdrFragment(m=1), UDP())), "NOT_ICMP"),
    ("UDP", bytes(v6(UDP(sport=1, dport=2))), "NOT_ICMP"),
    ("echo request", bytes(v6(ICMPv6EchoRequest(id=IDENT, seq=1))), "NOT_REPLY"),
    ("another id", bytes(v6(ICMPv6EchoReply(id=IDENT + 1, seq=7))), "FOREIGN"),
    ("payload length past the frame", with_payload_length(bytes(v6(REPLY)), 400), "TRUNCATED"),
    ("fixed header cut", bytes(v6(REPLY))[: 14 + 39], "TRUNCATED"),
    (
        "version 4 in an IPv6 frame",
        bytes(v6(REPLY))[:14] + b"\x45" + bytes(v6(REPLY))[15:],
        "BAD_IP",
    ),
    (
        "routing header with segments left",
        bytes(v6(IPv6ExtHdrRouting(addresses=[FAR6], segleft=1), REPLY)),
        "BAD_IP",
    ),
    ("9 extension headers", bytes(v6(*[IPv6ExtHdrDestOpt() for _ in range(9)], REPLY)), "BAD_IP"),
    (
        "odd EtherType, 86dd where a tag's would be",
        bytes(v6(REPLY))[:12] + b"\x12\x34\x00\x00\x86\xdd" + bytes(v6(REPLY))[14:],
        "NOT_IP",
    ),
    ("time exceeded quoting our request", bytes(v6(ICMPv6TimeExceeded(), QUOTED)), "ERROR"),
    (
        "packet too big quoting our request",
        bytes(v6(ICMPv6PacketTooBig(mtu=1280), QUOTED)),
        "ERROR",
    ),
    (
        "time exceeded quoting 47 bytes",
        bytes(v6(ICMPv6TimeExceeded(), Raw(bytes(QUOTED)[:47]))),
        "NOT_REPLY",
    ),
]


@pytest.mark.parametrize(
    ("frame", "status"), [c[1:] for c in ECHO_TABLE], ids=[c[0] for c in ECHO_TABLE]
)
def test_icmpv6_echo_check(frame: bytes, status: str) -> None:
    bad = bytearray(frame)
    r = echo_check(frame)
    assert r.status == getattr(lib, f"AIOXDP_ECHO_{status}")
    if status == "OK":
        assert (r.v6, r.seq, r.ttl, r.size) == (1, 7, 61, 8 + 24)
        assert bytes(r.saddr6) == ipaddress.IPv6Address(B6).packed
        bad[-1] ^= 0xFF  # one payload byte: the checksum no longer holds
        assert echo_check(bytes(bad)).status == lib.AIOXDP_ECHO_BAD_ICMP_CHECKSUM
    if status == "ERROR":
        assert (r.v6, r.seq) == (1, 3)
        assert bytes(r.saddr6) == ipaddress.IPv6Address(FAR6).packed  # the target
        assert bytes(r.sender6) == ipaddress.IPv6Address(B6).packed  # who said so
        assert r.info == (1280 if r.icmp_type == 2 else 0)


def test_a_reused_reply_struct_says_nothing_of_the_next_frame() -> None:
    r = echo_check(bytes(v6(REPLY)))
    assert r.v6 == 1
    v4 = bytes(ETHER / IP(src="198.18.0.2", dst="198.18.0.1") / ICMP(type=0, id=IDENT, seq=2))
    r = echo_check(v4, r)
    assert (r.status, r.v6) == (lib.AIOXDP_ECHO_OK, 0)
    assert int(r.saddr).to_bytes(4, "little") == bytes([198, 18, 0, 2])
    assert bytes(r.saddr6) == bytes(10) + b"\xff\xff" + bytes([198, 18, 0, 2])


DGRAM = UDP(sport=4000, dport=7000) / Raw(b"datagram")

UDP_TABLE = [
    ("direct", bytes(v6(DGRAM)), "OK"),
    ("behind hop-by-hop", bytes(v6(IPv6ExtHdrHopByHop(), DGRAM)), "OK"),
    ("behind an atomic fragment", bytes(v6(IPv6ExtHdrFragment(m=0, offset=0), DGRAM)), "OK"),
    ("a first fragment", bytes(v6(IPv6ExtHdrFragment(m=1), DGRAM)), "FRAGMENT"),
    ("a fragment of ICMPv6", bytes(v6(IPv6ExtHdrFragment(m=1), REPLY)), "NOT_UDP"),
    ("UDP length past the payload", None, "BAD_LENGTH"),
    ("zero checksum", None, "BAD_CHECKSUM"),
    (
        "routing header with segments left",
        bytes(v6(IPv6ExtHdrRouting(addresses=[FAR6], segleft=1), DGRAM)),
        "BAD_IP",
    ),
]


def _udp_frame(name: str, frame: bytes | None) -> bytes:
    good = bytearray(bytes(v6(DGRAM)))
    if name == "UDP length past the payload":
        good[58:60] = (100).to_bytes(2, "big")
    elif name == "zero checksum":
        good[60:62] = b"\x00\x00"
    return bytes(good) if frame is None else frame


@pytest.mark.parametrize(("name", "frame", "status"), UDP_TABLE, ids=[c[0] for c in UDP_TABLE])
def test_udp6_check(name: str, frame: bytes | None, status: str) -> None:
    frame = _udp_frame(name, frame)
    d = udp_check(frame)
    assert d.status == getattr(lib, f"AIOXDP_UDP_{status}")
    if status == "OK":
        assert (d.v6, d.sport, d.dport, d.len) == (1, 4000, 7000, 8)
        assert frame[d.off : d.off + d.len] == b"datagram"
        assert bytes(d.saddr6) == ipaddress.IPv6Address(B6).packed


def test_the_echo_of_a_zero_checksum_datagram_gets_one() -> None:
    """Only a forged layout reaches the echo with a zero checksum (the check
    refuses it): the answer still carries one, as IPv6 demands."""
    frame = bytearray(bytes(v6(DGRAM)))
    frame[60:62] = b"\x00\x00"
    ip, udp = ffi.new("uint32_t *"), ffi.new("uint32_t *")
    buf = ffi.from_buffer(frame)
    assert lib.aioxdp_udp_echo_layout(buf, len(frame), 62, 8, ip, udp) == 0
    cut = lib.aioxdp_udp_echo_frame(buf, ip[0], udp[0], 16)
    answer = Ether(bytes(frame[cut:]))
    sent = answer[UDP].chksum
    del answer[UDP].chksum  # scapy computes it afresh over the pseudo-header
    assert sent == Ether(bytes(answer))[UDP].chksum != 0
    assert (answer[IPv6].src, answer[UDP].dport) == (A6, 4000)
