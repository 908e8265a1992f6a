"""A stateless TCP responder: answers SYNs with SYN-ACKs carrying SYN cookies.

    python examples/syn_cookie_responder.py IFNAME ADDRESS PORT SECONDS

It keeps no state per connection: the SYN-ACK's sequence number encodes a
time slot, an MSS and a keyed hash of the connection's addresses, so the
client's ACK can be checked against what we would have sent. A valid ACK
completes the handshake (the client's connect() returns); a FIN is answered
with RST. Malformed segments are counted and dropped.
"""

import asyncio
import hashlib
import hmac
import os
import struct
import sys
import time

from aioxdp.protocols.errors import DecodeError
from aioxdp.protocols.ethernet import ETH_P_IP, Ethernet
from aioxdp.protocols.ipv4 import IPv4
from aioxdp.protocols.tcp import ACK, FIN, IPPROTO_TCP, RST, SYN, Tcp, TcpOptions

import aioxdp

SECRET = os.urandom(16)
MSS_TABLE = (536, 1220, 1440, 1460)


def slot(now: float) -> int:
    return int(now) >> 6 & 0x1F  # 64-second slots, 5 bits


def cookie_hash(ip: IPv4, tcp: Tcp, t: int) -> int:
    msg = ip.src + ip.dst + struct.pack("!HHB", tcp.sport, tcp.dport, t)
    return int.from_bytes(hmac.digest(SECRET, msg, hashlib.sha256)[:3], "big")


def make_cookie(ip: IPv4, tcp: Tcp, mss: int) -> tuple[int, int]:
    index = max(i for i, m in enumerate(MSS_TABLE) if m <= mss) if mss >= MSS_TABLE[0] else 0
    t = slot(time.time())
    return (t << 27) | (index << 24) | cookie_hash(ip, tcp, t), MSS_TABLE[index]


def check_cookie(ip: IPv4, tcp: Tcp) -> bool:
    cookie = (tcp.ack - 1) & 0xFFFFFFFF
    t = cookie >> 27
    now = slot(time.time())
    if t not in (now, (now - 1) & 0x1F):
        return False
    return cookie & 0xFFFFFF == cookie_hash(ip, tcp, t)


class SynCookies(aioxdp.PacketProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: aioxdp.PacketTransport = transport  # type: ignore[assignment]
        self.handshakes = 0
        self.bad_acks = 0
        self.malformed: dict[str, int] = {}

    def reply(
        self, eth: Ethernet, ip: IPv4, tcp: Tcp, seq: int, ack: int, flags: int, opts: TcpOptions
    ) -> None:
        length = 20 + len(opts.build())
        frame = bytearray(14 + 20 + length)
        off = Ethernet(eth.src, eth.dst, ETH_P_IP).build_into(frame)
        off += IPv4(ip.dst, ip.src, IPPROTO_TCP, 20 + length, 64, dont_fragment=True).build_into(
            frame, off
        )
        Tcp(tcp.dport, tcp.sport, seq, ack, flags, 64240, 0, opts).build_into(
            frame, off, b"", ip.dst, ip.src
        )
        self.transport.write(frame)

    def packet_received(self, packet: aioxdp.Packet) -> None:
        try:
            eth, ip, tcp = packet.eth, packet.ip, packet.l4
        except DecodeError as exc:
            self.malformed[exc.reason] = self.malformed.get(exc.reason, 0) + 1
            return
        assert isinstance(tcp, Tcp)
        assert isinstance(ip, IPv4)  # its rule names an IPv4 address
        if tcp.flags & RST:
            return
        if tcp.flags & SYN and not tcp.flags & ACK:
            seq, mss = make_cookie(ip, tcp, tcp.options.mss or 536)
            self.reply(eth, ip, tcp, seq, tcp.seq + 1, SYN | ACK, TcpOptions(mss=mss))
        elif tcp.flags & FIN:
            self.reply(eth, ip, tcp, tcp.ack, 0, RST, TcpOptions())  # no state to keep: reset
        elif tcp.flags & ACK and not packet.payload:
            if check_cookie(ip, tcp):
                self.handshakes += 1
            else:
                self.bad_acks += 1
                self.reply(eth, ip, tcp, tcp.ack, 0, RST, TcpOptions())


async def main(ifname: str, address: str, port: int, seconds: float) -> None:
    async with aioxdp.Interface(ifname) as nic:
        rule = aioxdp.Rule("tcp", dst=address, dst_port=port)
        _, responder = await nic.create_packet_endpoint(SynCookies, rules=[rule])
        print(f"SYN cookies on {address}:{port}", flush=True)
        await asyncio.sleep(seconds)
        print(
            f"handshakes {responder.handshakes}, bad acks {responder.bad_acks}, malformed {responder.malformed}",
            flush=True,
        )


asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
