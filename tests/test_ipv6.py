"""IPv6 end to end in a lab with IPv6 on (addresses from 2001:2::/48): ping,
multiping over both families, our own neighbour solicitation, ICMPv6
errors; the peer's kernel, tshark and iputils' ping -6 as witnesses."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from aioxdp.protocols.ethernet import Ethernet as Ethernet6
from aioxdp.protocols.icmpv6 import Icmpv6
from aioxdp.protocols.ipv6 import IPv6 as IPv6Header
from aioxdp.protocols.ipv6 import ip6_str
from aioxdp.protocols.udp import Udp
from conftest import eventually, read_line, tshark
from scapy.layers.inet import UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import rdpcap
from test_datapath import scapy_send
from test_drivers import BACKENDS, interface_class, run
from test_udp_tcp import BatchEcho, Echo, IteratingEcho, udp_client

import aioxdp
from aioxdp import udp_paths
from aioxdp.packet import IcmpProtocol
from aioxdp.route import HostNameError, NoRouteError, UnresolvedNeighbourError
from aioxdp.testing import Lab
from aioxdp.testing.reflector import Reflector

FAR6 = "2001:2:ff::"  # a prefix a routes through b (b answers for it with errors)


@pytest.fixture
def lab6() -> Iterator[Lab]:
    """An IPv6 lab, with this thread inside host a for the test."""
    with Lab(ipv6=True) as lab, lab.a.enter():
        yield lab


def neighbours6(lab: Lab, host: str) -> str:
    """The IPv6 neighbour table of host a or b, as ``ip -6 neigh`` shows it."""
    side = lab.a if host == "a" else lab.b
    return side.run("ip", "-6", "neigh", "show", "dev", side.ifname).stdout


async def test_ping6_tshark_sees_valid_icmpv6_and_kernel_ping6_works_beside(lab6: Lab) -> None:
    count, size = 40, 120
    capture = tshark(
        lab6,
        count,
        "icmp6 and ip6[40] == 128 and ip6[7] == 9",  # our requests: hop limit 9
        "icmpv6.type",
        "icmpv6.checksum.status",
        "ipv6.plen",
        "ipv6.hlim",
        "icmpv6.echo.sequence_number",
        "ipv6.src",
    )
    async with aioxdp.Pinger(
        lab6.b.ip6 or "", count=count, interval=0.005, size=size, ttl=9
    ) as pinger:
        kernel = await asyncio.to_thread(
            lab6.a.run, "ping", "-6", "-c", "5", "-i", "0.01", "-q", lab6.b.ip6 or ""
        )
        result = await pinger.result()
    out, _ = await asyncio.to_thread(capture.communicate, timeout=30)
    assert result.received == count, result
    assert result.address == lab6.b.ip6
    assert [r.seq for r in result.replies] == list(range(1, count + 1))
    assert {(r.size, r.ttl, r.source) for r in result.replies} == {(8 + size, 64, lab6.b.ip6)}
    rows = [line.split(",") for line in out.strip().splitlines()]
    assert len(rows) == count, rows
    for _type, checksum_ok, plen, _hlim, _seq, src in rows:
        assert checksum_ok == "1", "tshark says an ICMPv6 checksum is bad"
        assert int(plen) == 8 + size
        assert src == lab6.a.ip6
    assert sorted(int(r[4]) for r in rows) == list(range(1, count + 1))
    assert " 0% packet loss" in kernel.stdout, kernel.stdout  # the kernel's ping -6 beside ours


async def test_a_neighbour_unknown_at_start_is_resolved_by_our_solicitation_tshark_sees(
    lab6: Lab,
) -> None:
    lab6.a.run("ip", "-6", "neigh", "flush", "dev", lab6.a.ifname)
    lab6.b.run("ip", "-6", "neigh", "flush", "dev", lab6.b.ifname)
    assert str(lab6.b.ip6) not in neighbours6(lab6, "a")
    capture = tshark(
        lab6, 1, "icmp6 and ip6[40] == 135", "icmpv6.nd.ns.target_address", "eth.src", "ipv6.dst"
    )
    result = await aioxdp.ping(lab6.b.ip6 or "", count=2, interval=0.05)
    out, _ = await asyncio.to_thread(capture.communicate, timeout=30)
    assert result.received == 2
    target, mac, group = out.strip().split(",")
    assert (target, mac) == (lab6.b.ip6, lab6.a.mac)
    assert group.startswith("ff02::1:ff")  # b's solicited-node group
    # the kernel of a never asked: the entry b holds for a came from our NS
    assert str(lab6.b.ip6) not in neighbours6(lab6, "a")
    assert str(lab6.a.ip6) in neighbours6(lab6, "b")


async def test_a_silent_neighbour_is_a_named_error(lab6: Lab) -> None:
    silent = (lab6.b.ip6 or "").replace("::2", "::99")  # on a's link, no one has it
    with pytest.raises(UnresolvedNeighbourError, match="no neighbour advertisement"):
        await aioxdp.ping(silent, count=1, timeout=0.5)


async def test_multiping_mixes_families_in_host_order(lab6: Lab) -> None:
    hosts = [lab6.b.ip6 or "", lab6.b.ip, lab6.b.ip6 or "", "2001:2:0:ffff::1", lab6.b.ip]
    lab6.a.run("ip", "-6", "route", "add", "unreachable", "2001:2:0:ffff::/64")  # no way out
    results = await aioxdp.multiping(hosts, count=3, interval=0.02, timeout=0.5)
    assert [r.host for r in results] == hosts
    assert [r.received for r in results] == [3, 3, 3, 0, 3]
    assert results[3].error is not None
    assert [r.address for r in results][:3] == [lab6.b.ip6, lab6.b.ip, lab6.b.ip6]
    assert all(x.source == lab6.b.ip6 for x in results[0].replies)
    assert all(x.source == lab6.b.ip for x in results[1].replies)
    assert all(not r.malformed for r in results)


async def test_icmpv6_errors_are_matched_to_the_probe_they_answer(lab6: Lab) -> None:
    """b forwards IPv6 and has no route for FAR6 but an unreachable one: it
    answers our probe with "no route"; with hop limit 1 (and a route
    onwards), with "hop limit"."""
    lab6.b.sysctl("net.ipv6.conf.all.forwarding", "1")
    lab6.b.run("ip", "-6", "route", "add", "unreachable", f"{FAR6}/48")
    lab6.a.run("ip", "-6", "route", "add", f"{FAR6}/48", "via", lab6.b.ip6 or "")
    seen: list[aioxdp.PingError] = []
    result = await aioxdp.ping(
        f"{FAR6}1", count=2, interval=0.05, timeout=0.5, on_error=seen.append
    )
    assert (result.received, result.errors) == (0, {"no_route": 2})
    assert [(e.seq, e.icmp_type, e.icmp_code, e.source, e.family) for e in seen] == [
        (1, 1, 0, lab6.b.ip6, 6),
        (2, 1, 0, lab6.b.ip6, 6),
    ]
    assert seen[0].text == "Destination unreachable: No route"
    lab6.b.run("ip", "-6", "route", "del", "unreachable", f"{FAR6}/48")
    # (a route through lo would be a reject route: IPv6 makes it one)
    lab6.b.run("ip", "-6", "route", "add", f"{FAR6}/48", "via", "2001:2::99")
    result = await aioxdp.ping(f"{FAR6}1", count=2, interval=0.05, timeout=0.5, ttl=1)
    assert result.errors == {"ttl_exceeded": 2}, result


@pytest.mark.parametrize("size", [1453, 3000, 65000])
async def test_ping6_over_the_mtu_goes_as_fragments_the_kernel_reassembles(
    lab6: Lab, size: int
) -> None:
    """b's kernel answers only a request it put back together, and its
    replies come back as fragments that we put together."""
    result = await aioxdp.ping(lab6.b.ip6 or "", count=3, interval=0.05, size=size, timeout=2)
    assert result.received == 3, result
    assert {r.size for r in result.replies} == {8 + size}
    assert result.malformed == {}
    reassembled = lab6.b.run("nstat", "-az", "Ip6ReasmOKs").stdout.split()
    assert int(reassembled[reassembled.index("Ip6ReasmOKs") + 1]) >= 3


async def test_family_chooses_and_refuses(lab6: Lab) -> None:
    with pytest.raises(HostNameError, match="Address family for hostname not supported"):
        await aioxdp.ping(lab6.b.ip6 or "", count=1, family=4)
    with pytest.raises(HostNameError, match="Address family for hostname not supported"):
        await aioxdp.ping(lab6.b.ip, count=1, family=6)
    with pytest.raises(ValueError, match=r"^family:"):
        await aioxdp.ping(lab6.b.ip6 or "", count=1, family=5)
    with pytest.raises(HostNameError, match="IPv4-mapped"):
        await aioxdp.ping(f"::ffff:{lab6.b.ip}", count=1)
    lab6.a.run("ip", "-6", "route", "add", "unreachable", "2001:2:0:eeee::/64")
    with pytest.raises(NoRouteError, match="No route to host"):
        await aioxdp.ping("2001:2:0:eeee::1", count=1)
    result = await aioxdp.ping(lab6.b.ip6 or "", count=1, family=6)
    assert result.received == 1


async def test_the_kernel_keeps_its_own_neighbour_discovery_while_we_ping(lab6: Lab) -> None:
    """Our rules take echo replies only: b's solicitations and a's kernel
    answers keep flowing, so the kernel's neighbour entry for b is refreshed."""
    async with aioxdp.Pinger(lab6.b.ip6 or "", count=40, interval=0.01) as pinger:
        lab6.a.run("ip", "-6", "neigh", "flush", "dev", lab6.a.ifname)
        out = lab6.a.run("ping", "-6", "-c", "2", "-i", "0.05", lab6.b.ip6 or "").stdout
        result = await pinger.result()
    assert result.received == 40
    assert " 0% packet loss" in out
    assert await eventually(lambda: str(lab6.b.ip6) in neighbours6(lab6, "a")), neighbours6(
        lab6, "a"
    )


