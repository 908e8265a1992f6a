"""Frames for tests, built with scapy: an independent encoder of the wire format."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw

from aioxdp.testing import Lab

A_MAC, B_MAC = "02:a0:00:00:00:0a", "02:a0:00:00:00:0b"
A_IP, B_IP = "198.18.0.1", "198.18.0.2"
A_IP6, B_IP6 = "2001:2::a", "2001:2::b"


def ether(src: str = B_MAC, dst: str = A_MAC) -> Ether:
    return Ether(src=src, dst=dst)


def udp(
    dport: int, sport: int = 40000, payload: bytes = b"x" * 18, src: str = B_IP, dst: str = A_IP
) -> bytes:
    return bytes(ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(payload))


def tcp(
    dport: int, sport: int = 40000, flags: str = "S", src: str = B_IP, dst: str = A_IP
) -> bytes:
    return bytes(ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags))


def icmp(type_: int, id_: int = 0x1234, seq: int = 1, src: str = B_IP, dst: str = A_IP) -> bytes:
    return bytes(
        ether() / IP(src=src, dst=dst) / ICMP(type=type_, id=id_, seq=seq) / Raw(b"p" * 16)
    )


def icmp_error(type_: int, code: int, quoted: bytes, src: str = B_IP, dst: str = A_IP) -> bytes:
    """An ICMP error from ``src`` quoting ``quoted`` (an IP datagram, cut as the sender likes)."""
    return bytes(ether() / IP(src=src, dst=dst) / ICMP(type=type_, code=code) / Raw(quoted))


def echo_request_datagram(id_: int = 0x1234, seq: int = 1, frag: int = 0) -> bytes:
    """The IP datagram of an echo request from a to a far host, as an error quotes it."""
    return bytes(
        IP(src=A_IP, dst="198.19.0.9", frag=frag) / ICMP(type=8, id=id_, seq=seq) / Raw(b"q" * 16)
    )


def ip6(src: str = B_IP6, dst: str = A_IP6, *headers: Packet) -> Packet:
    """The IPv6 header from b to a, and any extension headers after it."""
    packet: Packet = IPv6(src=src, dst=dst)
    for header in headers:
        packet = packet / header
    return packet


def udp6(dport: int, sport: int = 40000, *headers: Packet, src: str = B_IP6) -> bytes:
    return bytes(
        ether() / ip6(src, A_IP6, *headers) / UDP(sport=sport, dport=dport) / Raw(b"y" * 8)
    )


def tcp6(dport: int, sport: int = 40000, *headers: Packet) -> bytes:
    return bytes(ether() / ip6(B_IP6, A_IP6, *headers) / TCP(sport=sport, dport=dport, flags="S"))


def icmp6_echo(reply: bool = True, id_: int = 0x1234, seq: int = 1) -> bytes:
    kind = ICMPv6EchoReply if reply else ICMPv6EchoRequest
    return bytes(ether() / ip6() / kind(id=id_, seq=seq, data=b"p" * 16))


def echo6_request_packet(id_: int = 0x1234) -> Packet:
    """An echo request from a to a far host, as an ICMPv6 error quotes it."""
    return IPv6(src=A_IP6, dst="2001:2:1::9") / ICMPv6EchoRequest(id=id_, seq=1, data=b"q" * 16)


def arp(op: int = 1) -> bytes:
    dst = "ff:ff:ff:ff:ff:ff" if op == 1 else A_MAC
    return bytes(Ether(src=B_MAC, dst=dst) / ARP(op=op, hwsrc=B_MAC, psrc=B_IP, pdst=A_IP))


def vlan(inner: Packet, tpid: int = 0x8100) -> bytes:
    eth = ether()
    eth.type = tpid
    return bytes(eth / Dot1Q(vlan=7) / inner)


def for_lab(frame: bytes, lab: Lab, *, towards: str = "a") -> bytes:
    """Rewrite the Ethernet and IP addresses of a template frame for ``lab``."""
    pkt = Ether(frame)
    src, dst = (lab.b, lab.a) if towards == "a" else (lab.a, lab.b)
    pkt.src, pkt.dst = src.mac, dst.mac
    if IP in pkt:
        pkt[IP].src, pkt[IP].dst = src.ip, dst.ip
        del pkt[IP].chksum
        for layer in (UDP, TCP, ICMP):
            if layer in pkt:
                del pkt[layer].chksum
    return bytes(pkt)
