"""IPv6 codecs (issue 17, item 3): round trips (hypothesis), scapy as the
independent encoder and decoder (it computes the pseudo-header checksums on
its own), the extension-header walk against scapy's layering, and
malformed input that raises DecodeError and nothing else."""

from __future__ import annotations

import contextlib
import struct

import pytest
from aioxdp.protocols import BadChecksumError, BadFieldError, DecodeError, TruncatedError
from aioxdp.protocols.checksum import pseudo_header_sum
from aioxdp.protocols.icmpv6 import (
    ECHO_REPLY,
    ECHO_REQUEST,
    IPPROTO_ICMPV6,
    NA_OVERRIDE,
    NA_SOLICITED,
    NEIGHBOR_ADVERT,
    NEIGHBOR_SOLICIT,
    Icmpv6,
    Neighbor,
)
from aioxdp.protocols.ipv6 import (
    DSTOPTS,
    FRAGMENT,
    HEADER_LEN,
    HOPOPTS,
    MAX_EXTENSION_HEADERS,
    ROUTING,
    IPv6,
    ip6_bytes,
    ip6_str,
    upper_layer,
)
from aioxdp.protocols.udp import IPPROTO_UDP, Udp
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    in6_chksum,
)
from scapy.layers.inet6 import IPv6 as ScapyIPv6

addrs6 = st.binary(min_size=16, max_size=16)
payloads = st.binary(max_size=600)
scapy_in_body = settings(deadline=None)
A, B = "2001:2::1", "2001:2::2"  # the lab's benchmarking range (RFC 5180)


def packet(next_header: int, body: bytes, src: str = A, dst: str = B) -> bytearray:
    buf = bytearray(HEADER_LEN + len(body))
    IPv6(ip6_bytes(src), ip6_bytes(dst), next_header, len(body)).build_into(buf)
    buf[HEADER_LEN:] = body
    return buf


@scapy_in_body
@given(addrs6, addrs6, st.integers(0, 255), st.integers(0, 255), st.integers(0, 0xFFFFF), payloads)
def test_ipv6_round_trip_and_scapy_agrees(
    src: bytes, dst: bytes, hops: int, tclass: int, flow: int, payload: bytes
) -> None:
    header = IPv6(src, dst, 59, len(payload), hops, tclass, flow)
    buf = bytearray(HEADER_LEN + len(payload))
    header.build_into(buf)
    buf[HEADER_LEN:] = payload
    assert IPv6.parse(buf) == header
    theirs = ScapyIPv6(bytes(buf))
    assert (theirs.src, theirs.dst) == (ip6_str(src), ip6_str(dst))
    assert (theirs.hlim, theirs.tc, theirs.fl, theirs.plen) == (hops, tclass, flow, len(payload))
    assert IPv6.parse(bytes(ScapyIPv6(src=ip6_str(src), dst=ip6_str(dst), nh=59))).src == src


@scapy_in_body
@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), payloads, addrs6, addrs6)
def test_icmpv6_echo_checksum_is_scapys(
    ident: int, seq: int, payload: bytes, src: bytes, dst: bytes
) -> None:
    buf = bytearray(HEADER_LEN + 8 + len(payload))
    IPv6(src, dst, IPPROTO_ICMPV6, 8 + len(payload)).build_into(buf)
    Icmpv6.echo(ECHO_REQUEST, ident, seq).build_into(buf, HEADER_LEN, payload, src, dst)
    theirs = ScapyIPv6(bytes(buf))
    echo = theirs[ICMPv6EchoRequest]
    assert (echo.id, echo.seq, bytes(echo.data)) == (ident, seq, payload)
    # scapy's own pseudo-header sum over the message, checksum field zeroed
    zeroed = bytearray(buf[HEADER_LEN:])
    zeroed[2:4] = b"\0\0"
    assert in6_chksum(IPPROTO_ICMPV6, theirs, bytes(zeroed)) == echo.cksum  # type: ignore[no-untyped-call]
    parsed = Icmpv6.parse(buf, HEADER_LEN, src=src, dst=dst)
    assert (parsed.type, parsed.ident, parsed.seq) == (ECHO_REQUEST, ident, seq)
    # and a reply scapy built verifies here
    reply = bytes(
        ScapyIPv6(src=ip6_str(dst), dst=ip6_str(src)) / ICMPv6EchoReply(id=ident, seq=seq)
    )
    got = Icmpv6.parse(reply, HEADER_LEN, src=dst, dst=src)
    assert (got.type, got.ident, got.seq) == (ECHO_REPLY, ident, seq)


