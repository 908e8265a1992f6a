"""Where a packet to a host goes: output interface, source address, next-hop MAC.

A user names a host (IPv4 or IPv6); aioxdp finds the rest, as the kernel
would: the route (netlink RTM_GETROUTE), the interface's MAC and MTU, and
the next hop's MAC from the neighbour table, all through netlink. When the
neighbour is unknown, aioxdp.neighbour asks for it through the XDP socket
(ARP, or an IPv6 neighbour solicitation). Nobody types a MAC address.
"""

from __future__ import annotations

import array
import errno
import ipaddress
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

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
    "RouteSet",
    "RouteSnapshot",
    "UnresolvedNeighbourError",
    "resolve_host",
    "route_set",
    "route_snapshot",
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
            "check the name, or give an IP address",
            detail=reason,
        )
        self.host = host
        self.reason = reason


class UnresolvedNeighbourError(XDPError):
    """The next hop did not answer ARP (or neighbour solicitation)."""


V4_MAPPED = bytes(10) + b"\xff\xff"  # ::ffff:0:0/96, how a 16-byte slot holds IPv4


def family_of(address: str) -> int:
    """4 or 6: the family of an address literal (its text says)."""
    return 6 if ":" in address else 4


def pack_address(address: str, width: int = 4) -> bytes:
    """An address literal as ``width`` bytes: 4 (IPv4 only) or 16 (IPv6, or
    IPv4 mapped)."""
    if ":" in address:
        if width != 16:
            raise ValueError(f"address: {address} is IPv6, which needs 16 bytes")
        return socket.inet_pton(socket.AF_INET6, address)
    packed = socket.inet_aton(address)
    return packed if width == 4 else V4_MAPPED + packed


def unpack_address(packed: bytes) -> str:
    """The text of a 4-byte or 16-byte address (mapped IPv4 as IPv4)."""
    if len(packed) == 4:
        return socket.inet_ntoa(packed)
    if packed[:12] == V4_MAPPED:
        return socket.inet_ntoa(packed[12:])
    return socket.inet_ntop(socket.AF_INET6, packed)


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


class RouteSet(Sequence[Route]):
    """Routes to many hosts, kept compactly: per host its destination and
    the index of its path, one Route per next hop and source shared by
    every host behind it. ``routes[i]`` makes host i's Route.

    Destinations are ``width`` bytes each, network order: 4 when every host
    is IPv4, else 16 (IPv6, and IPv4 mapped as ::ffff:a.b.c.d). A /16 behind
    one gateway is 65 536 destinations and one path, so a run over it holds
    no object per host (on-link hosts are each their own next hop, and
    path)."""

    __slots__ = ("destinations", "path_of", "paths", "width")

    def __init__(
        self,
        destinations: bytes,
        path_of: array.array[int],
        paths: Sequence[Route],
        width: int = 4,
    ) -> None:
        if width not in (4, 16):
            raise ValueError(f"width: 4 or 16 bytes per destination, got {width!r}")
        if len(destinations) != width * len(path_of):
            raise ValueError(
                f"destinations: {width} bytes per host ({len(path_of)}), got {len(destinations)}"
            )
        if path_of and max(path_of) >= len(paths):
            raise ValueError(f"path_of: an index past the {len(paths)} paths")
        self.destinations = bytes(destinations)  # network order, as in a frame
        self.path_of = path_of
        self.paths = list(paths)
        self.width = width

    @classmethod
    def of(cls, routes: Iterable[Route]) -> RouteSet:
        """The set of these routes, one path per distinct next hop."""
        routes = list(routes)
        width = 16 if any(family_of(r.destination) == 6 for r in routes) else 4
        destinations = bytearray()
        path_of = array.array("I")
        index: dict[tuple[Any, ...], int] = {}
        paths: list[Route] = []
        for r in routes:
            key = _path_key(r)
            at = index.get(key)
            if at is None:
                at = index[key] = len(paths)
                paths.append(r)
            path_of.append(at)
            destinations += pack_address(r.destination, width)
        return cls(bytes(destinations), path_of, paths, width)

    def __len__(self) -> int:
        return len(self.path_of)

    @overload
    def __getitem__(self, i: int) -> Route: ...

    @overload
    def __getitem__(self, i: slice) -> list[Route]: ...

    def __getitem__(self, i: int | slice) -> Route | list[Route]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        path = self.paths[self.path_of[i]]
        # positional, in field order (asserted in tests)
        return type(path)(
            self.destination(i % len(self)),
            path.ifname,
            path.ifindex,
            path.source,
            path.source_mac,
            path.next_hop,
            path.next_hop_mac,
            path.mtu,
        )

    def __iter__(self) -> Iterator[Route]:
        for i in range(len(self)):
            yield self[i]

    def destination(self, i: int) -> str:
        """Host i's address (without making its Route)."""
        width = self.width
        at = width * i
        if width == 4:
            return socket.inet_ntoa(self.destinations[at : at + 4])
        return unpack_address(self.destinations[at : at + width])

    def select(self, rows: Iterable[int]) -> RouteSet:
        """The routes of ``rows`` (in that order), and only the paths they use."""
        width = self.width
        destinations = bytearray()
        path_of = array.array("I")
        renumbered: dict[int, int] = {}
        paths: list[Route] = []
        for row in rows:
            old = self.path_of[row]
            new = renumbered.get(old)
            if new is None:
                new = renumbered[old] = len(paths)
                paths.append(self.paths[old])
            path_of.append(new)
            destinations += self.destinations[width * row : width * row + width]
        return RouteSet(bytes(destinations), path_of, paths, width)

    def with_paths(self, paths: Sequence[Route]) -> RouteSet:
        """The same hosts over new paths, one for each old one (resolved ones)."""
        if len(paths) != len(self.paths):
            raise ValueError(f"paths: one per path ({len(self.paths)}), got {len(paths)}")
        return RouteSet(self.destinations, self.path_of, paths, self.width)


