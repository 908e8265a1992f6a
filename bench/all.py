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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test")
    args = parser.parse_args()
    seconds = 1.0 if args.quick else 3.0
    count = 20_000 if args.quick else 200_000
    rows: list[tuple[str, float, str]] = []
    raw: dict[str, Any] = {}
    with Lab(ipv6=True) as lab:
        udp = raw["udp_echo"] = udp_echo.rates(lab, seconds, 256)
        rows += [
            ("UDP echo, per datagram / uvloop", udp["aioxdp"] / udp["uvloop"], "client, veth"),
            ("UDP echo, batch / uvloop", udp["batch"] / udp["uvloop"], "client, veth"),
            ("UDP echo, per datagram / batch", udp["aioxdp"] / udp["batch"], "our Python"),
        ]
        udp6 = raw["udp_echo_ipv6"] = udp_echo.rates(lab, seconds, 256, family=6)
        rows += [
            (
                "UDP echo IPv6, per datagram / uvloop",
                udp6["aioxdp"] / udp6["uvloop"],
                "client, veth",
            ),
            ("UDP echo IPv6, batch / uvloop", udp6["batch"] / udp6["uvloop"], "client, veth"),
            (
                "UDP echo, per datagram, IPv6 / IPv4",
                udp6["aioxdp"] / udp["aioxdp"],
                "our IPv6 path",
            ),
        ]
        gen = raw["udp_echo_generator"] = udp_echo.generated_rates(lab, seconds)
        echoed = {name: r["echoed"] for name, r in gen.items()}
        rows += [
            (
                "UDP echo, generator, per datagram / uvloop",
                echoed["aioxdp"] / echoed["uvloop"],
                "kernel TX on our CPU",
            ),
            (
                "UDP echo, generator, batch / uvloop",
                echoed["batch"] / echoed["uvloop"],
                "kernel TX on our CPU",
            ),
            (
                "UDP echo, generator, per datagram / batch",
                echoed["aioxdp"] / echoed["batch"],
                "our Python",
            ),
            (
                "UDP echo, generator, batch / offered",
                echoed["batch"] / gen["batch"]["offered"],
                "< 1: outran",
            ),
        ]
        client = raw["udp_reflector_peer"] = udp_echo.reflected_rates(lab, seconds, 256)
        rows += [
            ("UDP client, reflector peer, aioxdp / C loop", client["aioxdp"] / client["C"], "us"),
            (
                "UDP client, reflector peer, aioxdp / uvloop",
                client["aioxdp"] / client["uvloop"],
                "us",
            ),
        ]
        answers = raw["dns"] = dns.rates(
            lab, argparse.Namespace(seconds=seconds, rate=5000, fresh=50 if args.quick else 200)
        )
        ours, theirs = answers["aioxdp"], answers["uvloop"]
        rows += [
            ("DNS q/s (dnsperf), aioxdp / uvloop", ours["qps"] / theirs["qps"], "dnsperf, veth"),
            ("DNS p99 at 5k q/s, aioxdp / uvloop", ours["p99"] / theirs["p99"], "both wakeups"),
            (
                "DNS first answer p50 (fresh port), aioxdp / uvloop",
                ours["first_p50"] / theirs["first_p50"],
                "client's socket",
            ),
        ]
        kernel = raw["ping_kernel_peer"] = ping_rate.rates(lab, count, 0, uvloop.run)
        rows += [
            (
                "flood ping, kernel peer, aioxdp / C loop",
                kernel["aioxdp"] / kernel["C loop"],
                "peer kernel",
            ),
            (
                "flood ping, kernel peer, aioxdp / ping -f",
                kernel["aioxdp"] / kernel["ping -f"],
                "peer kernel",
            ),
        ]
        reflected = raw["ping_reflector_peer"] = ping_rate.reflected_rates(lab, count, uvloop.run)
        rows.append(
            (
                "flood ping, reflector peer, aioxdp / C loop",
                reflected["aioxdp"] / reflected["C loop"],
                "us",
            )
        )
        kernel6 = raw["ping_kernel_peer_ipv6"] = ping_rate.rates(lab, count, 0, uvloop.run, 6)
        reflected6 = raw["ping_reflector_peer_ipv6"] = ping_rate.reflected_rates(
            lab, count, uvloop.run, 6
        )
        rows += [
            (
                "flood ping IPv6, kernel peer, aioxdp / ping -6 -f",
                kernel6["aioxdp"] / kernel6["ping -f"],
                "peer kernel",
            ),
            (
                "flood ping IPv6, reflector peer, aioxdp / C loop",
                reflected6["aioxdp"] / reflected6["C loop"],
                "us",
            ),
            (
                "flood ping, reflector peer, aioxdp IPv6 / IPv4",
                reflected6["aioxdp"] / reflected["aioxdp"],
                "our IPv6 path",
            ),
        ]
        with lab.a.enter():
            rx = raw["rx_throughput"] = asyncio.run(rx_throughput.measure(lab, seconds, 64))
        rows += [
            ("RX, Python / C loop", rx["python"] / rx["c"], "generator if offered ~ C"),
            (
                "RX, Python / offered at the socket",
                rx["python"] / rx["offered_python"],
                "< 1: outran",
            ),
            ("RX, C loop / offered at the socket", rx["c_mean"] / rx["offered_c"], "< 1: outran"),
        ]
        lat = raw["latency"] = latency.measure(lab, 500 if args.quick else 2000, 1000.0)
        ping, udp_lat = lat["ping"], lat["udp"]
        rows += [
            (
                "paced ping p50, aioxdp / iputils",
                ping["aioxdp"]["p50"] / ping["iputils"]["p50"],
                "our send path",
            ),
            (
                "paced ping p99, aioxdp / iputils",
                ping["aioxdp"]["p99"] / ping["iputils"]["p99"],
                "our send path",
            ),
            (
                "UDP request p50 at 1k/s, aioxdp / uvloop",
                udp_lat["aioxdp"]["p50"] / udp_lat["uvloop"]["p50"],
                "both wakeups",
            ),
            (
                "UDP request p99 at 1k/s, aioxdp / uvloop",
                udp_lat["aioxdp"]["p99"] / udp_lat["uvloop"]["p99"],
                "both wakeups",
            ),
        ]
    print(f"{'figure':52s} {'ratio':>7s}  bounded by")
    for name, ratio, bound in rows:
        print(f"{name:52s} {ratio:7.2f}  {bound}")
    print(
        json.dumps(
            {"bench": "all", "quick": args.quick, "ratios": {n: r for n, r, _ in rows}, "raw": raw}
        )
    )


if __name__ == "__main__":
    main()
