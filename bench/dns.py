"""DNS against a real client: dnsperf and fresh-port queries from the peer,
examples/dns_responder.py (aioxdp) against the same answer code on a kernel
UDP socket under uvloop, in one lab run:

    .venv/bin/python bench/dns.py [--seconds 3] [--rate 5000] [--fresh 200]

For each responder, from lab host b:

  throughput  dnsperf -q 100 for SECONDS: queries/s, completed, lost
  latency     dnsperf -Q RATE -v for SECONDS: p50/p99/p99.9 of each
              query's latency at a fixed offered rate (below both caps)
  first       FRESH queries, each from a new socket (a new source port, as
              a resolver picks one per query), one at a time: p50/p99 of the
              time to the answer, and every answer checked against the zone

A third responder, "busypoll", is aioxdp's with Interface.busy_poll 1 ms:
at the latency run's rate it never sleeps, so the loop's wakeup leaves its
latency, for a CPU that spins (its CPU per answer says so).

Then the ratios aioxdp/uvloop and one JSON line. The aims (issue 16):
queries/s >= 1.5x, p99 below uvloop's, first-answer latency within 1.5x.
Bounded: each phase ends after SECONDS (dnsperf -l) or FRESH queries.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from udp_echo import cpu_seconds, tx_packets

from aioxdp.testing import Host, Lab

BENCH = Path(__file__).resolve().parent
EXAMPLES = BENCH.parent / "examples"
NAMES = ["lab.test", "www.lab.test", "db.lab.test", "nosuch.lab.test"]
BUSY_POLL = 0.001  # seconds: busypoll responder's Interface.busy_poll, 5x the 5 k q/s gap

UVLOOP_RESPONDER = """
import asyncio, sys, uvloop
sys.path.insert(0, sys.argv[1])
from dns_responder import Responder
async def main():
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Responder, local_addr=(sys.argv[2], 53))
    print("serving", flush=True)
    await asyncio.sleep(float(sys.argv[3]))
