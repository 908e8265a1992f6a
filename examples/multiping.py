"""Ping several hosts at once over one XDP socket:  python examples/multiping.py HOST [HOST...]"""

import asyncio
import sys

import aioxdp


async def main(hosts: list[str]) -> None:
    results = await aioxdp.multiping(hosts, count=100, interval=0.01, timeout=0.5)
    for r in results:
        print(
            f"{r.address:15s} {r.received}/{r.sent} replies  min/avg/max {r.min * 1e3:.3f}/"
            f"{r.avg * 1e3:.3f}/{r.max * 1e3:.3f} ms"
        )


asyncio.run(main(sys.argv[1:]))
