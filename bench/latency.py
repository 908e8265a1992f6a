"""Round-trip latency percentiles, in the lab, aioxdp against the kernel path:

    .venv/bin/python bench/latency.py [--count 2000] [--rate 1000] [--rounds 3]

  ping     a paced ping (interval 1 ms): aioxdp.ping's RTTs against
           iputils ping -i 0.001 on the same peer, its "time=" per reply,
           run twice: on the bare link (iputils) and beside aioxdp's
           forwarder, which puts veth's receive on its XDP path (iputils+xdp);
           and a C loop (xsk_loops.c) pacing probes through the same kind
           of socket as aioxdp's, so our send and receive path without
           Python, twice: sleeping between probes as aioxdp does (C loop)
           and spinning as iputils does at this interval (C spin); each
           one's CPU share while pacing
  UDP      one request at a time at a fixed offered rate (--rate per second)
           from a kernel UDP socket in the peer, timed there: against
           examples/udp_echo_server.py (datagram_received + sendto) and a
           uvloop echo server on a kernel socket, the same client; and
           each server's CPU per request (a wakeup each, at this rate)

Prints p50/p99/p99.9 in microseconds and aioxdp's ratio to the kernel path
for each; bounded: COUNT requests per measurement, each waiting 1 s at most.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import re
import resource
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import native
import ping_rate
import udp_echo

import aioxdp
from aioxdp.testing import Lab

# The peer's client: COUNT requests, one every 1/RATE s, each timed until
# its echo comes back (1 s at most); prints each RTT in microseconds.
UDP_CLIENT = """
import socket, sys, time
host, port, count, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
s.connect((host, port))
for _ in range(20):  # warm up: routes, neighbours, caches
    s.send(b"w" * 32); s.recv(100)
step, start, rtts = 1.0 / rate, time.perf_counter(), []
for i in range(count):
    while time.perf_counter() < start + i * step:
        pass
    t0 = time.perf_counter_ns()
    s.send(i.to_bytes(4, "big") + b"r" * 28)
    try:
        while s.recv(100)[:4] != i.to_bytes(4, "big"):
            pass
    except socket.timeout:
        continue
    rtts.append((time.perf_counter_ns() - t0) / 1000)
