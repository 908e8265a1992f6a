"""Ping under any async library anyio supports (trio included).

The same sans-IO core as the asyncio driver (:class:`aioxdp.echo.EchoSession`
and the C batch helpers), driven with ``anyio.wait_readable`` on the XSK
fds instead of an asyncio transport. ``aioxdp.ping`` and ``aioxdp.Pinger``
come here by themselves when they run under trio.

Limitation: the asyncio driver shares one Interface among concurrent pings
of a process; this driver owns the interface while a Pinger is open, so
concurrent trio pings must use different interfaces.
"""

from __future__ import annotations

import contextlib
import errno
import math
import socket
import time
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from aioxdp._libs import ffi
from aioxdp.bpf import BPFObject
from aioxdp.echo import EchoSession, pick_ident
from aioxdp.forwarder import Forwarder, Rule
from aioxdp.frames import arp_request
from aioxdp.interface import link_info
from aioxdp.pinger_base import PingerBase
from aioxdp.protocols.arp import REPLY, Arp
from aioxdp.protocols.icmp import ECHO_REPLY
from aioxdp.results import PingReply, PingResult
from aioxdp.route import ResolvedRoute, Route, UnresolvedNeighbourError
from aioxdp.xsk import XSK

__all__ = ["AnyioPinger", "ping"]


async def _resolve_neighbour(
    route: Route, forwarder: Forwarder, xsk: XSK, tries: int = 3
) -> ResolvedRoute:
    if route.next_hop_mac is not None:
        return route.resolved()
    wanted = socket.inet_aton(route.next_hop)
    rule = Rule("arp", src=route.next_hop, dst=route.source, arp_op=REPLY)
    forwarder.add(rule)
    try:
        for _ in range(tries):
            xsk.send(arp_request(route))
            xsk.flush()
            with anyio.move_on_after(0.5):
                while True:
                    await anyio.wait_readable(xsk.fd)
                    rx = xsk.receive()
                    try:
                        for i in range(rx.count):
                            with contextlib.suppress(ValueError):
                                arp = Arp.parse(rx.frame(i), 14)
                                if arp.op == REPLY and arp.sender_ip == wanted:
                                    return route.resolved(arp.sender_mac)
                    finally:
                        xsk.release(rx)
    finally:
        forwarder.remove(rule)
    raise UnresolvedNeighbourError(
        errno.EHOSTUNREACH,
        f"finding the MAC address of {route.next_hop} on {route.ifname}",
        f"no ARP reply after {tries} tries: is {route.destination} up and on this link?",
    )


class AnyioPinger(PingerBase):
    """:class:`aioxdp.Pinger` for anyio (trio): the same arguments and surface."""

    def _init_driver(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self._done = anyio.Event()
        self._send: MemoryObjectSendStream[PingReply] | None = None
        self._receive: MemoryObjectReceiveStream[PingReply] | None = None
        self._session: EchoSession
        self._xsks: list[XSK] = []

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
        route = routes[0]
        info = await link_info(route.ifname)
        queues = info.queues
        stack = contextlib.ExitStack()
        self._stack.callback(stack.close)
        obj = stack.enter_context(BPFObject.packaged("forwarder"))
        obj.load()
        forwarder = Forwarder(obj)
        forwarder.set_local_mac(info.mac)
        link = stack.enter_context(obj.program("aioxdp_forwarder").attach(route.ifname))
        xskmap = obj.map("aioxdp_fw_xsks")
        for q in range(queues):
            xsk = XSK(route.ifname, q)
            stack.callback(xsk.close)
            xskmap.update(q, xsk.fd.to_bytes(4, "little"))
            self._xsks.append(xsk)
        stack.callback(link.detach)  # program off before the sockets close
        self._check_frame_fits(self._xsks[0].config.frame_size)
        self.routes = [await _resolve_neighbour(r, forwarder, self._xsks[0]) for r in routes]
        ident = pick_ident()
        self._session = EchoSession(
            self._targets(ident),
            ident,
            interval=self.interval,
            timeout=self.timeout,
            window=self.window,
        )
        if self._on_reply is not None:
            self._session.listeners.append(self._on_reply)
        forwarder.add(Rule("icmp", icmp_type=ECHO_REPLY, icmp_id=ident))
        self._tg = await self._stack.enter_async_context(anyio.create_task_group())
        self._tg.start_soon(self._run)

    def __aiter__(self) -> AnyioPinger:
        if self._send is None:
            self._send, self._receive = anyio.create_memory_object_stream[PingReply](math.inf)
            self._session.listeners.append(self._send.send_nowait)
        return self

    async def __anext__(self) -> PingReply:
        assert self._receive is not None
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def _run(self) -> None:
        session = self._session
        results = ffi.new("struct aioxdp_echo_reply[]", max(x.batch_size for x in self._xsks))
        tx = self._xsks[0]
        wake = anyio.Event()

        def drain(xsk: XSK) -> None:
            while True:
                rx = xsk.receive()
                if not rx.count:
                    return
                try:
                    valid = rx.parse_echo_replies(0, rx.count, session.ident, results)
                    freed = session.replies(results, rx.count, valid)
                finally:
                    xsk.release(rx)
                if freed:
                    wake.set()

        async def reader(xsk: XSK) -> None:
            while not self._done.is_set():
                with anyio.move_on_after(0.05):
                    await anyio.wait_readable(xsk.fd)
                drain(xsk)

        session.start(time.monotonic_ns())
        try:
            async with anyio.create_task_group() as tg:
                for xsk in self._xsks:
                    tg.start_soon(reader, xsk)
                while True:
                    now = time.monotonic_ns()
                    session.sweep(now)
                    if session.finished(now):
                        break
                    session.send(tx, now)
                    tx.flush()
                    delay = (session.next_wakeup(time.monotonic_ns()) - time.monotonic_ns()) / 1e9
                    wake = anyio.Event()
                    if delay > 0:
                        with anyio.move_on_after(delay):
                            await wake.wait()
                    else:
                        await anyio.sleep(0)
                self._done.set()
        finally:
            session.end_ns = time.monotonic_ns()
            self._done.set()
            if self._send is not None:
                self._send.close()

    async def results(self) -> list[PingResult]:
        await self._done.wait()
        return self._session.results()


async def ping(host: str, **kwargs: Any) -> PingResult:
    """Like :func:`aioxdp.ping`, on whatever async library is running."""
    async with AnyioPinger(host, **kwargs) as pinger:
        return await pinger.result()
