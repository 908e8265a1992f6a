"""Sans-IO neighbour resolution (ARP for IPv4, neighbour discovery for
IPv6): which requests to send when, which replies answer, when to give up.

:class:`ArpQuery` resolves the next hops of many routes at once: one
request (an ARP request, or a neighbour solicitation) per distinct next hop
(a thousand hosts behind one gateway ask once), resent every ``interval``
up to ``tries`` times, each next hop on its own clock. It does no I/O: a
driver sends the frames :meth:`due` returns, feeds it the frames its
:meth:`rules` redirect, and sleeps until :meth:`next_wakeup`. The asyncio driver (aioxdp.neighbour) and the anyio
one use it alike.
"""

from __future__ import annotations

import collections
import errno
from collections.abc import Sequence

from aioxdp.forwarder import Rule
from aioxdp.frames import arp_request, neighbour_solicitation
from aioxdp.protocols.arp import REPLY, Arp
from aioxdp.protocols.errors import DecodeError
from aioxdp.protocols.ethernet import ETH_P_ARP, ETH_P_IPV6, Ethernet
from aioxdp.protocols.icmpv6 import NEIGHBOR_ADVERT, Icmpv6, Neighbor
from aioxdp.protocols.ipv6 import IPv6
from aioxdp.route import ResolvedRoute, Route, UnresolvedNeighbourError, family_of, pack_address

__all__ = ["RULES_PER_HOP", "ArpQuery"]

RULES_PER_HOP = 64  # next hops asked for with a rule each; past that, one rule per source


class _Ask:
    """One next hop being asked for."""

    __slots__ = ("mac", "route", "sent", "waiting")

    def __init__(self, route: Route) -> None:
        self.route = route  # any route through this next hop: it names source and link
        self.mac: bytes | None = None
        self.sent = 0
        self.waiting = False  # a request of it is out, its reply not yet due


