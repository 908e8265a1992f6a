"""Ping under any async library anyio supports (trio included).

The same sans-IO core as the asyncio driver (:class:`aioxdp.ping.EchoSession`
and the C batch helpers), driven with ``anyio.wait_readable`` on the XSK
fds instead of an asyncio transport. ``aioxdp.ping`` comes here by itself
when it runs under trio.

Limitation: the asyncio driver shares one Interface among concurrent pings
of a process; this driver owns the interface for the length of one call,
so concurrent trio pings must use different interfaces.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import time
from collections.abc import Callable
from dataclasses import replace

import anyio

from aioxdp._libs import ffi, lib
from aioxdp.bpf import BPFObject
from aioxdp.forwarder import Forwarder, Rule
from aioxdp.interface import rx_queue_count
from aioxdp.ping import (
    DEFAULT_WINDOW,
    HEADERS,
    EchoSession,
    PingReply,
    PingResult,
    _Target,
    _validate,
    echo_template,
    pick_ident,
)
from aioxdp.protocols.arp import REPLY, Arp
from aioxdp.protocols.icmp import ECHO_REPLY
from aioxdp.route import Route, UnresolvedNeighbourError, arp_request, route_to
from aioxdp.xsk import XSK

__all__ = ["ping"]


async def _resolve_neighbour(
    route: Route, forwarder: Forwarder, xsks: list[XSK], tries: int = 3
) -> Route:
    if route.next_hop_mac is not None:
        return route
    wanted = socket.inet_aton(route.next_hop)
    rule = Rule("arp", src=route.next_hop, dst=route.source, arp_op=REPLY)
    forwarder.add(rule)
    try:
        for _ in range(tries):
            xsks[0].send(arp_request(route))
            xsks[0].flush()
            with anyio.move_on_after(0.5):
                while True:
                    await anyio.wait_readable(xsks[0].fd)
                    rx = xsks[0].receive()
                    try:
                        for i in range(rx.count):
                            frame = rx.frame(i)
                            with contextlib.suppress(ValueError):
                                arp = Arp.parse(frame, 14)
                                if arp.op == REPLY and arp.sender_ip == wanted:
                                    return replace(route, next_hop_mac=arp.sender_mac)
                    finally:
                        xsks[0].release(rx)
    finally:
        forwarder.remove(rule)
    raise UnresolvedNeighbourError(
        errno.EHOSTUNREACH,
        f"finding the MAC address of {route.next_hop} on {route.ifname}",
        f"no ARP reply after {tries} tries: is {route.destination} up and on this link?",
    )


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
    on_reply: Callable[[PingReply], None] | None = None,
    window: int = DEFAULT_WINDOW,
) -> PingResult:
    """Like :func:`aioxdp.ping`, on whatever async library is running."""
    _validate(count, interval, timeout, size, ttl, window)
    route = await route_to(host, interface=interface, source=source)
    limit = min(route.mtu - 28, 4096 - HEADERS)
    if size > limit:
        raise ValueError(
            f"size: {size} bytes do not fit {route.ifname} (MTU {route.mtu}): at most {limit}"
        )
    queues = await rx_queue_count(route.ifname)
    with contextlib.ExitStack() as stack:
        obj = stack.enter_context(BPFObject.packaged("forwarder"))
        obj.load()
        forwarder = Forwarder(obj)
        link = stack.enter_context(obj.program("aioxdp_forwarder").attach(route.ifname))
        xskmap = obj.map("aioxdp_fw_xsks")
        xsks = []
        for q in range(queues):
            xsk = XSK(route.ifname, q)
            stack.callback(xsk.close)
            xskmap.update(q, xsk.fd.to_bytes(4, "little"))
            xsks.append(xsk)
        stack.callback(link.detach)  # program off before the sockets close
        route = await _resolve_neighbour(route, forwarder, xsks)
        ident = pick_ident()
        target = _Target(
            host, route, echo_template(route, ident, size, ttl), count, int(timeout * 1e9)
        )
        session = EchoSession([target], ident, interval=interval, timeout=timeout, window=window)
        if on_reply is not None:
            session.listeners.append(on_reply)
        forwarder.add(Rule("icmp", icmp_type=ECHO_REPLY, icmp_id=ident))
        await _drive(session, xsks)
        return session.results()[0]
    raise AssertionError("unreachable")  # pragma: no cover


async def _drive(session: EchoSession, xsks: list[XSK]) -> None:
    results = ffi.new("struct aioxdp_echo_reply[]", 4096)
    tx = xsks[0]
    wake = anyio.Event()

    def drain(xsk: XSK) -> None:
        nonlocal wake
        while True:
            rx = xsk.receive()
            if not rx.count:
                return
            valid = lib.aioxdp_echo_parse(xsk._handle(), rx.descs, rx.count, session.ident, results)
            freed = session.replies(results, rx.count, valid)
            xsk.release(rx)
            if freed:
                wake.set()

    async def reader(xsk: XSK, done: anyio.Event) -> None:
        while not done.is_set():
            with anyio.move_on_after(0.05):
                await anyio.wait_readable(xsk.fd)
            drain(xsk)

    session.start(time.monotonic_ns())
    done = anyio.Event()
    try:
        async with anyio.create_task_group() as tg:
            for xsk in xsks:
                tg.start_soon(reader, xsk, done)
            while True:
                now = time.monotonic_ns()
                session.sweep(now)
                if session.finished(now):
                    break
                session.send(tx._handle(), now)
                tx.flush()
                delay = (session.next_wakeup(time.monotonic_ns()) - time.monotonic_ns()) / 1e9
                wake = anyio.Event()
                if delay > 0:
                    with anyio.move_on_after(delay):
                        await wake.wait()
                else:
                    await anyio.sleep(0)
            done.set()
    finally:
        session.end_ns = time.monotonic_ns()
