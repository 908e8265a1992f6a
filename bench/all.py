"""Every benchmark in one lab, one table of ratios, then one JSON line.

    .venv/bin/python bench/all.py [--quick]

The figures are ratios against a peer measured in the same run, never
absolute rates alone (the machine's speed varies by +-30% run to run);
bench/README.md says what each one means and what bounds it. --quick runs
each for a fraction of the time, for a smoke test of the benches.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dns
import latency
import ping_rate
import rx_throughput
import udp_echo
import uvloop

from aioxdp.testing import Lab

Row = tuple[str, float, str]  # figure, ratio, what bounds it
KERNEL_TX = "kernel TX on our CPU"
SHARED = "b's thread shares a CPU"  # b's receive thread runs beside the server


def against(rates: dict[str, float], *specs: tuple[str, str, str, str]) -> list[Row]:
    """One row per (figure, ours, theirs, bound): rates[ours] / rates[theirs]."""
    return [(name, rates[ours] / rates[theirs], bound) for name, ours, theirs, bound in specs]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test")
    args = parser.parse_args()
    seconds = 1.0 if args.quick else 3.0
    count = 20_000 if args.quick else 200_000
    rows: list[Row] = []
    raw: dict[str, Any] = {}
    with Lab(ipv6=True) as lab:
        udp = raw["udp_echo"] = udp_echo.rates(lab, seconds, 256)
        rows += against(
            udp,
            ("UDP echo, per datagram / uvloop", "aioxdp", "uvloop", "client, veth"),
            ("UDP echo, batch / uvloop", "batch", "uvloop", "client, veth"),
            ("UDP echo, per datagram / batch", "aioxdp", "batch", "our Python"),
        )
        # the same servers by their CPU per datagram (user + kernel), so a
        # server the client did not keep busy is not under-counted
        cpu = {
            n: udp[f"{n} user us"] + udp[f"{n} kernel us"] for n in ("uvloop", "aioxdp", "batch")
        }
        cpu["batch kernel"] = udp["batch kernel us"]
        rows += against(
            cpu,
            ("UDP echo CPU/datagram, uvloop / per datagram", "uvloop", "aioxdp", "our Python"),
            ("UDP echo CPU/datagram, uvloop / batch", "uvloop", "batch", "batch's kernel time"),
            ("UDP echo, batch's kernel share of its CPU", "batch kernel", "batch", KERNEL_TX),
        )
        udp6 = raw["udp_echo_ipv6"] = udp_echo.rates(lab, seconds, 256, family=6)
        rows += against(
            udp6,
            ("UDP echo IPv6, per datagram / uvloop", "aioxdp", "uvloop", "client, veth"),
            ("UDP echo IPv6, batch / uvloop", "batch", "uvloop", "client, veth"),
        )
        rows += against(
            {"v6": udp6["aioxdp"], "v4": udp["aioxdp"]},
            ("UDP echo, per datagram, IPv6 / IPv4", "v6", "v4", "our IPv6 path"),
        )
        gen = raw["udp_echo_generator"] = udp_echo.generated_rates(lab, seconds)
        echoed = {name: r["echoed"] for name, r in gen.items()}
        echoed["offered"] = gen["batch"]["offered"]  # what the batch echo's generator offered
        rows += against(
            echoed,
            ("UDP echo, generator, per datagram / uvloop", "aioxdp", "uvloop", KERNEL_TX),
            ("UDP echo, generator, batch / uvloop", "batch", "uvloop", KERNEL_TX),
            ("UDP echo, generator, per datagram / batch", "aioxdp", "batch", "our Python"),
            ("UDP echo, generator, batch / offered", "batch", "offered", "< 1: outran"),
        )
        # the same with b receiving in a thread of its own: each server's CPU
        # is then its own work, not b's receive of its echoes as well
        apart = raw["udp_echo_generator_peer_thread"] = udp_echo.generated_rates(
            lab, seconds, peer_thread=True
        )
        echoed = {name: r["echoed"] for name, r in apart.items()}
        cpu = {name: r["user_us"] + r["kernel_us"] for name, r in apart.items()}
        rows += against(
            echoed,
            (
                "UDP echo, gen., b's receive apart, per datagram / uvloop",
                "aioxdp",
                "uvloop",
                SHARED,
            ),
            ("UDP echo, gen., b's receive apart, batch / uvloop", "batch", "uvloop", SHARED),
        )
        rows += against(
            cpu,
            (
                "UDP echo CPU/echo, b's receive apart, uvloop / per dgram",
                "uvloop",
                "aioxdp",
                "our Python",
            ),
            (
                "UDP echo CPU/echo, b's receive apart, uvloop / batch",
                "uvloop",
                "batch",
                "copy-mode TX",
            ),
        )
        client = raw["udp_reflector_peer"] = udp_echo.reflected_rates(lab, seconds, 256)
        rows += against(
            client,
            ("UDP client, reflector peer, aioxdp / C loop", "aioxdp", "C", "us"),
            ("UDP client, reflector peer, aioxdp / uvloop", "aioxdp", "uvloop", "us"),
        )
        answers = raw["dns"] = dns.rates(
            lab, argparse.Namespace(seconds=seconds, rate=5000, fresh=50 if args.quick else 200)
        )
        ours, theirs, busy = answers["aioxdp"], answers["uvloop"], answers["busypoll"]
        # CPU per answer the other way up, so that more than 1 is ours better
        for side in (ours, theirs):
            side["cpu_inverse"] = 1 / (side["user_us"] + side["kernel_us"])
        rows += [
            (name, ours[key] / theirs[key], bound)
            for name, key, bound in (
                ("DNS q/s (dnsperf), aioxdp / uvloop", "qps", "dnsperf, veth"),
                ("DNS CPU/answer, uvloop / aioxdp", "cpu_inverse", "our Python"),
                ("DNS p99 at 5k q/s, aioxdp / uvloop", "p99", "both wakeups"),
                (
                    "DNS first answer p50 (fresh port), aioxdp / uvloop",
                    "first_p50",
                    "client's socket",
                ),
            )
        ]
        rows += [
            (
                f"DNS {q} at 5k q/s, aioxdp busy_poll / uvloop",
                busy[q] / theirs[q],
                "uvloop's wakeup; ours spins",
            )
            for q in ("p50", "p99")
        ]
        kernel = raw["ping_kernel_peer"] = ping_rate.rates(
            lab, count, 0, uvloop.run, cli_count=count // 4
        )
        rows += against(
            kernel,
            ("flood ping, kernel peer, aioxdp / C loop", "aioxdp", "C loop", "peer kernel"),
            ("flood ping, kernel peer, aioxdp / ping -f", "aioxdp", "ping -f", "peer kernel"),
            (
                "flood ping, one in flight, aioxdp ping -f / ping -f",
                "aioxdp ping -f",
                "ping -f, as many",
                "the kick and the peer",
            ),
        )
        reflected = raw["ping_reflector_peer"] = ping_rate.reflected_rates(lab, count, uvloop.run)
        rows += against(
            reflected, ("flood ping, reflector peer, aioxdp / C loop", "aioxdp", "C loop", "us")
        )
        kernel6 = raw["ping_kernel_peer_ipv6"] = ping_rate.rates(lab, count, 0, uvloop.run, 6)
        reflected6 = raw["ping_reflector_peer_ipv6"] = ping_rate.reflected_rates(
            lab, count, uvloop.run, 6
        )
        rows += against(
            kernel6,
            (
                "flood ping IPv6, kernel peer, aioxdp / ping -6 -f",
                "aioxdp",
                "ping -f",
                "peer kernel",
            ),
        )
        rows += against(
            reflected6,
            ("flood ping IPv6, reflector peer, aioxdp / C loop", "aioxdp", "C loop", "us"),
        )
        rows += against(
            {"v6": reflected6["aioxdp"], "v4": reflected["aioxdp"]},
            ("flood ping, reflector peer, aioxdp IPv6 / IPv4", "v6", "v4", "our IPv6 path"),
        )
        with lab.a.enter():
            rx = raw["rx_throughput"] = asyncio.run(rx_throughput.measure(lab, seconds, 64))
        rows += against(
            rx,
            ("RX, Python / C loop, best of each", "python", "c", "producer's CPU"),
            (
                "RX, Python / C loop, both sleep (epoll, poll())",
                "python_epoll",
                "c_poll",
                "wakeups",
            ),
            ("RX, Python busy_poll / C loop spinning", "python_busy", "c_spin", "producer's CPU"),
            (
                "RX, Python busy_poll / offered at the socket",
                "python_busy",
                "offered_python_busy",
                "< 1: outran",
            ),
            (
                "RX, C loop spinning / offered at the socket",
                "c_spin",
                "offered_c_spin",
                "< 1: outran",
            ),
            (
                "RX CPU/frame, C loop in poll() / Python in epoll",
                "c_poll_cpu_us",
                "python_epoll_cpu_us",
                "our Python",
            ),
        )
        lat = raw["latency"] = latency.measure(
            lab, 500 if args.quick else 2000, 1000.0, 1 if args.quick else 3
        )
        for kind, peer, label, bound in (
            ("ping", "iputils", "paced ping {q}, aioxdp / iputils", "veth's XDP path: ours only"),
            (
                "ping",
                "iputils+xdp",
                "paced ping {q}, aioxdp / iputils beside the forwarder",
                "our send path",
            ),
            (
                "ping",
                "C loop",
                "paced ping {q}, aioxdp / C loop on our socket",
                "AF_XDP's path after each sleep",
            ),
            ("udp", "uvloop", "UDP request {q} at 1k/s, aioxdp / uvloop", "both wakeups"),
        ):
            found = lat[kind]
            rows += [
                (label.format(q=q), found["aioxdp"][q] / found[peer][q], bound)
                for q in ("p50", "p99")
            ]
        ping = lat["ping"]
        rows += [
            (
                "paced ping p99, both spinning, C loop on our socket / iputils",
                ping["C spin"]["p99"] / ping["iputils"]["p99"],
                "copy-mode AF_XDP against the ICMP socket",
            ),
            (
                "paced ping CPU share, iputils / aioxdp",
                ping["iputils"]["cpu"] / ping["aioxdp"]["cpu"],
                "iputils spins at 1 ms",
            ),
        ]
        udp = lat["udp"]
        rows.append(
            (
                "UDP request at 1k/s, server CPU per request, uvloop / aioxdp",
                udp["uvloop"]["cpu_us"] / udp["aioxdp"]["cpu_us"],
                "our Python per wakeup",
            )
        )
    print(f"{'figure':56s} {'ratio':>7s}  bounded by")
    for name, ratio, bound in rows:
        print(f"{name:56s} {ratio:7.2f}  {bound}")
    print(
        json.dumps(
            {"bench": "all", "quick": args.quick, "ratios": {n: r for n, r, _ in rows}, "raw": raw}
        )
    )


if __name__ == "__main__":
    main()
