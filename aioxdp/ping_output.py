"""Ping's output the way iputils prints it (ping/ping_common.c, 20221126):
reply and error lines, the summary, and the dots of a flood. Used by the
command line and the demo."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from aioxdp.results import PingError, PingReply, PingResult

__all__ = ["FloodDots", "error_line", "format_ms", "reply_line", "summary_lines", "timed"]

# iputils times a probe only when its data holds a struct timeval (16 bytes)
TIMEVAL_BYTES = 16


def timed(size: int) -> bool:
    """Whether ping prints times for requests of ``size`` data bytes."""
    return size >= TIMEVAL_BYTES


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


def reply_line(r: PingReply, *, timing: bool = True) -> str:
    line = f"{r.size} bytes from {r.source}: icmp_seq={r.seq} ttl={r.ttl}"
    return f"{line} time={format_ms(r.rtt)} ms" if timing else line


def error_line(e: PingError) -> str:
    return f"From {e.source} icmp_seq={e.seq} {e.text}"


def _ms3(us: int) -> str:
    return f"{us // 1000}.{us % 1000:03d}"


def summary_lines(
    result: PingResult, *, timing: bool = True, interval: float = 1.0, flood: bool = False
) -> list[str]:
    """The lines ping prints at the end: a blank one (or the end of a
    flood's dots), the title, the counts, then one line of figures (empty
    when there are none)."""
    counts = f"{result.sent} packets transmitted, {result.received} received"
    if result.duplicates:
        counts += f", +{result.duplicates} duplicates"
    errors = sum(result.errors.values())
    if errors:
        counts += f", +{errors} errors"
    if result.sent:
        # iputils divides in float and prints with %g
        counts += f", {result.loss * 100:g}% packet loss, time {round(result.span * 1000)}ms"
    figures = []
    rtts_us = [int(r * 1e6) for r in result.rtts]
    if result.received and timing:
        figures.append(
            "rtt min/avg/max/mdev = "
            + "/".join(f"{v * 1000:.3f}" for v in (result.min, result.avg, result.max, result.mdev))
            + " ms"
        )
    if result.pipe > 1:
        figures.append(f"pipe {result.pipe}")
    if result.received and (interval == 0 or flood) and result.sent > 1:
        ipg = int(result.span * 1e6) // (result.sent - 1)
        ewma = 0  # iputils' integer moving average, in 1/8 us
        for us in rtts_us if timing else ():
            ewma = us * 8 if not ewma else ewma + us - ewma // 8
        figures.append(f"ipg/ewma {_ms3(ipg)}/{_ms3(ewma // 8)} ms")
    return ["", f"--- {result.host} ping statistics ---", counts, ", ".join(figures)]


class FloodDots:
    """ping -f's display: a dot per request, erased ("\\b \\b") per reply,
    an E per error."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.shown_sent = 0
        self.shown_received = 0
        self.shown_errors = 0

    def update(self, sent: int, received: int, errors: int = 0) -> None:
        dots = max(sent - self.shown_sent, 0)
        erased = max(received - self.shown_received, 0)
        failed = max(errors - self.shown_errors, 0)
        # as ping interleaves them: a dot and its erasure (or its E) in turn,
        # so the line never grows past the requests still unanswered
        pairs = min(dots, erased)
        failed_pairs = min(dots - pairs, failed)
        text = ".\b \b" * pairs + ".\bE" * failed_pairs + "." * (dots - pairs - failed_pairs)
        text += "\b \b" * (erased - pairs) + "\bE" * (failed - failed_pairs)
        if text:
            self.out.write(text)
            self.out.flush()
        self.shown_sent = max(sent, self.shown_sent)
        self.shown_received = max(received, self.shown_received)
        self.shown_errors = max(errors, self.shown_errors)

    def settle(self, sent: int) -> None:
        """Only ``sent`` requests count (the rest were in flight at an
        interrupt): their dots go too."""
        extra = self.shown_sent - max(sent, self.shown_received)
        if extra > 0:
            self.out.write("\b \b" * extra)
            self.out.flush()
            self.shown_sent -= extra
