"""Coverage-guided fuzzing of every codec with atheris (libFuzzer).

    python tests/fuzz/codecs.py -runs=100000 [seed-dir]

Any exception other than DecodeError is a crash that libFuzzer reports
(non-zero exit, with the input that caused it). The first time an input
parses as a given header, a line "parsed <name>" goes to stdout, so a caller
can tell which parsers the run got into.
"""

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from aioxdp.protocols.arp import Arp
    from aioxdp.protocols.errors import DecodeError
    from aioxdp.protocols.ethernet import Ethernet
    from aioxdp.protocols.icmp import Icmp
    from aioxdp.protocols.icmpv6 import Icmpv6, Neighbor
    from aioxdp.protocols.ipv4 import IPv4
    from aioxdp.protocols.ipv6 import IPv6, upper_layer
    from aioxdp.protocols.tcp import Tcp, TcpOptions
    from aioxdp.protocols.udp import Udp

seen: set[str] = set()


def parsed(name: str) -> None:
    if name not in seen:
        seen.add(name)
        print("parsed", name, flush=True)


def one_input(data: bytes) -> None:
    try:
        eth = Ethernet.parse(data)
        parsed("ethernet")
        if eth.ethertype == 0x0806:
            Arp.parse(data, eth.header_len)
            parsed("arp")
            return
        if eth.ethertype == 0x86DD:
            ipv6(data, eth.header_len)
            return
        ip = IPv4.parse(data, eth.header_len, verify=bool(data[-1:] == b"\x01"))
        parsed("ipv4")
        start, end = eth.header_len + ip.header_len, eth.header_len + ip.total_length
        for name, parse in (("icmp", Icmp.parse), ("udp", Udp.parse), ("tcp", Tcp.parse)):
            with contextlib.suppress(DecodeError):
                parse(data, start, end)
                parsed(name)
    except DecodeError:
        pass
    with contextlib.suppress(DecodeError):
        TcpOptions.parse(data[:40])
        parsed("tcp options")


def ipv6(data: bytes, at: int) -> None:
    """IPv6, its extension headers, and what follows them."""
    ip6 = IPv6.parse(data, at)
    parsed("ipv6")
    upper = upper_layer(data, at)
    parsed("ipv6 extension walk")
    if upper.fragment_offset:
        return
    if upper.proto == 58:
        src, dst = (ip6.src, ip6.dst) if data[-1:] == b"\x01" else (None, None)
        message = Icmpv6.parse(data, upper.offset, upper.end, src=src, dst=dst)
        parsed("icmpv6")
        if message.type in (135, 136):
            Neighbor.parse(message, data[upper.offset + 8 : upper.end])
            parsed("neighbour discovery")
        return
    for name, parse in (("udp", Udp.parse), ("tcp", Tcp.parse)):
        with contextlib.suppress(DecodeError):
            parse(data, upper.offset, upper.end, src=ip6.src, dst=ip6.dst)
            parsed(name)


atheris.Setup(sys.argv, one_input)
atheris.Fuzz()
