"""Which TCP ports answer? SYN probes through AF_XDP, no connection made.

python examples/tcp_syn_probe.py HOST PORT [PORT...]
"""

import asyncio
import sys

import aioxdp


async def main(host: str, ports: list[int]) -> None:
    for port in ports:
        result = await aioxdp.tcp_ping(host, port, count=2, interval=0.05, timeout=0.5)
        state = {True: "open", False: "closed", None: "filtered"}[result.open]
        rtt = f"{result.avg * 1e3:.3f} ms" if result.received else "-"
        print(f"{host}:{port} {state} {rtt}")


asyncio.run(main(sys.argv[1], [int(p) for p in sys.argv[2:]]))
