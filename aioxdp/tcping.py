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
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio

from aioxdp.echo import validate_arguments
from aioxdp.errors import XDPError
from aioxdp.forwarder import Rule
from aioxdp.neighbour import resolve_each
from aioxdp.results import PingResult
from aioxdp.route import NoRouteError, ResolvedRoute, Route, route_to, routes_to
from aioxdp.shared import shared_nic
from aioxdp.targets import MAX_HOSTS, check_target_count
from aioxdp.tcp_probe import ProbeTarget, TcpProbeReply, TcpProbeSession
from aioxdp.xsk import RxBatch

__all__ = ["PortState", "TcpProbeReply", "tcp_ping", "tcp_scan"]


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
        await _run(
            nic, session, [Rule("tcp", src=route.destination, src_port=port, dst_port=sport)]
        )
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


@dataclass(frozen=True, slots=True)
class PortState:
    """What one (host, port) of a scan said."""

    host: str
    address: str
    port: int
    state: str  # "open" (SYN-ACK), "closed" (RST), "silent" (nothing), "error"
    rtt: float | None = None  # seconds, when it answered
    error: str | None = None  # why it was not probed, for "error"


async def tcp_scan(
    targets: Sequence[tuple[str, int]],
    *,
    timeout: float = 1.0,
    retries: int = 1,
    interface: str | None = None,
    source: str | None = None,
    max_targets: int = MAX_HOSTS,
) -> list[PortState]:
    """SYN-scan every (host, port) of ``targets``: open, closed or silent each,
    in order. A silent pair is asked again ``retries`` times; every SYN-ACK is
    answered with RST, so no peer keeps a half-open connection. Routes are
    found once per prefix and next hops once each (as multiping does); pairs
    whose host has no route or no ARP answer come back as "error"."""
    targets = list(targets)
    if not targets:
        raise ValueError("targets: give at least one (host, port)")
    check_target_count(len(targets), max_targets)
    for pair in targets:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise TypeError(f"targets: each must be a (host, port) tuple, got {pair!r}")
        host, port = pair
        if not isinstance(host, str) or not host:
            raise TypeError(f"targets: a host must be a non-empty str, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"targets: a port must be 1..65535, got {port!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
        raise ValueError(f"retries: must be 0..10, got {retries!r}")
    validate_arguments(1, 0, timeout, 8, 64, 1)
    hosts = list(dict.fromkeys(host for host, _ in targets))
    found = dict(
        zip(hosts, await routes_to(hosts, interface=interface, source=source), strict=True)
    )
    failed: dict[str, Exception] = {h: r for h, r in found.items() if isinstance(r, NoRouteError)}
    routable = {h: r for h, r in found.items() if isinstance(r, Route)}
    states: dict[int, PortState] = {}
    if routable:
        ifnames = {r.ifname for r in routable.values()}
        if len(ifnames) > 1:
            raise ValueError(f"targets: reached through several interfaces {sorted(ifnames)}")
        async with shared_nic(ifnames.pop()) as nic:
            resolved = await resolve_each(list(routable.values()), nic)
            routes: dict[str, ResolvedRoute] = {}
            for h, r in zip(routable, resolved, strict=True):
                if isinstance(r, ResolvedRoute):
                    routes[h] = r
                else:
                    failed[h] = r
            probes = {
                i: ProbeTarget(host, routes[host], port)
                for i, (host, port) in enumerate(targets)
                if host in routes
            }
            config = nic.config
            flight = min(config.fill_size, config.rx_size, config.nframes - config.tx_size)
            left = list(probes.values())
            sources = sorted({r.source for r in routes.values()})
            for _ in range(retries + 1):
                if not left:
                    break
                sport = pick_source_port()
                session = TcpProbeSession(
                    left,
                    sport,
                    count=1,
                    interval=0,
                    timeout=timeout,
                    max_in_flight=flight - nic.batch_size,
                )
                rules = [Rule("tcp", dst=src, dst_port=sport) for src in sources]
                await _run(nic, session, rules)
                left = [t for t in left if t.open is None]
                for t in left:  # asked again from a fresh source port
                    t.sent = 0
            for i, t in probes.items():
                state = {True: "open", False: "closed", None: "silent"}[t.open]
                rtt = t.rtts[-1] if t.rtts else None
                states[i] = PortState(t.host, t.route.destination, t.port, state, rtt)
    return [
        states.get(i)
        or PortState(host, host, port, "error", error=str(failed.get(host, "not probed")))
        for i, (host, port) in enumerate(targets)
    ]


async def _run(nic: Any, session: TcpProbeSession, rules: list[Rule]) -> None:
    """Drive ``session`` on ``nic`` until every probe is answered or lost."""
    answers: list[bytes] = []  # RSTs to send, found by the handler
    woken = anyio.Event()

    def segments(rx: RxBatch, start: int, stop: int) -> None:
        nonlocal woken
        now = time.monotonic_ns()
        for i in range(start, stop):
            answers.extend(session.take(rx.frame(i), now))
        woken.set()

    claim = nic.claim(rules, segments)
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
