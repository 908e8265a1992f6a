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

import errno
import socket
from collections.abc import Sequence

from aioxdp.forwarder import Rule
from aioxdp.frames import arp_request
from aioxdp.protocols.arp import REPLY, Arp
from aioxdp.protocols.ethernet import Ethernet
from aioxdp.route import ResolvedRoute, Route, UnresolvedNeighbourError

__all__ = ["ArpQuery"]


class _Ask:
    """One next hop being asked for."""

    __slots__ = ("due_ns", "mac", "route", "sent")

    def __init__(self, route: Route) -> None:
        self.route = route  # any route through this next hop: it names source and link
        self.mac: bytes | None = None
        self.sent = 0
        self.due_ns = 0


class ArpQuery:
    """Resolve the next hops of ``routes``; see the module docstring."""

    def __init__(self, routes: Sequence[Route], *, tries: int = 3, interval: float = 0.5) -> None:
        if isinstance(tries, bool) or not isinstance(tries, int) or tries < 1:
            raise ValueError(f"tries: need an int >= 1, got {tries!r}")
        if not isinstance(interval, (int, float)) or not interval > 0:
            raise ValueError(f"interval: need seconds > 0, got {interval!r}")
        self.routes = list(routes)
        self.tries = tries
        self.interval_ns = int(interval * 1e9)
        self._asks: dict[bytes, _Ask] = {}  # next hop's IPv4 address -> its ask
        for route in self.routes:
            if route.next_hop_mac is None:
                key = socket.inet_aton(route.next_hop)
                self._asks.setdefault(key, _Ask(route))

    @property
    def unresolved(self) -> int:
        """Next hops without a MAC yet."""
        return sum(1 for ask in self._asks.values() if ask.mac is None)

    def rules(self) -> list[Rule]:
        """Forwarder rules that bring the replies (from each next hop, to our source)."""
        wanted = {(a.route.next_hop, a.route.source) for a in self._asks.values()}
        return [Rule("arp", src=hop, dst=src, arp_op=REPLY) for hop, src in sorted(wanted)]

    def due(self, now_ns: int) -> list[bytes]:
        """The requests to send now (each next hop's first, or a retry)."""
        frames = []
        for ask in self._asks.values():
            if ask.mac is None and ask.sent < self.tries and ask.due_ns <= now_ns:
                frames.append(arp_request(ask.route))
                ask.sent += 1
                ask.due_ns = now_ns + self.interval_ns
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
        return True

    def finished(self, now_ns: int) -> bool:
        """Every next hop answered, or the last try of each unanswered one timed out."""
        return all(
            ask.mac is not None or (ask.sent >= self.tries and ask.due_ns <= now_ns)
            for ask in self._asks.values()
        )

    def next_wakeup(self, now_ns: int) -> int:
        """When a retry or a give-up falls due (``now_ns`` if one is due already)."""
        pending = [ask.due_ns for ask in self._asks.values() if ask.mac is None]
        return max(now_ns, min(pending)) if pending else now_ns

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