def _path_key(r: Route) -> tuple[Any, ...]:
    """What hosts behind one path share: everything but the destination."""
    return (r.ifname, r.ifindex, r.source, r.source_mac, r.next_hop, r.next_hop_mac, r.mtu, type(r))


FAMILIES = {None: socket.AF_UNSPEC, 4: socket.AF_INET, 6: socket.AF_INET6}


def _literal(host: str) -> str | None:
    """``host`` as a canonical IPv4 or IPv6 address if it is one, else None (a name)."""
    if not isinstance(host, str) or not host:
        raise ValueError(f"host: expected a host name or IP address, got {host!r}")
    try:
        # as strict as ipaddress (four decimal parts, no leading zeros), and fast
        return socket.inet_ntoa(socket.inet_pton(socket.AF_INET, host))
    except (OSError, UnicodeError, ValueError):
        pass
    try:
        return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, host))
    except (OSError, UnicodeError, ValueError):
        return None


def _check_family(family: int | None) -> None:
    if family not in FAMILIES:
        raise ValueError(f"family: 4, 6 or None (either), got {family!r}")


async def resolve_host(host: str, family: int | None = None) -> str:
    """An address for ``host``: an IPv4 or IPv6 literal as it is, or a name
    through the resolver (its first answer, or the first of ``family``, 4
    or 6, as ping's -4 and -6 choose). A literal of the other family is a
    HostNameError, in getaddrinfo's words."""
    _check_family(family)
    address = _literal(_unscoped(host))
    if address is not None:
        if family is not None and family_of(address) != family:
            raise HostNameError(host, "Address family for hostname not supported")
        if address.startswith("::ffff:") and "." in address:
            raise HostNameError(host, "an IPv4-mapped address: give the IPv4 address itself")
        return address
    try:
        infos = await anyio.getaddrinfo(host, None, family=FAMILIES[family], type=socket.SOCK_RAW)
    except OSError as exc:
        # getaddrinfo's own words ("Name or service not known"), as ping prints them
        raise HostNameError(host, exc.strerror or str(exc)) from None
    return _unscoped(str(infos[0][4][0]))