class ArpQuery:
    """Resolve the next hops of ``routes``; see the module docstring.

    At most ``max_in_flight`` requests wait for their replies at once (the
    replies must fit the socket's rings); the rest wait their turn. Every
    call is O(requests sent or answered), not O(next hops).
    """

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        tries: int = 3,
        interval: float = 0.5,
        max_in_flight: int = 256,
    ) -> None:
        if isinstance(tries, bool) or not isinstance(tries, int) or tries < 1:
            raise ValueError(f"tries: need an int >= 1, got {tries!r}")
        if not isinstance(interval, (int, float)) or not interval > 0:
            raise ValueError(f"interval: need seconds > 0, got {interval!r}")
        if (
            isinstance(max_in_flight, bool)
            or not isinstance(max_in_flight, int)
            or max_in_flight < 1
        ):
            raise ValueError(f"max_in_flight: need an int >= 1, got {max_in_flight!r}")
        self.routes = list(routes)
        self.tries = tries
        self.interval_ns = int(interval * 1e9)
        self.max_in_flight = max_in_flight
        # next hop's address (4 bytes, or 16 for IPv6) -> its ask
        self._asks: dict[bytes, _Ask] = {}
        for route in self.routes:
            if route.next_hop_mac is None:
                self._asks.setdefault(_key(route.next_hop), _Ask(route))
        self._turns: collections.deque[_Ask] = collections.deque(self._asks.values())  # to send
        self._waiting: collections.deque[tuple[int, _Ask]] = collections.deque()  # (due, ask)
        self._in_flight = 0
        self._unresolved = len(self._asks)

    @property
    def unresolved(self) -> int:
        """Next hops without a MAC yet."""
        return self._unresolved

    def rules(self) -> list[Rule]:
        """Forwarder rules that bring the replies: from each next hop to our
        source; past RULES_PER_HOP next hops, every reply to our source (one
        rule per source, so a /16 does not fill the forwarder; while it runs,
        the kernel's own ARP replies to that source come to us, and the
        kernel asks again)."""
        asks = self._asks.values()
        # IPv6: every advertisement to our source (a neighbour may answer
        # from another of its addresses than the one asked for)
        rules = [
            Rule("icmpv6", dst=src, icmp_type=NEIGHBOR_ADVERT)
            for src in sorted({a.route.source for a in asks if family_of(a.route.next_hop) == 6})
        ]
        wanted = {
            (a.route.next_hop, a.route.source) for a in asks if family_of(a.route.next_hop) == 4
        }
        if len(wanted) > RULES_PER_HOP:
            sources = sorted({src for _hop, src in wanted})
            return rules + [Rule("arp", dst=src, arp_op=REPLY) for src in sources]
        return rules + [Rule("arp", src=hop, dst=src, arp_op=REPLY) for hop, src in sorted(wanted)]

    def _expire(self, now_ns: int) -> None:
        """Requests whose reply is overdue: another try later, or give up."""
        while self._waiting and self._waiting[0][0] <= now_ns:
            _, ask = self._waiting.popleft()
            if not ask.waiting:
                continue  # answered meanwhile
            ask.waiting = False
            self._in_flight -= 1
            if ask.sent < self.tries:
                self._turns.appendleft(ask)  # retries go first

    def due(self, now_ns: int) -> list[bytes]:
        """The requests to send now (first tries and retries, within the flight)."""
        self._expire(now_ns)
        frames = []
        while self._turns and self._in_flight < self.max_in_flight:
            ask = self._turns.popleft()
            if ask.mac is not None:
                continue
            route = ask.route
            ipv6 = family_of(route.next_hop) == 6
            frames.append(neighbour_solicitation(route) if ipv6 else arp_request(route))
            ask.sent += 1
            ask.waiting = True
            self._in_flight += 1
            self._waiting.append((now_ns + self.interval_ns, ask))
        return frames

    def reply(self, frame: bytes | bytearray | memoryview) -> bool:
        """Take one received frame; True if it resolved a next hop just now.
        Anything not an ARP reply or a neighbour advertisement (valid by RFC
        4861 7.1.2: hop limit 255, checksum, code 0) from a next hop we ask
        for is ignored."""
        try:
            ethernet = Ethernet.parse(frame)
            if ethernet.ethertype == ETH_P_ARP:
                arp = Arp.parse(frame, ethernet.header_len)
                if arp.op != REPLY:
                    return False
                address, mac = arp.sender_ip, arp.sender_mac
            elif ethernet.ethertype == ETH_P_IPV6:
                address, mac = _advertised(frame, ethernet)
            else:
                return False
        except ValueError:  # DecodeError too: a malformed frame answers nothing
            return False
        ask = self._asks.get(address)
        if ask is None or ask.mac is not None:
            return False
        ask.mac = mac
        self._unresolved -= 1
        if ask.waiting:
            ask.waiting = False
            self._in_flight -= 1
        return True

    def finished(self, now_ns: int) -> bool:
        """Every next hop answered, or the last try of each unanswered one timed out."""
        self._expire(now_ns)
        if not self._unresolved:
            return True
        return not self._in_flight and not any(a.mac is None for a in self._turns)

    def next_wakeup(self, now_ns: int) -> int:
        """When a retry or a give-up falls due (``now_ns`` if one is due already)."""
        while self._waiting and not self._waiting[0][1].waiting:
            self._waiting.popleft()  # answered: no longer a deadline
        return max(now_ns, self._waiting[0][0]) if self._waiting else now_ns

    def failures(self) -> dict[str, UnresolvedNeighbourError]:
        """Per unanswered next hop (an address), the error that names it."""
        seconds = self.tries * self.interval_ns / 1e9
        return {
            ask.route.next_hop: UnresolvedNeighbourError(
                errno.EHOSTUNREACH,
                f"finding the MAC address of {ask.route.next_hop} on {ask.route.ifname}",
                f"no {_answer_name(ask.route.next_hop)} after {self.tries} tries in "
                f"{seconds:.1f}s: is {ask.route.destination} up and on this link?",
            )
            for ask in self._asks.values()
            if ask.mac is None
        }

    def resolve(self, route: Route) -> ResolvedRoute:
        """``route`` (one of this query's) with its next hop's MAC; ValueError
        if its next hop did not answer."""
        if route.next_hop_mac is not None:
            return route.resolved()
        ask = self._asks.get(_key(route.next_hop))
        return route.resolved(ask.mac if ask is not None else None)

    def resolved(self) -> list[ResolvedRoute]:
        """Every route with its next hop's MAC, in order; raises the
        UnresolvedNeighbourError of the first route whose next hop did not answer."""
        out = []
        failures = self.failures()
        for route in self.routes:
            if route.next_hop_mac is not None:
                out.append(route.resolved())
                continue
            failure = failures.get(route.next_hop)
            if failure is not None:
                raise failure
            out.append(route.resolved(self._asks[_key(route.next_hop)].mac))
        return out


def _key(address: str) -> bytes:
    return pack_address(address, 16 if family_of(address) == 6 else 4)


def _answer_name(address: str) -> str:
    return "neighbour advertisement" if family_of(address) == 6 else "ARP reply"


def _advertised(frame: bytes | bytearray | memoryview, ethernet: Ethernet) -> tuple[bytes, bytes]:
    """The target address and link-layer address of a valid neighbour
    advertisement (the option, else the frame's source MAC), or raises."""
    ip6 = IPv6.parse(frame, ethernet.header_len)
    at = ethernet.header_len + 40
    if ip6.next_header != 58 or ip6.hop_limit != 255:
        raise DecodeError("icmpv6", "not a neighbour advertisement from the link")
    end = at + ip6.payload_length
    message = Icmpv6.parse(frame, at, end, src=ip6.src, dst=ip6.dst)
    if message.type != NEIGHBOR_ADVERT:
        raise DecodeError("icmpv6", f"type {message.type}, not an advertisement")
    advert = Neighbor.parse(message, memoryview(frame)[at + 8 : end])
    return advert.target, advert.lladdr or bytes(memoryview(frame)[6:12])
