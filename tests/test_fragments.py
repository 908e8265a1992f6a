"""IPv4 and IPv6 fragmentation and reassembly (aioxdp.fragments) against
scapy's own, an independent implementation of RFC 791 and RFC 8200."""

from __future__ import annotations

import random

import frames as f
import pytest
from scapy.layers.inet import ICMP, IP, defragment
from scapy.layers.inet import fragment as scapy_fragment
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrFragment,
    defragment6,
    fragment6,
)
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from aioxdp.fragments import Reassembler, fragment


def echo_frame(size: int, ident: int = 0x4242) -> bytes:
    return bytes(
        Ether(src=f.A_MAC, dst=f.B_MAC)
        / IP(src=f.A_IP, dst=f.B_IP, id=ident)
        / ICMP(type=8, id=7, seq=1)
        / Raw(bytes(range(256)) * (size // 256) + bytes(size % 256))
    )


@pytest.mark.parametrize("size", [1473, 4000, 65507])
def test_our_fragments_are_what_scapy_puts_back_together(size: int) -> None:
    frame = echo_frame(size)
    pieces = fragment(frame, 1500)
    assert len(pieces) == -(-(size + 8) // 1480)
    parsed = [Ether(p) for p in pieces]
    for p in parsed:
        assert len(p[IP]) <= 1500
        rebuilt = IP(bytes(p[IP]))
        del rebuilt.chksum
        assert IP(bytes(rebuilt)).chksum == p[IP].chksum  # each header's checksum is right
    whole = defragment([p[IP] for p in parsed])[0]  # type: ignore[no-untyped-call]
    assert bytes(whole[ICMP]) == bytes(Ether(frame)[ICMP])


def test_a_frame_within_the_mtu_is_left_whole() -> None:
    frame = echo_frame(56)
    assert fragment(frame, 1500) == [frame]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_scapys_fragments_in_any_order_come_back_whole(seed: int) -> None:
    reply = Ether(src=f.B_MAC, dst=f.A_MAC) / IP(src=f.B_IP, dst=f.A_IP, id=99) / ICMP(type=0)
    reply = reply / Raw(random.Random(seed).randbytes(9000))
    pieces = [bytes(Ether(src=f.B_MAC, dst=f.A_MAC) / p) for p in scapy_fragment(reply[IP], 1480)]  # type: ignore[no-untyped-call]
    random.Random(seed).shuffle(pieces)
    pieces.insert(1, pieces[0])  # a duplicate on the way changes nothing
    reassembler = Reassembler()
    outs = [reassembler.add(p, 0) for p in pieces]
    done = [o for o in outs if o is not None]
    assert len(done) == 1
    got = Ether(done[0])
    assert got[IP].flags == 0
    assert got[IP].frag == 0
    assert got[IP].len == len(bytes(reply[IP]))
    rebuilt = IP(bytes(got[IP]))
    del rebuilt.chksum
    assert IP(bytes(rebuilt)).chksum == got[IP].chksum
    assert bytes(got[ICMP]) == bytes(reply[ICMP])
    assert len(reassembler) == 0
    assert reassembler.held == 0


def test_holes_time_and_the_bound() -> None:
    frame = echo_frame(4000)
    pieces = fragment(frame, 1500)
    reassembler = Reassembler(timeout_ns=1000, max_bytes=3000)
    assert reassembler.add(pieces[0], 0) is None
    assert reassembler.add(pieces[2], 0) is None  # a hole stays a hole
    assert len(reassembler) == 1
    other = fragment(echo_frame(4000, ident=7), 1500)[0]
    assert reassembler.add(other, 1) is None
    assert reassembler.dropped == 1  # past max_bytes: the oldest datagram went
    assert reassembler.held == len(other) - 34
    assert reassembler.add(pieces[1], 5000) is None  # the rest came too late
    assert reassembler.dropped == 2  # the other one timed out
    assert reassembler.add(frame, 5000) is None  # not a fragment
    assert reassembler.add(b"\x00" * 20, 5000) is None  # not IPv4 at all
    assert reassembler.malformed == 2


# -- IPv6 (RFC 8200 4.5), against scapy's fragment6 and defragment6 ------------


def echo6_frame(size: int) -> bytes:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    return bytes(
        Ether(src=f.A_MAC, dst=f.B_MAC)
        / IPv6(src=f.A_IP6, dst=f.B_IP6, hlim=9)
        / ICMPv6EchoRequest(id=7, seq=1, data=data)
    )


@pytest.mark.parametrize("size", [1453, 4000, 65000])
def test_our_ipv6_fragments_are_what_scapy_puts_back_together(size: int) -> None:
    frame = echo6_frame(size)
    pieces = fragment(frame, 1500, ident=0xABCD0001)
    assert len(pieces) == -(-(8 + size) // 1448)  # 1500 - 40 - 8, in 8-byte units
    parsed = [Ether(p) for p in pieces]
    for p in parsed:
        assert len(p[IPv6]) <= 1500
        assert (p[IPv6].hlim, p[IPv6ExtHdrFragment].id, p[IPv6ExtHdrFragment].nh) == (
            9,
            0xABCD0001,
            58,
        )
    whole = defragment6([p[IPv6] for p in parsed])  # type: ignore[no-untyped-call]
    assert whole.nh == 58  # scapy leaves the payload undecoded: its bytes are compared
    assert bytes(whole.payload) == bytes(Ether(frame)[ICMPv6EchoRequest])


def test_an_ipv6_packet_within_the_mtu_is_left_whole() -> None:
    frame = echo6_frame(1452)
    assert fragment(frame, 1500) == [frame]


@pytest.mark.parametrize("seed", [1, 2])
def test_scapys_ipv6_fragments_in_any_order_come_back_whole(seed: int) -> None:
    data = random.Random(seed).randbytes(9000)
    reply = (
        IPv6(src=f.B_IP6, dst=f.A_IP6)
        / IPv6ExtHdrFragment(id=77)
        / ICMPv6EchoReply(id=7, seq=3, data=data)
    )
    pieces = [
        bytes(Ether(src=f.B_MAC, dst=f.A_MAC) / p)
        for p in fragment6(reply, 1500)  # type: ignore[no-untyped-call]
    ]
    random.Random(seed).shuffle(pieces)
    pieces.insert(1, pieces[0])  # a duplicate on the way changes nothing
    reassembler = Reassembler()
    done = [o for o in (reassembler.add(p, 0) for p in pieces) if o is not None]
    assert len(done) == 1
    got = Ether(done[0])
    assert got[IPv6].nh == 58
    assert got[IPv6].plen == 8 + 9000
    assert (got[ICMPv6EchoReply].seq, got[ICMPv6EchoReply].data) == (3, data)
    assert len(reassembler) == 0
    assert reassembler.held == 0