def test_a_changed_byte_or_the_wrong_addresses_fail_the_icmpv6_checksum() -> None:
    buf = bytes(ScapyIPv6(src=A, dst=B) / ICMPv6EchoRequest(id=7, seq=1, data=b"abc"))
    Icmpv6.parse(buf, HEADER_LEN, src=A, dst=B)  # holds
    with pytest.raises(BadChecksumError, match="icmpv6: checksum"):
        Icmpv6.parse(buf, HEADER_LEN, src=A, dst="2001:2::3")
    bad = bytearray(buf)
    bad[-1] ^= 0x40
    with pytest.raises(BadChecksumError):
        Icmpv6.parse(bad, HEADER_LEN, src=A, dst=B)


def test_udp_over_ipv6_uses_its_pseudo_header_and_refuses_a_zero_checksum() -> None:
    frame = bytes(ScapyIPv6(src=A, dst=B) / UDP(sport=5353, dport=53) / b"query")
    udp = Udp.parse(frame, HEADER_LEN, src=ip6_bytes(A), dst=ip6_bytes(B))
    assert (udp.sport, udp.dport, udp.length) == (5353, 53, 13)
    ours = bytearray(8 + 5)
    Udp(5353, 53).build_into(ours, 0, b"query", ip6_bytes(A), ip6_bytes(B))
    assert bytes(ours) == frame[HEADER_LEN:]  # byte for byte scapy's, checksum included
    zero = bytearray(frame)
    zero[HEADER_LEN + 6 : HEADER_LEN + 8] = b"\0\0"
    with pytest.raises(BadChecksumError, match="required"):
        Udp.parse(zero, HEADER_LEN, src=ip6_bytes(A), dst=ip6_bytes(B))
    # hand-computed: the pseudo-header's length word and next header, on top of the addresses
    words = ip6_bytes(A) + ip6_bytes(B) + struct.pack("!IxxxB", 13, IPPROTO_UDP)
    total = sum(struct.unpack("!20H", words))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    assert pseudo_header_sum(ip6_bytes(A), ip6_bytes(B), IPPROTO_UDP, 13) == total
    with pytest.raises(ValueError, match=r"two IPv4 .* or two IPv6"):
        pseudo_header_sum(ip6_bytes(A), b"\x01\x02\x03\x04", IPPROTO_UDP, 13)


@pytest.mark.parametrize(
    "chain",
    [
        [],
        [IPv6ExtHdrHopByHop()],
        [IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt(), IPv6ExtHdrRouting()],
        [IPv6ExtHdrHopByHop(), IPv6ExtHdrFragment(m=1, id=0x1234)],
        [IPv6ExtHdrDestOpt(options=[]), IPv6ExtHdrRouting(addresses=["2001:2::9"])],
    ],
    ids=["none", "hop-by-hop", "three", "first fragment", "routing with an address"],
)
def test_the_walk_reaches_the_upper_layer_scapy_sees(chain: list[object]) -> None:
    pkt = ScapyIPv6(src=A, dst=B)
    for header in chain:
        pkt = pkt / header
    raw = bytes(pkt / UDP(sport=1, dport=2) / b"data")
    found = upper_layer(raw)
    assert found.proto == IPPROTO_UDP
    assert raw[found.offset :] == bytes(ScapyIPv6(raw)[UDP])
    assert found.end == len(raw)
    fragment = any(isinstance(h, IPv6ExtHdrFragment) for h in chain)
    assert found.fragment == fragment
    assert found.first_fragment
    if fragment:
        assert (found.more_fragments, found.fragment_id) == (True, 0x1234)


def test_a_later_fragment_stops_the_walk_with_no_upper_header() -> None:
    data = b"x" * 40
    raw = bytes(
        ScapyIPv6(src=A, dst=B) / IPv6ExtHdrFragment(nh=IPPROTO_UDP, offset=185, m=0, id=9) / data
    )
    found = upper_layer(raw)
    assert (found.proto, found.fragment, found.first_fragment) == (IPPROTO_UDP, True, False)
    assert (found.fragment_offset, found.offset) == (185, HEADER_LEN + 8)


def test_malformed_chains_are_named() -> None:
    hop = bytes([HOPOPTS, 0]) + b"\x01\x04" + b"\0" * 4  # 8 bytes, next: hop-by-hop again
    with pytest.raises(BadFieldError, match=f"more than {MAX_EXTENSION_HEADERS} extension"):
        upper_layer(packet(HOPOPTS, hop * (MAX_EXTENSION_HEADERS + 1)))
    # exactly the bound, then UDP: followed
    last = bytes([IPPROTO_UDP, 0]) + b"\x01\x04" + b"\0" * 4
    udp = b"\0\x01\0\x02\0\x08\0\0"
    found = upper_layer(packet(HOPOPTS, hop * (MAX_EXTENSION_HEADERS - 1) + last + udp))
    assert (found.proto, found.offset) == (IPPROTO_UDP, HEADER_LEN + 8 * MAX_EXTENSION_HEADERS)
    # a header whose length runs past the payload
    with pytest.raises(TruncatedError, match="runs past the payload"):
        upper_layer(packet(DSTOPTS, bytes([IPPROTO_UDP, 3]) + b"\0" * 14))
    with pytest.raises(TruncatedError, match="extension header 43 runs past"):
        upper_layer(packet(ROUTING, b"\0\0\0"))
    with pytest.raises(TruncatedError, match=r"extension header 44"):
        upper_layer(packet(FRAGMENT, b"\0" * 6))
    # the fixed header's payload length past the buffer, and a wrong version
    with pytest.raises(TruncatedError, match="payload length 100 runs past"):
        IPv6.parse(packet(59, b"")[:HEADER_LEN].replace(b"\x00\x00\x3b", b"\x00\x64\x3b", 1))
    bad = packet(59, b"")
    bad[0] = 0x45
    with pytest.raises(BadFieldError, match="version 4, not 6"):
        IPv6.parse(bad)