# -- UDP over IPv6 -------------------------------------------------------------


@pytest.mark.parametrize("factory", [Echo, BatchEcho], ids=["per-datagram", "batch"])
async def test_udp6_echo_serves_kernel_clients_byte_identically(
    lab6: Lab, factory: type[Echo]
) -> None:
    async with aioxdp.Interface(lab6.a.ifname) as nic:
        transport, echo = await nic.create_datagram_endpoint(
            factory, local_addr=(lab6.a.ip6 or "", 7000)
        )
        good = await asyncio.to_thread(udp_client, lab6.b, lab6.a.ip6 or "", 7000, 5000)
        assert good == 5000
        assert transport.malformed == {}
        assert echo.errors == []
        # and the IPv4 port of the same number stays the kernel's
        assert aioxdp.Rule("udp", dst=lab6.a.ip6, dst_port=7000) in nic.forwarder.rules
        assert all(r.address_family == 6 for r in nic.forwarder.rules)


# From b: four sockets, two on each of two addresses, send in an interleaved
# pattern (runs of one sender, changes of port, of address, of both), all
# before a's loop reads any; each then collects what comes back to it.
INTERLEAVED6 = """
import json, socket, sys
server, port, first, second = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
socks = [socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) for _ in range(4)]
for s, source in zip(socks, [first, first, second, second]):
    s.bind((source, 0))
pattern = [0, 0, 1, 0, 2, 2, 2, 1, 3, 0, 3, 3, 1, 1, 0, 2] * 3
for n, k in enumerate(pattern):
    socks[k].sendto(b"%d:%d" % (k, n), (server, port))
print("sent", flush=True)
got = []
for k, s in enumerate(socks):
    s.settimeout(2.0)
    mine = []
    try:
        while len(mine) < pattern.count(k):
            mine.append(s.recvfrom(100)[0].decode())
    except socket.timeout:
        pass
    got.append(sorted(mine))
print(json.dumps(got), flush=True)
"""


