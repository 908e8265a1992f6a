"""``aioxdp demo``: make a lab, ping across it through AF_XDP, remove the lab.

The README's main job. It prints what it attached and where, a few paced
probes the way ping prints them, then a bounded flood and its summary.
"""

from __future__ import annotations

import asyncio
from typing import TextIO

from aioxdp.ping import Pinger
from aioxdp.ping_output import reply_line, summary_lines
from aioxdp.results import PingReply
from aioxdp.testing import Lab

PACED = 5
FLOOD = 50_000


async def _demo(lab: Lab, say: TextIO) -> int:
    a, b = lab.a, lab.b

    def line(text: str = "") -> None:
        print(text, file=say, flush=True)

    def on_reply(reply: PingReply) -> None:
        line(reply_line(reply))

    async with Pinger(b.ip, count=PACED, interval=0.2, on_reply=on_reply) as pinger:
        nic = pinger.nic
        line(
            f"aioxdp forwarder attached to {nic.ifname} in {nic.mode} mode (bpf_link), "
            f"XSK on queue(s) {nic.queues}, echo id {pinger.ident:#06x}"
        )
        line(f"route: {pinger.routes[0]}")
        line(f"PING {b.ip} ({b.ip}) 56(84) bytes of data.")
        paced = await pinger.result()
    for text in summary_lines(paced):
        line(text)
    line()
    line(f"flood: {FLOOD} probes, interval 0, window 256")
    async with Pinger(b.ip, count=FLOOD, interval=0, timeout=1.0) as pinger:
        flood = await pinger.result()
    for text in summary_lines(flood, interval=0):
        line(text)
    rate = flood.received / flood.elapsed if flood.elapsed else 0.0
    line(f"{rate:,.0f} round trips/s through AF_XDP")
    kernel = a.run("ping", "-c", "2", "-i", "0.2", "-W", "1", b.ip, check=False)
    summary = [text for text in kernel.stdout.splitlines() if "packets transmitted" in text]
    if kernel.returncode == 0 and summary:
        line(f"the kernel's own ping on the same interface still works: {summary[0]}")
    else:
        said = (kernel.stderr or kernel.stdout).strip() or "no output"
        line(f"the kernel's own ping FAILED beside aioxdp (exit {kernel.returncode}): {said}")
    return 0 if paced.received and flood.received and kernel.returncode == 0 else 1


def run_demo(out: TextIO, loop: str = "asyncio") -> int:
    with Lab() as lab:
        print(
            f"lab {lab.index}: {lab.a.netns} {lab.a.ifname} {lab.a.ip} <-veth-> "
            f"{lab.b.netns} {lab.b.ifname} {lab.b.ip}",
            file=out,
            flush=True,
        )
        with lab.a.enter():
            if loop == "uvloop":
                import uvloop

                status = uvloop.run(_demo(lab, out))
            else:
                status = asyncio.run(_demo(lab, out))
        print(f"removed lab {lab.index}", file=out)
    return status