uvloop.run(main())
"""

# one query per new socket, timed; the answer's address checked against the zone
FRESH_CLIENT = """
import socket, struct, sys, time, json
server, count = sys.argv[1], int(sys.argv[2])
sys.path.insert(0, sys.argv[3])
from dns_responder import ZONE
times, wrong = [], 0
for i in range(count):
    name = ["lab.test", "www.lab.test", "db.lab.test"][i % 3]
    q = struct.pack("!HHHHHH", i, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0"
    q += struct.pack("!HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2.0)
    start = time.perf_counter()
    s.sendto(q, (server, 53))
    try:
        reply = s.recv(512)
    except socket.timeout:
        times.append(2.0)
        wrong += 1
        continue
    finally:
        s.close()
    times.append(time.perf_counter() - start)
    if reply[:2] != q[:2] or socket.inet_ntoa(reply[-4:]) != ZONE[name + "."]:
        wrong += 1
print(json.dumps({"times": times, "wrong": wrong}))
"""


def start(host: Host, argv: list[str], ready: str) -> subprocess.Popen[str]:
    proc = host.popen(*argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if ready not in line:
        proc.kill()
        raise SystemExit(f"{argv[1]} did not start: {proc.stderr.read() if proc.stderr else line}")
    return proc


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def dnsperf(lab: Lab, datafile: str, *extra: str, seconds: float) -> str:
    return lab.b.run(
        "dnsperf",
        "-s",
        lab.a.ip,
        "-d",
        datafile,
        "-l",
        str(seconds),
        "-t",
        "1",
        *extra,
        timeout=seconds + 60,
    ).stdout


def measure(lab: Lab, server: list[str], ready: str, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("".join(f"{name} A\n" for name in NAMES))
        datafile = f.name
    proc = start(lab.a, server, ready)
    try:
        cpu0, answered0 = cpu_seconds(proc.pid), tx_packets(lab.a)
        out = dnsperf(lab, datafile, "-q", "100", seconds=args.seconds)
        cpu1, answered1 = cpu_seconds(proc.pid), tx_packets(lab.a)
        answered = max(1, answered1 - answered0)  # frames out of a's veth: the answers
        figures = {
            "qps": float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
            "sent": float(re.search(r"Queries sent:\s+(\d+)", out).group(1)),  # type: ignore[union-attr]
            "lost": float(re.search(r"Queries lost:\s+(\d+)", out).group(1)),  # type: ignore[union-attr]
            # the responder's CPU per answer while dnsperf ran: robust to a
            # responder that dnsperf did not keep busy
            "user_us": (cpu1[0] - cpu0[0]) / answered * 1e6,
            "kernel_us": (cpu1[1] - cpu0[1]) / answered * 1e6,
        }
        out = dnsperf(lab, datafile, "-Q", str(args.rate), "-v", seconds=args.seconds)
        latencies = [float(x) for x in re.findall(r"^> \S+ .* ([\d.]+)$", out, re.M)]
        if not latencies:
            raise SystemExit(f"dnsperf -v reported no latencies: {out[-500:]!r}")
        figures.update(
            p50=percentile(latencies, 0.5),
            p99=percentile(latencies, 0.99),
            p999=percentile(latencies, 0.999),
        )
        fresh = json.loads(
            lab.b.run(
                sys.executable,
                "-c",
                FRESH_CLIENT,
                lab.a.ip,
                str(args.fresh),
                str(EXAMPLES),
                timeout=args.fresh * 2 + 60,
            ).stdout
        )
        figures.update(
            first_p50=percentile(fresh["times"], 0.5),
            first_p99=percentile(fresh["times"], 0.99),
            first_wrong=fresh["wrong"],
        )
        return figures
    finally:
        proc.kill()
        proc.wait()
        Path(datafile).unlink()


def rates(lab: Lab, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    life = str(3 * args.seconds + args.fresh * 0.1 + 60)
    return {
        "uvloop": measure(
            lab,
            [sys.executable, "-c", UVLOOP_RESPONDER, str(EXAMPLES), lab.a.ip, life],
            "serving",
            args,
        ),
        "aioxdp": measure(
            lab,
            [sys.executable, str(EXAMPLES / "dns_responder.py"), lab.a.ifname, lab.a.ip, life],
            "serving",
            args,
        ),
        # the same, never sleeping at the latency run's rate: it spins for its latency
        "busypoll": measure(
            lab,
            [
                *(sys.executable, str(EXAMPLES / "dns_responder.py")),
                *(lab.a.ifname, lab.a.ip, life, str(BUSY_POLL)),
            ],
            "serving",
            args,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rate", type=int, default=5000, help="queries/s of the latency run")
    parser.add_argument("--fresh", type=int, default=200, help="queries from fresh ports")
    args = parser.parse_args()
    if not 0.5 <= args.seconds <= 60 or not 100 <= args.rate <= 100_000:
        raise SystemExit("--seconds 0.5..60, --rate 100..100000")
    if not 10 <= args.fresh <= 5000:
        raise SystemExit("--fresh 10..5000")
    with Lab() as lab:
        found = rates(lab, args)
    ours, theirs = found["aioxdp"], found["uvloop"]
    print(f"DNS, dnsperf and fresh-port queries from the peer ({args.seconds:g}s per phase):")
    print(f"{'':8} {'q/s':>9} {'lost':>6} {'p50 ms':>8} {'p99 ms':>8} {'first p50':>10} {'p99':>8}")
    for name, r in found.items():
        print(
            f"{name:8} {r['qps']:9.0f} {int(r['lost']):6d} {r['p50'] * 1e3:8.3f} "
            f"{r['p99'] * 1e3:8.3f} {r['first_p50'] * 1e3:9.3f}ms {r['first_p99'] * 1e3:7.3f}"
            + (f"  ({int(r['first_wrong'])} wrong answers)" if r["first_wrong"] else "")
        )
    for name, r in found.items():
        print(
            f"{name:8} CPU per answer: user {r['user_us']:.2f} us, kernel {r['kernel_us']:.2f} us"
        )
    busy = found["busypoll"]
    ratios = {
        "busypoll_p99": busy["p99"] / theirs["p99"],
        "busypoll_p50": busy["p50"] / theirs["p50"],
        "qps": ours["qps"] / theirs["qps"],
        "cpu": (theirs["user_us"] + theirs["kernel_us"]) / (ours["user_us"] + ours["kernel_us"]),
        "p99": ours["p99"] / theirs["p99"],
        "first_p50": ours["first_p50"] / theirs["first_p50"],
        "first_p99": ours["first_p99"] / theirs["first_p99"],
    }
    print(
        "aioxdp/uvloop: q/s {qps:.2f}x (aim >= 1.5), uvloop's CPU per answer / ours "
        "{cpu:.2f}x, p99 {p99:.2f}x (aim < 1), "
        "first answer p50 {first_p50:.2f}x, p99 {first_p99:.2f}x (aim <= 1.5)".format(**ratios)
    )
    print(
        f"busypoll (Interface.busy_poll {BUSY_POLL * 1e3:g} ms, never sleeping at "
        f"{args.rate} q/s)/uvloop: p50 {ratios['busypoll_p50']:.2f}x, "
        f"p99 {ratios['busypoll_p99']:.2f}x"
    )
    print(json.dumps({"bench": "dns", "ratios": ratios, "raw": found}))


if __name__ == "__main__":
    main()