def _unscoped(host: str) -> str:
    """``host`` without the zone of a scoped IPv6 address (``fe80::1%eth0``),
    once the zone is known to name an interface: the route, or the
    ``interface`` given, says which link it goes out of."""
    if not isinstance(host, str) or "%" not in host or ":" not in host:
        return host
    address, zone = host.split("%", 1)
    try:
        socket.if_nametoindex(zone)
    except OSError:
        raise HostNameError(host, f"no interface {zone!r} for the address's zone") from None
    return address


def _source(source: str | None) -> str | None:
    """A source address, checked and canonical."""
    if source is None:
        return None
    try:
        return str(ipaddress.ip_address(source))
    except ValueError:
        raise ValueError(f"source: not an IPv4 or IPv6 address: {source!r}") from None


def _source_for(source: str | None, destination: str) -> str | None:
    """``source`` if it is of the destination's family (else the route's own)."""
    if source is None or family_of(source) != family_of(destination):
        return None
    return source


async def route_to(
    host: str,
    *,
    interface: str | None = None,
    source: str | None = None,
    family: int | None = None,
) -> Route:
    """The route to ``host``, with the next hop's MAC if the kernel knows it."""
    destination = await resolve_host(host, family)
    oif = None
    if interface is not None:
        try:
            oif = socket.if_nametoindex(interface)
        except OSError:
            raise NoRouteError(
                errno.ENODEV, f"routing to {host}", interface_hint(interface)
            ) from None
    source = _source(source)
    if source is not None and family_of(source) != family_of(destination):
        raise ValueError(f"source: {source} is not of the family of {host} ({destination})")
    af = socket.AF_INET6 if family_of(destination) == 6 else socket.AF_INET

    def lookup(rtnl: RtNetlink) -> tuple[Any, dict[int, Any], dict[tuple[int, str], bytes]]:
        try:
            rt = rtnl.route_to(destination, oif)
        except NetlinkError as exc:
            return exc.errno, {}, {}
        if rt.get("RTA_OIF") is None:  # a local or unreachable route: no link to read
            return _answer(rt), {}, {}
        link = rtnl.link(rt["RTA_OIF"])
        return _answer(rt), {link["index"]: _link(link)}, _usable_macs(rtnl.neighbours(af))

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
            f"{ifname} has no IPv{family_of(destination)} address to send from; give source=",
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
    hosts: Sequence[str],
    *,
    interface: str | None = None,
    source: str | None = None,
    family: int | None = None,
) -> list[Route | NoRouteError]:
    """Routes to many hosts at once, each a Route or the NoRouteError that says
    why not (in host order); see :func:`route_set`, which keeps them compactly."""
    routes, failed = await route_set(hosts, interface=interface, source=source, family=family)
    it = iter(routes)
    return [failed[i] if i in failed else next(it) for i in range(len(hosts))]


