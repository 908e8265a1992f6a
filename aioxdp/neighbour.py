"""The next hops' MACs when the kernel's neighbour table does not have them:
our own ARP requests through an interface's XDP socket, driving the sans-IO
:class:`aioxdp.arp_query.ArpQuery`. Written with anyio, so both drivers'
interfaces (asyncio's Interface, trio's AnyioInterface) use it.

Concurrent resolutions on one interface share the forwarder rule for each
next hop's replies (a rule can be installed once): the first installs it,
every reply goes to every query waiting on it, the last one out removes it.
It sits above the endpoints; routes themselves come from netlink
(aioxdp.route).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Sequence
from typing import Any, Protocol

import anyio
import anyio.lowlevel

from aioxdp.arp_query import ArpQuery
from aioxdp.forwarder import Rule
from aioxdp.route import ResolvedRoute, Route, UnresolvedNeighbourError
from aioxdp.xsk import RxBatch

__all__ = ["ArpCapable", "resolve_each", "resolve_neighbour", "resolve_neighbours"]


class _Closable(Protocol):
    def close(self) -> None: ...


class ArpCapable(Protocol):
    """What resolving needs of an interface (both drivers' have it)."""

    def claim(self, rules: Sequence[Rule], handler: Any, *, on_lost: Any = None) -> _Closable: ...

    async def send(self, frame: bytes | bytearray | memoryview) -> None: ...


class _Waiter:
    """A query's wake-up: set when a reply resolves one of its next hops."""

    def __init__(self) -> None:
        self.event = anyio.Event()


class _Listener:
    """One installed ARP-reply rule and the queries waiting on its replies."""

    def __init__(self) -> None:
        self.claim: _Closable | None = None
        self.waiters: dict[ArpQuery, _Waiter] = {}

    def __call__(self, rx: RxBatch, start: int, stop: int) -> None:
        for i in range(start, stop):
            frame = rx.frame(i)
            for query, waiter in list(self.waiters.items()):
                if query.reply(frame):
                    waiter.event.set()  # room in its flight, or done


# interface -> reply rule -> its listener
_listeners: weakref.WeakKeyDictionary[Any, dict[Rule, _Listener]] = weakref.WeakKeyDictionary()


async def resolve_neighbour(
    route: Route, nic: ArpCapable, *, tries: int = 3, interval: float = 0.5
) -> ResolvedRoute:
    """The route with its next hop's MAC, asked for with ARP through ``nic``
    if the kernel does not know it."""
    (resolved,) = await resolve_neighbours([route], nic, tries=tries, interval=interval)
    return resolved


async def resolve_neighbours(
    routes: Sequence[Route], nic: ArpCapable, *, tries: int = 3, interval: float = 0.5
) -> list[ResolvedRoute]:
    """Every route with its next hop's MAC; the unknown next hops are asked
    for at once, each once however many routes go through it. Raises the
    UnresolvedNeighbourError of the first route that stays unresolved."""
    return (await _ask(routes, nic, tries, interval)).resolved()


async def resolve_each(
    routes: Sequence[Route], nic: ArpCapable, *, tries: int = 3, interval: float = 0.5
) -> list[ResolvedRoute | UnresolvedNeighbourError]:
    """Like :func:`resolve_neighbours`, but per route: its resolved route or
    the error that names its silent next hop."""
    query = await _ask(routes, nic, tries, interval)
    failures = query.failures()
    return [
        failures[r.next_hop]
        if r.next_hop_mac is None and r.next_hop in failures
        else query.resolve(r)
        for r in routes
    ]


async def _ask(routes: Sequence[Route], nic: ArpCapable, tries: int, interval: float) -> ArpQuery:
    """Run an ArpQuery for ``routes`` through ``nic`` until it is finished."""
    query = ArpQuery(routes, tries=tries, interval=interval)
    if not query.unresolved:
        return query
    waiter = _Waiter()
    table = _listeners.setdefault(nic, {})
    joined: list[Rule] = []
    try:
        for rule in query.rules():
            listener = table.get(rule)
            if listener is None:
                listener = _Listener()
                listener.claim = nic.claim([rule], listener)
                table[rule] = listener
            listener.waiters[query] = waiter
            joined.append(rule)
        while True:
            now = time.monotonic_ns()
            for frame in query.due(now):
                await nic.send(frame)
            if query.finished(now):
                break
            if waiter.event.is_set():
                waiter.event = anyio.Event()
                await anyio.lowlevel.checkpoint()
                continue
            with anyio.move_on_after(max((query.next_wakeup(now) - now) / 1e9, 0.001)):
                await waiter.event.wait()
    finally:
        for rule in joined:
            listener = table[rule]
            del listener.waiters[query]
            if not listener.waiters:
                del table[rule]
                if listener.claim is not None:
                    listener.claim.close()
    return query
