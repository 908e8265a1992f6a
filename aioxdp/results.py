"""What a ping run reports: one PingResult per host, one PingReply per answer."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

__all__ = [
    "ICMP6_ERROR_KINDS",
    "ICMP_ERROR_KINDS",
    "PingError",
    "PingReply",
    "PingResult",
    "PingResults",
    "icmp_error_kind",
]

# (type, code) of the ICMP errors a probe can meet: the kind a result counts
# them by, and the words iputils' ping prints for them (RFC 792, 1812)
ICMP_ERROR_KINDS: dict[tuple[int, int], tuple[str, str]] = {
    (3, 0): ("net_unreachable", "Destination Net Unreachable"),
    (3, 1): ("host_unreachable", "Destination Host Unreachable"),
    (3, 2): ("protocol_unreachable", "Destination Protocol Unreachable"),
    (3, 3): ("port_unreachable", "Destination Port Unreachable"),
    (3, 4): ("fragmentation_needed", "Frag needed and DF set (mtu = {info})"),
    (3, 5): ("source_route_failed", "Source Route Failed"),
    (3, 6): ("net_unknown", "Destination Net Unknown"),
    (3, 7): ("host_unknown", "Destination Host Unknown"),
    (3, 8): ("source_host_isolated", "Source Host Isolated"),
    (3, 9): ("net_prohibited", "Destination Net Prohibited"),
    (3, 10): ("host_prohibited", "Destination Host Prohibited"),
    (3, 11): ("net_unreachable_for_tos", "Destination Net Unreachable for Type of Service"),
    (3, 12): ("host_unreachable_for_tos", "Destination Host Unreachable for Type of Service"),
    (3, 13): ("admin_prohibited", "Packet filtered"),
    (3, 14): ("precedence_violation", "Precedence Violation"),
    (3, 15): ("precedence_cutoff", "Precedence Cutoff"),
    (11, 0): ("ttl_exceeded", "Time to live exceeded"),
    (11, 1): ("reassembly_time_exceeded", "Frag reassembly time exceeded"),
}
# the same for ICMPv6 errors (RFC 4443), in iputils' words for them
ICMP6_ERROR_KINDS: dict[tuple[int, int], tuple[str, str]] = {
    (1, 0): ("no_route", "Destination unreachable: No route"),
    (1, 1): ("admin_prohibited", "Destination unreachable: Administratively prohibited"),
    (1, 2): ("beyond_scope", "Destination unreachable: Beyond scope of source address"),
    (1, 3): ("address_unreachable", "Destination unreachable: Address unreachable"),
    (1, 4): ("port_unreachable", "Destination unreachable: Port unreachable"),
    (2, 0): ("packet_too_big", "Packet too big: mtu={info}"),
    (3, 0): ("ttl_exceeded", "Time exceeded: Hop limit"),
    (3, 1): ("reassembly_time_exceeded", "Time exceeded: Defragmentation failure"),
    (4, 0): ("parameter_problem", "Parameter problem: Wrong header field at {info}"),
    (4, 1): ("parameter_problem", "Parameter problem: Unknown header at {info}"),
    (4, 2): ("parameter_problem", "Parameter problem: Unknown option at {info}"),
}


def icmp_error_kind(icmp_type: int, code: int, family: int = 4) -> tuple[str, str]:
    """The kind and iputils' words for an ICMP error, or an ICMPv6 one with
    ``family=6`` (``{info}`` in the words stands for the error's MTU or
    pointer)."""
    if family == 6:
        return ICMP6_ERROR_KINDS.get(
            (icmp_type, code),
            (
                f"icmpv6_error_{icmp_type}_{code}",
                f"Unknown ICMPv6 error: type {icmp_type}, code {code}",
            ),
        )
    known = ICMP_ERROR_KINDS.get((icmp_type, code))
    if known is not None:
        return known
    if icmp_type == 3:
        return f"unreachable_code_{code}", f"Dest Unreachable, Bad Code: {code}"
    if icmp_type == 11:
        return f"time_exceeded_code_{code}", f"Time exceeded, Bad Code: {code}"
    return "parameter_problem", "Parameter problem: pointer = {info}"


@dataclass(frozen=True, slots=True)
class PingError:
    """An ICMP error that answered one of our echo requests (matched to it by
    the request it quotes): the probe counts as lost, and as an error."""

    seq: int  # the ICMP sequence number of the request it answers
    kind: str  # e.g. "net_unreachable", "admin_prohibited", "ttl_exceeded"
    icmp_type: int
    icmp_code: int
    source: str  # who sent the error: a router on the way, or the host
    destination: str  # where the request was going
    info: int = 0  # the next-hop MTU of "fragmentation_needed", the pointer of a parameter problem
    family: int = 4  # 6: an ICMPv6 error

    @property
    def text(self) -> str:
        """What iputils' ping prints for it."""
        kind = icmp_error_kind(self.icmp_type, self.icmp_code, self.family)
        return kind[1].format(info=self.info)


