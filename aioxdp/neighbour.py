"""The next hop's MAC when the kernel's neighbour table does not have it:
our own ARP requests through an Interface's XDP socket, a few tries, then
an error that names the host. It sits above the endpoints (it opens one);
routes themselves come from netlink (aioxdp.route)."""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import TYPE_CHECKING

from aioxdp.forwarder import Rule
from aioxdp.frames import arp_request
from aioxdp.packet import Packet, PacketProtocol
from aioxdp.protocols.arp import REPLY, Arp
from aioxdp.route import ResolvedRoute, Route, UnresolvedNeighbourError

if TYPE_CHECKING:
    from aioxdp.interface import Interface

__all__ = ["resolve_neighbour"]


async def resolve_neighbour(
    route: Route, nic: Interface, *, tries: int = 3, interval: float = 0.5
) -> ResolvedRoute:
    """The route with its next hop's MAC, asked for with ARP through ``nic``
    if the kernel does not know it."""
    if route.next_hop_mac is not None:
        return route.resolved()
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
            return route.resolved(mac)
    finally:
        transport.close()
    raise UnresolvedNeighbourError(
        errno.EHOSTUNREACH,
        f"finding the MAC address of {route.next_hop} on {route.ifname}",
        f"no ARP reply after {tries} tries in {tries * interval:.1f}s: is {route.destination} up and on this link?",
    )
