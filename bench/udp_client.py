"""UDP load client for bench/udp_echo.py, run inside the lab peer:

    python bench/udp_client.py IFNAME SERVER_IP PORT SECONDS WINDOW

SERVER_IP is IPv4 or IPv6.

Opens aioxdp on IFNAME with a rule for the server's replies, then hands the
socket to the C pump (bench/xsk_loops.c) and prints replies per second.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import native
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from aioxdp import Interface, PacketProtocol, Rule
from aioxdp.neighbour import resolve_neighbour
from aioxdp.route import route_to

CLIENT_PORT = 40000


async def main(ifname: str, server: str, port: int, seconds: float, window: int) -> None:
    loops = native.load()
    async with Interface(ifname) as nic:
        route = await resolve_neighbour(await route_to(server), nic)
        await nic.create_packet_endpoint(
            PacketProtocol, rules=[Rule("udp", src=server, src_port=port, dst_port=CLIENT_PORT)]
        )
        ip = (IPv6 if ":" in server else IP)(src=route.source, dst=server)
        frame = bytes(
            Ether(src=route.source_mac, dst=route.next_hop_mac)
            / ip
            / UDP(sport=CLIENT_PORT, dport=port)
            / Raw(b"q" * 32)
        )
        nic.transport(0).pause_reading()  # the C pump owns the socket now
        print("ready", flush=True)
        t0 = time.perf_counter()
        got = loops.bench_udp_pump(
            native.pointer(nic.socket(0)), frame, len(frame), window, seconds
        )
        print(got / (time.perf_counter() - t0), flush=True)
        nic.transport(0).resume_reading()


asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])))
