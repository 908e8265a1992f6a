"""Where a packet to a host goes: output interface, source address, next-hop MAC.

A user names a host; aioxdp finds the rest, as the kernel would: the route
(netlink RTM_GETROUTE), the interface's MAC and MTU, and the next hop's MAC
from the neighbour table, all through netlink. When the neighbour is
unknown, aioxdp.neighbour asks for it with ARP through the XDP socket.
Nobody types a MAC address.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass, fields
from typing import Any

import anyio

from aioxdp import _netlink
from aioxdp.errors import XDPError, interface_hint
from aioxdp.protocols.ethernet import mac_str

__all__ = [
    "NoRouteError",
    "ResolvedRoute",
    "Route",
    "UnresolvedNeighbourError",
    "resolve_host",
    "route_to",
]

# neighbour states whose lladdr can be used (NUD_* from <linux/neighbour.h>)
_USABLE = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80  # REACHABLE STALE DELAY PROBE NOARP PERMANENT
RTN_UNICAST, RTN_LOCAL, RTN_BROADCAST, RTN_UNREACHABLE, RTN_PROHIBIT, RTN_BLACKHOLE = (
    1,
    2,
    3,
    7,
    8,
    6,
)


class NoRouteError(XDPError):
    """No usable route to the host (or the host name does not resolve)."""


class UnresolvedNeighbourError(XDPError):
    """The next hop did not answer ARP."""


@dataclass(frozen=True, slots=True)
class Route:
    """How to reach ``destination`` from here."""

    destination: str
    ifname: str
    ifindex: int
    source: str
    source_mac: bytes
    next_hop: str
    next_hop_mac: bytes | None  # None until resolved
    mtu: int

    def __str__(self) -> str:
        via = "" if self.next_hop == self.destination else f" via {self.next_hop}"
        mac = mac_str(self.next_hop_mac) if self.next_hop_mac else "unresolved"
        return f"{self.destination}{via} dev {self.ifname} src {self.source} lladdr {mac}"

    def resolved(self, mac: bytes | None = None) -> ResolvedRoute:
        """This route with its next hop's MAC: ``mac``, else the one the kernel knew."""
        mac = mac or self.next_hop_mac
        if mac is None:
            raise ValueError(f"route: the MAC of {self.next_hop} is not known yet")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return ResolvedRoute(**{**values, "next_hop_mac": mac})


@dataclass(frozen=True, slots=True)
class ResolvedRoute(Route):
    """A route whose next hop's MAC is known: all a frame to ``destination`` needs."""

    next_hop_mac: bytes


async def resolve_host(host: str) -> str:
    """An IPv4 address for ``host`` (an address, or a name through the resolver)."""
    if not isinstance(host, str) or not host:
        raise ValueError(f"host: expected a host name or IPv4 address, got {host!r}")
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    try:
        infos = await anyio.getaddrinfo(host, None, family=socket.AF_INET, type=socket.SOCK_RAW)
    except OSError as exc:
        raise NoRouteError(
            errno.EHOSTUNREACH,
            f"resolving host {host!r}",
            "check the name, or give an IPv4 address",
            detail=str(exc),
        ) from None
    return str(infos[0][4][0])


def _attr(msg: Any, name: str) -> Any:
    return msg.get(name) if hasattr(msg, "get") else None


async def route_to(host: str, *, interface: str | None = None, source: str | None = None) -> Route:
    """The route to ``host``, with the next hop's MAC if the kernel knows it."""
    destination = await resolve_host(host)
    oif = None
    if interface is not None:
        try:
            oif = socket.if_nametoindex(interface)
        except OSError:
            raise NoRouteError(
                errno.ENODEV, f"routing to {host}", interface_hint(interface)
            ) from None
    if source is not None:
        try:
            source = str(ipaddress.IPv4Address(source))
        except ValueError:
            raise ValueError(f"source: not an IPv4 address: {source!r}") from None

    def lookup(ipr: Any) -> tuple[Any, Any, list[Any]]:
        kwargs: dict[str, Any] = {"dst": destination}
        if oif is not None:
            kwargs["oif"] = oif
        try:
            (rt,) = ipr.route("get", **kwargs)
        except Exception as exc:  # pyroute2's NetlinkError carries the errno in .code
            code = getattr(exc, "code", errno.ENETUNREACH)
            raise NoRouteError(
                code,
                f"routing to {host} ({destination})",
                "no route to it: check 'ip route' (is the interface up and addressed?)",
            ) from None
        (link,) = ipr.link("get", index=rt.get("RTA_OIF"))
        gateway = rt.get("RTA_GATEWAY") or destination
        neigh = ipr.neigh("dump", ifindex=rt.get("RTA_OIF"), dst=gateway)
        return rt, link, list(neigh)

    rt, link, neighbours = await _netlink.query(lookup)
    kind = rt.get("type", RTN_UNICAST)
    ifname = link.get("IFLA_IFNAME")
    if kind == RTN_LOCAL:
        raise NoRouteError(
            errno.EINVAL,
            f"routing to {host} ({destination})",
            "it is an address of this host; aioxdp sends through a NIC, so ping another host",
        )
    if kind != RTN_UNICAST:
        raise NoRouteError(
            errno.ENETUNREACH,
            f"routing to {host} ({destination})",
            f"the route is not unicast (type {kind}); check 'ip route get {destination}'",
        )
    if link.get("IFLA_OPERSTATE") not in ("UP", "UNKNOWN"):
        raise NoRouteError(
            errno.ENETDOWN,
            f"routing to {host} through {ifname}",
            f"{ifname} is down: ip link set dev {ifname} up",
        )
    src = source or rt.get("RTA_PREFSRC")
    if not src:
        raise NoRouteError(
            errno.EADDRNOTAVAIL,
            f"routing to {host} through {ifname}",
            f"{ifname} has no IPv4 address to send from; give source=",
        )
    mac_text = link.get("IFLA_ADDRESS")
    next_hop = rt.get("RTA_GATEWAY") or destination
    next_mac = None
    for n in neighbours:
        if n.get("NDA_DST") == next_hop and n["state"] & _USABLE and n.get("NDA_LLADDR"):
            next_mac = bytes.fromhex(n.get("NDA_LLADDR").replace(":", ""))
    return Route(
        destination=destination,
        ifname=ifname,
        ifindex=int(rt.get("RTA_OIF")),
        source=src,
        source_mac=bytes.fromhex(mac_text.replace(":", "")),
        next_hop=next_hop,
        next_hop_mac=next_mac,
        mtu=int(link.get("IFLA_MTU") or 1500),
    )