print(" ".join(f"{r:.1f}" for r in rtts))
"""


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": float("nan"), "p99": float("nan"), "p99.9": float("nan"), "n": 0}

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.50), "p99": at(0.99), "p99.9": at(0.999), "n": len(ordered)}


def ping_latency(lab: Lab, count: int, rounds: int = 1) -> dict[str, dict[str, float]]:
    """aioxdp.ping against iputils twice: on the bare link, and on the link
    as aioxdp leaves it (the forwarder attached, so veth's XDP path); and
    against a C loop pacing probes through the same kind of socket (our
    send and receive path without Python), sleeping between probes (as
    aioxdp does) and spinning (as iputils does). They take turns ``rounds``
    times and each one's round trips are pooled, so a slow minute of the VM
    falls on all of them. Each also gets its CPU share while pacing
    (``cpu``: CPU seconds over wall seconds)."""
    pooled: dict[str, list[float]] = {
        "aioxdp": [],
        "C loop": [],
        "C spin": [],
        "iputils": [],
        "iputils+xdp": [],
    }
    cpu: dict[str, list[float]] = {name: [0.0, 0.0] for name in pooled}

    @contextlib.contextmanager
    def clocked(name: str, clock: Callable[[], float] = time.process_time) -> Iterator[None]:
        cpu0, wall0 = clock(), time.perf_counter()
        yield
        cpu[name][0] += clock() - cpu0
        cpu[name][1] += time.perf_counter() - wall0

    def children_cpu() -> float:  # iputils is ours to wait for: its CPU lands here
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def iputils(name: str) -> list[float]:
        with clocked(name, children_cpu):
            out = lab.a.run("ping", "-i", "0.001", "-c", str(count), lab.b.ip, timeout=120)
        return [float(t) * 1000 for t in re.findall(r"time=([\d.]+) ms", out.stdout)]

    async def ours() -> list[float]:
        with clocked("aioxdp"):
            found = await aioxdp.ping(lab.b.ip, count=count, interval=0.001, timeout=1.0)
        return [r * 1e6 for r in found.rtts]

    async def c_loop(name: str, spin: bool) -> list[float]:
        loops = native.load()
        rtts = (ctypes.c_double * count)()
        async with ping_rate.c_echo_socket(lab.a.ifname, lab.b.ip) as (xsk, template, ident):
            with clocked(name):
                got = loops.bench_paced_echo(
                    xsk, template, len(template), ident, count, 1_000_000, spin, rtts
                )
        return list(rtts[:got])

    async def iputils_beside_forwarder() -> list[float]:
        async with aioxdp.Interface(lab.a.ifname):
            return await asyncio.to_thread(iputils, "iputils+xdp")

    for _ in range(rounds):
        with lab.a.enter():
            pooled["aioxdp"] += asyncio.run(ours())
            pooled["C loop"] += asyncio.run(c_loop("C loop", spin=False))
            pooled["C spin"] += asyncio.run(c_loop("C spin", spin=True))
            pooled["iputils+xdp"] += asyncio.run(iputils_beside_forwarder())
        pooled["iputils"] += iputils("iputils")
    found = {name: percentiles(rtts) for name, rtts in pooled.items()}
    for name, (seconds, wall) in cpu.items():
        found[name]["cpu"] = seconds / wall if wall else float("nan")
    return found


def cpu_ns(pid: int) -> int:
    """Nanoseconds process ``pid`` has run on a CPU so far (schedstat: user,
    kernel, and the peer's receive that veth runs in its context)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def udp_latency(lab: Lab, count: int, rate: float) -> dict[str, dict[str, float]]:
    life = str(count / rate + 60)
    port = str(udp_echo.PORT)
    servers = {
        "aioxdp": [
            sys.executable,
            str(udp_echo.EXAMPLES / "udp_echo_server.py"),
            lab.a.ifname,
            lab.a.ip,
            port,
            life,
        ],
        "uvloop": [sys.executable, "-c", udp_echo.UVLOOP_SERVER, lab.a.ip, port, life],
    }
    found = {}
    for name, argv in servers.items():
        proc = udp_echo.serve(lab.a, argv)
        try:
            cpu_before = cpu_ns(proc.pid)
            client = lab.b.run(
                sys.executable,
                "-c",
                UDP_CLIENT,
                lab.a.ip,
                port,
                str(count),
                str(rate),
                timeout=count / rate + 120,
            )
            rtts = [float(v) for v in client.stdout.split()]
            found[name] = percentiles(rtts)
            # its CPU per request, the warm-up's 20 included: at this rate
            # each request wakes the server alone, so this is the cost of a wakeup
            found[name]["cpu_us"] = (cpu_ns(proc.pid) - cpu_before) / 1000 / (len(rtts) + 20)
        finally:
            proc.kill()
            proc.wait()
    return found


def measure(lab: Lab, count: int, rate: float, rounds: int = 1) -> dict[str, Any]:
    return {"ping": ping_latency(lab, count, rounds), "udp": udp_latency(lab, count, rate)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--rounds", type=int, default=3, help="ping turns, round trips pooled")
    args = parser.parse_args()
    if not 10 <= args.count <= 100_000 or not 1 <= args.rate <= 20_000:
        raise SystemExit("--count: 10..100000, --rate: 1..20000 per second")
    if not 1 <= args.rounds <= 20:
        raise SystemExit("--rounds: 1..20")
    with Lab() as lab:
        found = measure(lab, args.count, args.rate, args.rounds)
    for kind, peer in (("ping", "iputils"), ("udp", "uvloop")):
        print(f"{kind} round trips, us ({args.count}; UDP at {args.rate:g}/s):")
        for name, p in found[kind].items():
            print(
                f"  {name:11s} p50 {p['p50']:8.1f}  p99 {p['p99']:8.1f}  p99.9 {p['p99.9']:8.1f}  (n {p['n']})"
            )
        if kind == "udp":
            print(
                "  server CPU per request, us: "
                + ", ".join(f"{name} {p['cpu_us']:.1f}" for name, p in found[kind].items())
            )
        if kind == "ping":
            print(
                "  CPU share while pacing: "
                + ", ".join(f"{name} {p['cpu']:.2f}" for name, p in found[kind].items())
            )
        ours = found[kind]["aioxdp"]
        for other in (peer, f"{peer}+xdp", "C loop", "C spin"):
            if other in found[kind]:
                theirs = found[kind][other]
                print(
                    f"  aioxdp/{other}: p50 {ours['p50'] / theirs['p50']:.2f}x, "
                    f"p99 {ours['p99'] / theirs['p99']:.2f}x"
                )


if __name__ == "__main__":
    main()
