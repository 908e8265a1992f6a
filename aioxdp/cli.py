"""The ``aioxdp`` command: ``ping``, ``fping``, ``tcping``, ``doctor``, ``demo``.

``aioxdp ping`` mirrors iputils' ping (20221126): the same flags, reply and
error lines, summary and exit codes (0 a reply came; 1 none came, or a
flag's value is invalid; 2 a failure to start). Errors are one line on
stderr that says what to do, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import re
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from aioxdp import __version__
from aioxdp.errors import XDPError
from aioxdp.ping_output import (
    FloodDots,
    error_line,
    format_ms,
    reply_line,
    summary_lines,
    timed,
)

if TYPE_CHECKING:
    from aioxdp.results import PingError, PingReply
    from aioxdp.route import Route

EXIT_OK = 0
EXIT_NO_REPLY = 1
EXIT_ERROR = 2
DEFAULT_COUNT = 4  # tcping's; ping without -c runs until interrupted, as iputils does
UNTIL_INTERRUPTED = 2_000_000  # aioxdp.echo.MAX_COUNT: 23 days at ping's default pace
LINGER = 10.0  # seconds ping waits for a reply (iputils' MAXWAIT, also what -W 0 means)


async def run_ping(args: argparse.Namespace, out: TextIO) -> int:
    from aioxdp.ping import Pinger
    from aioxdp.route import UnresolvedNeighbourError

    quiet, flood = args.quiet, args.flood
    timing = timed(args.size)
    text = not args.json
    count = args.count if args.count is not None else UNTIL_INTERRUPTED

    def on_reply(reply: PingReply) -> None:
        if not quiet and not flood:
            print(reply_line(reply, timing=timing), file=out, flush=True)

    def on_error(error: PingError) -> None:
        if not quiet and not flood:
            print(error_line(error), file=out, flush=True)

    pinger = Pinger(
        args.host,
        count=count,
        interval=args.interval,
        timeout=args.timeout or LINGER,
        size=args.size,
        ttl=args.ttl,
        interface=args.interface,
        window=args.preload or 1,
        # a flood prints no reply line: without a listener its replies stay in C
        on_reply=on_reply if text and not quiet and not flood else None,
        on_error=on_error if text else None,
        family=args.family,
    )
    loop = asyncio.get_running_loop()
    try:
        await pinger.__aenter__()
    except UnresolvedNeighbourError as exc:
        # the kernel fails such probes with "Destination Host Unreachable"
        # from its own address, and so does ping; aioxdp asks ARP before
        # its first probe, so it says the same of the probes that could not go
        return await _unresolved(args, exc, count, out)
    try:
        if text:
            print(_ping_header(args, pinger.routes[0]), file=out, flush=True)
        run = asyncio.ensure_future(pinger.result())
        loop.add_signal_handler(signal.SIGINT, run.cancel)
        dots = FloodDots(out) if flood and not quiet and text else None
        try:
            while not run.done():
                await asyncio.wait({run}, timeout=0.05)
                if dots is not None:
                    dots.update(*pinger.progress())
            result = run.result()
        except asyncio.CancelledError:
            result = pinger.snapshot()[0]  # Ctrl-C: report what we have
        finally:
            loop.remove_signal_handler(signal.SIGINT)
        if dots is not None:
            dots.update(result.sent, result.received, sum(result.errors.values()))
            dots.settle(result.sent)
    finally:
        await pinger.__aexit__(None, None, None)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2), file=out)
    else:
        for line in summary_lines(result, timing=timing, interval=args.interval, flood=flood):
            print(line, file=out)
    return EXIT_OK if result.received else EXIT_NO_REPLY


def _ping_header(args: argparse.Namespace, route: Route) -> str:
    """iputils' first line: its IPv6 form has no space before the address and
    counts data bytes only."""
    source = f"from {route.source} {args.interface}: " if args.interface else ""
    if ":" in route.destination:
        return f"PING {args.host}({route.destination}) {source}{args.size} data bytes"
    return f"PING {args.host} ({route.destination}) {source}{args.size}({args.size + 28}) bytes of data."


async def _unresolved(args: argparse.Namespace, exc: Exception, count: int, out: TextIO) -> int:
    """ping to a neighbour that never answers ARP: one "Destination Host
    Unreachable" from our own address per probe due, as the kernel reports them."""
    from aioxdp.results import PingResult
    from aioxdp.route import route_to

    route = await route_to(args.host, interface=args.interface, family=args.family)
    ipv6 = ":" in route.destination
    words = (
        "Destination unreachable: Address unreachable" if ipv6 else "Destination Host Unreachable"
    )
    if args.json:
        print(json.dumps({"host": args.host, "error": str(exc)}, indent=2), file=out)
        return EXIT_NO_REPLY
    print(_ping_header(args, route), file=out, flush=True)
    sent = 0
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGINT, task.cancel)
    try:
        while sent < count:
            sent += 1
            if not args.quiet:
                print(f"From {route.source} icmp_seq={sent} {words}", file=out, flush=True)
            if sent < count:
                await asyncio.sleep(args.interval)
    except asyncio.CancelledError:
        pass
    finally:
        if task is not None:
            loop.remove_signal_handler(signal.SIGINT)
    span = (sent - 1) * args.interval if sent else 0.0
    # iputils counts these probes as in flight together ("pipe N") for IPv4,
    # whose failures the kernel reports late; for IPv6 it reports each one
    pipe = 1 if ipv6 else sent
    result = PingResult(
        args.host,
        route.destination,
        sent,
        0,
        [],
        errors={"address_unreachable" if ipv6 else "host_unreachable": sent},
        span=span,
        pipe=pipe,
    )
    for line in summary_lines(result, interval=args.interval, flood=args.flood):
        print(line, file=out)
    return EXIT_NO_REPLY


