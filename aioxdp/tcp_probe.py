"""Sans-IO TCP SYN probes: what to send when, which segment answers, and
the verdict per (host, port).

:class:`TcpProbeSession` probes any number of targets (a route and a
port each) from one source port of ours. A target's probe ``i`` is due at
``start + i * interval``, and never while its previous probe waits
(tcping's rhythm: one probe in flight per target). A probe is answered by
a segment from the target's address and port to our source port whose
acknowledgement is our sequence number + 1:

    waiting  --SYN-ACK-->  open    (and a RST goes back, so no half-open state stays)
    waiting  --RST------>  closed
    waiting  --timeout-->  lost

It does no I/O: a driver sends what :meth:`due` and :meth:`take` return,
feeds it the frames its rule redirects, and sleeps until
:meth:`next_wakeup`. ``aioxdp.tcping`` drives it on either driver.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aioxdp.frames import tcp_segment
from aioxdp.protocols.errors import BadFieldError, DecodeError
from aioxdp.protocols.ethernet import ETH_P_IP, ETH_P_IPV6, Ethernet
from aioxdp.protocols.ipv4 import IPv4
from aioxdp.protocols.ipv6 import IPv6, upper_layer
from aioxdp.protocols.tcp import ACK, IPPROTO_TCP, RST, SYN, Tcp, TcpOptions
from aioxdp.route import ResolvedRoute, family_of, pack_address

__all__ = ["ProbeTarget", "TcpProbeReply", "TcpProbeSession"]


class TcpProbeReply:
    """What came back for one probe."""

    __slots__ = ("open", "rtt", "seq")

    def __init__(self, seq: int, open_: bool, rtt: float) -> None:
        self.seq = seq
        self.open = open_
        self.rtt = rtt

    def __repr__(self) -> str:
        return f"TcpProbeReply(seq={self.seq}, open={self.open}, rtt={self.rtt:.6f})"


@dataclass(eq=False)
class ProbeTarget:
    """One (host, port) and what its probes found."""

    host: str
    route: ResolvedRoute
    port: int
    sent: int = 0
    rtts: list[float] = field(default_factory=list)
    verdicts: list[bool] = field(default_factory=list)  # True: SYN-ACK, False: RST
    # the probe in flight: its sequence number and when it left, or None
    isn: int | None = None
    sent_ns: int = 0

    @property
    def open(self) -> bool | None:
        """True if any probe found it open, False if all answers were RST, None if silent."""
        return None if not self.verdicts else any(self.verdicts)


class TcpProbeSession:
    """The sans-IO state of TCP probes to many targets; see the module docstring.

    At most ``max_in_flight`` probes wait for answers at once (the answers
    must fit the socket's rings); every call is O(probes sent or answered),
    never O(targets).
    """

    def __init__(
        self,
        targets: Sequence[ProbeTarget],
        source_port: int,
        *,
        count: int,
        interval: float,
        timeout: float,
        max_in_flight: int = 1024,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight: must be >= 1, got {max_in_flight!r}")
        self.targets = list(targets)
        self.source_port = source_port
        self.count = count
        self.interval_ns = int(interval * 1e9)
        self.timeout_ns = int(timeout * 1e9)
        self.max_in_flight = max_in_flight
        self.start_ns = 0
        self.end_ns = 0
        self.stray = 0  # well-formed segments that answer no probe in flight
        self.malformed: dict[str, int] = {}
        self.listeners: list[Callable[[ProbeTarget, TcpProbeReply], None]] = []
        self._by_peer = {
            (
                pack_address(t.route.destination, 16 if family_of(t.route.destination) == 6 else 4),
                t.port,
            ): t
            for t in self.targets
        }
        self._options: dict[int, TcpOptions] = {}  # by MTU
        self._ready: collections.deque[ProbeTarget] = collections.deque(self.targets)
        self._flying: collections.deque[tuple[int, ProbeTarget, int]] = collections.deque()
        self._in_flight = 0

    def start(self, now_ns: int) -> None:
        self.start_ns = now_ns

    def _due_at(self, t: ProbeTarget) -> int:
        return self.start_ns + t.sent * self.interval_ns

    def _syn_options(self, mtu: int, ipv6: bool) -> TcpOptions:
        """The MSS the path's MTU leaves after the IP (20 or 40) and TCP headers."""
        headers = 60 if ipv6 else 40
        options = self._options.get(mtu - headers)
        if options is None:
            options = self._options[mtu - headers] = TcpOptions(
                mss=min(mtu - headers, 65495), wscale=7, sack_permitted=True
            )
        return options

    def due(self, now_ns: int) -> list[bytes]:
        """The SYNs to send now: targets in turn, within the flight."""
        self.sweep(now_ns)
        frames = []
        ready = self._ready
        while ready and self._in_flight < self.max_in_flight:
            t = ready[0]
            if self._due_at(t) > now_ns:
                break  # the others come after it
            ready.popleft()
            t.isn = random.getrandbits(32)
            t.sent_ns = now_ns
            t.sent += 1
            self._in_flight += 1
            self._flying.append((now_ns + self.timeout_ns, t, t.sent))
            options = self._syn_options(t.route.mtu, family_of(t.route.destination) == 6)
            frames.append(tcp_segment(t.route, self.source_port, t.port, t.isn, 0, SYN, options))
        return frames

    def _landed(self, t: ProbeTarget) -> None:
        """``t``'s probe is answered or lost: the flight shrinks, its next may go."""
        t.isn = None
        self._in_flight -= 1
        if t.sent < self.count:
            self._ready.append(t)

    def sweep(self, now_ns: int) -> None:
        """Probes past their timeout are lost."""
        flying = self._flying
        while flying and flying[0][0] <= now_ns:
            _, t, probe = flying.popleft()
            if t.isn is not None and t.sent == probe:
                self._landed(t)

    def take(self, frame: bytes | bytearray | memoryview, now_ns: int) -> list[bytes]:
        """One received frame; returns what to send because of it (a RST for a
        SYN-ACK). Malformed frames are counted by reason, strays counted."""
        try:
            eth = Ethernet.parse(frame)
            if eth.ethertype == ETH_P_IPV6:
                ip6 = IPv6.parse(frame, eth.header_len)
                upper = upper_layer(frame, eth.header_len)
                if upper.proto != IPPROTO_TCP or upper.fragment:
                    raise BadFieldError("ipv6", "not one whole TCP segment")
                src, dst, start, end = ip6.src, ip6.dst, upper.offset, upper.end
            elif eth.ethertype == ETH_P_IP:
                ip = IPv4.parse(frame, eth.header_len)
                if ip.proto != IPPROTO_TCP or ip.fragment_offset or ip.more_fragments:
                    raise BadFieldError("ipv4", "not one whole TCP segment")
                src, dst = ip.src, ip.dst
                start, end = eth.header_len + ip.header_len, eth.header_len + ip.total_length
            else:
                raise BadFieldError("ipv4", f"EtherType {eth.ethertype:#06x} is not IP")
            tcp = Tcp.parse(frame, start, end, src=src, dst=dst)
        except DecodeError as exc:
            self.malformed[exc.reason] = self.malformed.get(exc.reason, 0) + 1
            return []
        t = self._by_peer.get((src, tcp.sport))
        if (
            t is None
            or tcp.dport != self.source_port
            or t.isn is None
            or tcp.ack != (t.isn + 1) & 0xFFFFFFFF
            or not tcp.flags & (RST | ACK)
        ):
            self.stray += 1  # no answer to a probe in flight
            return []
        isn = t.isn
        self._landed(t)
        is_open = bool(tcp.flags & SYN and tcp.flags & ACK)
        rtt = (now_ns - t.sent_ns) / 1e9
        t.rtts.append(rtt)
        t.verdicts.append(is_open)
        reply = TcpProbeReply(t.sent, is_open, rtt)
        for listener in self.listeners:
            listener(t, reply)
        if not is_open:
            return []
        # we never meant to connect: the peer must forget the half-open connection
        rst = (isn + 1) & 0xFFFFFFFF
        return [tcp_segment(t.route, self.source_port, t.port, rst, 0, RST, TcpOptions())]

    def finished(self, now_ns: int) -> bool:
        self.sweep(now_ns)
        return not self._in_flight and not self._ready

    def next_wakeup(self, now_ns: int) -> int:
        """When a probe falls due or times out (``now_ns`` if one is due already)."""
        wake: int | None = None
        if self._flying:
            wake = self._flying[0][0]
        if self._ready and self._in_flight < self.max_in_flight:
            at = self._due_at(self._ready[0])
            wake = at if wake is None else min(wake, at)
        return now_ns if wake is None else max(wake, now_ns)
