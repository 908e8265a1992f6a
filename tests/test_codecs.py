"""Codecs: round trips (hypothesis), scapy as an independent decoder, C vs Python
checksums, and garbage that may raise DecodeError and nothing else."""

from __future__ import annotations

import contextlib
import socket

import pytest
from aioxdp.protocols import BadChecksumError, BadFieldError, DecodeError, TruncatedError
from aioxdp.protocols.arp import REPLY, REQUEST, Arp
from aioxdp.protocols.checksum import internet_checksum, ones_sum
from aioxdp.protocols.ethernet import ETH_P_IP, Ethernet, mac_bytes, mac_str
from aioxdp.protocols.icmp import ECHO_REQUEST, Icmp
from aioxdp.protocols.ipv4 import IPv4, ip_bytes, ip_str
from aioxdp.protocols.tcp import ACK, SYN, Tcp, TcpOptions
from aioxdp.protocols.udp import Udp
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.utils import checksum as scapy_checksum

from aioxdp._libs import lib

macs = st.binary(min_size=6, max_size=6)
addrs = st.binary(min_size=4, max_size=4)
u16 = st.integers(0, 0xFFFF)
payloads = st.binary(max_size=600)
# scapy in a test's body: its first dissection of a layer builds caches and
# can take longer than hypothesis's 200 ms default, which is no failure
scapy_in_body = settings(deadline=None)


@scapy_in_body
@given(st.binary(max_size=2000), st.integers(0, 0xFFFF))
def test_c_and_python_checksums_equal_scapys(data: bytes, initial: int) -> None:
    # the witness is scapy's own RFC 1071 code; an initial sum is one more
    # 16-bit word in front (it keeps the data's word alignment)
    expected = scapy_checksum(initial.to_bytes(2, "big") + data)
    assert lib.aioxdp_checksum(data, len(data), initial) == expected
    assert internet_checksum(data, initial) == expected
    assert lib.aioxdp_ones_sum(data, len(data), initial) == ones_sum(data, initial)
    assert (~lib.aioxdp_ones_sum(data, len(data), initial)) & 0xFFFF == expected


def test_checksums_on_rfc_1071_vectors() -> None:
    # RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to dd f2, checksum 22 0d
    words = bytes.fromhex("0001f203f4f5f6f7")
    assert lib.aioxdp_ones_sum(words, len(words), 0) == 0xDDF2
    assert lib.aioxdp_checksum(words, len(words), 0) == 0x220D
    assert internet_checksum(words) == 0x220D
    # a datagram with its checksum in place sums to all ones (checksum 0)
    whole = words + (0x220D).to_bytes(2, "big")
    assert lib.aioxdp_checksum(whole, len(whole), 0) == 0


@pytest.mark.parametrize("length", [1, 3, 7, 63, 1499])
def test_c_checksum_odd_lengths(length: int) -> None:
    data = bytes(range(256)) * 8
    assert lib.aioxdp_checksum(data[:length], length, 0) == scapy_checksum(data[:length])


@scapy_in_body
@given(
    macs,
    macs,
    u16.filter(lambda t: t >= 0x600 and t not in (0x8100, 0x88A8)),
    st.one_of(st.none(), st.integers(0, 4095)),
)
def test_ethernet_round_trip(dst: bytes, src: bytes, ethertype: int, vlan: int | None) -> None:
    eth = Ethernet(dst, src, ethertype, vlan)
    raw = eth.build()
    assert Ethernet.parse(raw) == eth
    scapy = Ether(raw)
    assert scapy.dst == mac_str(dst)
    if vlan is not None:
        assert scapy[Dot1Q].vlan == vlan


