"""The ``aioxdp`` command: ``ping``, ``fping``, ``tcping``, ``doctor``, ``demo``.

``aioxdp ping`` mirrors iputils' ping: the same flags, reply lines, summary
and exit codes (0 a reply came, 1 none came, 2 an error). Errors are one
line on stderr that says what to do, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from aioxdp import __version__
from aioxdp.errors import XDPError
from aioxdp.ping_output import FloodDots, format_ms, reply_line, summary_lines

if TYPE_CHECKING:
    from aioxdp.results import PingReply

EXIT_OK = 0
EXIT_NO_REPLY = 1
EXIT_ERROR = 2
DEFAULT_COUNT = 4


async def run_ping(args: argparse.Namespace, out: TextIO) -> int:
    from aioxdp.ping import Pinger

    quiet, flood = args.quiet, args.flood

    def on_reply(reply: PingReply) -> None:
        if not quiet and not flood:
            print(reply_line(reply), file=out, flush=True)

    pinger = Pinger(
        args.host,
        count=args.count,
        interval=args.interval,
        timeout=args.timeout,
        size=args.size,
        ttl=args.ttl,
        interface=args.interface,
        on_reply=None if args.json else on_reply,
    )
    loop = asyncio.get_running_loop()
    async with pinger:
        route = pinger.routes[0]
        if not args.json:
            print(
                f"PING {args.host} ({route.destination}) {args.size}({args.size + 28}) bytes of data.",
                file=out,
                flush=True,
            )
        run = asyncio.ensure_future(pinger.result())
        loop.add_signal_handler(signal.SIGINT, run.cancel)
        dots = FloodDots(out) if flood and not quiet and not args.json else None
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
            dots.update(result.sent, result.received)
            print(file=out)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2), file=out)
    else:
        for line in summary_lines(result):
            print(line, file=out)
    return EXIT_OK if result.received else EXIT_NO_REPLY


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
        cmd.add_argument(
            "-c",
            dest="count",
            type=int,
            default=DEFAULT_COUNT,
            help=f"probes to send (default {DEFAULT_COUNT}; runs are always bounded)",
        )
        cmd.add_argument("-i", dest="interval", type=_seconds, default=interval, help=interval_help)
        cmd.add_argument(
            "-W",
            dest="timeout",
            type=_seconds,
            default=1.0,
            help="seconds to wait for each answer",
        )
        cmd.add_argument("-I", dest="interface", default=None, help="send through this interface")
        cmd.add_argument("-q", dest="quiet", action="store_true", help="quiet: only the summary")
        cmd.add_argument("--json", action="store_true", help="print the result as JSON")
        cmd.add_argument("host")

    p = sub.add_parser("ping", help="send ICMP echo requests through AF_XDP (iputils-compatible)")
    probe_flags(p, None, "seconds between requests (default 1; 0 with -f)")
    p.add_argument("-s", dest="size", type=int, default=56, help="ICMP data bytes (default 56)")
    p.add_argument("-t", dest="ttl", type=int, default=64, help="IP time to live")
    p.add_argument(
        "-f",
        dest="flood",
        action="store_true",
        help="flood: as fast as replies come, dots for progress",
    )
    p.set_defaults(func=_ping)

    t = sub.add_parser("tcping", help="probe a TCP port with SYNs through AF_XDP")
    probe_flags(t, 1.0, "seconds between probes")
    t.add_argument("port", type=int)
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
    f.add_argument("-4", dest="ipv4", action="store_true", help="IPv4 only (all aioxdp does today)")
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed one line of usage error
        if not exc.code:
            return EXIT_OK
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="aioxdp: %(name)s: %(message)s",
    )
    if getattr(args, "interval", None) is None and args.command == "ping":
        args.interval = 0.0 if args.flood else 1.0
    try:
        return int(args.func(args))
    except (XDPError, ValueError) as exc:
        print(f"aioxdp: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
