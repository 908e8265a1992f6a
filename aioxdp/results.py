"""What a ping run reports: one PingResult per host, one PingReply per answer."""

from __future__ import annotations

import array
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PingReply", "PingResult"]


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
    # frames that failed the checks, by reason (the run's: one dict shared by its results)
    malformed: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    open: bool | None = None  # tcp_ping only: SYN-ACK (True), RST (False), silence (None)
    error: str | None = None  # why the run ended early, or the host was not probed at all
    # the kernel's drops on the interface's sockets during the run (XDP_STATISTICS
    # deltas, nonzero ones only; on a shared interface, its other users' too;
    # one dict shared by every result of the run)
    kernel_drops: dict[str, int] = field(default_factory=dict)
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
