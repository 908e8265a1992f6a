"""The one place aioxdp builds the headers of the frames it sends: Ethernet
and IPv4 or IPv6 in front of an ICMP, ICMPv6, UDP or TCP payload (ping,
tcping, UDP endpoints), and ARP requests and neighbour solicitations
(neighbour resolution). The codecs of aioxdp.protocols write the bytes;
this module decides what goes in them."""

from __future__ import annotations

import random
import socket
import struct

from aioxdp.protocols.arp import REQUEST, Arp
from aioxdp.protocols.ethernet import BROADCAST, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, Ethernet
from aioxdp.protocols.icmpv6 import IPPROTO_ICMPV6, NEIGHBOR_SOLICIT, Neighbor
from aioxdp.protocols.ipv4 import IPv4
from aioxdp.protocols.ipv6 import IPv6
from aioxdp.protocols.tcp import IPPROTO_TCP, Tcp, TcpOptions
from aioxdp.protocols.udp import IPPROTO_UDP
from aioxdp.route import ResolvedRoute, Route

__all__ = [
    "DEFAULT_TTL",
    "IPV4_HEADERS",
    "IPV6_HEADERS",
    "UDP6_HEADERS",
    "UDP_HEADERS",
    "arp_request",
    "ip_frame",
    "ipv4_frame",
    "ipv6_frame",
    "neighbour_solicitation",
    "tcp_segment",
    "udp_header",
]

DEFAULT_TTL = 64  # what Linux sends with (net.ipv4.ip_default_ttl)
IPV4_HEADERS = 14 + 20  # Ethernet and an IPv4 header without options
IPV6_HEADERS = 14 + 40  # Ethernet and an IPv6 header without extension headers
UDP_HEADERS = IPV4_HEADERS + 8  # and a UDP header
UDP6_HEADERS = IPV6_HEADERS + 8
ETHERNET_MIN = 60  # the shortest frame on the wire, before its FCS


def ipv4_frame(
    route: ResolvedRoute,
    proto: int,
    l4_length: int,
    *,
    ttl: int = DEFAULT_TTL,
    ident: int = 0,
    dont_fragment: bool = False,
    source: str | None = None,
) -> bytearray:
    """A frame of ``IPV4_HEADERS + l4_length`` bytes to the route's next hop,
    its Ethernet and IPv4 headers written (IPv4 checksum included); the
    caller writes the transport header and payload at ``IPV4_HEADERS``."""
    frame = bytearray(IPV4_HEADERS + l4_length)
    off = Ethernet(route.next_hop_mac, route.source_mac, ETH_P_IP).build_into(frame)
    IPv4(
        socket.inet_aton(source or route.source),
        socket.inet_aton(route.destination),
        proto,
        total_length=20 + l4_length,
        ttl=ttl,
        ident=ident,
        dont_fragment=dont_fragment,
    ).build_into(frame, off)
    return frame


def ipv6_frame(
    route: ResolvedRoute,
    next_header: int,
    l4_length: int,
    *,
    hop_limit: int = DEFAULT_TTL,
    source: str | None = None,
) -> bytearray:
    """A frame of ``IPV6_HEADERS + l4_length`` bytes to the route's next hop,
    its Ethernet and IPv6 headers written; the caller writes the upper-layer
    header and payload at ``IPV6_HEADERS``."""
    frame = bytearray(IPV6_HEADERS + l4_length)
    off = Ethernet(route.next_hop_mac, route.source_mac, ETH_P_IPV6).build_into(frame)
    IPv6(
        socket.inet_pton(socket.AF_INET6, source or route.source),
        socket.inet_pton(socket.AF_INET6, route.destination),
        next_header,
        payload_length=l4_length,
        hop_limit=hop_limit,
    ).build_into(frame, off)
    return frame


def ip_frame(
    route: ResolvedRoute, proto: int, l4_length: int, *, ttl: int = DEFAULT_TTL
) -> tuple[bytearray, int]:
    """A frame to the route's destination in its family (IPv4, or IPv6 with
    ``proto`` as the next header and ``ttl`` as the hop limit), and where
    the transport header goes in it."""
    if ":" in route.destination:
        return ipv6_frame(route, proto, l4_length, hop_limit=ttl), IPV6_HEADERS
    return ipv4_frame(route, proto, l4_length, ttl=ttl), IPV4_HEADERS


def udp_header(route: ResolvedRoute, sport: int, dport: int, *, source: str | None = None) -> bytes:
    """Ethernet, IPv4 (or IPv6, to an IPv6 destination) and UDP headers
    (``UDP_HEADERS`` bytes, or ``UDP6_HEADERS``) to the route's destination
    port ``dport``, for C to complete per datagram (lengths, IP id and the
    checksums)."""
    if ":" in route.destination:
        frame = ipv6_frame(route, IPPROTO_UDP, 8, source=source)
        at = IPV6_HEADERS
    else:
        frame = ipv4_frame(route, IPPROTO_UDP, 8, source=source)
        at = IPV4_HEADERS
    struct.pack_into("!HHHH", frame, at, sport, dport, 8, 0)
    return bytes(frame)


def tcp_segment(
    route: ResolvedRoute,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    options: TcpOptions,
) -> bytes:
    """A TCP segment without payload to the route's destination (IPv4: random
    IP id, don't fragment; or IPv6), checksums written."""
    tcp = Tcp(sport, dport, seq, ack, flags, 64240, 0, options)
    length = 20 + len(options.build())
    if ":" in route.destination:
        frame = ipv6_frame(route, IPPROTO_TCP, length)
        at, af = IPV6_HEADERS, socket.AF_INET6
    else:
        frame = ipv4_frame(
            route, IPPROTO_TCP, length, ident=random.getrandbits(16), dont_fragment=True
        )
        at, af = IPV4_HEADERS, socket.AF_INET
    src, dst = socket.inet_pton(af, route.source), socket.inet_pton(af, route.destination)
    tcp.build_into(frame, at, b"", src, dst)
    return bytes(frame)


def arp_request(route: Route) -> bytes:
    """A broadcast ARP request for the route's next hop, from its source."""
    frame = bytearray(ETHERNET_MIN)
    off = Ethernet(BROADCAST, route.source_mac, ETH_P_ARP).build_into(frame)
    Arp(
        REQUEST,
        route.source_mac,
        socket.inet_aton(route.source),
        bytes(6),
        socket.inet_aton(route.next_hop),
    ).build_into(frame, off)
    return bytes(frame)


def neighbour_solicitation(route: Route) -> bytes:
    """A neighbour solicitation (RFC 4861 4.3) for the route's next hop,
    from its source, to the next hop's solicited-node multicast group, with
    our MAC in the source link-layer address option."""
    target = socket.inet_pton(socket.AF_INET6, route.next_hop)
    group = bytes.fromhex("ff02" + "00" * 9 + "01ff") + target[13:]  # ff02::1:ffXX:XXXX
    header, body = Neighbor(target, route.source_mac).payload(NEIGHBOR_SOLICIT)
    frame = bytearray(IPV6_HEADERS + 8 + len(body))
    off = Ethernet(b"\x33\x33" + group[12:], route.source_mac, ETH_P_IPV6).build_into(frame)
    src = socket.inet_pton(socket.AF_INET6, route.source)
    IPv6(src, group, IPPROTO_ICMPV6, payload_length=8 + len(body), hop_limit=255).build_into(
        frame, off
    )
    header.build_into(frame, IPV6_HEADERS, body, src, group)
    return bytes(frame)