async def route_set(
    hosts: Sequence[str],
    *,
    interface: str | None = None,
    source: str | None = None,
    family: int | None = None,
) -> tuple[RouteSet, dict[int, NoRouteError]]:
    """Routes to many hosts at once, IPv4 and IPv6 alike: the RouteSet of
    those that have one (in host order) and, by host index, the
    NoRouteError that says why each other has none. ``family`` (4 or 6)
    resolves names to that family only, and refuses literals of the other;
    ``source`` is used for the hosts of its own family.

    One netlink thread dumps the route tables, the links and the neighbour
    tables, matches every destination to its longest prefix in process, and
    asks the kernel (``ip route get``) once per matched prefix, not once per
    host: a /16 of hosts behind one gateway costs one question and one path.
    The answer for one address of a prefix holds for all of it unless policy
    routing splits a prefix (``ip rule`` by destination); aioxdp does not
    follow such rules.
    """
    if isinstance(hosts, str):
        raise TypeError("hosts: give a sequence of hosts, not one str")
    _check_family(family)
    oif = None
    if interface is not None:
        try:
            oif = socket.if_nametoindex(interface)
        except OSError:
            raise NoRouteError(errno.ENODEV, "routing", interface_hint(interface)) from None
    source = _source(source)
    n = len(hosts)
    packed = bytearray(4 * n)  # IPv4 destinations, network order: no str per host
    six: dict[int, bytes] = {}  # host index -> its IPv6 address (few, next to IPv4 sweeps)
    failed: dict[int, NoRouteError] = {}
    pton, inet = socket.inet_pton, socket.AF_INET
    for i, host in enumerate(hosts):
        if family != 6:
            try:
                packed[4 * i : 4 * i + 4] = pton(inet, host)  # addresses need no resolver
                continue
            except (OSError, TypeError, UnicodeError, ValueError):
                pass
        try:
            address = await resolve_host(host, family)
        except NoRouteError as exc:
            failed[i] = exc
            continue
        if family_of(address) == 6:
            six[i] = pton(socket.AF_INET6, address)
        else:
            packed[4 * i : 4 * i + 4] = socket.inet_aton(address)
    values = array.array("I", packed)
    if values.itemsize != 4:  # pragma: no cover - every Linux ABI has 32-bit unsigned int
        raise AssertionError("array('I') is not 32 bits here")
    if socket.htonl(1) != 1:
        values.byteswap()  # host order, to mask
    skip = failed.keys() | six.keys()  # not routed as IPv4

    def lookup(rtnl: RtNetlink) -> tuple[_Matched, _Matched, dict[int, Any]]:
        v4 = _match(rtnl, oif, socket.AF_INET, enumerate(values), skip, n, packed)
        v6 = _match(
            rtnl, oif, socket.AF_INET6, ((i, int.from_bytes(a, "big")) for i, a in six.items())
        )
        links = {link["index"]: _link(link) for link in rtnl.links()}
        return v4, v6, links

    v4, v6, links = await _netlink.query(lookup)
    prefix_at, answers, macs = v4
    source4 = source if source is not None and family_of(source) == 4 else None
    paths: list[Route] = []
    # per prefix: the path every host of it shares (behind a gateway), or -1
    # (on-link, or failed: each host its own route, or its own error)
    shared: dict[int, int] = {}
    first_of: dict[int, int] = {}
    for i, at in enumerate(prefix_at):
        if i not in skip:
            first_of.setdefault(at, i)
    for at, i in first_of.items():
        shared[at] = -1
        answer = errno.ENETUNREACH if at == NO_PREFIX else answers[at]
        if not isinstance(answer, int) and answer["type"] == RTN_UNICAST and answer["gateway"]:
            r = _route_from(hosts[i], _address(packed, i), answer, links, macs, source4)
            if isinstance(r, Route):
                shared[at] = len(paths)
                paths.append(r)
    if not skip and all(path >= 0 for path in shared.values()):
        # the common case, every host behind a gateway: no Python per host
        return RouteSet(
            bytes(packed), array.array("I", map(shared.__getitem__, prefix_at)), paths
        ), {}
    width = 16 if six else 4
    destinations = bytearray()
    path_of = array.array("I")
    by_key: dict[tuple[Any, ...], int] = {}  # IPv6 hosts behind one next hop share its path
    for i in range(n):
        if i in failed:
            continue
        address6 = six.get(i)
        if address6 is not None:
            r6 = _route6(hosts[i], i, address6, v6, links, _source_for(source, "::"))
            if isinstance(r6, NoRouteError):
                failed[i] = r6
                continue
            key = _path_key(r6)
            path = by_key.get(key, -1)
            if path < 0:
                path = by_key[key] = len(paths)
                paths.append(r6)
            path_of.append(path)
            destinations += address6
            continue
        at = prefix_at[i]
        path = shared[at]
        if path < 0:
            answer = errno.ENETUNREACH if at == NO_PREFIX else answers[at]
            r = _route_from(hosts[i], _address(packed, i), answer, links, macs, source4)
            if isinstance(r, NoRouteError):
                failed[i] = r
                continue
            path = len(paths)
            paths.append(r)
        path_of.append(path)
        destinations += (V4_MAPPED if width == 16 else b"") + packed[4 * i : 4 * i + 4]
    return RouteSet(bytes(destinations), path_of, paths, width), failed


# per host its prefix's index (NO_PREFIX: none), the kernel's answer per
# prefix, and the family's usable neighbour MACs
_Matched = tuple[Any, list[Any], dict[tuple[int, str], bytes]]


