"""A lab peer that answers in its driver: ICMP and ICMPv6 echo, and UDP echo
over IPv4 and IPv6, by XDP_TX.

    with Reflector(lab.b, udp_ports=[7], peer_pass=True) as r:
        ...            # pings and UDP to port 7 of lab.b come back from XDP
        r.counters()   # {"icmp": n, "udp": n, "passed": n}

veth hands an XDP_TX'd frame only to a peer that runs XDP; ``peer_pass``
attaches a pass-everything program to the other end for when nothing of
aioxdp runs there.

``sink=True`` turns it into a counter for a server's echoes: UDP datagrams
*from* ``udp_ports`` are counted (``counters()["sunk"]``) and dropped in the
driver, everything else passes; nothing is answered. For when a generator
offers the requests and no client should be what bounds the server.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import ExitStack

from aioxdp.bpf import BPFObject, XDPLink
from aioxdp.testing.lab import Host


class Reflector:
    def __init__(
        self,
        host: Host,
        *,
        udp_ports: Iterable[int] = (7,),
        peer_pass: bool = False,
        sink: bool = False,
    ) -> None:
        self.host = host
        self.udp_ports = [int(p) for p in udp_ports]
        bad = [p for p in self.udp_ports if not 1 <= p <= 65535]
        if bad:
            raise ValueError(f"udp_ports: ports are 1..65535, got {bad}")
        self.peer_pass = peer_pass
        self.sink = sink
        self._stack = ExitStack()
        self.link: XDPLink | None = None
        self._obj: BPFObject | None = None

    def __enter__(self) -> Reflector:
        try:
            obj = self._obj = self._stack.enter_context(BPFObject.packaged("reflector"))
            obj.load()
            ports = obj.map("aioxdp_reflector_ports", key="uint16_t", value="uint8_t")
            for port in self.udp_ports:
                ports.update(port.to_bytes(2, "little"), b"\x01")
            with self.host.enter():
                self.link = self._stack.enter_context(
                    obj.program("aioxdp_sink" if self.sink else "aioxdp_reflector").attach(
                        self.host.ifname, mode="native"
                    )
                )
            if self.peer_pass:
                peer = self.host.peer
                assert peer is not None
                with peer.enter():
                    self._stack.enter_context(
                        obj.program("aioxdp_pass").attach(peer.ifname, mode="native")
                    )
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def counters(self) -> dict[str, int]:
        assert self._obj is not None
        counters = self._obj.map("aioxdp_reflector_counters", value="uint64_t")
        names = ("icmp", "udp", "passed", "sunk")
        return {name: sum(int(v[0]) for v in counters.lookup(i)) for i, name in enumerate(names)}
