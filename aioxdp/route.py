"""Where a packet to a host goes: output interface, source address, next-hop MAC.

A user names a host; aioxdp finds the rest, as the kernel would: the route
(netlink RTM_GETROUTE), the interface's MAC and MTU, and the next hop's MAC
from the neighbour table, all through netlink. When the neighbour is
unknown, aioxdp.neighbour asks for it with ARP through the XDP socket.
Nobody types a MAC address.
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


class RouteSet(Sequence[Route]):
    """Routes to many hosts, kept compactly: per host its destination (4
    bytes) and the index of its path, one Route per next hop and source
    shared by every host behind it. ``routes[i]`` makes host i's Route.

    A /16 behind one gateway is 65 536 destinations and one path, so a run
    over it holds no object per host (on-link hosts are each their own next
    hop, and path)."""

    __slots__ = ("destinations", "path_of", "paths")

    def __init__(
        self, destinations: bytes, path_of: array.array[int], paths: Sequence[Route]
    ) -> None:
        if len(destinations) != 4 * len(path_of):
            raise ValueError(
                f"destinations: 4 bytes per host ({len(path_of)}), got {len(destinations)}"
            )
        if path_of and max(path_of) >= len(paths):
            raise ValueError(f"path_of: an index past the {len(paths)} paths")
        self.destinations = bytes(destinations)  # network order, as in a frame
        self.path_of = path_of
        self.paths = list(paths)

    @classmethod
    def of(cls, routes: Iterable[Route]) -> RouteSet:
        """The set of these routes, one path per distinct next hop."""
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
            destinations += socket.inet_aton(r.destination)
        return cls(bytes(destinations), path_of, paths)

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
        at = 4 * (i % len(self))
        # positional, in field order (asserted in tests)
        return type(path)(
            socket.inet_ntoa(self.destinations[at : at + 4]),
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
        at = 4 * i
        return socket.inet_ntoa(self.destinations[at : at + 4])

    def select(self, rows: Iterable[int]) -> RouteSet:
        """The routes of ``rows`` (in that order), and only the paths they use."""
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
            destinations += self.destinations[4 * row : 4 * row + 4]
        return RouteSet(bytes(destinations), path_of, paths)

    def with_paths(self, paths: Sequence[Route]) -> RouteSet:
        """The same hosts over new paths, one for each old one (resolved ones)."""
        if len(paths) != len(self.paths):
            raise ValueError(f"paths: one per path ({len(self.paths)}), got {len(paths)}")
        return RouteSet(self.destinations, self.path_of, paths)


def _path_key(r: Route) -> tuple[Any, ...]:
    """What hosts behind one path share: everything but the destination."""
    return (r.ifname, r.ifindex, r.source, r.source_mac, r.next_hop, r.next_hop_mac, r.mtu, type(r))


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
    why not (in host order); see :func:`route_set`, which keeps them compactly."""
    routes, failed = await route_set(hosts, interface=interface, source=source)
    it = iter(routes)
    return [failed[i] if i in failed else next(it) for i in range(len(hosts))]


