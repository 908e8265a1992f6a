"""The one place aioxdp builds the headers of the frames it sends: Ethernet
and IPv4 in front of an ICMP, UDP or TCP payload (ping, tcping, UDP
endpoints), and ARP requests (neighbour resolution). The codecs of
aioxdp.protocols write the bytes; this module decides what goes in them."""

from __future__ import annotations

import random
import socket
import struct

from aioxdp.protocols.arp import REQUEST, Arp
from aioxdp.protocols.ethernet import BROADCAST, ETH_P_ARP, ETH_P_IP, Ethernet
from aioxdp.protocols.ipv4 import IPv4
from aioxdp.protocols.tcp import IPPROTO_TCP, Tcp, TcpOptions
from aioxdp.protocols.udp import IPPROTO_UDP
from aioxdp.route import ResolvedRoute, Route

__all__ = [
    "DEFAULT_TTL",
    "IPV4_HEADERS",
    "UDP_HEADERS",
    "arp_request",
    "ipv4_frame",
    "tcp_segment",
    "udp_header",
]

DEFAULT_TTL = 64  # what Linux sends with (net.ipv4.ip_default_ttl)
IPV4_HEADERS = 14 + 20  # Ethernet and an IPv4 header without options
UDP_HEADERS = IPV4_HEADERS + 8  # and a UDP header
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


def udp_header(route: ResolvedRoute, sport: int, dport: int, *, source: str | None = None) -> bytes:
    """Ethernet, IPv4 and UDP headers (``UDP_HEADERS`` bytes) to the route's
    destination port ``dport``, for C to complete per datagram (lengths,
    IP id and both checksums)."""
    frame = ipv4_frame(route, IPPROTO_UDP, 8, source=source)
    struct.pack_into("!HHHH", frame, IPV4_HEADERS, sport, dport, 8, 0)
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
    """A TCP segment without payload to the route's destination (random IP id,
    don't fragment), checksums written."""
    tcp = Tcp(sport, dport, seq, ack, flags, 64240, 0, options)
    length = 20 + len(options.build())
    frame = ipv4_frame(route, IPPROTO_TCP, length, ident=random.getrandbits(16), dont_fragment=True)
    src, dst = socket.inet_aton(route.source), socket.inet_aton(route.destination)
    tcp.build_into(frame, IPV4_HEADERS, b"", src, dst)
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
