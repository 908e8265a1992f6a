"""A protocol handler of your own: answer pings to this host from userspace.

    python examples/custom_protocol.py IFNAME ADDRESS SECONDS

The forwarder takes echo requests to ADDRESS away from the kernel and hands
them to EchoResponder, which builds each reply into a frame and writes it.
The replies carry TTL 99, so a ping from the peer shows who answered.
"""

import asyncio
import sys

from aioxdp.protocols.ethernet import ETH_P_IP, Ethernet
from aioxdp.protocols.icmp import ECHO_REPLY, ECHO_REQUEST, Icmp
from aioxdp.protocols.ipv4 import IPv4

import aioxdp
from aioxdp.packet import IcmpProtocol


class EchoResponder(IcmpProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: aioxdp.PacketTransport = transport  # type: ignore[assignment]
        self.answered = 0

    def icmp_received(self, packet: aioxdp.Packet, eth: Ethernet, ip: IPv4, icmp: Icmp) -> None:
        if icmp.type != ECHO_REQUEST:
            return
        payload = packet.payload
        frame = bytearray(14 + 20 + 8 + len(payload))
        off = Ethernet(eth.src, eth.dst, ETH_P_IP).build_into(frame)
        off += IPv4(ip.dst, ip.src, ip.proto, total_length=28 + len(payload), ttl=99).build_into(
            frame, off
        )
        Icmp(ECHO_REPLY, 0, icmp.rest).build_into(frame, off, payload)
        self.transport.write(frame)
        self.answered += 1


async def main(ifname: str, address: str, seconds: float) -> None:
    async with aioxdp.Interface(ifname) as nic:
        rule = aioxdp.Rule("icmp", dst=address, icmp_type=ECHO_REQUEST)
        _, responder = await nic.create_packet_endpoint(EchoResponder, rules=[rule])
        print(f"answering pings to {address} on {ifname} ({nic.mode} mode)", flush=True)
        await asyncio.sleep(seconds)
        print(f"answered {responder.answered}, malformed {responder.malformed}")


asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
