"""What the forwarder must do with a frame: an oracle written from the protocol
specifications and the rule semantics that aioxdp documents (README "Rules",
the docstrings of aioxdp.forwarder), not from bpf/forwarder.bpf.c.

A frame is first described (:func:`describe`): which header the
specifications say it carries, judged by lengths alone, and its fields as
scapy, an independent dissector, reads them. Then :func:`decide` says which
installed rule takes it and what the program returns, and which counter
counts it. The forwarder promises:

- only frames to this host count (IEEE 802.3: a unicast destination that is
  not our address reached us by flooding or capture): others pass;
- Ethernet II with at most one 802.1Q/802.1ad tag; a tagged frame matches
  only rules that name its VLAN id (a priority tag, id 0, is tagged too);
- ARP in its Ethernet/IPv4 form (RFC 826, 28 bytes): sender and target
  protocol addresses are the rule's src and dst, and the operation its op;
- IPv4 (RFC 791) whose header and total length lie in the frame;
  a fragment (MF set or an offset, the first one too) has no transport
  header to match, so only rules on addresses and protocol take it;
- IPv6 (RFC 8200) whose fixed header and payload length lie in the frame,
  then at most 8 extension headers (hop-by-hop 0, routing 43, destination
  options 60: 8 bytes per length unit plus 8; fragment 44: 8 bytes), each
  inside the payload; a longer chain is malformed. A fragment header with
  an offset or the M flag makes a fragment, as in IPv4; one with neither
  (an atomic fragment, RFC 6946) is stepped over. ICMPv6 (RFC 4443): 8
  bytes, the echo id of types 128 and 129, and for the errors 1 to 4 the
  id of the echo request they quote (an IPv6 header whose next header is
  ICMPv6, then type 128, all inside the error's payload; else 0). The
  messages that run the link (130 to 137, 143) match only rules that name
  their type;
- a rule is for IPv4, IPv6 or both: the family it names, else that of its
  addresses, else IPv4 for icmp and arp, IPv6 for icmpv6, else both;
- the transport header inside the datagram: UDP 8 bytes (RFC 768), TCP 20
  and its data offset (RFC 9293), ICMP 8 (RFC 792; the echo id of types 0
  and 8; for the errors 3, 11 and 12, the echo id of the request they
  quote: its IPv4 header whole, not a later fragment, and 8 bytes of ICMP
  of type 8, all inside the error's datagram; else 0);
- of the rules that match, the most specific wins: the one that fixes most
  header bits (protocol 8, a prefix its length, a port 16, ICMP type 8, echo
  id 16, ARP op 16, 1 for a family, and 1 for "has a whole transport
  header", which a rule on ports or ICMP fields asks for too, and a rule on
  fragments, which takes only fragments); of equals, the one installed
  first.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.utils import checksum

from aioxdp import Action, Rule
from aioxdp.bpf import XDPVerdict

ETH_IPV4, ETH_ARP, ETH_IPV6, TAGS = 0x0800, 0x0806, 0x86DD, (0x8100, 0x88A8)
# the smallest header of each transport (RFC 768, 9293, 792, 4443)
MIN_TRANSPORT = {17: 8, 6: 20, 1: 8}
MIN_TRANSPORT6 = {17: 8, 6: 20, 58: 8}
EXTENSIONS = (0, 43, 60, 44)  # hop-by-hop, routing, destination options, fragment
MAX_EXTENSIONS = 8
LINK_TYPES = (*range(130, 138), 143)
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Described:
    """What a frame is. ``kind`` is "datagram" (IPv4 with its whole transport
    header), "fragment", "arp", or why no rule can look at it: "not_local",
    "malformed", "not_ip"."""

    kind: str
    vlan: int | None = None
    proto: int | None = None
    src: Address | None = None
    dst: Address | None = None
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_id: int | None = None
    arp_op: int | None = None
    link: bool = False  # ICMPv6 that runs the link (neighbour discovery, MLD)


def describe(frame: bytes, local_mac: bytes | None) -> Described:
    if len(frame) < 14:
        return Described("malformed")
    if local_mac is not None and not frame[0] & 1 and frame[:6] != local_mac:
        return Described("not_local")
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    l3 = 14
    vlan = None
    if ethertype in TAGS:
        if len(frame) < 18:
            return Described("malformed")
        l3 = 18
        (ethertype,) = struct.unpack_from("!H", frame, 16)
        pkt = Ether(frame)
        tag = pkt.getlayer(Dot1AD) if pkt.type == 0x88A8 else pkt.getlayer(Dot1Q)
        assert tag is not None, frame.hex()
        vlan = tag.vlan
    payload = frame[l3:]
    if ethertype == ETH_ARP:
        return _arp(frame, payload, vlan)
    if ethertype == ETH_IPV6:
        return _ipv6(payload, vlan)
    if ethertype != ETH_IPV4:
        return Described("not_ip")  # a second tag, anything else
    return _ipv4(frame, payload, vlan)


def _arp(frame: bytes, payload: bytes, vlan: int | None) -> Described:
    if len(payload) < 28:
        return Described("malformed")
    hardware, protocol, hlen, plen = struct.unpack_from("!HHBB", payload)
    if (hardware, protocol, hlen, plen) != (1, ETH_IPV4, 6, 4):
        return Described("not_ip")
    arp = Ether(frame).getlayer(ARP)
    assert arp is not None, frame.hex()
    return Described(
        "arp",
        vlan,
        src=ipaddress.IPv4Address(arp.psrc),
        dst=ipaddress.IPv4Address(arp.pdst),
        arp_op=arp.op,
    )


def _ipv4(frame: bytes, payload: bytes, vlan: int | None) -> Described:
    if len(payload) < 20:
        return Described("malformed")
    version, ihl = payload[0] >> 4, payload[0] & 0xF
    (total,) = struct.unpack_from("!H", payload, 2)
    header = ihl * 4
    if version != 4 or ihl < 5 or header > len(payload) or not header <= total <= len(payload):
        return Described("malformed")
    ip = Ether(frame).getlayer(IP)
    assert ip is not None, frame.hex()
    fields = {
        "vlan": vlan,
        "proto": ip.proto,
        "src": ipaddress.IPv4Address(ip.src),
        "dst": ipaddress.IPv4Address(ip.dst),
    }
    if ip.flags.MF or ip.frag:
        return Described("fragment", **fields)
    datagram = payload[header:total]  # what follows the datagram is padding
    need = MIN_TRANSPORT.get(ip.proto, 0)
    if len(datagram) < need:
        return Described("malformed")
    if ip.proto == 6 and (datagram[12] >> 4 < 5 or (datagram[12] >> 4) * 4 > len(datagram)):
        return Described("malformed")
    if ip.proto in (6, 17):
        layer = ip.getlayer(TCP if ip.proto == 6 else UDP)
        assert layer is not None, frame.hex()
        fields.update(sport=layer.sport, dport=layer.dport)
    elif ip.proto == 1:
        icmp = ip.getlayer(ICMP)
        assert icmp is not None, frame.hex()
        fields["icmp_type"] = icmp.type
        if icmp.type in (0, 8):  # echo reply and request carry an identifier
            fields["icmp_id"] = icmp.id
        elif icmp.type in (3, 11, 12):  # errors: the id of the echo request quoted
            fields["icmp_id"] = _quoted_echo_id(datagram[8:])
    return Described("datagram", **fields)


def _quoted_echo_id(quote: bytes) -> int:
    """RFC 792: an error quotes the IP header and at least 8 bytes of the
    datagram it answers; the id if that is an echo request (RFC 792 layout)."""
    if len(quote) < 20 or quote[0] >> 4 != 4 or quote[0] & 0xF < 5 or quote[9] != 1:
        return 0
    if struct.unpack_from("!H", quote, 6)[0] & 0x1FFF:
        return 0  # a later fragment: no ICMP header in it
    at = (quote[0] & 0xF) * 4
    if len(quote) < at + 8 or quote[at] != 8:
        return 0
    return int(struct.unpack_from("!H", quote, at + 4)[0])


def _ipv6(payload: bytes, vlan: int | None) -> Described:
    """By the RFC 8200 lengths; the fields are read by scapy where it can
    (the addresses, ports, ICMPv6 type and id)."""
    if len(payload) < 40 or payload[0] >> 4 != 6:
        return Described("malformed")
    (length,) = struct.unpack_from("!H", payload, 4)
    if 40 + length > len(payload):
        return Described("malformed")
    ip6 = IPv6(payload[: 40 + length])
    datagram = payload[40 : 40 + length]
    fields: dict[str, object] = {
        "vlan": vlan,
        "src": ipaddress.IPv6Address(ip6.src),
        "dst": ipaddress.IPv6Address(ip6.dst),
    }
    next_header, at = payload[6], 0
    for _ in range(MAX_EXTENSIONS):
        if next_header not in EXTENSIONS:
            break
        if at + 8 > len(datagram):
            return Described("malformed")
        if next_header == 44:
            (offset_flags,) = struct.unpack_from("!H", datagram, at + 2)
            if offset_flags >> 3 or offset_flags & 1:
                return Described("fragment", proto=datagram[at], **fields)  # type: ignore[arg-type]
            size = 8
        else:
            size = (datagram[at + 1] + 1) * 8
        next_header, at = datagram[at], at + size
    if next_header in EXTENSIONS or at > len(datagram):
        return Described("malformed")
    fields["proto"] = next_header
    upper = datagram[at:]
    if len(upper) < MIN_TRANSPORT6.get(next_header, 0):
        return Described("malformed")
    if next_header == 6 and (upper[12] >> 4 < 5 or (upper[12] >> 4) * 4 > len(upper)):
        return Described("malformed")
    if next_header in (6, 17):
        layer = (TCP if next_header == 6 else UDP)(upper)
        fields.update(sport=layer.sport, dport=layer.dport)
    elif next_header == 58:
        icmp_type = upper[0]
        fields["icmp_type"] = icmp_type
        if icmp_type in (128, 129):
            fields["icmp_id"] = ICMPv6EchoRequest(upper).id
        elif 1 <= icmp_type <= 4:
            fields["icmp_id"] = _quoted_echo6_id(upper[8:])
        fields["link"] = icmp_type in LINK_TYPES
    return Described("datagram", **fields)  # type: ignore[arg-type]


def _quoted_echo6_id(quote: bytes) -> int:
    """RFC 4443: an error quotes as much of the packet it answers as fits;
    the id if that was an echo request right behind its IPv6 header."""
    if len(quote) < 48 or quote[0] >> 4 != 6 or quote[6] != 58 or quote[40] != 128:
        return 0
    return int(struct.unpack_from("!H", quote, 44)[0])


def family(rule: Rule) -> int | None:
    """The family a rule is for, by the README's words (None: both)."""
    if rule.family is not None:
        return rule.family
    for prefix in (rule.src, rule.dst):
        if prefix is not None:
            return ipaddress.ip_network(prefix).version
    return {1: 4, 0: 4, 58: 6}.get(rule.proto_number)


