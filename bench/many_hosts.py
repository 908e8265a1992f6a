"""Many hosts x 3 probes: aioxdp's multiping against fping, in one lab run.

    .venv/bin/python bench/many_hosts.py [--sizes 1000 10000 65000] [--count 3]

198.19.0.0/16 is routed via lab host b, whose driver answers every echo
request with the XDP reflector (neither b's kernel nor a neighbour table
bounds anything; the peer is not the bottleneck). Each run is a child
process in host a, so its CPU time and peak RSS are its own (wait4):

  aioxdp  multiping(hosts, count=COUNT, interval=0.001, timeout=2.0)
  fping   fping -c COUNT -p 1 -i 0 -t 2000 -q -f hosts   (same hosts)

Each is run ``--repeat`` times (default 3) and the run of median wall time
kept; aioxdp is byte-compiled first, as an installed package is. Prints replies, wall time, CPU time and peak RSS per tool and size, the
ratios, and aioxdp's RSS growth per host over a one-host run; then one
JSON line with the same figures. Bounded: at most 65 536 hosts, each run
killed after 300 s.
"""

from __future__ import annotations

import argparse
import compileall
import ipaddress
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from aioxdp.testing import Lab
from aioxdp.testing.reflector import Reflector

FAR = ipaddress.IPv4Network("198.19.0.0/16")
ROOT = Path(__file__).resolve().parent.parent
RUN_LIMIT = 300.0  # seconds per child

CHILD = """
import asyncio, json, sys
import aioxdp
hosts = open(sys.argv[1]).read().split()
count = int(sys.argv[2])
results = asyncio.run(aioxdp.multiping(hosts, count=count, interval=0.001, timeout=2.0))
sent = replies = errors = 0
for r in results:  # one pass, as a user reads them: each result is made when read
    sent += r.sent
    replies += r.received
    errors += r.error is not None
print(json.dumps({
    "replies": replies,
    "sent": sent,
    "errors": errors,
    "kernel_drops": results[0].kernel_drops,
}))
"""


def hosts_file(n: int) -> str:
    if not 1 <= n <= FAR.num_addresses - 2:
        raise SystemExit(f"--sizes: 1..{FAR.num_addresses - 2} hosts, got {n}")
    fd, path = tempfile.mkstemp(prefix="aioxdp-hosts-", suffix=".txt")
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(str(FAR.network_address + 1 + i) for i in range(n)) + "\n")
    return path


def measured(argv: list[str]) -> tuple[str, str, float, float, int]:
    """Run ``argv``; its stdout, stderr, wall seconds, CPU seconds and peak
    RSS (bytes), from its own rusage (wait4), killed after RUN_LIMIT."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs: dict[str, str] = {}
    readers = [
        threading.Thread(target=lambda k=k, f=f: outputs.__setitem__(k, f.read()))
        for k, f in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for reader in readers:
        reader.start()
    killer = threading.Timer(RUN_LIMIT, proc.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - start
    for reader in readers:
        reader.join()
    cpu = usage.ru_utime + usage.ru_stime
    return outputs.get("out", ""), outputs.get("err", ""), wall, cpu, usage.ru_maxrss * 1024


def run_aioxdp(lab: Lab, path: str, count: int) -> dict[str, float]:
    argv = ["ip", "netns", "exec", lab.a.netns, sys.executable, "-c", CHILD, path, str(count)]
    out, err, wall, cpu, rss = measured(argv)
    if not out.strip():
        raise SystemExit(f"aioxdp run failed: {err.strip()[-500:]}")
    got = json.loads(out.strip().splitlines()[-1])
    return {
        "replies": got["replies"],
        "sent": got["sent"],
        "wall": wall,
        "cpu": cpu,
        "rss": rss,
        "drops": sum(got["kernel_drops"].values()),
    }


def run_fping(lab: Lab, path: str, count: int) -> dict[str, float]:
    argv = [
        "ip",
        "netns",
        "exec",
        lab.a.netns,
        "fping",
        "-c",
        str(count),
        "-p",
        "1",
        "-i",
        "0",
        "-t",
        "2000",
        "-q",
        "-f",
        path,
    ]
    _out, err, wall, cpu, rss = measured(argv)
    sent = replies = 0
    for m in re.finditer(r"xmt/rcv/%loss = (\d+)/(\d+)/", err):
        sent += int(m.group(1))
        replies += int(m.group(2))
    if not sent:
        print(f"fping sent nothing: {err.strip()[:300]!r}", file=sys.stderr)
    return {"replies": replies, "sent": sent, "wall": wall, "cpu": cpu, "rss": rss, "drops": 0}


def median(run: Callable[[], dict[str, float]], repeat: int) -> dict[str, float]:
    """The run of median wall time of ``repeat`` (this VM's timing is noisy)."""
    runs = sorted((run() for _ in range(repeat)), key=lambda r: r["wall"])
    return runs[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 65000])
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per tool and size; the median run is kept"
    )
    args = parser.parse_args()
    if not 1 <= args.count <= 10:
        raise SystemExit("--count: 1..10")
    if not 1 <= args.repeat <= 9:
        raise SystemExit("--repeat: 1..9")
    sizes = sorted(args.sizes)
    # as an installed package is: compiled once, not at every child's import
    # (this machine's environment may say PYTHONDONTWRITEBYTECODE)
    for package in ("aioxdp", "protocols"):
        compileall.compile_dir(str(ROOT / package), quiet=1)
    rows = []
    with Lab() as lab:
        lab.a.run("ip", "route", "add", str(FAR), "via", lab.b.ip)
        one = hosts_file(1)
        try:
            with Reflector(lab.b, udp_ports=[7]):
                # the interpreter and aioxdp alone
                base = median(partial(run_aioxdp, lab, one, args.count), args.repeat)
            for n in sizes:
                path = hosts_file(n)
                try:
                    with Reflector(lab.b, udp_ports=[7]):
                        ours = median(partial(run_aioxdp, lab, path, args.count), args.repeat)
                    # fping uses the kernel: veth hands XDP_TX'd frames only to an XDP peer
                    with Reflector(lab.b, udp_ports=[7], peer_pass=True):
                        theirs = median(partial(run_fping, lab, path, args.count), args.repeat)
                finally:
                    os.unlink(path)
                rows.append((n, ours, theirs))
        finally:
            os.unlink(one)
    print(f"{'hosts':>7} {'tool':7} {'replies':>15} {'wall s':>8} {'cpu s':>7} {'peak RSS':>10}")
    figures = []
    for n, ours, theirs in rows:
        for name, r in (("aioxdp", ours), ("fping", theirs)):
            print(
                f"{n:7} {name:7} {int(r['replies']):>7}/{int(n * args.count):<7} {r['wall']:8.2f}"
                f" {r['cpu']:7.2f} {r['rss'] / 2**20:8.1f}MB"
            )
        per_host = (ours["rss"] - base["rss"]) / n
        versus = (
            f"aioxdp/fping wall {ours['wall'] / theirs['wall']:.2f}x, "
            f"cpu {ours['cpu'] / max(theirs['cpu'], 1e-9):.2f}x"
            if theirs["sent"]
            else "fping refused the run"
        )
        print(
            f"{'':7} {versus}; RSS growth {per_host:.0f} B/host; kernel drops {int(ours['drops'])}"
        )
        figures.append({"hosts": n, "aioxdp": ours, "fping": theirs, "rss_per_host": per_host})
    print(json.dumps({"bench": "many_hosts", "count": args.count, "rows": figures}))


if __name__ == "__main__":
    main()