def _match(
    rtnl: RtNetlink,
    oif: int | None,
    af: int,
    values: Iterable[tuple[int, int]],
    skip: Any = (),
    n: int | None = None,
    packed: bytearray | None = None,
) -> _Matched:
    """Match each (host index, address as an int) to its longest prefix of
    the family's route table and ask the kernel once per prefix. With ``n``
    (IPv4, every host): the prefixes as an array over all n hosts, the
    addresses read from ``packed``; else a dict by host index."""
    width = 4 if af == socket.AF_INET else 16
    values = list(values) if n is None else values
    if n is None and not values:
        return {}, [], {}
    levels = _prefix_levels(rtnl, oif, af)
    prefix_at: Any = array.array("I", bytes(4 * n)) if n is not None else {}
    index: dict[tuple[int, int], int] = {}
    representatives: list[tuple[int, int]] = []
    for i, value in values:
        at = NO_PREFIX
        key = None if i in skip else _longest_prefix(levels, value)
        if key is not None:
            at = index.get(key, -1)
            if at < 0:
                at = index[key] = len(representatives)
                representatives.append((i, value))
        prefix_at[i] = at
    answers: list[Any] = []
    for i, value in representatives:
        address = _address(packed, i) if packed is not None else _int_address(value, width)
        try:
            answers.append(_answer(rtnl.route_to(address, oif)))
        except NetlinkError as exc:
            answers.append(exc.errno)
    return prefix_at, answers, _usable_macs(rtnl.neighbours(af))


def _route6(
    host: str,
    i: int,
    address: bytes,
    matched: _Matched,
    links: dict[int, Any],
    source: str | None,
) -> Route | NoRouteError:
    """Host i's IPv6 route from its prefix's answer (see _match)."""
    prefix_at, answers, macs = matched
    at = prefix_at.get(i, NO_PREFIX)
    answer = errno.ENETUNREACH if at == NO_PREFIX else answers[at]
    destination = socket.inet_ntop(socket.AF_INET6, address)
    return _route_from(host, destination, answer, links, macs, source)


def _int_address(value: int, width: int) -> str:
    packed = value.to_bytes(width, "big")
    return unpack_address(packed) if width == 16 else socket.inet_ntoa(packed)


NO_PREFIX = 0xFFFFFFFF  # a destination no route's prefix holds


def _prefix_levels(
    rtnl: RtNetlink, oif: int | None, af: int = socket.AF_INET
) -> list[tuple[int, set[int]]]:
    """The family's route table's prefixes (those through ``oif``, if given,
    and the local table's), longest first: (mask, networks) per length, as
    integers of the address's width."""
    bits = 32 if af == socket.AF_INET else 128
    everything = (1 << bits) - 1
    by_length: dict[int, set[int]] = {}
    for rt in rtnl.routes(af):
        if oif is not None and rt.get("RTA_OIF") not in (None, oif) and rt.get("RTA_TABLE") != 255:
            continue
        dst = rt.get("RTA_DST") or ("0.0.0.0" if bits == 32 else "::")
        network = int.from_bytes(socket.inet_pton(af, dst), "big")
        by_length.setdefault(rt["dst_len"], set()).add(network)
    return [
        ((everything << (bits - length)) & everything, by_length[length])
        for length in sorted(by_length, reverse=True)
    ]


def _longest_prefix(levels: list[tuple[int, set[int]]], value: int) -> tuple[int, int] | None:
    """(mask, network) of the longest prefix in ``levels`` that holds the
    address ``value`` (host order), or None."""
    for mask, networks in levels:
        if value & mask in networks:
            return (mask, value & mask)
    return None