def _version(seen: Described) -> int:
    return 6 if isinstance(seen.src, ipaddress.IPv6Address) else 4


def _within(prefix: str | None, address: Address | None) -> bool:
    if prefix is None:
        return True
    network = ipaddress.ip_network(prefix)
    return address is not None and address.version == network.version and address in network


def _names_transport(rule: Rule) -> bool:
    return any(
        value is not None for value in (rule.src_port, rule.dst_port, rule.icmp_type, rule.icmp_id)
    )


def matches(rule: Rule, seen: Described) -> bool:
    if seen.kind not in ("datagram", "fragment", "arp") or rule.vlan != seen.vlan:
        return False
    if family(rule) not in (None, _version(seen)):
        return False
    if seen.link and rule.icmp_type is None:
        return False
    if not (_within(rule.src, seen.src) and _within(rule.dst, seen.dst)):
        return False
    if rule.proto_number == 0:  # "arp"
        return seen.kind == "arp" and rule.arp_op in (None, seen.arp_op)
    if seen.kind == "arp" or seen.proto != rule.proto_number:
        return False
    if _names_transport(rule) and seen.kind != "datagram":
        return False
    if rule.fragments and seen.kind != "fragment":  # a fragments rule takes nothing else
        return False
    wanted = (
        (rule.src_port, seen.sport),
        (rule.dst_port, seen.dport),
        (rule.icmp_type, seen.icmp_type),
        (rule.icmp_id, seen.icmp_id),
    )
    return all(want is None or want == got for want, got in wanted)