@dataclass(frozen=True, slots=True)
class PingReply:
    """One echo reply."""

    seq: int  # ICMP sequence number
    rtt: float  # round-trip time, seconds
    ttl: int  # TTL of the reply's IP header
    size: int  # ICMP bytes (header + data), as ping prints them
    source: str  # who answered


@dataclass(slots=True)
class PingResult:
    """What a ping run found, for one host. Times are in seconds.

    A plain record, not frozen: a run's results are made as they are read,
    each read a new object (so changing one changes nothing else), and a
    frozen dataclass's ``__init__`` costs 3 us more per host (one sweep
    reads 65 000)."""

    host: str
    address: str
    sent: int
    received: int
    # left out of repr: asyncio's runner reprs a finished main task's result
    # on the way out, and a flood's list is 10**5 floats long
    rtts: list[float] = field(repr=False)
    duplicates: int = 0  # extra replies to an answered probe
    late: int = 0  # replies after their probe's timeout
    foreign: int = 0  # our echo id, but an unknown source or sequence
    # frames that failed the checks, by reason (the run's: one dict shared by its results)
    malformed: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    open: bool | None = None  # tcp_ping only: SYN-ACK (True), RST (False), silence (None)
    error: str | None = None  # why the run ended early, or the host was not probed at all
    # probes answered by an ICMP error instead of a reply, by kind (see PingError)
    errors: dict[str, int] = field(default_factory=dict)
    span: float = 0.0  # from the run's first probe sent to its last (ping's "time")
    # the most probes sent to this host when one of them was answered (ping's "pipe")
    pipe: int = 0
    # the kernel's drops on the interface's sockets during the run (XDP_STATISTICS
    # deltas, nonzero ones only; on a shared interface, its other users' too;
    # one dict shared by every result of the run)
    kernel_drops: dict[str, int] = field(default_factory=dict)
    # per reply, in arrival order
    _seqs: Sequence[int] = field(default=(), repr=False)
    _ttls: Sequence[int] = field(default=(), repr=False)
    _sizes: Sequence[int] = field(default=(), repr=False)

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
            "errors": dict(self.errors),
            "rtt_ms": {
                "min": ms(self.min),
                "avg": ms(self.avg),
                "max": ms(self.max),
                "mdev": ms(self.mdev),
            },
        }


class PingResults(Sequence[PingResult]):
    """A run's results, one per host in host order, each made when it is
    read: a run over 65 000 hosts keeps its figures in the compact arrays
    it counted them in, not in 65 000 objects. Indexing, slicing, ``len``
    and iteration work as on a list (a slice is a list); each read makes a
    new, equal PingResult. Compares equal to a list of the same results."""

    __slots__ = ("_make", "_n")

    def __init__(self, n: int, make: Callable[[int], PingResult]) -> None:
        if n < 0:
            raise ValueError(f"n: a count of results, got {n!r}")
        self._n = n
        self._make = make

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> PingResult: ...

    @overload
    def __getitem__(self, i: slice) -> list[PingResult]: ...

    def __getitem__(self, i: int | slice) -> PingResult | list[PingResult]:
        if isinstance(i, slice):
            return [self._make(k) for k in range(*i.indices(self._n))]
        if not isinstance(i, int):
            raise TypeError(f"results: indices are int or slice, not {type(i).__name__}")
        if not -self._n <= i < self._n:
            raise IndexError(f"results: index {i} out of range for {self._n} hosts")
        return self._make(i % self._n)

    def __iter__(self) -> Iterator[PingResult]:
        make = self._make
        for i in range(self._n):
            yield make(i)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PingResults | list | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # (as a list's)

    def __repr__(self) -> str:
        return f"<PingResults of {self._n} hosts>"
