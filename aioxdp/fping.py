"""``aioxdp fping``: fping's flags, lines and exit codes on aioxdp's many-host engine.

Supported, as fping 5 spells them: ``-c N`` and ``-C N`` (count modes,
per-probe lines on stdout and per-host summaries on stderr), ``-p`` (ms
between probes to one target), ``-i`` (ms between any two probes), ``-t``
(ms to wait for a reply), ``-r`` (retries in the default mode, each
waiting 1.5 times longer), ``-g`` (a CIDR, or a start and an end address),
``-f`` (a file of targets), ``-q``, ``-s`` (statistics), ``-a``/``-u``
(only alive / unreachable targets), ``-e`` (elapsed time), ``-4`` and
``-6`` (targets of that family only; without either, IPv4 and IPv6 targets
mix in one run, names resolved to their first address).

Exit codes as fping 5.1's: 0 every target answered, 1 some did not (and,
as fping 5.1 does, a usage error), 2 a name did not resolve, 4 another
failure.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import math
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import anyio

from aioxdp.errors import XDPError
from aioxdp.results import PingReply, PingResult
from aioxdp.targets import address_range, check_target_count, cidr_hosts, read_targets

__all__ = [
    "EXIT_ALIVE",
    "EXIT_FAILURE",
    "EXIT_UNKNOWN",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "run_fping",
]

EXIT_ALIVE, EXIT_UNREACHABLE, EXIT_UNKNOWN, EXIT_FAILURE = 0, 1, 2, 4
EXIT_USAGE = 1  # fping 5.1 prints its usage and exits 1 (its manual says 3)
BACKOFF = 1.5  # fping -B: each retry of the default mode waits this much longer


class UsageError(ValueError):
    """A flag's value fping would refuse (a usage error)."""


@dataclass
class _Tally:
    """One target's running figures, for the per-probe lines."""

    sent: int = 0
    received: int = 0
    rtt_sum: float = 0.0
    rtts: dict[int, float] = field(default_factory=dict)  # seq -> seconds


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def targets_of(args: argparse.Namespace) -> list[str]:
    """The targets named by -g, -f or the arguments, within --max-targets."""
    limit = args.max_targets
    if args.generate:
        if len(args.hosts) == 1 and "/" in args.hosts[0]:
            return cidr_hosts(args.hosts[0], limit)
        if len(args.hosts) == 2:
            return address_range(args.hosts[0], args.hosts[1], limit)
        raise UsageError("-g: give a prefix (a.b.c.d/n) or a start and an end address")
    hosts = list(args.hosts)
    if args.file is not None:
        if hosts:
            raise UsageError("-f: give targets in the file or as arguments, not both")
        hosts = read_targets(args.file, limit)
    if not hosts:
        raise UsageError("no targets: name some, or use -f or -g")
    check_target_count(len(hosts), limit)
    return hosts


def check_args(args: argparse.Namespace) -> None:
    for flag, value, low in (
        ("-c", args.count, 1),
        ("-C", args.vcount, 1),
        ("-r", args.retries, 0),
    ):
        if value is not None and value < low:
            raise UsageError(f"{flag}: must be >= {low}, got {value}")
    if args.timeout is None:  # fping: the period in count modes (at most 2 s), else 500 ms
        counting = args.count is not None or args.vcount is not None
        args.timeout = min(args.period, 2000.0) if counting else 500.0
    for flag, value in (("-p", args.period), ("-i", args.interval), ("-t", args.timeout)):
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"{flag}: must be milliseconds >= 0, got {value}")
    if args.timeout == 0:
        raise UsageError("-t: must be more than 0 ms")
    if args.count is not None and args.vcount is not None:
        raise UsageError("-c and -C: give one of them")


FAMILIES = {None: socket.AF_UNSPEC, 4: socket.AF_INET, 6: socket.AF_INET6}


async def _resolve(
    hosts: list[str], err: TextIO, family: int | None = None
) -> tuple[list[str], list[str], int]:
    """(names as given, their addresses) of the targets that resolve, and how
    many did not (each said on ``err`` as fping says it, a literal of the
    family -4 or -6 excludes too: "Address family for hostname not supported")."""
    names, addresses, unknown = [], [], 0
    for host in hosts:
        try:
            address = ipaddress.ip_address(host)  # literals need no resolver
            if family not in (None, address.version):
                raise ValueError(host)
            addresses.append(str(address))
        except ValueError:
            try:
                infos = await anyio.getaddrinfo(
                    host, None, family=FAMILIES[family], type=socket.SOCK_RAW
                )
            except OSError as exc:
                print(f"{host}: {exc.strerror}", file=err, flush=True)
                unknown += 1
                continue
            addresses.append(str(infos[0][4][0]))
        names.append(host)
    return names, addresses, unknown


