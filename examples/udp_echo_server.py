"""A UDP echo server on AF_XDP.

    python examples/udp_echo_server.py IFNAME ADDRESS PORT SECONDS [--batch]

By default each datagram goes through asyncio's shapes: datagram_received,
then sendto. With --batch, a whole receive batch is echoed in place by one
C call, without copying a byte (DatagramBatch.echo).
"""

import argparse
import asyncio

import aioxdp
from aioxdp.datagram import DatagramBatch, DatagramTransport


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: DatagramTransport = transport  # type: ignore[assignment]
        self.echoed = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)
        self.echoed += 1


class BatchEcho(Echo):
    def datagrams_received(self, batch: DatagramBatch) -> None:
        self.echoed += batch.echo()


async def main(args: argparse.Namespace) -> None:
    async with aioxdp.Interface(args.ifname) as nic:
        factory = BatchEcho if args.batch else Echo
        transport, echo = await nic.create_datagram_endpoint(
            factory, local_addr=(args.address, args.port)
        )
        print(f"echoing UDP on {args.address}:{args.port} ({nic.mode} mode)", flush=True)
        await asyncio.sleep(args.seconds)
        print(f"echoed {echo.echoed}, malformed {transport.malformed}", flush=True)


parser = argparse.ArgumentParser()
parser.add_argument("ifname")
parser.add_argument("address")
parser.add_argument("port", type=int)
parser.add_argument("seconds", type=float)
parser.add_argument("--batch", action="store_true")
asyncio.run(main(parser.parse_args()))