class RouteSnapshot:
    """The kernel's route tables (IPv4 and IPv6), links and neighbours as
    read at one moment, to route destinations in process: each is matched
    to its longest prefix here, and the kernel is asked (``ip route get``)
    once per prefix, so a new host behind a known prefix is routed without a
    netlink round trip. Routes changed later are seen by a new snapshot
    (``age``)."""

    def __init__(
        self,
        levels: list[tuple[int, set[int]]],
        links: dict[int, Any],
        macs: dict[tuple[int, str], bytes],
        *,
        oif: int | None,
        source: str | None,
        taken_ns: int,
        levels6: list[tuple[int, set[int]]] | None = None,
    ) -> None:
        self._levels = levels
        self._levels6 = levels6 or []
        self._links = links
        self._macs = macs  # both families': their addresses' texts differ
        self._oif = oif
        self._source = source
        # (width, mask, network) -> the kernel's answer, or errno
        self._answers: dict[tuple[int, int, int], Any] = {}
        self.taken_ns = taken_ns

    def age(self, now_ns: int) -> float:
        """Seconds since the tables were read."""
        return (now_ns - self.taken_ns) / 1e9

    def _prefix(self, packed: bytes) -> tuple[int, int, int] | None:
        levels = self._levels if len(packed) == 4 else self._levels6
        found = _longest_prefix(levels, int.from_bytes(packed, "big"))
        return None if found is None else (len(packed), *found)

    def route(self, host: str, packed: bytes) -> Route | NoRouteError | None:
        """The route to ``host`` (``packed``: its address, 4 or 16 bytes)
        from what is known here, or why there is none; None if its prefix
        was not asked yet (:meth:`learn`)."""
        prefix = self._prefix(packed)
        if prefix is None:
            answer: Any = errno.ENETUNREACH
        else:
            answer = self._answers.get(prefix)
            if answer is None:
                return None
        destination = unpack_address(packed)
        source = _source_for(self._source, destination)
        return _route_from(host, destination, answer, self._links, self._macs, source)

    async def learn(self, packed: bytes) -> None:
        """Ask the kernel for the prefix that holds ``packed`` (one thread hop)."""
        prefix = self._prefix(packed)
        if prefix is not None and prefix not in self._answers:
            await _netlink.query(lambda rtnl: self._ask(rtnl, packed))

    def _ask(self, rtnl: RtNetlink, packed: bytes) -> None:
        prefix = self._prefix(packed)
        if prefix is None or prefix in self._answers:
            return
        try:
            self._answers[prefix] = _answer(rtnl.route_to(unpack_address(packed), self._oif))
        except NetlinkError as exc:
            self._answers[prefix] = exc.errno

    def _adopt(self, older: RouteSnapshot) -> None:
        """Keep an older snapshot's answers for the prefixes that are still here."""
        present = {(4, mask, net) for mask, networks in self._levels for net in networks}
        present |= {(16, mask, net) for mask, networks in self._levels6 for net in networks}
        for prefix, answer in older._answers.items():
            if prefix in present:
                self._answers.setdefault(prefix, answer)


async def route_snapshot(
    *,
    interface: str | None = None,
    source: str | None = None,
    destinations: Sequence[bytes] = (),
    previous: RouteSnapshot | None = None,
) -> RouteSnapshot:
    """Read the route tables, the links and the neighbour tables once (see
    RouteSnapshot), only routes through ``interface`` if given, and ask for
    the prefixes of ``destinations`` (packed addresses, 4 or 16 bytes) in
    the same thread hop; ``previous``'s answers are kept for the prefixes
    still there."""
    oif = socket.if_nametoindex(interface) if interface is not None else None
    taken_ns = time.monotonic_ns()

    def read(rtnl: RtNetlink) -> RouteSnapshot:
        links = {link["index"]: _link(link) for link in rtnl.links()}
        macs = _usable_macs(rtnl.neighbours(socket.AF_INET))
        macs.update(_usable_macs(rtnl.neighbours(socket.AF_INET6)))
        snapshot = RouteSnapshot(
            _prefix_levels(rtnl, oif),
            links,
            macs,
            oif=oif,
            source=source,
            taken_ns=taken_ns,
            levels6=_prefix_levels(rtnl, oif, socket.AF_INET6),
        )
        if previous is not None:
            snapshot._adopt(previous)
        for packed in destinations:
            snapshot._ask(rtnl, packed)
        return snapshot

    return await _netlink.query(read)


def _address(packed: bytes | bytearray, i: int) -> str:
    return socket.inet_ntoa(packed[4 * i : 4 * i + 4])