@scapy_in_body
@given(
    addrs,
    addrs,
    st.integers(0, 255),
    st.integers(1, 255),
    u16,
    st.binary(max_size=40).map(lambda b: b[: len(b) // 4 * 4]),
    st.booleans(),
    st.integers(0, 0x1FFF),
    payloads,
)
def test_ipv4_round_trip_and_scapy_agrees(
    src: bytes,
    dst: bytes,
    proto: int,
    ttl: int,
    ident: int,
    options: bytes,
    df: bool,
    frag: int,
    payload: bytes,
) -> None:
    header = IPv4(
        src, dst, proto, 20 + len(options) + len(payload), ttl, ident, 0, df, False, frag, options
    )
    buf = bytearray(header.header_len + len(payload))
    header.build_into(buf)
    buf[header.header_len :] = payload
    parsed = IPv4.parse(buf)
    assert parsed == IPv4(
        src,
        dst,
        proto,
        header.total_length,
        ttl,
        ident,
        0,
        df,
        False,
        frag,
        options,
        parsed.checksum,
    )
    scapy = IP(bytes(buf))
    assert scapy.chksum == parsed.checksum
    del scapy.chksum
    assert IP(bytes(scapy)).chksum == parsed.checksum  # scapy computes the same checksum


@scapy_in_body
@given(u16, u16, payloads)
def test_icmp_echo_round_trip(ident: int, seq: int, payload: bytes) -> None:
    buf = bytearray(8 + len(payload))
    Icmp.echo(ECHO_REQUEST, ident, seq).build_into(buf, 0, payload)
    parsed = Icmp.parse(buf)
    assert (parsed.type, parsed.ident, parsed.seq) == (ECHO_REQUEST, ident, seq)
    scapy = ICMP(bytes(buf))
    assert (scapy.id, scapy.seq) == (ident, seq)
    del scapy.chksum
    assert ICMP(bytes(scapy)).chksum == parsed.checksum


@scapy_in_body
@given(addrs, addrs, st.integers(1, 0xFFFF), st.integers(1, 0xFFFF), payloads)
def test_udp_round_trip_with_pseudo_header(
    src: bytes, dst: bytes, sport: int, dport: int, payload: bytes
) -> None:
    buf = bytearray(8 + len(payload))
    Udp(sport, dport).build_into(buf, 0, payload, src, dst)
    parsed = Udp.parse(buf, src=src, dst=dst)
    assert (parsed.sport, parsed.dport, parsed.length) == (sport, dport, 8 + len(payload))
    packet = IP(src=ip_str(src), dst=ip_str(dst), proto=17) / UDP(bytes(buf))
    raw = bytes(packet)
    expected = UDP(raw[20:])
    del packet[UDP].chksum
    assert UDP(bytes(packet)[20:]).chksum == expected.chksum


@scapy_in_body
@given(
    addrs,
    addrs,
    st.integers(1, 0xFFFF),
    st.integers(1, 0xFFFF),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.one_of(st.none(), u16),
    st.one_of(st.none(), st.integers(0, 14)),
    st.booleans(),
    st.one_of(st.none(), st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))),
    st.binary(max_size=100),
)
def test_tcp_round_trip_with_options(
    src: bytes,
    dst: bytes,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    mss: int | None,
    ws: int | None,
    sack: bool,
    ts: tuple[int, int] | None,
    payload: bytes,
) -> None:
    opts = TcpOptions(mss, ws, sack, ts)
    seg = Tcp(sport, dport, seq, ack, SYN | ACK, 29200, 0, opts)
    buf = bytearray(60 + len(payload))
    n = seg.build_into(buf, 0, payload, src, dst)
    # the checksum, verified by scapy over the pseudo-header, not by our own code
    pseudo = src[:4] + dst[:4] + b"\x00\x06" + n.to_bytes(2, "big")
    assert scapy_checksum(pseudo + bytes(buf[:n])) == 0
    parsed = Tcp.parse(buf[:n], src=src, dst=dst)
    assert (parsed.sport, parsed.dport, parsed.seq, parsed.ack, parsed.flags) == (
        sport,
        dport,
        seq,
        ack,
        SYN | ACK,
    )
    assert parsed.options == opts
    scapy = TCP(bytes(buf[:n]))
    got = dict((k, v) for k, v in scapy.options if k in ("MSS", "WScale", "Timestamp"))
    if mss is not None:
        assert got["MSS"] == mss
    if ws is not None:
        assert got["WScale"] == ws
    if ts is not None:
        assert got["Timestamp"] == ts


