"""ICMP echo through the XDP socket: ping(), multiping(), Pinger, their results.

Theory of operation
-------------------
:class:`EchoSession` is the sans-IO core (no clock, no socket: time comes
in as ``now_ns``). It owns, per target host, the probes sent and what
became of each one:

    probe state     set when                          counts as
    sent            C stamped it into a frame         in flight
    answered        a valid reply came within timeout received, rtt kept
    late            a reply came after its timeout    late (not received)
    expired         its timeout passed with no reply  lost

A probe leaves "in flight" exactly once (answered, late or expired); a
second reply to it is a duplicate. Sequence numbers are ``probe + 1``
modulo 65536, so a reply's probe is the latest one sent with that number
(the in-flight window is far below 65536). Replies are matched by echo id
(the forwarder only redirects ours), source address and sequence.

Pacing: with ``interval > 0`` probe *n* goes out at ``start + n*interval``;
with ``interval == 0`` (flood) up to ``window`` probes are in flight. Both
are bounded: ``count`` probes, and a deadline of
``count*interval + timeout`` (plus slack) after the start.

The drivers are thin: the asyncio one here (Pinger), and the anyio one in
``aioxdp.anyio_driver`` for trio. Stamping requests and checking replies
run in C over whole batches (``_native/echo.c``).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import errno
import math
import random
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from aioxdp._libs import ffi, lib
from aioxdp.errors import XDPError
from aioxdp.forwarder import Rule
from aioxdp.packet import PacketBatch, PacketProtocol
from aioxdp.protocols.ethernet import ETH_P_IP, Ethernet
from aioxdp.protocols.icmp import ECHO_REPLY, ECHO_REQUEST, IPPROTO_ICMP, Icmp
from aioxdp.protocols.ipv4 import IPv4
from aioxdp.route import Route

if TYPE_CHECKING:
    from aioxdp.interface import Interface

__all__ = ["EchoSession", "PingReply", "PingResult", "Pinger", "multiping", "ping"]

MAX_COUNT = 2_000_000  # 26 bytes of state per probe
DEFAULT_WINDOW = 256
HEADERS = 14 + 20 + 8  # Ethernet, IPv4, ICMP
RX_HEADROOM = 256  # XDP_PACKET_HEADROOM: where the kernel puts a received frame in its UMEM frame
STATUS_NAMES = {
    lib.AIOXDP_ECHO_TRUNCATED: "truncated",
    lib.AIOXDP_ECHO_NOT_IPV4: "not_ipv4",
    lib.AIOXDP_ECHO_BAD_IP: "bad_ip_header",
    lib.AIOXDP_ECHO_BAD_IP_CHECKSUM: "bad_ip_checksum",
    lib.AIOXDP_ECHO_NOT_ICMP: "not_icmp",
    lib.AIOXDP_ECHO_FRAGMENT: "fragment",
    lib.AIOXDP_ECHO_BAD_ICMP_CHECKSUM: "bad_icmp_checksum",
    lib.AIOXDP_ECHO_NOT_REPLY: "not_echo_reply",
    lib.AIOXDP_ECHO_NO_STAMP: "no_timestamp",
}


@dataclass(frozen=True, slots=True)
class PingReply:
    """One echo reply."""

    seq: int  # ICMP sequence number
    rtt: float  # round-trip time, seconds
    ttl: int  # TTL of the reply's IP header
    size: int  # ICMP bytes (header + data), as ping prints them
    source: str  # who answered


@dataclass(frozen=True, slots=True)
class PingResult:
    """What a ping run found, for one host. Times are in seconds."""

    host: str
    address: str
    sent: int
    received: int
    rtts: list[float]
    duplicates: int = 0  # extra replies to an answered probe
    late: int = 0  # replies after their probe's timeout
    foreign: int = 0  # our echo id, but an unknown source or sequence
    malformed: dict[str, int] = field(default_factory=dict)  # by reason
    elapsed: float = 0.0
    open: bool | None = None  # tcp_ping only: SYN-ACK (True), RST (False), silence (None)
    error: str | None = None  # why the run ended early (interface gone...), if it did
    _seqs: array.array[int] = field(default_factory=lambda: array.array("I"), repr=False)
    _ttls: array.array[int] = field(default_factory=lambda: array.array("B"), repr=False)
    _sizes: array.array[int] = field(default_factory=lambda: array.array("I"), repr=False)

    @property
    def loss(self) -> float:
        return 1.0 - self.received / self.sent if self.sent else 0.0

    @property
    def min(self) -> float:
        return min(self.rtts) if self.rtts else math.nan

    @property
    def max(self) -> float:
        return max(self.rtts) if self.rtts else math.nan

    @property
    def avg(self) -> float:
        return sum(self.rtts) / len(self.rtts) if self.rtts else math.nan

    @property
    def mdev(self) -> float:
        """sqrt(mean(rtt^2) - mean(rtt)^2), as iputils computes it."""
        if not self.rtts:
            return math.nan
        n = len(self.rtts)
        mean = sum(self.rtts) / n
        return math.sqrt(max(sum(r * r for r in self.rtts) / n - mean * mean, 0.0))

    @property
    def replies(self) -> list[PingReply]:
        """The replies in arrival order (made on first use)."""
        return [
            PingReply(seq, rtt, ttl, size, self.address)
            for seq, rtt, ttl, size in zip(
                self._seqs, self.rtts, self._ttls, self._sizes, strict=True
            )
        ]

    def to_dict(self) -> dict[str, Any]:
        def ms(value: float) -> float | None:
            return None if math.isnan(value) else round(value * 1e3, 6)

        return {
            "host": self.host,
            "address": self.address,
            "sent": self.sent,
            "received": self.received,
            "loss": self.loss,
            "duplicates": self.duplicates,
            "late": self.late,
            "foreign": self.foreign,
            "malformed": dict(self.malformed),
            "elapsed_s": self.elapsed,
            "open": self.open,  # TCP probes: True SYN-ACK, False RST, None silence
            "error": self.error,
            "rtt_ms": {
                "min": ms(self.min),
                "avg": ms(self.avg),
                "max": ms(self.max),
                "mdev": ms(self.mdev),
            },
        }


class _Target:
    """One destination of a session, and the fate of every probe sent to it.

    The per-probe arrays live in Python objects; C reads and updates them
    through ``probes`` (struct aioxdp_echo_probes) a batch at a time.
    """

    def __init__(
        self, host: str, route: Route, template: bytes, count: int, timeout_ns: int
    ) -> None:
        self.host = host
        self.route = route
        self.template = template
        self.template_c = ffi.from_buffer("uint8_t[]", template)
        self.saddr = int.from_bytes(socket.inet_aton(route.destination), "little")  # as C reads it
        self.count = count
        self.state = bytearray(count)
        self.sent_ns = array.array("q", bytes(8 * count))
        self.rtts = array.array("d", bytes(8 * count))
        self.seqs = array.array("I", bytes(4 * count))
        self.ttls = array.array("B", bytes(count))
        self.sizes = array.array("I", bytes(4 * count))
        p = self.probes = ffi.new("struct aioxdp_echo_probes *")
        p.state = ffi.from_buffer("uint8_t[]", self.state)
        p.sent_ns = self.stamps = ffi.from_buffer("int64_t[]", self.sent_ns)
        p.rtts = ffi.from_buffer("double[]", self.rtts)
        p.seqs = ffi.from_buffer("uint32_t[]", self.seqs)
        p.ttls = ffi.from_buffer("uint8_t[]", self.ttls)
        p.sizes = ffi.from_buffer("uint32_t[]", self.sizes)
        p.timeout_ns = timeout_ns
        self.tally = ffi.new("struct aioxdp_echo_tally *")

    @property
    def next_probe(self) -> int:
        return int(self.probes.next_probe)

    @property
    def done(self) -> int:
        return int(self.probes.done)

    @property
    def in_flight(self) -> int:
        return int(self.probes.next_probe - self.probes.done)

    @property
    def received(self) -> int:
        return int(self.probes.nrec)

    def reply(self, i: int) -> PingReply:
        return PingReply(
            self.seqs[i], self.rtts[i], self.ttls[i], self.sizes[i], self.route.destination
        )


class EchoSession:
    """The sans-IO state of one ping run over one or more targets."""

    def __init__(
        self,
        targets: Sequence[_Target],
        ident: int,
        *,
        interval: float,
        timeout: float,
        window: int,
    ) -> None:
        self.targets = list(targets)
        self.ident = ident
        self.interval_ns = int(interval * 1e9)
        self.timeout_ns = int(timeout * 1e9)
        self.window = window
        self.targets[0].tally.count_malformed = 1  # each batch's faults counted once
        self.unknown_source = 0
        self.start_ns = 0
        self.end_ns = 0
        count = max(t.count for t in self.targets)
        # bounded in time: all probes out, then one timeout, then slack
        self.deadline_ns = 0
        self._budget_ns = count * self.interval_ns + self.timeout_ns + 2_000_000_000
        self.listeners: list[Callable[[PingReply], None]] = []
        self.error: str | None = None

    def start(self, now_ns: int) -> None:
        self.start_ns = now_ns
        self.deadline_ns = now_ns + self._budget_ns

    def finished(self, now_ns: int) -> bool:
        if now_ns >= self.deadline_ns:
            return True
        return all(
            t.probes.next_probe == t.count and t.probes.done == t.count for t in self.targets
        )

    def due(self, now_ns: int) -> list[tuple[_Target, int]]:
        """How many probes each target should send now."""
        out = []
        for t in self.targets:
            sent = t.probes.next_probe
            left = t.count - sent
            if not left:
                continue
            if self.interval_ns:
                n = min(left, (now_ns - self.start_ns) // self.interval_ns + 1 - sent)
            else:
                n = min(left, self.window - (sent - t.probes.done))
            if n > 0:
                out.append((t, n))
        return out

    def send(self, tx: Any, now_ns: int) -> int:
        """Stamp and queue the probes due now through ``tx`` (an XSK, or a
        transport that flushes them); returns how many."""
        queued = 0
        for t, n in self.due(now_ns):
            start = t.probes.next_probe
            sent = tx.send_echoes(
                t.template_c, len(t.template), (start + 1) & 0xFFFF, n, t.stamps + start
            )
            t.probes.next_probe += sent
            queued += sent
        return queued

    def sweep(self, now_ns: int) -> None:
        """Expire probes whose timeout has passed."""
        for t in self.targets:
            lib.aioxdp_echo_sweep(t.probes, now_ns)

    def next_wakeup(self, now_ns: int) -> int:
        """When the driver must call again even if nothing arrives."""
        wake = self.deadline_ns
        for t in self.targets:
            p = t.probes
            if p.next_probe < t.count and self.interval_ns:
                wake = min(wake, self.start_ns + p.next_probe * self.interval_ns)
            if p.sweep < p.next_probe:
                wake = min(wake, t.sent_ns[p.sweep] + self.timeout_ns)
        return max(wake, now_ns)

    def replies(self, results: Any, n: int, valid: int) -> bool:
        """Account a batch of C-checked replies (``valid`` of them well formed).

        True if a probe left flight (a flood can send more).
        """
        freed = 0
        matched = 0
        for t in self.targets:
            before = t.probes.nrec
            seen = t.tally.matched
            freed += lib.aioxdp_echo_account(results, n, t.saddr, t.probes, t.tally)
            matched += t.tally.matched - seen
            if self.listeners and t.probes.nrec != before:
                for i in range(before, t.probes.nrec):
                    reply = t.reply(i)
                    for listener in self.listeners:
                        listener(reply)
        self.unknown_source += valid - matched
        return freed > 0

    def malformed(self) -> dict[str, int]:
        counts = self.targets[0].tally.malformed
        out = {name: int(counts[status]) for status, name in STATUS_NAMES.items() if counts[status]}
        if counts[lib.AIOXDP_ECHO_FOREIGN]:
            out["foreign_id"] = int(counts[lib.AIOXDP_ECHO_FOREIGN])
        if self.unknown_source:
            out["unknown_source"] = self.unknown_source
        return out

    def results(self) -> list[PingResult]:
        # a run still going (a snapshot) has lasted until now
        end_ns = self.end_ns or time.monotonic_ns()
        elapsed = (end_ns - self.start_ns) / 1e9 if self.start_ns else 0.0
        malformed = self.malformed()
        out = []
        for t in self.targets:
            n = t.received
            out.append(
                PingResult(
                    t.host,
                    t.route.destination,
                    t.next_probe,
                    n,
                    t.rtts[:n].tolist(),
                    duplicates=int(t.tally.duplicates),
                    late=int(t.tally.late),
                    foreign=int(t.tally.foreign),
                    malformed=dict(malformed),
                    elapsed=elapsed,
                    _seqs=t.seqs[:n],
                    _ttls=t.ttls[:n],
                    _sizes=t.sizes[:n],
                    error=self.error,
                )
            )
        return out


def echo_template(route: Route, ident: int, size: int, ttl: int) -> bytes:
    """An echo request to ``route``; C writes the IP id, sequence, stamp and checksums."""
    assert route.next_hop_mac is not None
    frame = bytearray(HEADERS + size)
    off = Ethernet(route.next_hop_mac, route.source_mac, ETH_P_IP).build_into(frame)
    ip = IPv4(
        socket.inet_aton(route.source),
        socket.inet_aton(route.destination),
        IPPROTO_ICMP,
        total_length=20 + 8 + size,
        ttl=ttl,
    )
    off += ip.build_into(frame, off)
    pattern = bytes(range(256)) * (size // 256 + 1)
    payload = bytes(lib.AIOXDP_ECHO_STAMP_LEN) + pattern[: size - lib.AIOXDP_ECHO_STAMP_LEN]
    Icmp.echo(ECHO_REQUEST, ident, 0).build_into(frame, off, payload)
    return bytes(frame)


def _idents_in_use() -> set[int]:
    """Echo ids the kernel's pings may be using right now.

    Ping sockets (ICMP datagram) show theirs as the local port in
    /proc/net/icmp; iputils on a raw socket uses its pid, in network order.
    """
    used = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/thread-self/net/icmp").read_text().splitlines()[1:]:
            local = line.split()[1]
            used.add(int(local.split(":")[1], 16))
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if (proc / "comm").read_text().strip() in ("ping", "ping4"):
                    pid = int(proc.name) & 0xFFFF
                    used |= {pid, int.from_bytes(pid.to_bytes(2, "little"), "big")}
    return used


def pick_ident(taken: Iterable[int] = ()) -> int:
    """A random echo id that no kernel ping socket nor rule of ours uses."""
    avoid = _idents_in_use() | set(taken)
    for _ in range(1000):
        ident = random.randrange(1, 0x10000)
        if ident not in avoid:
            return ident
    raise XDPError(errno.EADDRINUSE, "choosing an ICMP echo id", "every id tried is in use")


def validate_arguments(
    count: int, interval: float, timeout: float, size: int, ttl: int, window: int
) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise ValueError(f"count: must be an integer 1..{MAX_COUNT}, got {count!r}")
    if not isinstance(interval, (int, float)) or not math.isfinite(interval) or interval < 0:
        raise ValueError(
            f"interval: must be a finite number of seconds >= 0 (0 floods), got {interval!r}"
        )
    if not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout: must be a finite number of seconds > 0, got {timeout!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < lib.AIOXDP_ECHO_STAMP_LEN:
        raise ValueError(
            f"size: must be an integer >= {lib.AIOXDP_ECHO_STAMP_LEN} (room for the send time), got {size!r}"
        )
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= 255:
        raise ValueError(f"ttl: must be 1..255, got {ttl!r}")
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 4096:
        raise ValueError(f"window: must be 1..4096, got {window!r}")


class _EchoReplies(PacketProtocol):
    """Feeds a session with the replies the forwarder redirected for its id."""

    def __init__(self, pinger: Pinger) -> None:
        self._pinger = pinger
        self._results = ffi.new("struct aioxdp_echo_reply[]", 4096)

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self._pinger._ended(exc)

    def packets_received(self, batch: PacketBatch) -> None:
        n = len(batch)
        valid = batch.rx.parse_echo_replies(batch.start, n, self._pinger._ident, self._results)
        if self._pinger._session.replies(self._results, n, valid):
            self._pinger._freed()


class PingerBase:
    """What both ping drivers share: arguments, their checks, and routing."""

    def __init__(
        self,
        hosts: str | Sequence[str],
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
    ) -> None:
        validate_arguments(count, interval, timeout, size, ttl, window)
        self.hosts = [hosts] if isinstance(hosts, str) else list(hosts)
        if not self.hosts:
            raise ValueError("hosts: give at least one host")
        self.count, self.interval, self.timeout = count, float(interval), float(timeout)
        self.size, self.ttl, self.window = size, ttl, window
        self.interface, self.source = interface, source
        self._on_reply = on_reply
        self.routes: list[Route] = []
        self._init_driver()

    def _init_driver(self) -> None:
        """The driver's own state (a subclass's, set up after the arguments)."""

    _session: EchoSession

    async def results(self) -> list[PingResult]:
        """Wait for the run to end; one result per host."""
        raise NotImplementedError

    async def result(self) -> PingResult:
        """Wait for the run to end; the result of the (first) host."""
        return (await self.results())[0]

    def progress(self) -> tuple[int, int]:
        """Probes sent and replies received so far, over every host (cheap)."""
        targets = self._session.targets
        return sum(t.next_probe for t in targets), sum(t.received for t in targets)

    def snapshot(self) -> list[PingResult]:
        """Results so far, without waiting (for Ctrl-C summaries)."""
        return self._session.results()

    def _options(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "interval": self.interval,
            "timeout": self.timeout,
            "size": self.size,
            "ttl": self.ttl,
            "interface": self.interface,
            "source": self.source,
            "window": self.window,
            "on_reply": self._on_reply,
        }

    def _check_frame_fits(self, frame_size: int) -> None:
        """A probe and its reply each fit one UMEM frame: refuse a size that cannot."""
        limit = frame_size - RX_HEADROOM - HEADERS
        if self.size > limit:
            raise ValueError(
                f"size: {self.size} bytes do not fit one {frame_size}-byte UMEM frame "
                f"with their headers: at most {limit}"
            )

    async def _find_routes(self) -> list[Route]:
        """Routes to every host: one interface for all, and room for ``size``."""
        from aioxdp.route import route_to

        routes = [
            await route_to(h, interface=self.interface, source=self.source) for h in self.hosts
        ]
        ifnames = {r.ifname for r in routes}
        if len(ifnames) > 1:
            raise ValueError(
                f"hosts: they are reached through several interfaces {sorted(ifnames)}; ping each group apart"
            )
        route = routes[0]
        limit = route.mtu - 28
        if self.size > limit:
            raise ValueError(
                f"size: {self.size} bytes do not fit {route.ifname} (MTU {route.mtu}): at most {limit}"
            )
        return routes

    def _targets(self, ident: int) -> list[_Target]:
        timeout_ns = int(self.timeout * 1e9)
        return [
            _Target(h, r, echo_template(r, ident, self.size, self.ttl), self.count, timeout_ns)
            for h, r in zip(self.hosts, self.routes, strict=True)
        ]


class Pinger(PingerBase):
    """Pings ``hosts`` (one or several) with echo requests through AF_XDP.

    Use as ``async with Pinger(host) as p``: iterate it for replies as they
    come (``async for reply in p``) and ``await p.result()`` (or
    ``p.results()`` for several hosts). ``on_reply`` is called per reply.
    Leaving the block (or cancelling) stops at once and releases the rule
    and frames.
    """

    def _init_driver(self) -> None:
        self._queue: asyncio.Queue[PingReply | None] | None = None
        self._stack = contextlib.AsyncExitStack()
        self._task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._delegate: Any = None
        self._ident = 0
        self._session: EchoSession

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
        from aioxdp.route import resolve_neighbour

        routes = await self._find_routes()
        nic = await self._stack.enter_async_context(shared_interface(routes[0].ifname))
        self._check_frame_fits(nic.frame_size)
        self.routes = [await resolve_neighbour(r, nic) for r in routes]
        self._ident = pick_ident(r.icmp_id for r in nic.forwarder.rules if r.icmp_id is not None)
        self._session = EchoSession(
            self._targets(self._ident),
            self._ident,
            interval=self.interval,
            timeout=self.timeout,
            window=self.window,
        )
        if self._on_reply is not None:
            self._session.listeners.append(self._on_reply)
        rule = Rule("icmp", icmp_type=ECHO_REPLY, icmp_id=self._ident)
        transport, _ = await nic.create_packet_endpoint(lambda: _EchoReplies(self), rules=[rule])
        self._stack.callback(transport.close)
        self._nic = nic
        self._task = asyncio.get_running_loop().create_task(self._run())

    def __aiter__(self) -> AsyncIterator[PingReply]:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._session.listeners.append(self._queue.put_nowait)
        return self

    async def __anext__(self) -> PingReply:
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

    def _freed(self) -> None:
        # a flood refills its window straight from the receive callback
        if self.interval == 0 and self._task is not None and not self._task.done():
            self._pump()
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

    async def results(self) -> list[PingResult]:
        """Wait for the run to end; one result per host."""
        if self._task is None:
            raise XDPError(
                errno.EINVAL, "waiting for ping results", "use the Pinger in 'async with'"
            )
        await asyncio.shield(self._task)
        return self._session.results()


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
) -> PingResult:
    """Ping ``host`` through AF_XDP and return what came back.

    ``interval=0`` floods with a bounded window of probes in flight;
    ``timeout`` is per probe. Runs on asyncio, uvloop and (through anyio)
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
        on_reply=on_reply,
    ) as pinger:
        return await pinger.result()


async def multiping(hosts: Sequence[str], **kwargs: Any) -> list[PingResult]:
    """Ping several hosts at once over one XSK; one result per host, in order."""
    async with Pinger(hosts, **kwargs) as pinger:
        return await pinger.results()


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _running_under_trio() -> bool:
    try:
        import sniffio
    except ImportError:  # pragma: no cover - anyio depends on sniffio
        return False
    try:
        return sniffio.current_async_library() == "trio"
    except sniffio.AsyncLibraryNotFoundError:
        return False