@pytest.mark.parametrize("factory", [Echo, IteratingEcho], ids=["per-datagram", "iterating"])
async def test_udp6_senders_interleaved_in_one_batch_each_get_their_own_echoes(
    lab6: Lab, factory: type[Echo]
) -> None:
    """Datagrams from four IPv6 senders on two addresses, in runs and
    alternating, read in one batch: each echo goes to the socket that sent
    it (b's kernel says)."""
    pattern = [0, 0, 1, 0, 2, 2, 2, 1, 3, 0, 3, 3, 1, 1, 0, 2] * 3
    first = lab6.b.ip6 or ""
    second = str(ipaddress.IPv6Address(first) + 0x100)
    lab6.b.run("ip", "-6", "addr", "add", f"{second}/64", "dev", lab6.b.ifname, "nodad")
    try:
        await _interleaved6(lab6, factory, pattern, first, second)
    finally:
        lab6.b.run("ip", "-6", "addr", "del", f"{second}/64", "dev", lab6.b.ifname)


async def _interleaved6(
    lab6: Lab, factory: type[Echo], pattern: list[int], first: str, second: str
) -> None:
    async with aioxdp.Interface(lab6.a.ifname) as nic:
        transport, echo = await nic.create_datagram_endpoint(
            factory, local_addr=(lab6.a.ip6 or "", 7002)
        )
        sender = lab6.b.popen(
            sys.executable,
            "-c",
            INTERLEAVED6,
            lab6.a.ip6 or "",
            "7002",
            first,
            second,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert read_line(sender) == "sent"  # this loop was held: one batch holds them
            got = json.loads(await asyncio.to_thread(read_line, sender))
        finally:
            sender.kill()
            sender.wait()
        assert transport.received == len(pattern)
        for k in range(4):
            want = sorted(f"{k}:{n}" for n, who in enumerate(pattern) if who == k)
            assert got[k] == want, k
        assert echo.errors == []


async def test_udp6_every_address_and_sendto_a_kernel_socket(lab6: Lab) -> None:
    server = lab6.b.popen(
        sys.executable,
        "-c",
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM); s.bind(('::',9100)); s.settimeout(10)\n"
        "print('ready', flush=True)\n"
        "for _ in range(3):\n"
        "    data,addr=s.recvfrom(100); print(data.decode(), addr[0], addr[1], flush=True)\n"
        "    s.sendto(data.upper(), addr)\n",
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "ready"

    class Client(Echo):
        def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
            got.append((data, addr))

    got: list[tuple[bytes, tuple[Any, ...]]] = []
    async with aioxdp.Interface(lab6.a.ifname) as nic:
        transport, client = await nic.create_datagram_endpoint(Client, local_addr=("::", 7001))
        for word in (b"one", b"two", b"three"):
            transport.sendto(word, (lab6.b.ip6, 9100))
        assert await eventually(lambda: len(got) == 3), got
        assert client.errors == []
    out, _ = await asyncio.to_thread(server.communicate, timeout=10)
    assert out.split("\n")[:3] == [f"{w} {lab6.a.ip6} 7001" for w in ("one", "two", "three")]
    assert sorted(data for data, _ in got) == [b"ONE", b"THREE", b"TWO"]
    assert {addr for _, addr in got} == {(lab6.b.ip6, 9100, 0, 0)}  # asyncio's IPv6 shape


async def test_udp6_malformed_and_extension_headers(lab6: Lab, tmp_path: Path) -> None:
    """A zero checksum (forbidden over IPv6), a bad one and a length past the
    payload are counted and dropped; a datagram behind a hop-by-hop header is
    delivered, and its echo goes without it (scapy in b reads the echo)."""
    async with aioxdp.Interface(lab6.a.ifname) as nic:
        transport, _ = await nic.create_datagram_endpoint(
            BatchEcho, local_addr=(lab6.a.ip6 or "", 7000)
        )
        base = Ether(src=lab6.b.mac, dst=lab6.a.mac) / IPv6(src=lab6.b.ip6, dst=lab6.a.ip6)
        good = bytes(base / UDP(sport=5555, dport=7000) / Raw(b"hello"))
        zero = bytearray(good)
        zero[60:62] = b"\x00\x00"
        bad = bytearray(good)
        bad[60] ^= 0x5A
        long_len = bytearray(good)
        long_len[58:60] = (200).to_bytes(2, "big")
        hop = bytes(base / IPv6ExtHdrHopByHop() / UDP(sport=5556, dport=7000) / Raw(b"hop!"))
        sniff = lab6.b.popen(
            "tcpdump", "-i", lab6.b.ifname, "-w", str(tmp_path / "echo.pcap"), "-c", "1",
            "-U", "udp and dst port 5556",
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert sniff.stderr is not None
        while "listening" not in sniff.stderr.readline():
            pass
        await asyncio.to_thread(
            scapy_send, lab6.b, [bytes(zero), bytes(bad), bytes(long_len)] * 3 + [hop], tmp_path
        )
        assert await eventually(lambda: sum(transport.malformed.values()) >= 9)
        assert transport.malformed == {"bad_udp_checksum": 6, "bad_udp_length": 3}
        await asyncio.to_thread(sniff.wait, 10)
    (echoed,) = rdpcap(str(tmp_path / "echo.pcap"))
    assert (echoed[IPv6].nh, echoed[IPv6].hlim) == (17, 64)  # the hop-by-hop header is gone
    assert (echoed[IPv6].src, echoed[IPv6].dst) == (lab6.a.ip6, lab6.b.ip6)
    assert (echoed[UDP].sport, echoed[UDP].dport, bytes(echoed[Raw])) == (7000, 5556, b"hop!")
    sent_sum = echoed[UDP].chksum
    rebuilt = echoed[IPv6].copy()
    del rebuilt[UDP].chksum  # scapy computes it afresh over the IPv6 pseudo-header
    assert sent_sum == IPv6(bytes(rebuilt))[UDP].chksum != 0


async def test_udp6_endpoint_refuses_the_other_family(lab6: Lab) -> None:
    async with aioxdp.Interface(lab6.a.ifname) as nic:
        transport, echo = await nic.create_datagram_endpoint(
            Echo, local_addr=(lab6.a.ip6 or "", 7000)
        )
        transport.sendto(b"v4?", (lab6.b.ip, 9))
        assert await eventually(lambda: echo.errors), "error_received never came"
        assert "Address family for hostname not supported" in str(echo.errors[0])
        with pytest.raises(ValueError, match="addr"):
            transport.sendto(b"x", (lab6.b.ip6, 9, 0, 0, 0))
        with pytest.raises(TypeError, match="flowinfo and scope_id"):
            transport.sendto(b"x", (lab6.b.ip6, 9, "0", 0))
        with pytest.raises(ValueError, match="addr"):
            transport.sendto(b"x", (lab6.b.ip6,))
        with pytest.raises(ValueError, match="data"):
            transport.sendto(b"x" * 1453, (lab6.b.ip6, 9))  # 1500 - 40 - 8 = 1452
        silent = f"{lab6.subnet6.network_address}99"
        transport.sendto(b"anyone?", (silent, 9))
        assert await eventually(lambda: len(echo.errors) == 2)
        assert "no neighbour advertisement" in str(echo.errors[1])


# -- TCP SYN probes over IPv6 -------------------------------------------------


async def test_tcp_ping6_open_closed_and_nothing_half_open(lab6: Lab) -> None:
    listener = lab6.b.popen(
        sys.executable,
        "-c",
        "import socket,time\n"
        "s=socket.socket(socket.AF_INET6); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)\n"
        "s.bind(('::',8080)); s.listen(); print('ready', flush=True); time.sleep(20)\n",
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "ready"
        opened = await aioxdp.tcp_ping(lab6.b.ip6 or "", 8080, count=3, interval=0.05)
        closed = await aioxdp.tcp_ping(lab6.b.ip6 or "", 8081, count=2, interval=0.05)
        assert (opened.open, opened.received, opened.address) == (True, 3, lab6.b.ip6)
        assert (closed.open, closed.received) == (False, 2)
        assert opened.malformed == closed.malformed == {}
        # every SYN-ACK was answered with RST: b holds no half-open connection
        states = lab6.b.run("ss", "-tan", "state", "syn-recv").stdout.splitlines()[1:]
        assert states == []
        # one scan over both families: the listener is IPv6 only
        scan = await aioxdp.tcp_scan(
            [(lab6.b.ip6 or "", 8080), (lab6.b.ip, 8080), (lab6.b.ip6 or "", 8081)]
        )
        assert [p.state for p in scan] == ["open", "closed", "closed"]
    finally:
        listener.kill()
        listener.wait()


# -- packet endpoints and the reflector ------------------------------------------


async def test_packet_endpoints_decode_ipv6(lab6: Lab, tmp_path: Path) -> None:
    """Frames built by scapy in b: what Packet decodes equals what was sent."""
    seen: list[tuple[Any, ...]] = []

    class Watch(IcmpProtocol):
        def icmpv6_received(
            self, packet: aioxdp.Packet, eth: Ethernet6, ip: IPv6Header, icmp: Icmpv6
        ) -> None:
            seen.append(("icmpv6", ip6_str(ip.src), icmp.type, icmp.ident, bytes(packet.payload)))

        def packet_received(self, packet: aioxdp.Packet) -> None:
            if isinstance(packet.l4, Udp):
                udp = packet.l4
                seen.append(("udp", ip6_str(packet.ip.src), udp.sport, bytes(packet.payload)))
                return
            super().packet_received(packet)

    base = Ether(src=lab6.b.mac, dst=lab6.a.mac) / IPv6(src=lab6.b.ip6, dst=lab6.a.ip6)
    frames = [
        bytes(base / ICMPv6EchoRequest(id=0x4242, seq=1, data=b"witness")),
        bytes(base / IPv6ExtHdrHopByHop() / UDP(sport=4000, dport=7400) / Raw(b"behind hbh")),
    ]
    async with aioxdp.Interface(lab6.a.ifname) as nic:
        transport, watch = await nic.create_packet_endpoint(
            Watch,
            rules=[
                aioxdp.Rule("icmpv6", dst=lab6.a.ip6, icmp_type=128),
                aioxdp.Rule("udp", dst=lab6.a.ip6, dst_port=7400),
            ],
        )
        await asyncio.to_thread(scapy_send, lab6.b, frames, tmp_path)
        assert await eventually(lambda: len(seen) == 2), seen
        transport.close()
    assert sorted(seen) == [
        ("icmpv6", lab6.b.ip6, 128, 0x4242, b"witness"),
        ("udp", lab6.b.ip6, 4000, b"behind hbh"),
    ]
    assert watch.malformed == {}


async def test_the_reflector_answers_icmpv6_and_udp6_in_the_driver(lab6: Lab) -> None:
    with Reflector(lab6.b, udp_ports=[7]) as reflector:
        result = await aioxdp.ping(lab6.b.ip6 or "", count=500, interval=0, timeout=1.0)
        assert result.received == 500
        got: list[bytes] = []

        class Client(Echo):
            def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
                got.append(data)

        async with aioxdp.Interface(lab6.a.ifname) as nic:
            transport, _ = await nic.create_datagram_endpoint(
                Client, local_addr=(lab6.a.ip6 or "", 7100)
            )
            for i in range(100):
                transport.sendto(b"%03d" % i, (lab6.b.ip6, 7))
            assert await eventually(lambda: len(got) == 100), len(got)
        counters = reflector.counters()
    assert sorted(got) == [b"%03d" % i for i in range(100)]
    assert (counters["icmp"], counters["udp"]) == (500, 100)


# -- the anyio drivers (trio too) -------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_ipv6_under_every_driver_ping_and_a_udp_socket(backend: str) -> None:
    """ping and an anyio-shaped UDP socket over IPv6 on asyncio, uvloop and
    trio: the socket echoes a kernel client's datagrams byte for byte."""
    with Lab(ipv6=True) as lab, lab.a.enter():
        a6, b6 = lab.a.ip6 or "", lab.b.ip6 or ""

        async def main() -> tuple[int, int, int, tuple[str, int]]:
            result = await aioxdp.ping(b6, count=200, interval=0)
            async with interface_class(backend)(lab.a.ifname) as nic:
                sock: aioxdp.UDPSocket = await nic.create_udp_socket((a6, 9400))
                senders: list[tuple[str, int]] = []

                async def serve() -> None:
                    async for data, addr in sock:
                        senders.append(addr)
                        await sock.send((data, addr))

                async with anyio.create_task_group() as tg:
                    tg.start_soon(serve)
                    good = await anyio.to_thread.run_sync(udp_client, lab.b, a6, 9400, 1000)
                    await sock.aclose()
            return result.received, good, sock.sent, senders[0]

        received, good, sent, sender = run(backend, main)
    assert (received, good, sent) == (200, 1000, 1000)
    assert sender[0] == b6  # (host, port), as anyio gives IPv6 senders
    assert len(sender) == 2


async def test_link_local_peers_with_and_without_a_zone(lab6: Lab) -> None:
    shown = lab6.b.run("ip", "-6", "-o", "addr", "show", "dev", lab6.b.ifname, "scope", "link")
    link_local = shown.stdout.split("inet6 ")[1].split("/")[0]
    assert link_local.startswith("fe80:")
    for host in (link_local, f"{link_local}%{lab6.a.ifname}"):
        result = await aioxdp.ping(host, count=2, interval=0.05)
        assert (result.received, result.address) == (2, link_local), host
    with pytest.raises(HostNameError, match="no interface 'nosuch0'"):
        await aioxdp.ping(f"{link_local}%nosuch0", count=1)


async def test_udp6_address_table_full_forgets_everything_and_goes_on(
    lab6: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With room for 4 IPv6 destinations, 12 hosts take turns: the table is
    cleared whole when full (words name its slots), and every datagram still
    reaches its own host (the kernel sockets in b say so)."""
    monkeypatch.setattr(udp_paths, "MAX_ADDRESSES6", 4)
    prefix = lab6.subnet6.network_address
    hosts = [f"{prefix}{0x100 + k:x}" for k in range(12)]
    for host in hosts:
        lab6.b.run("ip", "-6", "addr", "add", f"{host}/128", "dev", lab6.b.ifname, "nodad")
    listener = lab6.b.popen(
        sys.executable,
        "-c",
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM); s.bind(('::',9500)); s.settimeout(10)\n"
        "print('ready', flush=True)\n"
        "for _ in range(24):\n"
        "    data,addr=s.recvfrom(100); print(data.decode(), flush=True)\n",
        stdout=subprocess.PIPE,
        text=True,
    )
    assert listener.stdout is not None
    assert listener.stdout.readline().strip() == "ready"
    async with aioxdp.Interface(lab6.a.ifname) as nic:
        transport, echo = await nic.create_datagram_endpoint(
            Echo, local_addr=(lab6.a.ip6 or "", 7002)
        )
        for turn in range(2):
            for host in hosts:
                transport.sendto(f"{turn} {host}".encode(), (host, 9500))
            await asyncio.sleep(0.3)  # the first turn resolves each host
        assert echo.errors == []
    out, _ = await asyncio.to_thread(listener.communicate, timeout=15)
    assert sorted(out.split("\n")[:24]) == sorted(f"{t} {h}" for t in range(2) for h in hosts)


async def test_thousands_of_ipv6_hosts_mixed_with_ipv4_lose_nothing(lab6: Lab) -> None:
    """3 000 IPv6 and 1 000 IPv4 hosts routed via b, whose driver answers
    (the reflector): every reply, in host order, none dropped by the kernel
    (XDP_STATISTICS), and the peer's driver saw every probe once."""
    lab6.a.run("ip", "-6", "route", "add", "2001:2:f000::/52", "via", lab6.b.ip6 or "")
    lab6.a.run("ip", "route", "add", "198.19.64.0/18", "via", lab6.b.ip)
    six = [f"2001:2:f000::{k:x}" for k in range(1, 3001)]
    four = [f"198.19.{64 + k // 250}.{k % 250 + 1}" for k in range(1000)]
    hosts = [h for pair in zip(six[:1000], four, strict=True) for h in pair] + six[1000:]
    with Reflector(lab6.b) as reflector:
        results = await aioxdp.multiping(hosts, count=3, interval=0.001, timeout=2.0)
        counters = reflector.counters()
    assert [r.host for r in results] == hosts
    lost = [(r.host, r.received) for r in results if r.received != 3]
    assert not lost, f"{len(lost)} hosts lost replies: {lost[:5]}"
    assert {r.replies[0].source == r.host for r in results} == {True}
    assert results[0].kernel_drops == {}
    assert counters["icmp"] == 3 * len(hosts)
