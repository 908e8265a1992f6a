"""Ping a host through AF_XDP, bypassing the kernel:  python examples/ping.py HOST"""

import asyncio
import sys

import aioxdp


async def main(host: str) -> None:
    result = await aioxdp.ping(host, count=5, interval=0.2)
    for r in result.replies:
        print(
            f"{r.size} bytes from {r.source}: icmp_seq={r.seq} ttl={r.ttl} time={r.rtt * 1e3:.3f} ms"
        )
    print(
        f"{result.received}/{result.sent} replies, loss {result.loss:.0%}, avg {result.avg * 1e3:.3f} ms"
    )


asyncio.run(main(sys.argv[1]))
