"""TCP SYN probes: is a port open, and how far away is it?

``await aioxdp.tcp_ping(host, port)`` sends SYNs from a source port of our
own through AF_XDP, matches the SYN-ACK or RST that comes back by that port
and by the acknowledgement of our sequence number, and answers a SYN-ACK
with RST so the peer frees what it set up. The result is a
:class:`~aioxdp.PingResult` whose ``open`` is True (SYN-ACK), False (RST)
or None (silence). The probing is :class:`aioxdp.tcp_probe.TcpProbeSession`
(sans-IO); this driver runs it with anyio on the running library's shared
interface, so it works on asyncio, uvloop and trio alike.
"""

from __future__ import annotations

import contextlib
import errno
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio

from aioxdp.echo import validate_arguments
from aioxdp.errors import XDPError
from aioxdp.forwarder import Rule
from aioxdp.results import PingResult
from aioxdp.route import route_to
from aioxdp.shared import shared_nic
from aioxdp.tcp_probe import ProbeTarget, TcpProbeReply, TcpProbeSession
from aioxdp.xsk import RxBatch

__all__ = ["TcpProbeReply", "tcp_ping"]


def _ports_in_use() -> set[int]:
    used = set()
    for name in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/thread-self/net/{name}").read_text().splitlines()[1:]:
                used.add(int(line.split()[1].split(":")[1], 16))
    return used


def pick_source_port() -> int:
    """An ephemeral port no local TCP socket uses (the kernel must not own our replies)."""
    low, high = 32768, 60999
    with contextlib.suppress(OSError, ValueError):
        low, high = (
            int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        )
    used = _ports_in_use()
    for _ in range(1000):
        port = random.randint(low, high)
        if port not in used:
            return port
    raise XDPError(errno.EADDRINUSE, "choosing a TCP source port", "every port tried is in use")


async def tcp_ping(
    host: str,
    port: int,
    *,
    count: int = 4,
    interval: float = 1.0,
    timeout: float = 1.0,
    interface: str | None = None,
    source: str | None = None,
    on_reply: Any = None,
) -> PingResult:
    """Probe ``host``:``port`` with ``count`` SYNs; see the module docstring."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port: must be 1..65535, got {port!r}")
    validate_arguments(count, interval, timeout, 8, 64, 1)
    if on_reply is not None and not callable(on_reply):
        raise TypeError(f"on_reply: must be callable, got {type(on_reply).__name__}")
    found = await route_to(host, interface=interface, source=source)
    async with shared_nic(found.ifname) as nic:
        (route,) = await nic.resolve_neighbours([found])
        sport = pick_source_port()
        target = ProbeTarget(host, route, port)
        session = TcpProbeSession([target], sport, count=count, interval=interval, timeout=timeout)
        if on_reply is not None:
            session.listeners.append(lambda _target, reply: on_reply(reply))
        await _run(nic, session, Rule("tcp", src=route.destination, src_port=port, dst_port=sport))
    result = PingResult(
        host,
        route.destination,
        target.sent,
        len(target.rtts),
        target.rtts,
        foreign=session.stray,
        malformed=dict(session.malformed),
        elapsed=(session.end_ns - session.start_ns) / 1e9,
    )
    return replace(result, open=target.open)


async def _run(nic: Any, session: TcpProbeSession, rule: Rule) -> None:
    """Drive ``session`` on ``nic`` until every probe is answered or lost."""
    answers: list[bytes] = []  # RSTs to send, found by the handler
    woken = anyio.Event()

    def segments(rx: RxBatch, start: int, stop: int) -> None:
        nonlocal woken
        now = time.monotonic_ns()
        for i in range(start, stop):
            answers.extend(session.take(rx.frame(i), now))
        woken.set()

    claim = nic.claim([rule], segments)
    try:
        session.start(time.monotonic_ns())
        while True:
            now = time.monotonic_ns()
            outgoing = answers + session.due(now)
            answers.clear()
            for frame in outgoing:
                await nic.send(frame)
            if session.finished(now):
                break
            woken = anyio.Event()
            with anyio.move_on_after((session.next_wakeup(now) - now) / 1e9):
                await woken.wait()
        for frame in answers:  # a RST for an answer that ended the run
            await nic.send(frame)
        await anyio.sleep(0)  # let the last RST go out before the claim closes
    finally:
        session.end_ns = time.monotonic_ns()
        claim.close()