async def route_set(
    hosts: Sequence[str], *, interface: str | None = None, source: str | None = None
) -> tuple[RouteSet, dict[int, NoRouteError]]:
    """Routes to many hosts at once: the RouteSet of those that have one (in
    host order) and, by host index, the NoRouteError that says why each
    other has none.

    One netlink thread dumps the route table, the links and the neighbour
    table, matches every destination to its longest prefix in process, and
    asks the kernel (``ip route get``) once per matched prefix, not once per
    host: a /16 of hosts behind one gateway costs one question and one path.
    The answer for one address of a prefix holds for all of it unless policy
    routing splits a prefix (``ip rule`` by destination); aioxdp does not
    follow such rules.
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
    n = len(hosts)
    packed = bytearray(4 * n)  # destinations, network order: no str per host
    failed: dict[int, NoRouteError] = {}
    pton, inet = socket.inet_pton, socket.AF_INET
    for i, host in enumerate(hosts):
        try:
            packed[4 * i : 4 * i + 4] = pton(inet, host)  # addresses need no resolver
            continue
        except (OSError, TypeError, UnicodeError, ValueError):
            pass
        try:
            packed[4 * i : 4 * i + 4] = socket.inet_aton(await resolve_host(host))
        except NoRouteError as exc:
            failed[i] = exc
    values = array.array("I", packed)
    if values.itemsize != 4:  # pragma: no cover - every Linux ABI has 32-bit unsigned int
        raise AssertionError("array('I') is not 32 bits here")
    if socket.htonl(1) != 1:
        values.byteswap()  # host order, to mask

    def lookup(
        rtnl: RtNetlink,
    ) -> tuple[array.array[int], list[Any], dict[int, Any], dict[tuple[int, str], bytes]]:
        levels = _prefix_levels(rtnl, oif)
        # per host, its prefix's index in ``representatives`` (NO_PREFIX: none matched)
        prefix_at = array.array("I", bytes(4 * n))
        index: dict[tuple[int, int], int] = {}
        representatives: list[int] = []
        for i, value in enumerate(values):
            at = NO_PREFIX
            key = None if i in failed else _longest_prefix(levels, value)
            if key is not None:
                at = index.get(key, -1)
                if at < 0:
                    at = index[key] = len(representatives)
                    representatives.append(i)
            prefix_at[i] = at
        answers: list[Any] = []
        for i in representatives:
            try:
                answers.append(_answer(rtnl.route_to(_address(packed, i), oif)))
            except NetlinkError as exc:
                answers.append(exc.errno)
        links = {link["index"]: _link(link) for link in rtnl.links()}
        return prefix_at, answers, links, _usable_macs(rtnl.neighbours(socket.AF_INET))

    prefix_at, answers, links, macs = await _netlink.query(lookup)
    paths: list[Route] = []
    # per prefix: the path every host of it shares (behind a gateway), or -1
    # (on-link, or failed: each host its own route, or its own error)
    shared: dict[int, int] = {}
    first_of: dict[int, int] = {}
    for i, at in enumerate(prefix_at):
        if i not in failed:
            first_of.setdefault(at, i)
    for at, i in first_of.items():
        shared[at] = -1
        answer = errno.ENETUNREACH if at == NO_PREFIX else answers[at]
        if not isinstance(answer, int) and answer["type"] == RTN_UNICAST and answer["gateway"]:
            r = _route_from(hosts[i], _address(packed, i), answer, links, macs, source)
            if isinstance(r, Route):
                shared[at] = len(paths)
                paths.append(r)
    if not failed and all(path >= 0 for path in shared.values()):
        # the common case, every host behind a gateway: no Python per host
        return RouteSet(
            bytes(packed), array.array("I", map(shared.__getitem__, prefix_at)), paths
        ), {}
    destinations = bytearray()
    path_of = array.array("I")
    for i in range(n):
        if i in failed:
            continue
        at = prefix_at[i]
        path = shared[at]
        if path < 0:
            answer = errno.ENETUNREACH if at == NO_PREFIX else answers[at]
            r = _route_from(hosts[i], _address(packed, i), answer, links, macs, source)
            if isinstance(r, NoRouteError):
                failed[i] = r
                continue
            path = len(paths)
            paths.append(r)
        path_of.append(path)
        destinations += packed[4 * i : 4 * i + 4]
    return RouteSet(bytes(destinations), path_of, paths), failed


NO_PREFIX = 0xFFFFFFFF  # a destination no route's prefix holds


def _prefix_levels(rtnl: RtNetlink, oif: int | None) -> list[tuple[int, set[int]]]:
    """The IPv4 route table's prefixes (those through ``oif``, if given, and
    the local table's), longest first: (mask, networks) per length."""
    by_length: dict[int, set[int]] = {}
    for rt in rtnl.routes(socket.AF_INET):
        if oif is not None and rt.get("RTA_OIF") not in (None, oif) and rt.get("RTA_TABLE") != 255:
            continue
        network = int.from_bytes(socket.inet_aton(rt.get("RTA_DST") or "0.0.0.0"), "big")
        by_length.setdefault(rt["dst_len"], set()).add(network)
    return [
        ((0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF, by_length[length])
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
    """The kernel's IPv4 route table, links and neighbours as read at one
    moment, to route destinations in process: each is matched to its longest
    prefix here, and the kernel is asked (``ip route get``) once per prefix,
    so a new host behind a known prefix is routed without a netlink round
    trip. Routes changed later are seen by a new snapshot (``age``)."""

    def __init__(
        self,
        levels: list[tuple[int, set[int]]],
        links: dict[int, Any],
        macs: dict[tuple[int, str], bytes],
        *,
        oif: int | None,
        source: str | None,
        taken_ns: int,
    ) -> None:
        self._levels = levels
        self._links = links
        self._macs = macs
        self._oif = oif
        self._source = source
        self._answers: dict[tuple[int, int], Any] = {}  # prefix -> the kernel's answer, or errno
        self.taken_ns = taken_ns

    def age(self, now_ns: int) -> float:
        """Seconds since the tables were read."""
        return (now_ns - self.taken_ns) / 1e9

    def _prefix(self, packed: bytes) -> tuple[int, int] | None:
        return _longest_prefix(self._levels, int.from_bytes(packed, "big"))

    def route(self, host: str, packed: bytes) -> Route | NoRouteError | None:
        """The route to ``host`` (``packed``: its address) from what is known
        here, or why there is none; None if its prefix was not asked yet
        (:meth:`learn`)."""
        prefix = self._prefix(packed)
        if prefix is None:
            answer: Any = errno.ENETUNREACH
        else:
            answer = self._answers.get(prefix)
            if answer is None:
                return None
        return _route_from(
            host, socket.inet_ntoa(packed), answer, self._links, self._macs, self._source
        )

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
            self._answers[prefix] = _answer(rtnl.route_to(socket.inet_ntoa(packed), self._oif))
        except NetlinkError as exc:
            self._answers[prefix] = exc.errno

    def _adopt(self, older: RouteSnapshot) -> None:
        """Keep an older snapshot's answers for the prefixes that are still here."""
        present = {(mask, net) for mask, networks in self._levels for net in networks}
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
    """Read the route table, the links and the neighbour table once (see
    RouteSnapshot), only routes through ``interface`` if given, and ask for
    the prefixes of ``destinations`` (packed addresses) in the same thread
    hop; ``previous``'s answers are kept for the prefixes still there."""
    oif = socket.if_nametoindex(interface) if interface is not None else None
    taken_ns = time.monotonic_ns()

    def read(rtnl: RtNetlink) -> RouteSnapshot:
        links = {link["index"]: _link(link) for link in rtnl.links()}
        macs = _usable_macs(rtnl.neighbours(socket.AF_INET))
        snapshot = RouteSnapshot(
            _prefix_levels(rtnl, oif), links, macs, oif=oif, source=source, taken_ns=taken_ns
        )
        if previous is not None:
            snapshot._adopt(previous)
        for packed in destinations:
            snapshot._ask(rtnl, packed)
        return snapshot

    return await _netlink.query(read)


def _address(packed: bytes | bytearray, i: int) -> str:
    return socket.inet_ntoa(packed[4 * i : 4 * i + 4])
