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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from aioxdp import _netlink
from aioxdp._rtnetlink import NetlinkError, RtNetlink
from aioxdp.errors import XDPError, interface_hint
from aioxdp.protocols.ethernet import mac_str

__all__ = [
    "HostNameError",
    "NoRouteError",
    "ResolvedRoute",
    "Route",
    "UnresolvedNeighbourError",
    "resolve_host",
    "route_to",
    "routes_to",
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


class HostNameError(NoRouteError):
    """A host name the resolver does not know (``reason`` is its own words)."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(
            errno.EHOSTUNREACH,
            f"resolving host {host!r}",
            "check the name, or give an IPv4 address",
            detail=reason,
        )
        self.host = host
        self.reason = reason


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
        if isinstance(self, ResolvedRoute) and mac == self.next_hop_mac:
            return self
        # positional, in field order (asserted in tests): hosts by the thousand pass here
        return ResolvedRoute(
            self.destination,
            self.ifname,
            self.ifindex,
            self.source,
            self.source_mac,
            self.next_hop,
            mac,
            self.mtu,
        )


@dataclass(frozen=True, slots=True)
class ResolvedRoute(Route):
    """A route whose next hop's MAC is known: all a frame to ``destination`` needs."""

    next_hop_mac: bytes


def _literal(host: str) -> str | None:
    """``host`` as a canonical IPv4 address if it is one, else None (a name)."""
    if not isinstance(host, str) or not host:
        raise ValueError(f"host: expected a host name or IPv4 address, got {host!r}")
    try:
        # as strict as ipaddress (four decimal parts, no leading zeros), and fast
        return socket.inet_ntoa(socket.inet_pton(socket.AF_INET, host))
    except (OSError, UnicodeError, ValueError):
        return None


async def resolve_host(host: str) -> str:
    """An IPv4 address for ``host`` (an address, or a name through the resolver)."""
    address = _literal(host)
    if address is not None:
        return address
    try:
        infos = await anyio.getaddrinfo(host, None, family=socket.AF_INET, type=socket.SOCK_RAW)
    except OSError as exc:
        # getaddrinfo's own words ("Name or service not known"), as ping prints them
        raise HostNameError(host, exc.strerror or str(exc)) from None
    return str(infos[0][4][0])


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

    def lookup(rtnl: RtNetlink) -> tuple[Any, dict[int, Any], dict[tuple[int, str], bytes]]:
        try:
            rt = rtnl.route_to(destination, oif)
        except NetlinkError as exc:
            return exc.errno, {}, {}
        if rt.get("RTA_OIF") is None:  # a local or unreachable route: no link to read
            return _answer(rt), {}, {}
        link = rtnl.link(rt["RTA_OIF"])
        return _answer(rt), {link["index"]: _link(link)}, _usable_macs(rtnl.neighbours())

    answer, links, macs = await _netlink.query(lookup)
    route = _route_from(host, destination, answer, links, macs, source)
    if isinstance(route, NoRouteError):
        raise route
    return route


def _answer(rt: Any) -> dict[str, Any]:
    """What aioxdp uses of an RTM_GETROUTE answer, as plain values (netlink
    messages are slow to read, and a prefix answers for many hosts)."""
    return {
        "type": rt.get("type", RTN_UNICAST),
        "oif": rt.get("RTA_OIF"),
        "gateway": rt.get("RTA_GATEWAY"),
        "prefsrc": rt.get("RTA_PREFSRC"),
    }


def _link(link: Any) -> dict[str, Any]:
    """What aioxdp uses of an RTM_NEWLINK message, as plain values."""
    return {
        "ifname": link.get("IFLA_IFNAME"),
        "operstate": link.get("IFLA_OPERSTATE"),
        "mac": bytes.fromhex((link.get("IFLA_ADDRESS") or "00:" * 5 + "00").replace(":", "")),
        "mtu": link.get("IFLA_MTU"),
    }


def _usable_macs(neighbours: Any) -> dict[tuple[int, str], bytes]:
    """(ifindex, address) -> MAC of the neighbour entries whose MAC can be used."""
    macs = {}
    for n in neighbours:
        lladdr = n.get("NDA_LLADDR")
        if n["state"] & _USABLE and lladdr and n.get("NDA_DST"):
            macs[(n["ifindex"], n.get("NDA_DST"))] = bytes.fromhex(lladdr.replace(":", ""))
    return macs


def _route_from(
    host: str,
    destination: str,
    answer: Any,
    links: dict[int, Any],
    macs: dict[tuple[int, str], bytes],
    source: str | None,
) -> Route | NoRouteError:
    """The Route to ``destination`` from the kernel's ``ip route get`` answer
    (or the errno it failed with), or the NoRouteError that says why not."""
    if isinstance(answer, int) or answer["type"] != RTN_UNICAST:
        return _not_unicast(host, destination, answer)
    ifindex = int(answer["oif"])
    link = links.get(ifindex)
    if link is None:
        return NoRouteError(
            errno.ENODEV, f"routing to {host} ({destination})", f"interface {ifindex} went away"
        )
    ifname = link["ifname"]
    if link["operstate"] not in ("UP", "UNKNOWN"):
        return NoRouteError(
            errno.ENETDOWN,
            f"routing to {host} through {ifname}",
            f"{ifname} is down: ip link set dev {ifname} up",
        )
    src = source or answer["prefsrc"]
    if not src:
        return NoRouteError(
            errno.EADDRNOTAVAIL,
            f"routing to {host} through {ifname}",
            f"{ifname} has no IPv4 address to send from; give source=",
        )
    next_hop = answer["gateway"] or destination
    return Route(
        destination,
        ifname,
        ifindex,
        src,
        link["mac"],
        next_hop,
        macs.get((ifindex, next_hop)),
        int(link["mtu"] or 1500),
    )


def _not_unicast(host: str, destination: str, answer: Any) -> NoRouteError:
    """Why a route the kernel gave (or the errno it failed with) is not one to send on."""
    doing = f"routing to {host} ({destination})"
    if isinstance(answer, int):
        return NoRouteError(
            answer, doing, "no route to it: check 'ip route' (is the interface up and addressed?)"
        )
    kind = answer["type"]
    if kind == RTN_LOCAL:
        return NoRouteError(
            errno.EINVAL,
            doing,
            "it is an address of this host; aioxdp sends through a NIC, so ping another host",
        )
    return NoRouteError(
        errno.ENETUNREACH,
        doing,
        f"the route is not unicast (type {kind}); check 'ip route get {destination}'",
    )


async def routes_to(
    hosts: Sequence[str], *, interface: str | None = None, source: str | None = None
) -> list[Route | NoRouteError]:
    """Routes to many hosts at once, each a Route or the NoRouteError that says
    why not (in host order).

    One netlink thread dumps the route table, the links and the neighbour
    table, matches every destination to its longest prefix in process, and
    asks the kernel (``ip route get``) once per matched prefix, not once per
    host: a /16 of hosts behind one gateway costs one question. The answer
    for one address of a prefix holds for all of it unless policy routing
    splits a prefix (``ip rule`` by destination); aioxdp does not follow such
    rules.
    """
    if isinstance(hosts, str):
        raise TypeError("hosts: give a sequence of hosts, not one str")
    oif = None
    if interface is not None:
        try:
            oif = socket.if_nametoindex(interface)
        except OSError:
            raise NoRouteError(errno.ENODEV, "routing", interface_hint(interface)) from None
    if source is not None:
        try:
            source = str(ipaddress.IPv4Address(source))
        except ValueError:
            raise ValueError(f"source: not an IPv4 address: {source!r}") from None
    out: list[Route | NoRouteError | None] = [None] * len(hosts)
    destinations: list[str | None] = [None] * len(hosts)
    for i, host in enumerate(hosts):
        # addresses need no resolver (and no await per host)
        destinations[i] = _literal(host)
        if destinations[i] is None:
            try:
                destinations[i] = await resolve_host(host)
            except NoRouteError as exc:
                out[i] = exc
    wanted = sorted({d for d in destinations if d is not None})

    def lookup(
        rtnl: RtNetlink,
    ) -> tuple[dict[str, Any], dict[Any, Any], dict[int, Any], dict[tuple[int, str], bytes]]:
        by_length: dict[int, dict[int, list[Any]]] = {}
        for rt in rtnl.routes(socket.AF_INET):
            if (
                oif is not None
                and rt.get("RTA_OIF") not in (None, oif)
                and rt.get("RTA_TABLE") != 255
            ):
                continue
            length = rt["dst_len"]
            network = int(ipaddress.IPv4Address(rt.get("RTA_DST") or "0.0.0.0"))
            by_length.setdefault(length, {}).setdefault(network, []).append(rt)
        lengths = sorted(by_length, reverse=True)
        prefix_of: dict[str, Any] = {}
        for d in wanted:
            value = int.from_bytes(socket.inet_aton(d), "big")  # canonical already
            for length in lengths:
                mask = (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
                if value & mask in by_length[length]:
                    prefix_of[d] = (length, value & mask)
                    break
        answers: dict[Any, Any] = {}
        for prefix in set(prefix_of.values()):
            representative = next(d for d, p in prefix_of.items() if p == prefix)
            try:
                answers[prefix] = _answer(rtnl.route_to(representative, oif))
            except NetlinkError as exc:
                answers[prefix] = exc.errno
        links = {link["index"]: _link(link) for link in rtnl.links()}
        return prefix_of, answers, links, _usable_macs(rtnl.neighbours(socket.AF_INET))

    prefix_of, answers, links, macs = await _netlink.query(lookup)
    for i, d in enumerate(destinations):
        if d is None:
            continue
        prefix = prefix_of.get(d)
        answer = answers.get(prefix) if prefix is not None else errno.ENETUNREACH
        out[i] = _route_from(hosts[i], d, answer, links, macs, source)
    return out  # type: ignore[return-value]