async def run_tcping(args: argparse.Namespace, out: TextIO) -> int:
    from aioxdp.tcping import TcpProbeReply, tcp_ping

    def on_reply(reply: TcpProbeReply) -> None:
        if not args.quiet and not args.json:  # --json: stdout is one JSON document
            state = "open (SYN-ACK)" if reply.open else "closed (RST)"
            print(
                f"from {args.host}:{args.port}: seq={reply.seq} {state} time={format_ms(reply.rtt)} ms",
                file=out,
                flush=True,
            )

    from aioxdp.route import route_to

    # the route first: a host that cannot be probed is an error before any header
    await route_to(args.host, interface=args.interface)
    if not args.json:
        print(
            f"TCPING {args.host} port {args.port}: SYN probes through AF_XDP", file=out, flush=True
        )
    result = await tcp_ping(
        args.host,
        args.port,
        count=args.count,
        interval=args.interval,
        timeout=args.timeout,
        interface=args.interface,
        on_reply=on_reply,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2), file=out)
    else:
        lines = summary_lines(result)
        lines[1] = f"--- {args.host}:{args.port} tcping statistics ---"
        state = {True: "open", False: "closed", None: "silent (filtered or down)"}[result.open]
        lines.insert(3, f"port {args.port} is {state}")
        for line in lines:
            print(line, file=out)
    return EXIT_OK if result.received else EXIT_NO_REPLY


def _fping(args: argparse.Namespace) -> int:
    from aioxdp.fping import run_fping

    return _run_async(run_fping(args, sys.stdout, sys.stderr), args.loop)


def _tcping(args: argparse.Namespace) -> int:
    return _run_async(run_tcping(args, sys.stdout), args.loop)


def _ping(args: argparse.Namespace) -> int:
    return _run_async(run_ping(args, sys.stdout), args.loop)


def _doctor(args: argparse.Namespace) -> int:
    from aioxdp.doctor import run_checks

    checks = run_checks(args.interface)
    for check in checks:
        print(check.line())
    failed = [c.name for c in checks if c.status == "fail"]
    print(
        "aioxdp can run here"
        if not failed
        else f"aioxdp cannot run here yet: fix {', '.join(failed)}"
    )
    return EXIT_OK if not failed else EXIT_NO_REPLY


def _demo(args: argparse.Namespace) -> int:
    from aioxdp.demo import run_demo

    return run_demo(out=sys.stdout, loop=args.loop)