def specificity(rule: Rule) -> int:
    bits = 8
    for prefix in (rule.src, rule.dst):
        if prefix is not None:
            bits += ipaddress.ip_network(prefix).prefixlen
    bits += family(rule) is not None
    bits += 16 * sum(v is not None for v in (rule.src_port, rule.dst_port, rule.icmp_id))
    bits += 16 * (rule.arp_op is not None) + 8 * (rule.icmp_type is not None)
    return bits + (_names_transport(rule) or rule.fragments)


@dataclass(frozen=True)
class Decision:
    verdict: XDPVerdict
    counter: str  # the Verdicts field that counts it
    rule: Rule | None  # the rule that took it


def decide(seen: Described, installed: list[Rule]) -> Decision:
    """``installed`` in installation order. A REDIRECT rule's frame passes
    when no XSK is bound to its queue, as under BPF_PROG_TEST_RUN."""
    if seen.kind not in ("datagram", "fragment", "arp"):
        return Decision(XDPVerdict.PASS, seen.kind, None)
    candidates = [(specificity(r), -i, r) for i, r in enumerate(installed) if matches(r, seen)]
    if not candidates:
        if seen.vlan is not None:
            return Decision(XDPVerdict.PASS, "vlan", None)
        counter = "fragments" if seen.kind == "fragment" else "unmatched"
        return Decision(XDPVerdict.PASS, counter, None)
    rule = max(candidates, key=lambda c: c[:2])[2]
    if rule.action is Action.DROP:
        return Decision(XDPVerdict.DROP, "dropped", rule)
    if rule.action is Action.PASS:
        return Decision(XDPVerdict.PASS, "passed", rule)
    return Decision(XDPVerdict.PASS, "no_socket", rule)


def udp_is_valid(frame: bytes) -> bool:
    """A whole UDP datagram in an untagged IPv4 frame, correct by RFC 791 and
    RFC 768 (the checksums by RFC 1071, computed by scapy): what a UDP
    endpoint must deliver rather than count as malformed."""
    pkt = Ether(frame)
    ip = pkt.getlayer(IP)
    if ip is None or frame[12:14] != b"\x08\x00":
        return False
    header = bytes(frame[14 : 14 + ip.ihl * 4])
    if checksum(header) != 0:
        return False
    datagram = frame[14 + ip.ihl * 4 : 14 + ip.len]
    if len(datagram) < 8:
        return False
    (length, sent) = struct.unpack_from("!HH", datagram, 4)
    if not 8 <= length <= len(datagram):
        return False
    if sent == 0:
        return True  # no checksum (RFC 768)
    pseudo = ipaddress.IPv4Address(ip.src).packed + ipaddress.IPv4Address(ip.dst).packed
    pseudo += struct.pack("!BBH", 0, 17, length)
    return checksum(pseudo + datagram[:length]) == 0
