"""Sans-IO ARP: which requests to send when, which replies answer, when to give up.

:class:`ArpQuery` resolves the next hops of many routes at once: one
request per distinct next hop (a thousand hosts behind one gateway ask
once), resent every ``interval`` up to ``tries`` times, each next hop on
its own clock. It does no I/O: a driver sends the frames :meth:`due`
returns, feeds it the frames its :meth:`rules` redirect, and sleeps until
:meth:`next_wakeup`. The asyncio driver (aioxdp.neighbour) and the anyio
one use it alike.
"""

from __future__ import annotations

import collections
import errno
import socket
from collections.abc import Sequence

from aioxdp.forwarder import Rule
from aioxdp.frames import arp_request
from aioxdp.protocols.arp import REPLY, Arp
from aioxdp.protocols.ethernet import Ethernet
from aioxdp.route import ResolvedRoute, Route, UnresolvedNeighbourError

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
        self._asks: dict[bytes, _Ask] = {}  # next hop's IPv4 address -> its ask
        for route in self.routes:
            if route.next_hop_mac is None:
                key = socket.inet_aton(route.next_hop)
                self._asks.setdefault(key, _Ask(route))
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
        wanted = {(a.route.next_hop, a.route.source) for a in self._asks.values()}
        if len(wanted) > RULES_PER_HOP:
            sources = sorted({src for _hop, src in wanted})
            return [Rule("arp", dst=src, arp_op=REPLY) for src in sources]
        return [Rule("arp", src=hop, dst=src, arp_op=REPLY) for hop, src in sorted(wanted)]

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
            frames.append(arp_request(ask.route))
            ask.sent += 1
            ask.waiting = True
            self._in_flight += 1
            self._waiting.append((now_ns + self.interval_ns, ask))
        return frames

    def reply(self, frame: bytes | bytearray | memoryview) -> bool:
        """Take one received frame; True if it resolved a next hop just now.
        Anything not an ARP reply from a next hop we ask for is ignored."""
        try:
            arp = Arp.parse(frame, Ethernet.parse(frame).header_len)
        except ValueError:
            return False
        ask = self._asks.get(arp.sender_ip)
        if arp.op != REPLY or ask is None or ask.mac is not None:
            return False
        ask.mac = arp.sender_mac
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
                f"no ARP reply after {self.tries} tries in {seconds:.1f}s: "
                f"is {ask.route.destination} up and on this link?",
            )
            for ask in self._asks.values()
            if ask.mac is None
        }

    def resolve(self, route: Route) -> ResolvedRoute:
        """``route`` (one of this query's) with its next hop's MAC; ValueError
        if its next hop did not answer."""
        if route.next_hop_mac is not None:
            return route.resolved()
        ask = self._asks.get(socket.inet_aton(route.next_hop))
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
            out.append(route.resolved(self._asks[socket.inet_aton(route.next_hop)].mac))
        return out