def _run_async(coro: Coroutine[Any, Any, int], loop_name: str) -> int:
    if loop_name == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def _seconds(text: str) -> float:
    """A flag's value in seconds: finite, not negative."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0, got {text!r}")
    return value


def _at_least(low: int, high: int) -> Callable[[str], int]:
    """An integer flag in low..high, refused the way iputils words it."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid argument: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"invalid argument: {text!r}: out of range: {low} <= value <= {high}"
            )
        return value

    return parse


def _linger(text: str | None) -> float | None:
    """ping's -W: seconds, 0 for the default; anything else is an error (exit 2, as iputils)."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"-W: bad linger time: {text}")
    return value


def _version_text() -> str:
    """aioxdp's version and the libbpf and libxdp it runs on (vendored or system)."""
    from aioxdp._libs import linked_libraries

    lines = [f"aioxdp {__version__}"]
    lines += [library.describe() for library in linked_libraries().values()]
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, exit status 2 (``usage_status``), as for
    every other error; fping's subcommand uses fping's 3."""

    usage_status = EXIT_ERROR

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see: {self.prog} --help)", file=sys.stderr)
        sys.exit(self.usage_status)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="aioxdp",
        description="asyncio packet I/O on AF_XDP sockets",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # --version keeps its lines
    )
    parser.add_argument("--version", action="version", version=_version_text())
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log what libbpf and aioxdp do"
    )
    parser.add_argument(
        "--loop", choices=["asyncio", "uvloop"], default="asyncio", help="event loop to run on"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def probe_flags(
        cmd: argparse.ArgumentParser, interval: float | None, interval_help: str
    ) -> None:
        """The flags ping and tcping share, spelled as iputils spells them."""
        cmd.add_argument("-i", dest="interval", type=_seconds, default=interval, help=interval_help)
        cmd.add_argument("-I", dest="interface", default=None, help="send through this interface")
        cmd.add_argument("-q", dest="quiet", action="store_true", help="quiet: only the summary")
        cmd.add_argument("--json", action="store_true", help="print the result as JSON")
        cmd.add_argument("host")

    p = sub.add_parser("ping", help="send ICMP echo requests through AF_XDP (iputils-compatible)")
    p.usage_status = EXIT_NO_REPLY  # iputils exits 1 on an invalid argument
    p.add_argument(
        "-c",
        dest="count",
        type=_at_least(1, 2_000_000),
        default=None,
        help="requests to send (default: until interrupted)",
    )
    p.add_argument(
        "-W",
        dest="timeout",
        default=None,
        help=f"seconds to wait for each reply (default and 0: {LINGER:g})",
    )
    probe_flags(p, None, "seconds between requests (default 1; 0 with -f)")
    p.add_argument(
        "-s", dest="size", type=_at_least(0, 65507), default=56, help="ICMP data bytes (default 56)"
    )
    p.add_argument(
        "-t", dest="ttl", type=_at_least(0, 255), default=64, help="IP time to live (default 64)"
    )
    p.add_argument(
        "-l",
        dest="preload",
        type=_at_least(1, 4096),
        default=None,
        help="requests in flight before waiting for replies (default 1)",
    )
    p.add_argument(
        "-f",
        dest="flood",
        action="store_true",
        help="flood: the next request as soon as a reply comes, dots for progress",
    )
    family = p.add_mutually_exclusive_group()
    family.add_argument(
        "-4", dest="family", action="store_const", const=4, help="IPv4 only (names, and literals)"
    )
    family.add_argument(
        "-6", dest="family", action="store_const", const=6, help="IPv6 only (names, and literals)"
    )
    p.set_defaults(func=_ping, family=None)

    t = sub.add_parser("tcping", help="probe a TCP port with SYNs through AF_XDP")
    t.add_argument(
        "-c",
        dest="count",
        type=_at_least(1, 2_000_000),
        default=DEFAULT_COUNT,
        help=f"probes to send (default {DEFAULT_COUNT})",
    )
    t.add_argument(
        "-W", dest="timeout", type=_seconds, default=1.0, help="seconds to wait for each answer"
    )
    probe_flags(t, 1.0, "seconds between probes")
    t.add_argument("port", type=_at_least(1, 65535))
    t.set_defaults(func=_tcping)

    f = sub.add_parser(
        "fping", help="ping many hosts at once, with fping's flags, output and exit codes"
    )
    f.usage_status = 1  # what fping 5 exits with on a usage error
    f.add_argument(
        "-c", dest="count", type=int, default=None, help="probes per target, with per-probe lines"
    )
    f.add_argument(
        "-C", dest="vcount", type=int, default=None, help="like -c, summary lists every time"
    )
    f.add_argument(
        "-p",
        dest="period",
        type=float,
        default=1000.0,
        help="ms between probes to one target (1000)",
    )
    f.add_argument(
        "-i", dest="interval", type=float, default=10.0, help="ms between any two probes (10)"
    )
    f.add_argument(
        "-t", dest="timeout", type=float, default=500.0, help="ms to wait for a reply (500)"
    )
    f.add_argument("-r", dest="retries", type=int, default=3, help="retries without -c (3)")
    f.add_argument(
        "-g", dest="generate", action="store_true", help="targets from a prefix, or a start and end"
    )
    f.add_argument("-f", dest="file", default=None, help="targets from a file ('-': stdin)")
    f.add_argument("-q", dest="quiet", action="store_true", help="no per-probe lines")
    f.add_argument("-s", dest="stats", action="store_true", help="statistics at the end")
    f.add_argument("-a", dest="alive_only", action="store_true", help="show targets that answered")
    f.add_argument(
        "-u", dest="unreachable_only", action="store_true", help="show targets that did not"
    )
    f.add_argument("-e", dest="elapsed", action="store_true", help="show the time of the reply")
    fping_family = f.add_mutually_exclusive_group()
    fping_family.add_argument(
        "-4", dest="family", action="store_const", const=4, help="IPv4 targets only"
    )
    fping_family.add_argument(
        "-6", dest="family", action="store_const", const=6, help="IPv6 targets only"
    )
    f.add_argument("-b", dest="size", type=int, default=56, help="ICMP data bytes (56)")
    f.add_argument("-I", dest="interface", default=None, help="send through this interface")
    f.add_argument(
        "--max-targets", type=int, default=65536, help="refuse more targets than this (65536)"
    )
    f.add_argument("hosts", nargs="*")
    f.set_defaults(func=_fping)

    d = sub.add_parser(
        "doctor",
        help="check this machine for what aioxdp needs, and say how to fix what is missing",
    )
    d.add_argument(
        "-I", dest="interface", default=None, help="also check XDP modes on this interface"
    )
    d.set_defaults(func=_doctor)

    demo = sub.add_parser("demo", help="make a lab of two namespaces and ping across it")
    demo.set_defaults(func=_demo)
    return parser


def joined_negative_values(argv: Sequence[str]) -> list[str]:
    """``-c -5`` as ``-c-5``: with -4 and -6 among its options, argparse
    takes a negative number for an option, where getopt (and iputils) take
    it for the value of the option before it, and then refuse the value."""
    out: list[str] = []
    for word in argv:
        if (
            out
            and _NEGATIVE.fullmatch(word)
            and len(out[-1]) == 2
            and out[-1][0] == "-"
            and out[-1] not in ("-4", "-6")
        ):
            out[-1] += word
        else:
            out.append(word)
    return out


_NEGATIVE = re.compile(r"-\d[\d.]*")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(joined_negative_values(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse already printed one line of usage error
        if not exc.code:
            return EXIT_OK
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="aioxdp: %(name)s: %(message)s",
    )
    from aioxdp.route import HostNameError

    try:
        if args.command == "ping":
            args.timeout = _linger(args.timeout)
            if args.interval is None:
                args.interval = 0.0 if args.flood else 1.0
        return int(args.func(args))
    except HostNameError as exc:
        print(f"aioxdp: {exc.host}: {exc.reason}", file=sys.stderr)  # as ping says it
        return EXIT_ERROR
    except (XDPError, ValueError) as exc:
        print(f"aioxdp: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
