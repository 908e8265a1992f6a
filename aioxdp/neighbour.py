"""The next hop's MAC when the kernel's neighbour table does not have it:
our own ARP requests through an Interface's XDP socket, a few tries, then
an error that names the host. It sits above the endpoints (it opens one);
routes themselves come from netlink (aioxdp.route)."""

from __future__ import annotations

import asyncio
import errno
import socket
from dataclasses import replace
from typing import TYPE_CHECKING

from aioxdp.forwarder import Rule
from aioxdp.packet import Packet, PacketProtocol
from aioxdp.protocols.arp import REPLY, REQUEST, Arp
from aioxdp.protocols.ethernet import BROADCAST, ETH_P_ARP, Ethernet
from aioxdp.route import Route, UnresolvedNeighbourError

if TYPE_CHECKING:
    from aioxdp.interface import Interface

__all__ = ["arp_request", "resolve_neighbour"]


def arp_request(route: Route) -> bytes:
    """A broadcast ARP request for the route's next hop, from its source."""
    frame = bytearray(60)  # padded to the Ethernet minimum
    off = Ethernet(BROADCAST, route.source_mac, ETH_P_ARP).build_into(frame)
    Arp(
        REQUEST,
        route.source_mac,
        socket.inet_aton(route.source),
        bytes(6),
        socket.inet_aton(route.next_hop),
    ).build_into(frame, off)
    return bytes(frame)


async def resolve_neighbour(
    route: Route, nic: Interface, *, tries: int = 3, interval: float = 0.5
) -> Route:
    """Fill in ``next_hop_mac``, asking with ARP through ``nic`` if the kernel does not know it."""
    if route.next_hop_mac is not None:
        return route
    if tries < 1 or interval <= 0:
        raise ValueError(
            f"tries/interval: need tries >= 1 and interval > 0, got {tries}, {interval}"
        )
    answered: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    wanted = socket.inet_aton(route.next_hop)

    class ArpReplies(PacketProtocol):
        def packet_received(self, packet: Packet) -> None:
            try:
                eth = packet.eth
                arp = Arp.parse(packet.data, eth.header_len)
            except ValueError:
                return
            if arp.op == REPLY and arp.sender_ip == wanted and not answered.done():
                answered.set_result(arp.sender_mac)

    rule = Rule("arp", src=route.next_hop, dst=route.source, arp_op=REPLY)
    transport, _ = await nic.create_packet_endpoint(ArpReplies, rules=[rule])
    try:
        request = arp_request(route)
        for _ in range(tries):
            transport.write(request)
            try:
                mac = await asyncio.wait_for(asyncio.shield(answered), interval)
            except TimeoutError:
                continue
            return replace(route, next_hop_mac=mac)
    finally:
        transport.close()
    raise UnresolvedNeighbourError(
        errno.EHOSTUNREACH,
        f"finding the MAC address of {route.next_hop} on {route.ifname}",
        f"no ARP reply after {tries} tries in {tries * interval:.1f}s: is {route.destination} up and on this link?",
    )
