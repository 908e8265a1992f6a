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
    from aioxdp.protocols.ipv4 import IPv4
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


atheris.Setup(sys.argv, one_input)
atheris.Fuzz()
