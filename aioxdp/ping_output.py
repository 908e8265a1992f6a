"""Ping's output the way iputils prints it: reply lines, the summary, and
the dots of a flood. Used by the command line and the demo."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from aioxdp.results import PingReply, PingResult

__all__ = ["FloodDots", "format_ms", "reply_line", "summary_lines"]


def format_ms(seconds: float) -> str:
    """A round-trip time the way iputils prints it (3 significant decimals, fewer when large)."""
    us = seconds * 1e6
    if us >= 100_000 - 50:
        return f"{us / 1000:.0f}"
    if us >= 10_000 - 5:
        return f"{us / 1000:.1f}"
    if us >= 1000:
        return f"{us / 1000:.2f}"
    return f"{us / 1000:.3f}"


def reply_line(r: PingReply) -> str:
    return (
        f"{r.size} bytes from {r.source}: icmp_seq={r.seq} ttl={r.ttl} time={format_ms(r.rtt)} ms"
    )


def summary_lines(result: PingResult) -> list[str]:
    extras = ""
    if result.duplicates:
        extras += f"+{result.duplicates} duplicates, "
    lines = [
        "",
        f"--- {result.host} ping statistics ---",
        f"{result.sent} packets transmitted, {result.received} received, {extras}"
        f"{result.loss * 100:g}% packet loss, time {result.elapsed * 1000:.0f}ms",
    ]
    if result.received:
        lines.append(
            "rtt min/avg/max/mdev = "
            + "/".join(f"{v * 1000:.3f}" for v in (result.min, result.avg, result.max, result.mdev))
            + " ms"
        )
    return lines


class FloodDots:
    """ping -f's display: a dot per request, a backspace per reply."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.shown_sent = 0
        self.shown_received = 0

    def update(self, sent: int, received: int) -> None:
        dots = sent - self.shown_sent
        backs = min(received - self.shown_received, dots + (self.shown_sent - self.shown_received))
        self.out.write("." * dots + "\b" * max(backs, 0))
        self.out.flush()
        self.shown_sent += dots
        self.shown_received += max(backs, 0)
