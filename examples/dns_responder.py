"""A DNS responder for one fixed zone, on AF_XDP: answers A queries.

    python examples/dns_responder.py IFNAME ADDRESS SECONDS [BUSY_POLL]

Names in ZONE get their address; other names get NXDOMAIN; other query
types get an empty answer. Malformed queries are counted and dropped.
BUSY_POLL (seconds, default 0) keeps polling the socket that long after a
query before sleeping (Interface.busy_poll): lower latency for CPU.
"""

import asyncio
import struct
import sys

import aioxdp

ZONE = {
    "lab.test.": "198.18.200.1",
    "www.lab.test.": "198.18.200.2",
    "db.lab.test.": "198.18.200.3",
}
TYPE_A, CLASS_IN = 1, 1


class BadQuery(ValueError):
    pass


def parse_question(msg: bytes) -> tuple[int, int, str, int, int, int]:
    """(id, flags, name, qtype, qclass, end of question) of a one-question query."""
    if len(msg) < 12:
        raise BadQuery("shorter than a DNS header")
    ident, flags, qdcount = struct.unpack_from("!HHH", msg)
    if flags & 0x8000 or qdcount != 1:
        raise BadQuery("not a query with one question")
    labels, i = [], 12
    while True:
        if i >= len(msg):
            raise BadQuery("name runs past the message")
        n = msg[i]
        if n == 0:
            i += 1
            break
        if n & 0xC0 or i + 1 + n > len(msg):
            raise BadQuery("compressed or truncated name in a question")
        labels.append(msg[i + 1 : i + 1 + n].decode("ascii", "replace").lower())
        i += 1 + n
    if i + 4 > len(msg):
        raise BadQuery("question truncated")
    qtype, qclass = struct.unpack_from("!HH", msg, i)
    return ident, flags, ".".join(labels) + ".", qtype, qclass, i + 4


def answer(query: bytes) -> bytes:
    ident, flags, name, qtype, qclass, end = parse_question(query)
    rd = flags & 0x0100
    address = ZONE.get(name)
    rcode = 0 if address is not None else 3  # NXDOMAIN
    answers = b""
    if address is not None and qtype == TYPE_A and qclass == CLASS_IN:
        rdata = bytes(int(x) for x in address.split("."))
        answers = struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, 60, 4) + rdata
    header = struct.pack("!HHHHHH", ident, 0x8400 | rd | rcode, 1, 1 if answers else 0, 0, 0)
    return header + query[12:end] + answers


class Responder(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]
        self.answered = 0
        self.bad = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            reply = answer(data)
        except BadQuery:
            self.bad += 1
            return
        self.transport.sendto(reply, addr)
        self.answered += 1


async def main(ifname: str, address: str, seconds: float, busy_poll: float = 0.0) -> None:
    async with aioxdp.Interface(ifname, busy_poll=busy_poll) as nic:
        _, responder = await nic.create_datagram_endpoint(Responder, local_addr=(address, 53))
        print(f"serving {len(ZONE)} names on {address}:53", flush=True)
        await asyncio.sleep(seconds)
        print(f"answered {responder.answered}, bad {responder.bad}", flush=True)


if __name__ == "__main__":
    busy_poll = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), busy_poll))