@scapy_in_body
@given(addrs6, st.binary(min_size=6, max_size=6))
def test_neighbour_solicitation_and_advertisement_against_scapy(target: bytes, mac: bytes) -> None:
    ns_header, ns_body = Neighbor(target, mac).payload(NEIGHBOR_SOLICIT)
    buf = bytearray(HEADER_LEN + 8 + len(ns_body))
    IPv6(ip6_bytes(A), ip6_bytes(B), IPPROTO_ICMPV6, 8 + len(ns_body), 255).build_into(buf)
    ns_header.build_into(buf, HEADER_LEN, ns_body, A, B)
    theirs = ScapyIPv6(bytes(buf))
    assert theirs[ICMPv6ND_NS].tgt == ip6_str(target)
    assert bytes.fromhex(theirs[ICMPv6NDOptSrcLLAddr].lladdr.replace(":", "")) == mac
    # an advertisement scapy built, parsed here
    na = bytes(
        ScapyIPv6(src=B, dst=A, hlim=255)
        / ICMPv6ND_NA(tgt=ip6_str(target), R=0, S=1, O=1)
        / ICMPv6NDOptDstLLAddr(lladdr=":".join(f"{b:02x}" for b in mac))
    )
    message = Icmpv6.parse(na, HEADER_LEN, src=B, dst=A)
    got = Neighbor.parse(message, na[HEADER_LEN + 8 :])
    assert got == Neighbor(target, mac, NA_SOLICITED | NA_OVERRIDE)
    assert message.type == NEIGHBOR_ADVERT


def test_neighbour_options_are_bounded_and_named() -> None:
    ns = Icmpv6(NEIGHBOR_SOLICIT)
    target = ip6_bytes(B)
    with pytest.raises(BadFieldError, match="option 1 of length 0"):
        Neighbor.parse(ns, target + b"\x01\x00" + b"\0" * 6)
    with pytest.raises(TruncatedError, match="option 1"):
        Neighbor.parse(ns, target + b"\x01\x02" + b"\0" * 6)  # says 16 bytes, has 8
    with pytest.raises(TruncatedError, match="target address"):
        Neighbor.parse(ns, target[:10])
    with pytest.raises(BadFieldError, match="not a neighbour message"):
        Neighbor.parse(Icmpv6(ECHO_REQUEST), target)
    # an unknown option is skipped; the one wanted is read
    got = Neighbor.parse(ns, target + b"\x0e\x01" + b"\0" * 6 + b"\x01\x01" + b"\xaa" * 6)
    assert got.lladdr == b"\xaa" * 6
    with pytest.raises(ValueError, match="lladdr: 6 bytes"):
        Neighbor(target, b"\x01\x02").payload(NEIGHBOR_SOLICIT)


def test_address_helpers_name_bad_input() -> None:
    assert ip6_str(ip6_bytes("2001:0002:0:0::0001")) == "2001:2::1"
    assert ip6_bytes("fe80::1")[:2] == b"\xfe\x80"
    with pytest.raises(ValueError, match="not an IPv6 address"):
        ip6_bytes("198.18.0.1")
    with pytest.raises(ValueError, match="16 bytes expected"):
        ip6_bytes(b"\x01" * 4)
    with pytest.raises(ValueError, match=r"hop_limit: must be 0\.\.255"):
        IPv6(ip6_bytes(A), ip6_bytes(B), 59, 0, 256).build_into(bytearray(40))
    with pytest.raises(ValueError, match="echo messages are 128 or 129"):
        Icmpv6.echo(8, 1, 1)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_garbage_raises_decode_error_only(data: bytes) -> None:
    raw = packet(data[0] if data else 59, data[1:])
    with contextlib.suppress(DecodeError):
        found = upper_layer(raw)
        assert HEADER_LEN <= found.offset <= found.end + 8 * MAX_EXTENSION_HEADERS
    with contextlib.suppress(DecodeError):
        upper_layer(bytes(data))
    with contextlib.suppress(DecodeError):
        Icmpv6.parse(data, 0, src=A, dst=B)
    with contextlib.suppress(DecodeError):
        Neighbor.parse(Icmpv6(NEIGHBOR_ADVERT), data)