async def run_fping(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``aioxdp fping`` with parsed ``args``; returns fping's exit code."""
    from aioxdp.ping import multiping

    try:
        check_args(args)
        hosts = targets_of(args)
    except ValueError as exc:
        print(f"aioxdp fping: {exc}", file=err)
        return EXIT_USAGE
    started = time.monotonic()
    names, addresses, unknown = await _resolve(hosts, err, args.family)
    if not names:
        return EXIT_UNKNOWN
    width = max(len(n) for n in names)
    by_address: dict[str, list[str]] = {}
    for name, address in zip(names, addresses, strict=True):
        by_address.setdefault(address, []).append(name)
    count = args.count if args.count is not None else args.vcount
    tallies = {name: _Tally() for name in names}
    common: dict[str, Any] = {
        "size": args.size,
        "interface": args.interface,
        "max_hosts": args.max_targets,
        "family": args.family,
    }

    def pad(name: str) -> str:
        return f"{name:<{width}}"

    try:
        if count is not None:
            quiet = args.quiet

            def on_reply(reply: PingReply) -> None:
                for name in by_address.get(reply.source, ()):
                    t = tallies[name]
                    t.received += 1
                    t.rtt_sum += reply.rtt
                    t.rtts[reply.seq] = reply.rtt
                    sent = max(reply.seq, t.sent)
                    t.sent = sent
                    if not quiet:
                        loss = (sent - t.received) * 100 // sent
                        print(
                            f"{pad(name)} : [{reply.seq - 1}], {reply.size} bytes, "
                            f"{_ms(reply.rtt)} ms ({_ms(t.rtt_sum / t.received)} avg, {loss}% loss)",
                            file=out,
                            flush=True,
                        )

            def on_timeout(host: str, seq: int) -> None:
                t = tallies[host]
                t.sent = max(seq, t.sent)
                if not quiet:
                    avg = _ms(t.rtt_sum / t.received) if t.received else "NaN"
                    loss = (t.sent - t.received) * 100 // t.sent
                    print(
                        f"{pad(host)} : [{seq - 1}], timed out ({avg} avg, {loss}% loss)",
                        file=out,
                        flush=True,
                    )

            results: Sequence[PingResult] = await multiping(
                names,
                count=count,
                interval=args.period / 1000,
                spacing=args.interval / 1000,
                timeout=args.timeout / 1000,
                on_reply=on_reply,
                on_timeout=on_timeout,
                **common,
            )
            if not quiet:
                print(file=err)
            for name, result in zip(names, results, strict=True):
                print(_summary(pad(name), result, count, vcount=args.vcount is not None), file=err)
        else:
            results = await _default_mode(args, names, by_address, pad, out, common)
    except XDPError as exc:
        print(f"aioxdp fping: {exc}", file=err)
        return EXIT_FAILURE
    alive = sum(1 for r in results if r.received)
    if args.stats:
        _print_stats(results, len(names), alive, unknown, time.monotonic() - started, err)
    if unknown:
        return EXIT_UNKNOWN
    return EXIT_ALIVE if alive == len(names) else EXIT_UNREACHABLE


def _summary(name: str, r: PingResult, count: int, *, vcount: bool) -> str:
    if vcount:  # -C: every probe's time, '-' for those lost
        by_seq = {reply.seq: reply.rtt for reply in r.replies}
        return f"{name} :" + "".join(
            f" {_ms(by_seq[s])}" if s in by_seq else " -" for s in range(1, count + 1)
        )
    loss = (r.sent - r.received) * 100 // r.sent if r.sent else 100
    line = f"{name} : xmt/rcv/%loss = {r.sent}/{r.received}/{loss}%"
    if r.received:
        line += f", min/avg/max = {_ms(r.min)}/{_ms(r.avg)}/{_ms(r.max)}"
    return line


async def _default_mode(
    args: argparse.Namespace,
    names: list[str],
    by_address: dict[str, list[str]],
    pad: Callable[[str], str],
    out: TextIO,
    common: dict[str, Any],
) -> Sequence[PingResult]:
    """fping without -c: one probe per target, retried (waiting longer each
    time) until it answers or ``-r`` retries are spent."""
    from aioxdp.ping import multiping

    final: dict[str, PingResult] = {}
    told: set[str] = set()

    def on_reply(reply: PingReply) -> None:
        for name in by_address.get(reply.source, ()):
            if name in told:
                continue
            told.add(name)
            if args.unreachable_only:
                continue
            if args.alive_only:
                print(name, file=out, flush=True)
            elif args.elapsed:
                print(f"{name} is alive ({_ms(reply.rtt)} ms)", file=out, flush=True)
            else:
                print(f"{name} is alive", file=out, flush=True)

    remaining = list(names)
    timeout = args.timeout / 1000
    for _ in range(args.retries + 1):
        results = await multiping(
            remaining,
            count=1,
            interval=args.period / 1000,
            spacing=args.interval / 1000,
            timeout=timeout,
            on_reply=on_reply,
            **common,
        )
        for name, result in zip(remaining, results, strict=True):
            previous = final.get(name)
            sent = result.sent + (previous.sent if previous else 0)
            final[name] = dataclasses.replace(result, host=name, sent=sent)
        remaining = [n for n in remaining if not final[n].received]
        if not remaining:
            break
        timeout *= BACKOFF
    for name in names:
        if not final[name].received and not args.alive_only:
            print(name if args.unreachable_only else f"{name} is unreachable", file=out)
    return [final[n] for n in names]


def _print_stats(
    results: Sequence[PingResult],
    targets: int,
    alive: int,
    unknown: int,
    elapsed: float,
    err: TextIO,
) -> None:
    """fping -s: the statistics block, on stderr."""
    sent = sum(r.sent for r in results)
    received = sum(r.received for r in results)
    rtts = [x for r in results for x in r.rtts]
    lines = [
        "",
        f" {targets + unknown:7d} targets",
        f" {alive:7d} alive",
        f" {targets - alive:7d} unreachable",
        f" {unknown:7d} unknown addresses",
        "",
        f" {sent - received:7d} timeouts (waiting for response)",
        f" {sent:7d} ICMP Echos sent",
        f" {received:7d} ICMP Echo Replies received",
        f" {0:7d} other ICMP received",
        "",
    ]
    if rtts:
        lines += [
            f" {_ms(min(rtts))} ms (min round trip time)",
            f" {_ms(sum(rtts) / len(rtts))} ms (avg round trip time)",
            f" {_ms(max(rtts))} ms (max round trip time)",
        ]
    lines.append(f" {elapsed:12.3f} sec (elapsed real time)")
    lines.append("")
    print("\n".join(lines), file=err)
