"""Ping under any async library anyio supports (trio included).

The same sans-IO cores as the asyncio driver (:class:`aioxdp.echo.EchoSession`
for the probes, :class:`aioxdp.arp_query.ArpQuery` for unknown next hops),
on this run's shared :class:`aioxdp.anyio_interface.AnyioInterface`, so
concurrent trio pings share one forwarder and one set of sockets as asyncio
ones do. ``aioxdp.Pinger`` and ``aioxdp.ping`` choose this driver when they
run under trio (``Pinger.driver`` says which).
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from aioxdp.anyio_interface import AnyioInterface, Claim, shared_anyio_interface
from aioxdp.echo import EchoSession
from aioxdp.pinger_base import PingerBase
from aioxdp.results import PingError, PingReply, PingResult, PingResults
from aioxdp.xsk import RxBatch

__all__ = ["AnyioPinger", "ping"]


class AnyioPinger(PingerBase):
    """:class:`aioxdp.Pinger` for anyio (trio): the same arguments and surface."""

    driver = "anyio"

    def _init_driver(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self._done = anyio.Event()
        self._wake = anyio.Event()
        self._send: MemoryObjectSendStream[PingReply | PingError] | None = None
        self._receive: MemoryObjectReceiveStream[PingReply | PingError] | None = None
        self._session: EchoSession
        self._ident = 0
        self._claim: Claim  # the run's rules
        self._reply_tag = 0  # the forwarder's tag of its echo replies

    @property
    def ident(self) -> int:
        """The ICMP echo id of this run's probes (0 until it starts)."""
        return self._ident

    @property
    def nic(self) -> AnyioInterface:
        """The interface the probes go through (while the Pinger is open)."""
        return self._nic

    async def __aenter__(self) -> AnyioPinger:
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._tg.cancel_scope.cancel()
        await self._stack.aclose()

    async def _open(self) -> None:
        routes = await self._find_routes()
        nic = await self._stack.enter_async_context(shared_anyio_interface(routes[0].ifname))
        self._session = await self._prepare(nic)
        self._ident = self._session.ident
        claim = nic.claim(
            self._echo_rules(self._ident),
            self._replies,
            on_lost=self._ended,
        )
        self._stack.callback(claim.close)
        self._claim = claim
        self._reply_tag = claim.tags[0]  # (its first rule: the echo replies)
        self._nic = nic
        self._tg = await self._stack.enter_async_context(anyio.create_task_group())
        self._tg.start_soon(self._run)

    def _replies(self, rx: RxBatch, start: int, stop: int) -> None:
        session = self._session
        if session.take(rx, start, stop - start) and not self._flood_goes_on(rx):
            self._wake.set()
        session.reraise()  # a user's callback failed: the claim logs and counts it

    def _flood_goes_on(self, rx: RxBatch) -> bool:
        """A flood refills its window from the receive handler (one target's
        goes on in C with the replies its kicks bring, as Pinger's does);
        True if only a reply or a timeout can move it on, so its task, asleep
        until that timeout, need not wake."""
        session = self._session
        if self.interval != 0 or self._done.is_set() or session.error is not None:
            return False
        nic = self._nic
        if session.send(nic.tx, time.monotonic_ns()):
            nic.flush()
        taken = session.flood_from_ring(nic, rx.xsk, self._reply_tag)
        if taken:
            self._claim.count_taken(taken)
        return session.flood_waits(time.monotonic_ns())

    def _ended(self, exc: Exception) -> None:
        """The interface went away: stop, and report what came back until now."""
        self._session.error = str(exc)
        self._wake.set()

    def __aiter__(self) -> AnyioPinger:
        if self._send is None:
            self._send, self._receive = anyio.create_memory_object_stream[PingReply | PingError](
                math.inf
            )
            self._session.listeners.append(self._send.send_nowait)
            self._session.error_listeners.append(self._send.send_nowait)
        return self

    async def __anext__(self) -> PingReply | PingError:
        assert self._receive is not None
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def _run(self) -> None:
        session = self._session
        nic = self._nic
        session.start(time.monotonic_ns())
        try:
            while True:
                now = time.monotonic_ns()
                session.sweep(now)
                if session.finished(now) or session.error is not None:
                    break
                if session.send(nic.tx, now):
                    nic.flush()
                delay = (session.next_wakeup(time.monotonic_ns()) - time.monotonic_ns()) / 1e9
                self._wake = anyio.Event()
                if delay > 0:
                    with anyio.move_on_after(delay):
                        await self._wake.wait()
                else:
                    await anyio.sleep(0)
        finally:
            session.end_ns = time.monotonic_ns()
            self._done.set()
            if self._send is not None:
                self._send.close()

    async def results(self) -> PingResults:
        await self._done.wait()
        return self._merged()


async def ping(host: str, **kwargs: Any) -> PingResult:
    """Like :func:`aioxdp.ping`, on whatever async library is running."""
    async with AnyioPinger(host, **kwargs) as pinger:
        return await pinger.result()
