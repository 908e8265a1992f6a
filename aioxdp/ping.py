"""ICMP echo through the XDP socket on asyncio: ping(), multiping(), Pinger.

The driver is thin: the sans-IO core is :class:`aioxdp.echo.EchoSession`;
this module feeds it replies from an endpoint on the shared Interface and
sends what it says is due. Under trio (through anyio) the same core runs in
``aioxdp.anyio_driver``; ``ping()`` and ``Pinger()`` pick the driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from aioxdp.echo import DEFAULT_WINDOW, EchoSession
from aioxdp.errors import XDPError
from aioxdp.packet import PacketBatch, PacketProtocol
from aioxdp.pinger_base import PingerBase
from aioxdp.results import PingError, PingReply, PingResult, PingResults
from aioxdp.runtime import running_library

if TYPE_CHECKING:
    from aioxdp.interface import Interface, PacketTransport

__all__ = ["PingReply", "PingResult", "Pinger", "multiping", "ping"]


class _EchoReplies(PacketProtocol):
    """Feeds a session with the replies the forwarder redirected for its id."""

    def __init__(self, pinger: Pinger) -> None:
        self._pinger = pinger

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self._pinger._ended(exc)

    def packets_received(self, batch: PacketBatch) -> None:
        session = self._pinger._session
        if session.take(batch.rx, batch.start, len(batch)):
            self._pinger._freed(batch)
        session.reraise()  # a user's callback failed: the loop's handler says so


class Pinger(PingerBase):
    """Pings ``hosts`` (one or several) with echo requests through AF_XDP.

    Use as ``async with Pinger(host) as p``: iterate it for replies as they
    come (``async for reply in p``) and ``await p.result()`` (or
    ``p.results()`` for several hosts). ``on_reply`` is called per reply.
    Leaving the block (or cancelling) stops at once and releases the rule
    and frames.

    The driver follows the running library: on asyncio and uvloop this
    class runs the probes; under trio ``async with Pinger(...)`` gives an
    :class:`aioxdp.anyio_driver.AnyioPinger` with the same surface
    (``driver`` says which: ``"asyncio"`` or ``"anyio"``).
    """

    driver = "asyncio"

    def _init_driver(self) -> None:
        self._queue: asyncio.Queue[PingReply | PingError | None] | None = None
        self._stack = contextlib.AsyncExitStack()
        self._task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._delegate: Any = None
        self._ident = 0
        self._session: EchoSession
        self._replies: PacketTransport  # the endpoint of the run's rules
        self._reply_tag = 0  # the forwarder's tag of its echo replies

    @property
    def ident(self) -> int:
        """The ICMP echo id of this run's probes (0 until it starts)."""
        return self._ident

    @property
    def nic(self) -> Interface:
        """The Interface the probes go through (while the Pinger is open)."""
        return self._nic

    async def __aenter__(self) -> Pinger:
        if _running_under_trio():
            # the anyio driver has the same surface; it is what the block gets
            from aioxdp.anyio_driver import AnyioPinger

            self._delegate = AnyioPinger(self.hosts, **self._options())
            return cast("Pinger", await self._delegate.__aenter__())
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._delegate is not None:
            await self._delegate.__aexit__(*exc)
            return
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._stack.aclose()

    async def _open(self) -> None:
        from aioxdp.interface import shared_interface

        routes = await self._find_routes()
        nic = await self._stack.enter_async_context(shared_interface(routes[0].ifname))
        self._session = await self._prepare(nic)
        self._ident = self._session.ident
        transport, _ = await nic.create_packet_endpoint(
            lambda: _EchoReplies(self), rules=self._echo_rules(self._ident)
        )
        self._stack.callback(transport.close)
        self._replies = transport
        self._reply_tag = transport.tags[0]  # (its first rule: the echo replies)
        self._nic = nic
        self._task = asyncio.get_running_loop().create_task(self._run())

    def __aiter__(self) -> AsyncIterator[PingReply | PingError]:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._session.listeners.append(self._queue.put_nowait)
            self._session.error_listeners.append(self._queue.put_nowait)
        return self

    async def __anext__(self) -> PingReply | PingError:
        assert self._queue is not None
        if self._task is None:
            raise StopAsyncIteration
        while True:
            if not self._queue.empty():
                reply = self._queue.get_nowait()
                if reply is not None:
                    return reply
            if self._task.done():
                raise StopAsyncIteration
            getter = asyncio.ensure_future(self._queue.get())
            done, _ = await asyncio.wait({getter, self._task}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                reply = getter.result()
                if reply is not None:
                    return reply
            else:
                getter.cancel()

    def _pump(self) -> int:
        """Send what is due now; returns how many probes went out."""
        return self._session.send(self._tx, time.monotonic_ns())

    def _ended(self, exc: Exception) -> None:
        """The interface went away: stop, and report what came back until now."""
        self._session.error = str(exc)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _freed(self, batch: PacketBatch) -> None:
        """Probes left flight in ``batch`` (replies, errors): send on."""
        # a flood refills its window straight from the receive callback, and
        # wakes its task only when that cannot go on alone (a task step, a
        # future and a timer a reply, when the window is one probe); one
        # target's flood then goes on in C with the replies its kicks brought
        if self.interval == 0 and self._task is not None and not self._task.done():
            self._pump()
            taken = self._session.flood_from_ring(self._tx, batch.rx.xsk, self._reply_tag)
            if taken:
                self._replies.count_taken(taken)
            if self._session.flood_waits(time.monotonic_ns()):
                return
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _run(self) -> None:
        session = self._session
        loop = asyncio.get_running_loop()
        self._tx = self._nic.tx
        session.start(time.monotonic_ns())
        try:
            while True:
                now = time.monotonic_ns()
                session.sweep(now)
                if session.finished(now) or session.error is not None:
                    break
                self._pump()
                delay = (session.next_wakeup(time.monotonic_ns()) - time.monotonic_ns()) / 1e9
                if delay <= 0:
                    await asyncio.sleep(0)
                    continue
                # woken by the deadline, or by replies when a slot frees
                self._waiter = loop.create_future()
                timer = loop.call_later(delay, _settle, self._waiter)
                try:
                    await self._waiter
                finally:
                    timer.cancel()
                    self._waiter = None
        finally:
            session.end_ns = time.monotonic_ns()
            if self._queue is not None:
                self._queue.put_nowait(None)

    async def results(self) -> PingResults:
        """Wait for the run to end; one result per host."""
        if self._task is None:
            raise XDPError(
                errno.EINVAL, "waiting for ping results", "use the Pinger in 'async with'"
            )
        await asyncio.shield(self._task)
        return self._merged()


async def ping(
    host: str,
    *,
    count: int = 4,
    interval: float = 1.0,
    timeout: float = 1.0,
    size: int = 56,
    ttl: int = 64,
    interface: str | None = None,
    source: str | None = None,
    window: int = DEFAULT_WINDOW,
    on_reply: Callable[[PingReply], None] | None = None,
    on_error: Callable[[PingError], None] | None = None,
    family: int | None = None,
) -> PingResult:
    """Ping ``host`` through AF_XDP and return what came back.

    ``interval=0`` floods with at most ``window`` probes in flight;
    ``timeout`` is per probe. A probe answered by an ICMP error (a router's
    "unreachable", an expired TTL) is lost, counted in ``result.errors`` by
    kind, and told to ``on_error``. ``host`` is an IPv4 or IPv6 address or
    a name; ``family`` (4 or 6) resolves a name to that family only, as
    ping's -4 and -6 do. Runs on asyncio, uvloop and (through anyio)
    trio: under trio the Pinger hands over to ``aioxdp.anyio_driver``.
    """
    async with Pinger(
        host,
        count=count,
        interval=interval,
        timeout=timeout,
        size=size,
        ttl=ttl,
        interface=interface,
        source=source,
        window=window,
        on_reply=on_reply,
        on_error=on_error,
        family=family,
    ) as pinger:
        return await pinger.result()


async def multiping(hosts: Sequence[str], **kwargs: Any) -> PingResults:
    """Ping several hosts at once over one XSK; one result per host, in host
    order (a Sequence, each result made when it is read: see PingResults)."""
    async with Pinger(hosts, **kwargs) as pinger:
        return await pinger.results()


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _running_under_trio() -> bool:
    return running_library() == "trio"