@scapy_in_body
@given(st.sampled_from([REQUEST, REPLY]), macs, addrs, macs, addrs)
def test_arp_round_trip(op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> None:
    buf = bytearray(28)
    Arp(op, sha, spa, tha, tpa).build_into(buf)
    assert Arp.parse(buf) == Arp(op, sha, spa, tha, tpa)
    assert ARP(bytes(buf)).psrc == ip_str(spa)


def parse_everything(frame: bytes) -> None:
    eth = Ethernet.parse(frame)
    if eth.ethertype == 0x0806:
        Arp.parse(frame, eth.header_len)
        return
    ip = IPv4.parse(frame, eth.header_len)
    start, end = eth.header_len + ip.header_len, eth.header_len + ip.total_length
    for codec in (Icmp.parse, Udp.parse, Tcp.parse):
        with contextlib.suppress(DecodeError):
            codec(frame, start, end)


@settings(max_examples=3000)
@given(st.binary(max_size=200))
def test_garbage_raises_decode_error_only(frame: bytes) -> None:
    with contextlib.suppress(DecodeError):
        parse_everything(frame)


@settings(max_examples=2000)
@given(st.data())
def test_mutated_valid_frames_raise_decode_error_only(data: st.DataObject) -> None:
    base = bytes(
        Ether()
        / IP(src="198.18.0.2", dst="198.18.0.1")
        / TCP(options=[("MSS", 1460), ("WScale", 7), ("SAckOK", b""), ("Timestamp", (1, 2))])
    )
    frame = bytearray(base)
    for _ in range(data.draw(st.integers(1, 6))):
        frame[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
    frame = frame[: data.draw(st.integers(0, len(frame)))]
    with contextlib.suppress(DecodeError):
        parse_everything(bytes(frame))


def test_errors_name_what_was_wrong() -> None:
    good = bytes(Ether() / IP(src="198.18.0.2", dst="198.18.0.1") / ICMP())
    with pytest.raises(TruncatedError, match="ethernet: header needs 14 bytes"):
        Ethernet.parse(good[:10])
    bad_version = bytearray(good)
    bad_version[14] = 0x65
    with pytest.raises(BadFieldError, match="ipv4: version 6"):
        IPv4.parse(bad_version, 14)
    bad_sum = bytearray(good)
    bad_sum[14 + 10] ^= 0xFF
    with pytest.raises(BadChecksumError, match="ipv4: header checksum"):
        IPv4.parse(bad_sum, 14)
    with pytest.raises(TruncatedError, match="total length"):
        IPv4.parse(good[:36], 14)
    bad_icmp = bytearray(good)
    bad_icmp[-1] ^= 0xFF
    with pytest.raises(BadChecksumError, match="icmp: checksum"):
        Icmp.parse(bad_icmp, 34)
    assert BadChecksumError.reason == "bad_checksum"
    with pytest.raises(BadFieldError, match="tcp: option 2 has length 3"):
        TcpOptions.parse(b"\x02\x03\x05")
    with pytest.raises(BadFieldError, match="runs past"):
        TcpOptions.parse(b"\x08\x0a\x00")


def test_address_helpers_name_bad_input() -> None:
    assert mac_bytes("02:a0:00:00:00:0a") == b"\x02\xa0\x00\x00\x00\x0a"
    assert ip_bytes("198.18.0.1") == socket.inet_aton("198.18.0.1")
    with pytest.raises(ValueError, match="mac"):
        mac_bytes("02:a0")
    with pytest.raises(ValueError, match="address"):
        ip_bytes("198.18.0.256")
    assert ETH_P_IP == 0x0800
