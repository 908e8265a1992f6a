"""A bounded soak in the lab: ping flood, UDP echo and rule churn at once.

    .venv/bin/python bench/soak.py [--seconds 60]

Prints frames leaked (must be 0), RSS after warm-up and at the end, and the
counters: pings sent = answered + lost, with the losses set against the
kernel's own drop counters; UDP datagrams sent = echoed. tests/ runs a short
form of the same function.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aioxdp
from aioxdp import Interface, PacketProtocol, Rule
from aioxdp.testing import Host, Lab

UDP_CLIENT = """
import socket, sys, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
sent = good = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    for i in range(16):
        s.sendto(b"soak%d" % (sent + i), (host, port))
    for i in range(16):
        try:
            if s.recvfrom(2048)[0].startswith(b"soak"):
                good += 1
        except TimeoutError:
            pass
    sent += 16
print(sent, good)
"""


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: aioxdp.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def link_drops(host: Host) -> int:
    out = host.run("ip", "-s", "-j", "link", "show", host.ifname).stdout
    stats = json.loads(out)[0]["stats64"]
    return int(stats["rx"]["dropped"]) + int(stats["tx"]["dropped"])


def ip_out_discards(host: Host) -> int:
    """The host kernel's IP OutDiscards: what it failed to transmit. A veth
    whose peer runs XDP refuses frames while the peer's 256-slot ring is
    full, and the peer's echo replies to a burst of probes end here."""
    lines = host.run("cat", "/proc/net/snmp").stdout.splitlines()
    names, values = (line.split()[1:] for line in lines if line.startswith("Ip:"))
    return int(dict(zip(names, values, strict=True))["OutDiscards"])


async def soak(lab: Lab, seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    warmed = time.monotonic() + seconds * 0.2
    drops_before = link_drops(lab.a) + link_drops(lab.b) + ip_out_discards(lab.b)
    async with Interface(lab.a.ifname) as nic:
        await nic.create_datagram_endpoint(Echo, local_addr=(lab.a.ip, 7000))
        churn, _ = await nic.create_packet_endpoint(
            PacketProtocol, rules=[Rule("udp", dst_port=19999)]
        )
        client = await asyncio.create_subprocess_exec(
            *lab.b.command(sys.executable, "-c", UDP_CLIENT, lab.a.ip, "7000", str(seconds)),
            stdout=asyncio.subprocess.PIPE,
        )
        changes = 0

        async def churn_rules() -> None:
            nonlocal changes
            k = 0
            while time.monotonic() < deadline:
                rule = Rule("udp", dst_port=20000 + k % 1000)
                churn.add_rule(rule)
                await asyncio.sleep(0.05)
                churn.remove_rule(rule)
                await asyncio.sleep(0.05)
                changes += 2
                k += 1

        churner = asyncio.ensure_future(churn_rules())
        sent = received = 0
        rss_warm = 0
        while time.monotonic() < deadline:
            result = await aioxdp.ping(lab.b.ip, count=20_000, interval=0, timeout=0.5)
            sent += result.sent
            received += result.received
            if not rss_warm and time.monotonic() > warmed:
                rss_warm = rss_kib()
        await churner
        out, _ = await client.communicate()
        udp_sent, udp_good = (int(x) for x in out.split())
        stats = nic.stats()["queues"][0]["xdp"]
        frames = nic.frame_counts()[0]
        verdicts = nic.forwarder.counters
    rss_end = rss_kib()
    kernel_drops = (
        stats.rx_dropped
        + stats.rx_ring_full
        + link_drops(lab.a)
        + link_drops(lab.b)
        + ip_out_discards(lab.b)
        - drops_before
    )
    leaked = sum(c.leaked for c in nic.final_counts.values())
    return {
        "seconds": seconds,
        "leaked": leaked,
        "ping_sent": sent,
        "ping_received": received,
        "ping_lost": sent - received,
        "kernel_drops": kernel_drops,
        "udp_sent": udp_sent,
        "udp_good": udp_good,
        "rule_changes": changes,
        "fill_ring_empty": stats.rx_fill_ring_empty_descs,
        "invalid_descs": frames.kernel_invalid,
        "passed_untagged": verdicts.no_meta,
        "rss_warm_kib": rss_warm or rss_end,
        "rss_end_kib": rss_end,
        "rss_growth": (rss_end - (rss_warm or rss_end)) / (rss_warm or rss_end),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    import uvloop

    with Lab() as lab, lab.a.enter():
        report = uvloop.run(soak(lab, args.seconds))
    for key, value in report.items():
        print(f"{key:15s} {value:.3%}" if key == "rss_growth" else f"{key:15s} {value}")
    ok = (
        report["leaked"] == 0
        and report["rss_growth"] < 0.05
        and report["ping_lost"] <= report["kernel_drops"]
    )
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
