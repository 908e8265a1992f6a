"""TCP SYN probes: is a port open, and how far away is it?

``await aioxdp.tcp_ping(host, port)`` sends SYNs from a source port of our
own through AF_XDP, matches the SYN-ACK or RST that comes back by that port
and by the acknowledgement of our sequence number, and answers a SYN-ACK
with RST so the peer frees what it set up. The result is a
:class:`~aioxdp.PingResult` whose ``open`` is True (SYN-ACK), False (RST)
or None (silence).

Probe states (one at a time, so a table of one row):

    waiting  --SYN-ACK, ack = isn+1-->  open     (we send RST)
    waiting  --RST,     ack = isn+1-->  closed
    waiting  --timeout----------------> lost
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import random
import socket
import time
from dataclasses import replace
from pathlib import Path

from aioxdp.echo import validate_arguments
from aioxdp.errors import XDPError
from aioxdp.forwarder import Rule
from aioxdp.frames import IPV4_HEADERS, ipv4_frame
from aioxdp.interface import PacketTransport, shared_interface
from aioxdp.neighbour import resolve_neighbour
from aioxdp.packet import Packet, PacketProtocol
from aioxdp.protocols.errors import DecodeError
from aioxdp.protocols.tcp import ACK, IPPROTO_TCP, RST, SYN, Tcp, TcpOptions
from aioxdp.results import PingResult
from aioxdp.route import ResolvedRoute, route_to

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


def segment(
    route: ResolvedRoute,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    options: TcpOptions,
) -> bytes:
    """A TCP segment from us to the route's destination, in an Ethernet frame."""
    tcp = Tcp(sport, dport, seq, ack, flags, 64240, 0, options)
    length = 20 + len(options.build())
    frame = ipv4_frame(route, IPPROTO_TCP, length, ident=random.getrandbits(16), dont_fragment=True)
    src, dst = socket.inet_aton(route.source), socket.inet_aton(route.destination)
    tcp.build_into(frame, IPV4_HEADERS, b"", src, dst)
    return bytes(frame)


class TcpProbeReply:
    """What came back for one probe."""

    __slots__ = ("open", "rtt", "seq")

    def __init__(self, seq: int, open_: bool, rtt: float) -> None:
        self.seq = seq
        self.open = open_
        self.rtt = rtt

    def __repr__(self) -> str:
        return f"TcpProbeReply(seq={self.seq}, open={self.open}, rtt={self.rtt:.6f})"


class _Replies(PacketProtocol):
    def __init__(self) -> None:
        self.waiting: tuple[int, asyncio.Future[tuple[Tcp, int]]] | None = None
        self.malformed: dict[str, int] = {}
        self.stray = 0

    def packet_received(self, packet: Packet) -> None:
        try:
            tcp = packet.l4
        except DecodeError as exc:
            self.malformed[exc.reason] = self.malformed.get(exc.reason, 0) + 1
            return
        now = time.monotonic_ns()
        if not isinstance(tcp, Tcp) or self.waiting is None:
            self.stray += 1
            return
        isn, future = self.waiting
        if tcp.ack != (isn + 1) & 0xFFFFFFFF or not tcp.flags & (RST | ACK) or future.done():
            self.stray += 1  # not an answer to the probe in flight
            return
        future.set_result((tcp, now))


async def tcp_ping(
    host: str,
    port: int,
    *,
    count: int = 4,
    interval: float = 1.0,
    timeout: float = 1.0,
    interface: str | None = None,
    source: str | None = None,
    on_reply: object = None,
) -> PingResult:
    """Probe ``host``:``port`` with ``count`` SYNs; see the module docstring."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port: must be 1..65535, got {port!r}")
    validate_arguments(count, interval, timeout, 8, 64, 1)
    found = await route_to(host, interface=interface, source=source)
    async with shared_interface(found.ifname) as nic:
        route = await resolve_neighbour(found, nic)
        sport = pick_source_port()
        rule = Rule("tcp", src=route.destination, src_port=port, dst_port=sport)
        transport, replies = await nic.create_packet_endpoint(_Replies, rules=[rule])
        try:
            return await _probe(
                transport, replies, route, host, port, sport, count, interval, timeout, on_reply
            )
        finally:
            transport.close()


async def _probe(
    transport: PacketTransport,
    replies: _Replies,
    route: ResolvedRoute,
    host: str,
    port: int,
    sport: int,
    count: int,
    interval: float,
    timeout: float,
    on_reply: object,
) -> PingResult:
    loop = asyncio.get_running_loop()
    syn_options = TcpOptions(mss=min(route.mtu - 40, 65495), wscale=7, sack_permitted=True)
    rtts: list[float] = []
    verdicts: list[bool] = []
    start = time.monotonic_ns()
    sent = 0
    for i in range(count):
        next_at = start + int(i * interval * 1e9)
        if time.monotonic_ns() < next_at:
            await asyncio.sleep((next_at - time.monotonic_ns()) / 1e9)
        isn = random.getrandbits(32)
        future: asyncio.Future[tuple[Tcp, int]] = loop.create_future()
        replies.waiting = (isn, future)
        t0 = time.monotonic_ns()
        transport.write(segment(route, sport, port, isn, 0, SYN, syn_options))
        sent += 1
        try:
            tcp, t1 = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            continue
        finally:
            replies.waiting = None
        is_open = bool(tcp.flags & SYN and tcp.flags & ACK)
        if is_open:
            # we never meant to connect: tell the peer to forget the half-open connection
            transport.write(
                segment(route, sport, port, (isn + 1) & 0xFFFFFFFF, 0, RST, TcpOptions())
            )
        rtt = (t1 - t0) / 1e9
        rtts.append(rtt)
        verdicts.append(is_open)
        if callable(on_reply):
            on_reply(TcpProbeReply(i + 1, is_open, rtt))
    await asyncio.sleep(0)  # let the last RST go out before the endpoint closes
    result = PingResult(
        host,
        route.destination,
        sent,
        len(rtts),
        rtts,
        foreign=replies.stray,
        malformed=dict(replies.malformed),
        elapsed=(time.monotonic_ns() - start) / 1e9,
    )
    state = None if not verdicts else any(verdicts)
    return replace(result, open=state)
