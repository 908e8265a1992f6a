"""Echo round trips per second, in the lab, against the peer namespace's kernel
(or, with --peer reflector, the XDP reflector in the peer's driver):

    .venv/bin/python bench/ping_rate.py [--count 200000] [--loop asyncio|uvloop] [--peer kernel|reflector] [--family 4|6] [--window 256]

  aioxdp   await aioxdp.ping(count=COUNT, interval=0)   (window 256, or --window
           with the reflector: 1 is a one-probe flood, all of it in C after the
           first reply)
  C loop   the same XSK and C helpers, no Python (bench/xsk_loops.c, the same window)
  ping -f  iputils' flood ping, COUNT probes
  aioxdp ping -f  our command line's flood, as iputils' (the next probe when a
           reply comes: one in flight), CLI_COUNT probes, beside ping -f with
           as many; both by the time each prints
  icmplib  icmplib.async_ping(count=ICMPLIB_COUNT, interval=0), privileged

Prints each rate and aioxdp's ratio to each peer; all in one run, one lab.
``--family 6`` pings the peer's IPv6 address (ICMPv6; icmplib is left out).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import native

import aioxdp
from aioxdp import Interface, PacketProtocol, Rule
from aioxdp.echo import echo_template, pick_ident
from aioxdp.neighbour import resolve_neighbour
from aioxdp.route import route_to
from aioxdp.testing import Lab
from aioxdp.testing.reflector import Reflector


async def aioxdp_rate(host: str, count: int, window: int = 256) -> float:
    result = await aioxdp.ping(host, count=count, interval=0, timeout=1.0, window=window)
    assert result.received == count, f"aioxdp lost {count - result.received} replies"
    return float(result.received / result.elapsed)


@contextlib.asynccontextmanager
async def c_echo_socket(ifname: str, host: str) -> AsyncIterator[tuple[int, bytes, int]]:
    """An XSK on ``ifname`` with the echo replies to one ident redirected to
    it and its Python reader paused, for a C loop to own: yields the C
    socket (xsk_loops.c's pointer), a request template to ``host`` and the
    ident."""
    async with Interface(ifname) as nic:
        route = await resolve_neighbour(await route_to(host), nic)
        ident = pick_ident()
        reply = Rule("icmpv6", icmp_type=129, icmp_id=ident) if ":" in host else None
        await nic.create_packet_endpoint(
            PacketProtocol, rules=[reply or Rule("icmp", icmp_type=0, icmp_id=ident)]
        )
        await asyncio.sleep(0)
        nic.transport(0).pause_reading()  # the C loop owns the socket now
        try:
            yield native.pointer(nic.socket(0)), echo_template(route, ident, 56, 64), ident
        finally:
            nic.transport(0).resume_reading()


async def c_rate(ifname: str, host: str, count: int, window: int = 256) -> float:
    loops = native.load()
    async with c_echo_socket(ifname, host) as (xsk, template, ident):
        t0 = time.perf_counter()
        got = loops.bench_echo(xsk, template, len(template), ident, count, window, 60.0)
        took = time.perf_counter() - t0
    assert got == count, f"C loop got {got} of {count}"
    return float(got / took)


def target(lab: Lab, family: int) -> str:
    """Host b's address of ``family`` (6 needs Lab(ipv6=True))."""
    if family == 6:
        if lab.b.ip6 is None:
            raise ValueError("family: 6 needs a lab made with Lab(ipv6=True)")
        return lab.b.ip6
    return lab.b.ip


def ping_f_rate(lab: Lab, count: int, host: str, *, command: tuple[str, ...] = ("ping",)) -> float:
    """Replies/s of a flood ping command, by the time its summary prints."""
    out = lab.a.run(*command, "-f", "-q", "-c", str(count), host, timeout=300).stdout
    received = int(re.search(r"(\d+) received", out).group(1))  # type: ignore[union-attr]
    ms = int(re.search(r"time (\d+)ms", out).group(1))  # type: ignore[union-attr]
    return received / (ms / 1000)


async def icmplib_rate(host: str, count: int) -> float:
    from icmplib import async_ping  # type: ignore[import-untyped]

    t0 = time.perf_counter()
    result = await async_ping(host, count=count, interval=0, timeout=1, privileged=True)
    return float(result.packets_received / (time.perf_counter() - t0))


def rates(
    lab: Lab, count: int, icmplib_count: int, run: Any, family: int = 4, cli_count: int = 0
) -> dict[str, float]:
    """Round trips/s against b's kernel: aioxdp, the C loop, ping -f, icmplib
    (IPv4 only), and with ``cli_count`` our command line's flood beside ping -f."""
    host = target(lab, family)
    with lab.a.enter():
        lab.a.run("ping", "-c1", host)  # neighbours known, caches warm
        found = {
            "aioxdp": run(aioxdp_rate(host, count)),
            "C loop": run(c_rate(lab.a.ifname, host, count)),
            "ping -f": ping_f_rate(lab, count, host),
        }
        if icmplib_count and family == 4:
            found["icmplib"] = run(icmplib_rate(host, icmplib_count))
        if cli_count:
            ours = (sys.executable, "-m", "aioxdp", "ping")
            found["aioxdp ping -f"] = ping_f_rate(lab, cli_count, host, command=ours)
            found["ping -f, as many"] = ping_f_rate(lab, cli_count, host)
    return found


def reflected_rates(
    lab: Lab, count: int, run: Any, family: int = 4, window: int = 256
) -> dict[str, float]:
    """Round trips/s with the XDP reflector in b's driver as the peer (it answers
    in the driver, so b's kernel is not what is measured): aioxdp and the C
    loop, each keeping ``window`` probes in flight."""
    host = target(lab, family)
    with lab.a.enter(), Reflector(lab.b):
        return {
            "aioxdp": run(aioxdp_rate(host, count, window)),
            "C loop": run(c_rate(lab.a.ifname, host, count, window)),
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--icmplib-count", type=int, default=20_000)
    parser.add_argument("--cli-count", type=int, default=50_000, help="0: no command-line run")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    parser.add_argument(
        "--peer", choices=["kernel", "reflector"], default="kernel", help="who answers"
    )
    parser.add_argument("--family", type=int, choices=[4, 6], default=4)
    parser.add_argument(
        "--window", type=int, default=256, help="probes in flight (reflector peer only)"
    )
    args = parser.parse_args()
    if args.window != 256 and args.peer != "reflector":
        parser.error("--window: with --peer reflector only")
    run: Any = asyncio.run
    if args.loop == "uvloop":
        import uvloop

        run = uvloop.run
    with Lab(ipv6=args.family == 6) as lab:
        if args.peer == "reflector":
            found = reflected_rates(lab, args.count, run, args.family, args.window)
        else:
            found = rates(lab, args.count, args.icmplib_count, run, args.family, args.cli_count)
    ours = found["aioxdp"]
    print(
        f"echo round trips/s (IPv{args.family}, {args.loop}, {args.peer} peer, "
        f"aioxdp count {args.count}, window {args.window}):"
    )
    for name, rate in found.items():
        ratio = "" if name == "aioxdp" else f"   aioxdp/{name} = {ours / rate:.2f}x"
        if name == "ping -f, as many":
            cli = found["aioxdp ping -f"]
            ratio = f"   aioxdp ping -f/ping -f = {cli / rate:.2f}x"
        elif name == "aioxdp ping -f":
            ratio = ""
        print(f"  {name:8s} {rate:>12,.0f}/s{ratio}")


if __name__ == "__main__":
    main()
