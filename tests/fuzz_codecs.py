"""Coverage-guided fuzzing of every codec with atheris (libFuzzer).

    python tests/fuzz_codecs.py -runs=100000

Any exception other than DecodeError is a crash that libFuzzer reports
(non-zero exit, with the input that caused it).
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


def one_input(data: bytes) -> None:
    try:
        eth = Ethernet.parse(data)
        if eth.ethertype == 0x0806:
            Arp.parse(data, eth.header_len)
            return
        ip = IPv4.parse(data, eth.header_len, verify=bool(data[-1:] == b"\x01"))
        start, end = eth.header_len + ip.header_len, eth.header_len + ip.total_length
        for parse in (Icmp.parse, Udp.parse, Tcp.parse):
            with contextlib.suppress(DecodeError):
                parse(data, start, end)
    except DecodeError:
        pass
    with contextlib.suppress(DecodeError):
        TcpOptions.parse(data[:40])


atheris.Setup(sys.argv, one_input)
atheris.Fuzz()
