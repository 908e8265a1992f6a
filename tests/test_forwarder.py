"""The BPF classifier, table-driven over BPF_PROG_TEST_RUN, and the Forwarder's bookkeeping."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import frames as f
import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6MLReport2,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6PacketTooBig,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    RouterAlert,
)
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from aioxdp import Action, Rule
from aioxdp.bpf import BPFObject, XDPVerdict
from aioxdp.errors import MapError
from aioxdp.forwarder import Forwarder, Verdicts


@pytest.fixture
def fw() -> Iterator[tuple[BPFObject, Forwarder]]:
    with BPFObject.packaged("forwarder") as obj:
        obj.load()
        yield obj, Forwarder(obj)


def run(obj: BPFObject, frame: bytes) -> XDPVerdict:
    verdict, out = obj.program().test_run(frame)
    assert out == frame, "the forwarder never rewrites a packet"
    return verdict


def delta(before: Verdicts, after: Verdicts) -> dict[str, int]:
    return {
        k: getattr(after, k) - getattr(before, k)
        for k in before.__slots__
        if getattr(after, k) != getattr(before, k)
    }


def fragment(offset: int, more: bool, proto_payload: bytes = b"\x00" * 16) -> bytes:
    ip = IP(src=f.B_IP, dst=f.A_IP, proto=17, frag=offset, flags="MF" if more else 0)
    return bytes(f.ether() / ip / Raw(proto_payload))


# (rule, frame, matches?)
MATCH_TABLE = [
    ("udp dport hit", Rule("udp", dst_port=53), f.udp(53), True),
    ("udp dport other port", Rule("udp", dst_port=53), f.udp(54), False),
    ("udp dport but tcp", Rule("udp", dst_port=53), f.tcp(53), False),
    ("udp sport", Rule("udp", src_port=40000), f.udp(9, sport=40000), True),
    ("udp sport miss", Rule("udp", src_port=40001), f.udp(9, sport=40000), False),
    ("udp both ports", Rule("udp", src_port=1, dst_port=2), f.udp(2, sport=1), True),
    ("udp both ports, one wrong", Rule("udp", src_port=1, dst_port=2), f.udp(2, sport=3), False),
    ("tcp dport", Rule("tcp", dst_port=443), f.tcp(443), True),
    ("tcp dport miss", Rule("tcp", dst_port=443), f.tcp(80), False),
    ("proto only", Rule("udp"), f.udp(1234), True),
    ("proto only, other proto", Rule("udp"), f.icmp(8), False),
    ("src address", Rule("udp", src=f.B_IP), f.udp(5), True),
    ("src address miss", Rule("udp", src="198.18.0.9"), f.udp(5), False),
    ("dst prefix", Rule("udp", dst="198.18.0.0/24"), f.udp(5), True),
    ("dst prefix miss", Rule("udp", dst="198.18.1.0/24"), f.udp(5), False),
    ("src prefix and port", Rule("udp", src="198.18.0.0/30", dst_port=7), f.udp(7), True),
    ("icmp type", Rule("icmp", icmp_type=8), f.icmp(8), True),
    ("icmp type miss", Rule("icmp", icmp_type=0), f.icmp(8), False),
    ("icmp echo id", Rule("icmp", icmp_type=0, icmp_id=0x1234), f.icmp(0, id_=0x1234), True),
    ("icmp echo id miss", Rule("icmp", icmp_type=0, icmp_id=0x1234), f.icmp(0, id_=0x1235), False),
    (
        "icmp echo id, request",
        Rule("icmp", icmp_type=0, icmp_id=0x1234),
        f.icmp(8, id_=0x1234),
        False,
    ),
    (
        "vlan tagged, rule names no vlan",
        Rule("udp", dst_port=53),
        f.vlan(IP(src=f.B_IP, dst=f.A_IP) / UDP(dport=53)),
        False,
    ),
    (
        "vlan tagged, rule names its vlan",
        Rule("udp", dst_port=53, vlan=7),
        f.vlan(IP(src=f.B_IP, dst=f.A_IP) / UDP(dport=53)),
        True,
    ),
    (
        "vlan tagged, rule names another vlan",
        Rule("udp", dst_port=53, vlan=8),
        f.vlan(IP(src=f.B_IP, dst=f.A_IP) / UDP(dport=53)),
        False,
    ),
    ("untagged, rule names a vlan", Rule("udp", dst_port=53, vlan=7), f.udp(53), False),
    (
        "802.1ad tagged, rule names its vlan",
        Rule("udp", dst_port=53, vlan=7),
        f.vlan(IP(src=f.B_IP, dst=f.A_IP) / UDP(dport=53), 0x88A8),
        True,
    ),
    (
        "ip options",
        Rule("udp", dst_port=53),
        bytes(
            f.ether() / IP(src=f.B_IP, dst=f.A_IP, options=[b"\x01\x01\x01\x00"]) / UDP(dport=53)
        ),
        True,
    ),
    (
        "first fragment, L4 rule",
        Rule("udp", dst_port=53),
        bytes(f.ether() / IP(src=f.B_IP, dst=f.A_IP, flags="MF") / UDP(dport=53) / Raw(b"a" * 16)),
        False,
    ),
    (
        "first fragment, L3 rule",
        Rule("udp", src=f.B_IP),
        bytes(f.ether() / IP(src=f.B_IP, dst=f.A_IP, flags="MF") / UDP(dport=53) / Raw(b"a" * 16)),
        True,
    ),
    (
        "later fragment, L4 rule",
        Rule("udp", dst_port=53),
        fragment(2, more=False, proto_payload=b"\x9c\x40\x00\x35" + b"\x00" * 12),
        False,
    ),
    ("later fragment, L3 rule", Rule("udp", src=f.B_IP), fragment(2, more=True), True),
    (
        "later fragment, icmp type 0 rule",
        Rule("icmp", icmp_type=0),
        bytes(f.ether() / IP(src=f.B_IP, dst=f.A_IP, proto=1, frag=3) / Raw(b"\x00" * 16)),
        False,
    ),
    (
        "fragments rule, first fragment",
        Rule("icmp", src=f.B_IP, fragments=True),
        bytes(f.ether() / IP(src=f.B_IP, dst=f.A_IP, proto=1, flags="MF") / Raw(b"\x00" * 16)),
        True,
    ),
    (
        "fragments rule, later fragment",
        Rule("icmp", src=f.B_IP, fragments=True),
        bytes(f.ether() / IP(src=f.B_IP, dst=f.A_IP, proto=1, frag=185) / Raw(b"\x00" * 16)),
        True,
    ),
    ("fragments rule, whole datagram", Rule("icmp", src=f.B_IP, fragments=True), f.icmp(0), False),
    (
        "fragments rule, other source",
        Rule("icmp", src="198.18.0.9", fragments=True),
        bytes(f.ether() / IP(src=f.B_IP, dst=f.A_IP, proto=1, frag=185) / Raw(b"\x00" * 16)),
        False,
    ),
    # ICMP errors are matched by the echo id of the request they quote
    (
        "unreachable quoting our echo",
        Rule("icmp", icmp_type=3, icmp_id=0x1234),
        f.icmp_error(3, 0, f.echo_request_datagram(0x1234)),
        True,
    ),
    (
        "unreachable quoting another echo",
        Rule("icmp", icmp_type=3, icmp_id=0x1234),
        f.icmp_error(3, 1, f.echo_request_datagram(0x1235)),
        False,
    ),
    (
        "time exceeded quoting our echo, header and 8 bytes only",
        Rule("icmp", icmp_type=11, icmp_id=0x1234),
        f.icmp_error(11, 0, f.echo_request_datagram(0x1234)[:28]),
        True,
    ),
    (
        "parameter problem quoting our echo",
        Rule("icmp", icmp_type=12, icmp_id=0x1234),
        f.icmp_error(12, 0, f.echo_request_datagram(0x1234)),
        True,
    ),
    (
        "error quoting 7 bytes of the echo header",
        Rule("icmp", icmp_type=3, icmp_id=0x1234),
        f.icmp_error(3, 0, f.echo_request_datagram(0x1234)[:27]),
        False,
    ),
    (
        "error quoting an echo reply, not a request",
        Rule("icmp", icmp_type=3, icmp_id=0x1234),
        f.icmp_error(
            3, 0, bytes(IP(src=f.A_IP, dst=f.B_IP) / ICMP(type=0, id=0x1234) / Raw(b"q" * 8))
        ),
        False,
    ),
    (
        "error quoting a later fragment",
        Rule("icmp", icmp_type=3, icmp_id=0x1234),
        f.icmp_error(3, 0, f.echo_request_datagram(0x1234, frag=3)),
        False,
    ),
    (
        "error quoting UDP",
        Rule("icmp", icmp_type=3, icmp_id=0x1234),
        f.icmp_error(3, 3, bytes(IP(src=f.A_IP, dst=f.B_IP) / UDP(sport=0x1234, dport=53))),
        False,
    ),
    (
        "redirect quoting our echo: no id for types that are not errors",
        Rule("icmp", icmp_type=5),
        f.icmp_error(5, 1, f.echo_request_datagram(0x1234)),
        True,
    ),
    (
        "unreachable quoting our echo, type-only rule",
        Rule("icmp", icmp_type=3),
        f.icmp_error(3, 13, f.echo_request_datagram(0x1234)),
        True,
    ),
]


HBH, DST, FRAG = IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment
ROUTING = IPv6ExtHdrRouting(addresses=["2001:2::c"], segleft=0)


def icmp6_error(type_: int, quoted: Packet, cut: int | None = None) -> bytes:
    error = {1: ICMPv6DestUnreach(), 2: ICMPv6PacketTooBig(), 3: ICMPv6TimeExceeded()}.get(
        type_, ICMPv6ParamProblem()
    )
    return bytes(f.ether() / f.ip6() / error / Raw(bytes(quoted)[:cut]))


MATCH_TABLE6 = [
    ("v6 udp dport", Rule("udp", dst_port=53), f.udp6(53), True),
    ("v6 udp dport, rule for IPv4", Rule("udp", dst_port=53, family=4), f.udp6(53), False),
    ("v4 udp dport, rule for IPv6", Rule("udp", dst_port=53, family=6), f.udp(53), False),
    ("v6 udp, v6 dst prefix", Rule("udp", dst="2001:2::/64"), f.udp6(9), True),
    ("v6 udp, other v6 prefix", Rule("udp", dst="2001:2:0:1::/64"), f.udp6(9), False),
    ("v6 udp, v4 dst prefix", Rule("udp", dst="198.18.0.0/15"), f.udp6(9), False),
    ("v4 udp, v6 dst prefix", Rule("udp", dst="::/0"), f.udp(9), False),
    ("v6 src /128 and port", Rule("udp", src=f.B_IP6, dst_port=9), f.udp6(9), True),
    ("v6 src /127 miss", Rule("udp", src="2001:2::c/127"), f.udp6(9), False),
    ("v6 tcp dport", Rule("tcp", dst_port=443), f.tcp6(443), True),
    ("v6 tcp behind hop-by-hop", Rule("tcp", dst_port=443), f.tcp6(443, 40000, HBH()), True),
    (
        "v6 udp behind hbh, routing, dstopts, atomic fragment",
        Rule("udp", dst_port=53),
        f.udp6(53, 40000, HBH(), ROUTING, DST(), FRAG(m=0, offset=0)),
        True,
    ),
    (
        "v6 udp behind 8 extension headers (the bound)",
        Rule("udp", dst_port=53),
        f.udp6(53, 40000, *[DST() for _ in range(8)]),
        True,
    ),
    ("v6 first fragment, L4 rule", Rule("udp", dst_port=53), f.udp6(53, 1, FRAG(m=1)), False),
    ("v6 first fragment, L3 rule", Rule("udp", src=f.B_IP6), f.udp6(53, 1, FRAG(m=1)), True),
    (
        "v6 later fragment, L4 rule",
        Rule("udp", dst_port=53),
        bytes(f.ether() / f.ip6() / FRAG(nh=17, offset=2) / Raw(b"\x9c\x40\x00\x35" + bytes(12))),
        False,
    ),
    (
        "v6 later fragment, fragments rule",
        Rule("udp", fragments=True, family=6),
        bytes(f.ether() / f.ip6() / FRAG(nh=17, offset=2) / Raw(bytes(16))),
        True,
    ),
    ("v6 whole datagram, fragments rule", Rule("udp", fragments=True), f.udp6(9), False),
    ("icmpv6 echo reply type", Rule("icmpv6", icmp_type=129), f.icmp6_echo(), True),
    ("icmpv6 echo reply id", Rule("icmpv6", icmp_type=129, icmp_id=0x1234), f.icmp6_echo(), True),
    (
        "icmpv6 echo reply, other id",
        Rule("icmpv6", icmp_type=129, icmp_id=0x1234),
        f.icmp6_echo(id_=0x4321),
        False,
    ),
    (
        "icmpv6 echo request, reply rule",
        Rule("icmpv6", icmp_type=129, icmp_id=0x1234),
        f.icmp6_echo(reply=False),
        False,
    ),
    ("icmp (v4) rule, icmpv6 echo", Rule("icmp", icmp_type=0), f.icmp6_echo(), False),
    ("icmpv6 rule, v4 echo reply", Rule("icmpv6", icmp_type=129), f.icmp(0), False),
    (
        "icmpv6 unreachable quoting our echo",
        Rule("icmpv6", icmp_type=1, icmp_id=0x1234),
        icmp6_error(1, f.echo6_request_packet(0x1234)),
        True,
    ),
    (
        "icmpv6 packet too big quoting our echo",
        Rule("icmpv6", icmp_type=2, icmp_id=0x1234),
        icmp6_error(2, f.echo6_request_packet(0x1234)),
        True,
    ),
    (
        "icmpv6 time exceeded quoting another echo",
        Rule("icmpv6", icmp_type=3, icmp_id=0x1234),
        icmp6_error(3, f.echo6_request_packet(0x4321)),
        False,
    ),
    (
        "icmpv6 error quoting 7 bytes of the echo header",
        Rule("icmpv6", icmp_type=1, icmp_id=0x1234),
        icmp6_error(1, f.echo6_request_packet(0x1234), cut=47),
        False,
    ),
    (
        "neighbour solicitation, icmpv6 rule without type",
        Rule("icmpv6"),
        bytes(f.ether() / f.ip6() / ICMPv6ND_NS(tgt=f.A_IP6)),
        False,
    ),
    (
        "neighbour solicitation, address rule without type",
        Rule("icmpv6", dst=f.A_IP6),
        bytes(f.ether() / f.ip6() / ICMPv6ND_NS(tgt=f.A_IP6)),
        False,
    ),
    (
        "neighbour advertisement, rule names type 136",
        Rule("icmpv6", icmp_type=136),
        bytes(f.ether() / f.ip6() / ICMPv6ND_NA(tgt=f.B_IP6)),
        True,
    ),
    (
        "router advertisement, icmpv6 rule without type",
        Rule("icmpv6"),
        bytes(f.ether() / f.ip6("fe80::b", "ff02::1") / ICMPv6ND_RA()),
        False,
    ),
    (
        "MLDv2 report behind hop-by-hop, icmpv6 rule without type",
        Rule("icmpv6"),
        bytes(
            f.ether(dst="33:33:00:00:00:16")
            / f.ip6("fe80::b", "ff02::16", HBH(options=[RouterAlert()]))
            / ICMPv6MLReport2()
        ),
        False,
    ),
    ("icmpv6 rule without type, echo", Rule("icmpv6"), f.icmp6_echo(), True),
]
MATCH_TABLE += MATCH_TABLE6


@pytest.mark.parametrize(
    ("rule", "frame", "matches"), [c[1:] for c in MATCH_TABLE], ids=[c[0] for c in MATCH_TABLE]
)
def test_rule_matches_what_it_names_and_nothing_else(
    fw: tuple[BPFObject, Forwarder], rule: Rule, frame: bytes, matches: bool
) -> None:
    obj, forwarder = fw
    drop = dataclasses.replace(rule, action=Action.DROP)
    forwarder.add(drop)
    before = forwarder.counters
    verdict = run(obj, frame)
    assert verdict is (XDPVerdict.DROP if matches else XDPVerdict.PASS)
    assert forwarder.hits(drop) == (1 if matches else 0)
    moved = delta(before, forwarder.counters)
    if matches:
        assert moved == {"dropped": 1}
    else:
        assert sum(moved.values()) == 1
        assert set(moved) <= {"unmatched", "fragments", "vlan"}


BAD_FRAMES = [
    ("ethernet only", f.udp(53)[:14], "malformed"),
    ("truncated IPv4 header", f.udp(53)[: 14 + 12], "malformed"),
    ("IHL 4", f.udp(53)[:14] + bytes([0x44]) + f.udp(53)[15:], "malformed"),
    ("IHL past the end", f.udp(53)[:14] + bytes([0x4F]) + f.udp(53)[15:34], "malformed"),
    ("IP version 6 in an IPv4 frame", f.udp(53)[:14] + bytes([0x65]) + f.udp(53)[15:], "malformed"),
    ("total length past the end", f.udp(53)[:16] + b"\x05\xdc" + f.udp(53)[18:], "malformed"),
    ("truncated UDP header", f.udp(53, payload=b"")[: 14 + 20 + 4], "malformed"),
    ("TCP data offset 4", bytearray(f.tcp(443)), "malformed"),
    ("truncated ICMP header", f.icmp(8)[: 14 + 20 + 4], "malformed"),
    ("truncated VLAN tag", bytes(f.ether())[:12] + b"\x81\x00\x00", "malformed"),
    ("IPv6 fixed header cut", f.udp6(53)[: 14 + 39], "malformed"),
    ("IPv6 version 4 in an IPv6 frame", f.udp6(53)[:14] + b"\x45" + f.udp6(53)[15:], "malformed"),
    (
        "IPv6 payload length past the end",
        f.udp6(53)[:18] + b"\x05\xdc" + f.udp6(53)[20:],
        "malformed",
    ),
    ("IPv6 UDP header cut", f.udp6(53)[: 14 + 40 + 4], "malformed"),
    ("IPv6 hop-by-hop cut", f.udp6(53, 40000, HBH())[: 14 + 40 + 4], "malformed"),
    (
        "IPv6 extension length past the payload",
        bytes(f.ether() / f.ip6() / DST(len=200, nh=17) / UDP(dport=53)),
        "malformed",
    ),
    ("IPv6 9 extension headers", f.udp6(53, 40000, *[DST() for _ in range(9)]), "malformed"),
    ("IPv6 ICMPv6 header cut", f.icmp6_echo()[: 14 + 40 + 6], "malformed"),
    ("IPv6 no next header", bytes(f.ether() / IPv6(src=f.B_IP6, nh=59)), "unmatched"),
    ("IPv6 unmatched tcp", f.tcp6(80), "unmatched"),
    ("IPv6 neighbour solicitation", bytes(f.ether() / f.ip6() / ICMPv6ND_NS()), "unmatched"),
    ("IPv6 later fragment", bytes(f.ether() / f.ip6() / FRAG(nh=6, offset=9)), "fragments"),
    ("IPX", f.udp(53)[:12] + b"\x81\x37" + f.udp(53)[14:], "not_ip"),
    ("ARP, no ARP rule", f.arp(), "unmatched"),
    ("ARP for another protocol", f.arp()[:16] + b"\x86\xdd" + f.arp()[18:], "not_ip"),
    ("truncated ARP", f.arp()[:30], "malformed"),
]


def _fixup(name: str, frame: bytes | bytearray) -> bytes:
    frame = bytearray(frame)
    if name == "TCP data offset 4":
        frame[14 + 20 + 12] = 0x40
    if name in ("truncated UDP header", "truncated ICMP header"):
        # the IP total length agrees with the cut: only the L4 header is short
        frame[16:18] = (len(frame) - 14).to_bytes(2, "big")
    if name.startswith("IPv6") and name.endswith(" cut") and len(frame) >= 14 + 40:
        # so does the IPv6 payload length
        frame[18:20] = (len(frame) - 14 - 40).to_bytes(2, "big")
    return bytes(frame.ljust(14, b"\x00"))


@pytest.mark.parametrize(("name", "frame", "counter"), BAD_FRAMES, ids=[b[0] for b in BAD_FRAMES])
def test_bad_and_foreign_frames_pass_to_the_kernel_and_are_counted(
    fw: tuple[BPFObject, Forwarder], name: str, frame: bytes, counter: str
) -> None:
    obj, forwarder = fw
    forwarder.add(Rule("udp", action=Action.DROP))
    forwarder.add(Rule("tcp", dst_port=443, action=Action.DROP))
    forwarder.add(Rule("icmp", icmp_type=8, action=Action.DROP))
    before = forwarder.counters
    assert run(obj, _fixup(name, frame)) is XDPVerdict.PASS
    assert delta(before, forwarder.counters) == {counter: 1}


def test_redirect_without_a_socket_passes_and_says_so(fw: tuple[BPFObject, Forwarder]) -> None:
    obj, forwarder = fw
    forwarder.add(Rule("udp", dst_port=53))
    before = forwarder.counters
    assert run(obj, f.udp(53)) is XDPVerdict.PASS
    assert delta(before, forwarder.counters) == {"no_socket": 1}


def test_most_specific_rule_wins_whatever_the_order(fw: tuple[BPFObject, Forwarder]) -> None:
    obj, forwarder = fw
    forwarder.add(Rule("udp", src=f.B_IP, dst_port=53, action=Action.PASS))
    forwarder.add(Rule("udp", dst_port=53, action=Action.DROP))
    forwarder.add(Rule("udp", action=Action.PASS))
    assert run(obj, f.udp(53)) is XDPVerdict.PASS  # the src+port rule
    assert run(obj, f.udp(53, src="198.18.0.3")) is XDPVerdict.DROP  # the port rule
    assert run(obj, f.udp(54, src="198.18.0.3")) is XDPVerdict.PASS  # proto only
    assert forwarder.counters.passed == 2


def test_rules_and_masks_come_and_go_in_order(fw: tuple[BPFObject, Forwarder]) -> None:
    obj, forwarder = fw
    masks = obj.map("aioxdp_fw_masks", key="uint32_t", value="struct aioxdp_fw_key")
    a, b = Rule("udp", dst_port=1, action=Action.DROP), Rule("udp", dst_port=2, action=Action.DROP)
    forwarder.add(a)
    forwarder.add(b)
    assert sum(1 for i in range(16) if masks.lookup(i).proto) == 1  # one shared mask
    forwarder.remove(a)
    assert sum(1 for i in range(16) if masks.lookup(i).proto) == 1  # b still needs it
    assert run(obj, f.udp(1)) is XDPVerdict.PASS
    assert run(obj, f.udp(2)) is XDPVerdict.DROP
    forwarder.remove(b)
    assert sum(1 for i in range(16) if masks.lookup(i).proto) == 0
    assert forwarder.rules == []
    with pytest.raises(KeyError, match="not installed"):
        forwarder.remove(b)


def test_duplicates_and_limits_are_clear_errors(fw: tuple[BPFObject, Forwarder]) -> None:
    _obj, forwarder = fw
    forwarder.add(Rule("udp", dst_port=53))
    with pytest.raises(ValueError, match="already installed"):
        forwarder.add(Rule("udp", dst_port=53))
    with pytest.raises(ValueError, match="matches exactly the packets"):
        forwarder.add(Rule("udp", dst_port=53, action=Action.DROP))
    # masks: one per prefix length of the source
    for plen in range(16, 31):
        forwarder.add(Rule("udp", src=f"198.18.0.0/{plen}"))
    assert len(forwarder.rules) == 16
    with pytest.raises(MapError, match="at most 16 distinct masks"):
        forwarder.add(Rule("udp", src="198.18.0.0/31"))
    assert len(forwarder.rules) == 16  # the refused rule left nothing behind


def test_thousands_of_rules_and_then_a_clear_error(fw: tuple[BPFObject, Forwarder]) -> None:
    obj, forwarder = fw
    for port in range(1, forwarder.max_rules + 1):
        forwarder.add(Rule("udp", dst_port=port, action=Action.DROP))
    with pytest.raises(MapError, match="at most 4096 rules"):
        forwarder.add(Rule("tcp", dst_port=1))
    assert run(obj, f.udp(4000)) is XDPVerdict.DROP
    assert run(obj, f.udp(4097)) is XDPVerdict.PASS


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"proto": "sctp"}, "proto"),
        ({"proto": 0}, "proto"),
        ({"proto": "udp", "dst_port": 0}, "dst_port"),
        ({"proto": "udp", "src_port": 70000}, "src_port"),
        ({"proto": "icmp", "dst_port": 5}, "src_port/dst_port"),
        ({"proto": "udp", "icmp_type": 8}, "icmp_type/icmp_id"),
        ({"proto": "icmp", "icmp_id": 5}, "icmp_id"),
        ({"proto": "icmp", "icmp_type": 5, "icmp_id": 5}, "icmp_id"),
        ({"proto": "udp", "dst_port": 53, "fragments": True}, "fragments"),
        ({"proto": "icmp", "icmp_type": 0, "fragments": True}, "fragments"),
        ({"proto": "arp", "fragments": True}, "fragments"),
        ({"proto": "icmp", "fragments": 1}, "fragments"),
        ({"proto": "udp", "src": "198.18.0.1/24"}, "src"),
        ({"proto": "udp", "dst": "not-an-address"}, "dst"),
        ({"proto": "udp", "arp_op": 2}, "arp_op"),
        ({"proto": "arp", "arp_op": 3}, "arp_op"),
        ({"proto": "udp", "src": "2001:2::1/64"}, "src"),
        ({"proto": "udp", "dst": 3221360641}, "dst"),
        ({"proto": "udp", "src": "198.18.0.1", "dst": "2001:2::1"}, "family"),
        ({"proto": "icmp", "dst": "2001:2::1"}, "family"),
        ({"proto": "icmpv6", "src": "198.18.0.1"}, "family"),
        ({"proto": "udp", "dst": "2001:2::1", "family": 4}, "family"),
        ({"proto": "udp", "family": 5}, "family"),
        ({"proto": "udp", "family": "6"}, "family"),
        ({"proto": "arp", "family": 6}, "family"),
        ({"proto": "icmpv6", "icmp_type": 135, "icmp_id": 1}, "icmp_id"),
        ({"proto": "icmpv6", "icmp_type": 8, "icmp_id": 1}, "icmp_id"),
        ({"proto": "icmpv6", "icmp_type": 256}, "icmp_type"),
        ({"proto": "icmp", "icmp_type": True}, "icmp_type"),
    ],
)
def test_rules_that_cannot_match_are_refused(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=f"^{named}:"):
        Rule(**kwargs)  # type: ignore[arg-type]


def test_layout_of_a_rule_key() -> None:
    key, mask = Rule("udp", src="198.18.0.2", dst_port=53).key_and_mask()
    untagged = bytes(8)  # no VLAN flag, VLAN id 0
    # IPv4 source in the first word of the 16-byte source, no destination
    assert key == bytes([198, 18, 0, 2]) + bytes(12) + bytes(16) + bytes(2) + b"\x00\x35" + (
        b"\x11\x00\x00\x00" + untagged
    )
    # flags: NO_L4 | ARP | VLAN | IPV6 (the rule is for IPv4) | LINK; the whole VLAN id
    assert mask == b"\xff" * 4 + bytes(12) + bytes(16) + bytes(2) + b"\xff\xff" + (
        b"\xff\x1f\x00\x00" + b"\xff\xff" + bytes(6)
    )
    key, _ = Rule("udp", dst_port=53, vlan=100).key_and_mask()
    assert key[37] == 0x04  # the VLAN flag
    assert key[40:42] == b"\x00\x64"
    key, mask = Rule("icmp", icmp_type=0, icmp_id=0x1234).key_and_mask()
    assert key[32:34] == b"\x00\x00"
    assert key[34:36] == b"\x12\x34"
    assert mask[32:34] == b"\xff\x00"  # the type byte, not the code
    key, mask = Rule("udp", dst="2001:2::/64", dst_port=53).key_and_mask()
    assert key[16:32] == bytes.fromhex("20010002" + "00" * 12)
    assert mask[16:32] == b"\xff" * 8 + bytes(8)
    assert (key[37], mask[37]) == (0x08, 0x1F)  # IPv6, and the mask says so
    _key, mask = Rule("udp", dst_port=53).key_and_mask()
    assert mask[37] == 0x17  # no family named or implied: both families
    key, _ = Rule("icmpv6", icmp_type=135).key_and_mask()
    assert key[37] == 0x08 | 0x10  # IPv6, and a type that runs the link


def test_parse_of_our_template_frames() -> None:
    assert Ether(f.udp(53))[UDP].dport == 53


# -- issue 11: the forwarder redirects exactly what was asked -----------------


def test_unicast_to_another_mac_is_not_for_us(fw: tuple[BPFObject, Forwarder]) -> None:
    obj, forwarder = fw
    forwarder.add(Rule("udp", dst_port=53, action=Action.DROP))
    forwarder.set_local_mac(f.A_MAC)
    transit = bytes(Ether(src=f.B_MAC, dst="02:a0:00:00:00:99") / IP(dst=f.A_IP) / UDP(dport=53))
    broadcast = bytes(Ether(src=f.B_MAC, dst="ff:ff:ff:ff:ff:ff") / IP(dst=f.A_IP) / UDP(dport=53))
    multicast = bytes(Ether(src=f.B_MAC, dst="01:00:5e:00:00:fb") / IP(dst=f.A_IP) / UDP(dport=53))
    before = forwarder.counters
    assert run(obj, transit) is XDPVerdict.PASS
    assert delta(before, forwarder.counters) == {"not_local": 1}
    assert run(obj, f.udp(53)) is XDPVerdict.DROP  # to our own MAC
    assert run(obj, broadcast) is XDPVerdict.DROP
    assert run(obj, multicast) is XDPVerdict.DROP
    forwarder.set_local_mac(None)  # no interface named: every frame is looked at
    assert run(obj, transit) is XDPVerdict.DROP
    with pytest.raises(ValueError, match="not a unicast Ethernet address"):
        forwarder.set_local_mac("01:00:5e:00:00:01")
    with pytest.raises(ValueError, match="not a unicast Ethernet address"):
        forwarder.set_local_mac("zz")


def test_vlan_frames_without_a_rule_for_their_vlan_are_counted(
    fw: tuple[BPFObject, Forwarder],
) -> None:
    obj, forwarder = fw
    forwarder.add(Rule("udp", action=Action.DROP))
    before = forwarder.counters
    assert run(obj, f.vlan(IP(src=f.B_IP, dst=f.A_IP) / UDP(dport=53))) is XDPVerdict.PASS
    assert delta(before, forwarder.counters) == {"vlan": 1}


def test_ports_are_read_within_the_ip_datagram_not_its_padding(
    fw: tuple[BPFObject, Forwarder],
) -> None:
    obj, forwarder = fw
    forwarder.add(Rule("udp", dst_port=53, action=Action.DROP))
    # IP total length 20: no UDP header in the datagram; the bytes after it
    # are Ethernet padding crafted to look like one (dport 53)
    ip = bytes(IP(src=f.B_IP, dst=f.A_IP, proto=17, len=20))
    padding = b"\x9c\x40\x00\x35\x00\x1a\x00\x00" + bytes(18)
    frame = bytes(Ether(src=f.B_MAC, dst=f.A_MAC, type=0x0800)) + ip + padding
    before = forwarder.counters
    assert run(obj, frame) is XDPVerdict.PASS
    assert delta(before, forwarder.counters) == {"malformed": 1}


def test_equally_specific_rules_are_ordered_by_installation(
    fw: tuple[BPFObject, Forwarder],
) -> None:
    obj, forwarder = fw
    # two masks of the same number of bits, both matching the frame
    first = Rule("udp", dst_port=53, action=Action.DROP)
    second = Rule("udp", src_port=40000, action=Action.PASS)
    for _ in range(3):  # whatever slots they land in, the first installed wins
        forwarder.add(first)
        forwarder.add(second)
        assert run(obj, f.udp(53, sport=40000)) is XDPVerdict.DROP
        forwarder.clear()
        forwarder.add(second)
        forwarder.add(first)
        assert run(obj, f.udp(53, sport=40000)) is XDPVerdict.PASS
        forwarder.clear()


def test_failed_map_delete_leaves_python_and_the_map_in_step(
    fw: tuple[BPFObject, Forwarder], monkeypatch: pytest.MonkeyPatch
) -> None:
    obj, forwarder = fw
    rule = Rule("udp", dst_port=53, action=Action.DROP)
    forwarder.add(rule)

    def refuse(*args: object) -> bool:
        raise MapError(1, "deleting from aioxdp_fw_rules")

    monkeypatch.setattr(forwarder._rules_map, "delete", refuse)
    with pytest.raises(MapError):
        forwarder.remove(rule)
    assert forwarder.rules == [rule]  # still installed, as the map says
    assert run(obj, f.udp(53)) is XDPVerdict.DROP
    monkeypatch.undo()
    forwarder.remove(rule)
    assert forwarder.rules == []
    assert run(obj, f.udp(53)) is XDPVerdict.PASS


def test_thousands_of_ipv6_rules_each_its_host(fw: tuple[BPFObject, Forwarder]) -> None:
    """A full table of /128 rules, one per IPv6 source: each takes its own
    host's datagrams only; IPv4 from the same port passes."""
    obj, forwarder = fw
    sources = [f"2001:2:1::{k:x}" for k in range(1, forwarder.max_rules + 1)]
    for src in sources:
        forwarder.add(Rule("udp", src=src, dst_port=53, action=Action.DROP))
    with pytest.raises(MapError, match="at most 4096 rules"):
        forwarder.add(Rule("udp", src="2001:2:2::1", dst_port=53))
    for src in sources[:: len(sources) // 64]:
        assert run(obj, f.udp6(53, src=src)) is XDPVerdict.DROP
    assert run(obj, f.udp6(53, src="2001:2:1::1:1")) is XDPVerdict.PASS
    assert run(obj, f.udp(53)) is XDPVerdict.PASS
    assert forwarder.counters.dropped == 64
