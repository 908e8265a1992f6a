"""UDP endpoints, TCP probes and the TCP/UDP examples, against the peer
namespace's kernel sockets, dig and ss; on asyncio and uvloop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TESTS, eventually, read_line
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from test_datapath import Capture, scapy_send

import aioxdp
from aioxdp.datagram import DatagramBatch, DatagramTransport
from aioxdp.route import NoRouteError
from aioxdp.testing import Host, Lab
from aioxdp.testing.reflector import Reflector

EXAMPLES = TESTS.parent / "examples"

# A kernel UDP client in the peer: sends COUNT random datagrams with WINDOW in
# flight, checks every echo byte for byte, prints how many came back intact.
UDP_CLIENT = """
import os, socket, sys
host, port, count, window = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.settimeout(3)
sent = {}
good = 0
next_i = 0
while next_i < min(window, count):
    data = b"%08d" % next_i + os.urandom(next_i % 1400)
    sent[data[:8]] = data; s.sendto(data, (host, port)); next_i += 1
try:
    while good < count:
        data, addr = s.recvfrom(2048)
        if addr[:2] == (host, port) and sent.pop(data[:8], None) == data:
            good += 1
        if next_i < count:
            data = b"%08d" % next_i + os.urandom(next_i % 1400)
            sent[data[:8]] = data; s.sendto(data, (host, port)); next_i += 1
except TimeoutError:
    pass
print(good)
"""


def udp_client(host: Host, server: str, port: int, count: int, window: int = 32) -> int:
    out = host.run(
        sys.executable, "-c", UDP_CLIENT, server, str(port), str(count), str(window), timeout=120
    )
    return int(out.stdout.strip())


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: DatagramTransport = transport  # type: ignore[assignment]
        self.errors: list[Exception] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)


class BatchEcho(Echo):
    def datagrams_received(self, batch: DatagramBatch) -> None:
        batch.echo()


class IteratingEcho(Echo):
    """Takes whole batches and answers each datagram of one with sendto."""

    def datagrams_received(self, batch: DatagramBatch) -> None:
        for data, addr in batch:
            self.transport.sendto(data, addr)


@pytest.mark.parametrize(
    "factory", [Echo, BatchEcho, IteratingEcho], ids=["per-datagram", "batch", "iterating"]
)
async def test_ten_thousand_datagrams_come_back_byte_identical(
    lab_a: Lab, factory: type[Echo]
) -> None:
    async with aioxdp.Interface(lab_a.a.ifname) as nic:
        transport, echo = await nic.create_datagram_endpoint(factory, local_addr=(lab_a.a.ip, 7000))
        assert transport.get_extra_info("sockname") == (lab_a.a.ip, 7000)
        good = await asyncio.to_thread(udp_client, lab_a.b, lab_a.a.ip, 7000, 10_000)
        assert good == 10_000
        assert transport.malformed == {}
        assert echo.errors == []
        transport.close()
        assert aioxdp.Rule("udp", dst=lab_a.a.ip, dst_port=7000) not in nic.forwarder.rules
    assert nic.final_counts, "no socket was checked"
    for counts in nic.final_counts.values():
        assert counts.leaked == 0


async def test_other_udp_ports_and_tcp_stay_with_the_kernel(lab_a: Lab) -> None:
    kernel_echo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 7001))\n"
        "print('up', flush=True)\n"
        "for _ in range(100):\n    d, a = s.recvfrom(2048); s.sendto(d, a)\n",
        stdout=asyncio.subprocess.PIPE,
    )
    assert kernel_echo.stdout is not None
    assert (await kernel_echo.stdout.readline()).strip() == b"up"
    tcp_server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import socket\ns = socket.create_server(('0.0.0.0', 7002)); print('up', flush=True)\n"
        "c, _ = s.accept()\nwhile d := c.recv(65536): c.sendall(d)\n",
        stdout=asyncio.subprocess.PIPE,
    )
    assert tcp_server.stdout is not None
    assert (await tcp_server.stdout.readline()).strip() == b"up"
    async with aioxdp.Interface(lab_a.a.ifname) as nic:
        await nic.create_datagram_endpoint(Echo, local_addr=(lab_a.a.ip, 7000))
        assert await asyncio.to_thread(udp_client, lab_a.b, lab_a.a.ip, 7001, 100, 1) == 100
        tcp = lab_a.b.run(
            sys.executable,
            "-c",
            "import socket, os\nb = os.urandom(1 << 20)\n"
            f"c = socket.create_connection(({lab_a.a.ip!r}, 7002), timeout=5)\n"
            "c.sendall(b); c.shutdown(socket.SHUT_WR)\ngot = b''\n"
            "while d := c.recv(65536): got += d\nprint(got == b)\n",
            timeout=60,
        )
        assert tcp.stdout.strip() == "True"
    assert await kernel_echo.wait() == 0
    assert await tcp_server.wait() == 0


async def test_malformed_udp_is_counted_and_dropped_and_service_goes_on(
    lab_a: Lab, tmp_path: Path
) -> None:
    async with aioxdp.Interface(lab_a.a.ifname) as nic:
        transport, _ = await nic.create_datagram_endpoint(Echo, local_addr=(lab_a.a.ip, 7000))
        base = Ether(src=lab_a.b.mac, dst=lab_a.a.mac) / IP(src=lab_a.b.ip, dst=lab_a.a.ip)
        good = bytes(base / UDP(sport=5555, dport=7000) / Raw(b"hello"))
        bad_sum = bytearray(good)
        bad_sum[40] ^= 0x5A
        long_len = bytearray(good)
        long_len[38:40] = (200).to_bytes(2, "big")  # UDP length beyond the IP payload
        # the first fragment of a datagram: never delivered half
        first = Ether(src=lab_a.b.mac, dst=lab_a.a.mac) / IP(
            src=lab_a.b.ip, dst=lab_a.a.ip, flags="MF"
        )
        frag = bytes(first / UDP(sport=5555, dport=7000) / Raw(b"f" * 40))
        frames = [bytes(bad_sum), bytes(long_len), frag] * 5
        before = nic.forwarder.counters
        await asyncio.to_thread(scapy_send, lab_a.b, frames, tmp_path)
        assert await eventually(
            lambda: (
                sum(transport.malformed.values()) >= 10
                and nic.forwarder.counters.fragments - before.fragments >= 5
            )
        ), (
            f"malformed {transport.malformed} (10 expected), "
            f"fragments {nic.forwarder.counters.fragments - before.fragments} (5 expected)"
        )
        assert transport.malformed == {"bad_udp_checksum": 5, "bad_udp_length": 5}
        after = nic.forwarder.counters
        assert after.redirected - before.redirected == 10
        # a fragment, the first one too, is never taken by a port rule: the kernel reassembles
        assert after.fragments - before.fragments == 5
        assert await asyncio.to_thread(udp_client, lab_a.b, lab_a.a.ip, 7000, 200) == 200


async def test_sendto_an_unresolvable_host_reports_error_received(lab_a: Lab) -> None:
    async with aioxdp.Interface(lab_a.a.ifname) as nic:
        transport, echo = await nic.create_datagram_endpoint(Echo, local_addr=(lab_a.a.ip, 7000))
        transport.sendto(b"anyone?", (str(lab_a.subnet[9]), 9))
        assert await eventually(lambda: echo.errors), "error_received never came"
        assert len(echo.errors) == 1
        assert "no ARP reply" in str(echo.errors[0])
        assert transport.dropped_unresolved == 1
        with pytest.raises(ValueError, match="addr"):
            transport.sendto(b"x", ("198.18.0.2", 0))
        with pytest.raises(ValueError, match="local_addr"):
            await nic.create_datagram_endpoint(Echo, local_addr=(lab_a.a.ip, 0))


async def test_tcp_ping_open_closed_and_nothing_half_open(lab_a: Lab) -> None:
    server = lab_a.b.popen(
        sys.executable,
        "-c",
        "import socket, time\ns = socket.create_server(('0.0.0.0', 8080)); print('up', flush=True)\n"
        "time.sleep(30)\n",
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(server) == "up"
        opened = await aioxdp.tcp_ping(lab_a.b.ip, 8080, count=3, interval=0.05)
        closed = await aioxdp.tcp_ping(lab_a.b.ip, 8081, count=2, interval=0.05)
        ss = lab_a.b.run("ss", "-tan", "state", "syn-recv").stdout
    finally:
        server.kill()
        server.wait()
    assert (opened.open, opened.sent, opened.received) == (True, 3, 3)
    assert all(0 < r < 1 for r in opened.rtts)
    assert (closed.open, closed.received) == (False, 2)
    assert "8080" not in ss, f"half-open connections left: {ss}"


async def test_tcp_ping_to_a_silent_peer_says_so(lab_a: Lab) -> None:
    lab_a.b.run("ping", "-c1", "-W1", lab_a.a.ip)  # neighbours known both ways
    lab_a.b.run("ip", "addr", "del", f"{lab_a.b.ip}/24", "dev", lab_a.b.ifname)  # then b goes quiet
    result = await aioxdp.tcp_ping(lab_a.b.ip, 8082, count=2, interval=0.05, timeout=0.2)
    assert (result.open, result.sent, result.received) == (None, 2, 0)


def run_server(host: Host, *args: str) -> subprocess.Popen[str]:
    return host.popen(
        sys.executable, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_udp_echo_server_example(lab: Lab) -> None:
    for extra in ([], ["--batch"]):
        server = run_server(
            lab.a, str(EXAMPLES / "udp_echo_server.py"), lab.a.ifname, lab.a.ip, "7", "3", *extra
        )
        assert read_line(server).startswith(f"echoing UDP on {lab.a.ip}:7")
        assert udp_client(lab.b, lab.a.ip, 7, 1000) == 1000
        out, err = server.communicate(timeout=30)
        assert server.returncode == 0, err
        assert "echoed 1000, malformed {}" in out


@pytest.mark.parametrize("busy_poll", [[], ["0.001"]], ids=["waiting", "busy_poll"])
def test_dns_responder_answers_dig(lab: Lab, busy_poll: list[str]) -> None:
    server = run_server(
        lab.a, str(EXAMPLES / "dns_responder.py"), lab.a.ifname, lab.a.ip, "4", *busy_poll
    )
    assert read_line(server).startswith(f"serving 3 names on {lab.a.ip}:53")
    dig = ["dig", f"@{lab.a.ip}", "+tries=1", "+time=2"]
    www = lab.b.run(*dig, "www.lab.test", "A", "+short").stdout.strip()
    missing = lab.b.run(*dig, "nope.lab.test", "A", check=False).stdout
    aaaa = lab.b.run(*dig, "db.lab.test", "AAAA", check=False).stdout
    out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert www == "198.18.200.2"
    assert "status: NXDOMAIN" in missing
    assert "status: NOERROR" in aaaa
    assert "ANSWER: 0" in aaaa
    assert "answered 3, bad 0" in out


def test_tcp_syn_probe_example(lab: Lab) -> None:
    server = run_server(
        lab.b,
        "-c",
        "import socket, time\ns = socket.create_server(('0.0.0.0', 2222)); print('up', flush=True)\ntime.sleep(20)",
    )
    try:
        assert read_line(server) == "up"
        out = lab.a.run(
            sys.executable, str(EXAMPLES / "tcp_syn_probe.py"), lab.b.ip, "2222", "2223"
        ).stdout
    finally:
        server.kill()
        server.wait()
    assert f"{lab.b.ip}:2222 open" in out
    assert f"{lab.b.ip}:2223 closed" in out


def test_syn_cookie_responder_completes_a_kernel_clients_connect(lab: Lab, tmp_path: Path) -> None:
    server = run_server(
        lab.a, str(EXAMPLES / "syn_cookie_responder.py"), lab.a.ifname, lab.a.ip, "4433", "4"
    )
    assert read_line(server).startswith(f"SYN cookies on {lab.a.ip}:4433")
    client = lab.b.run(
        sys.executable,
        "-c",
        "import socket\nfor _ in range(3):\n"
        f"    c = socket.create_connection(({lab.a.ip!r}, 4433), timeout=3)\n"
        "    print('connected', c.getpeername()); c.close()\n",
    )
    # a segment with a bad checksum is counted, not answered
    bad = bytearray(
        bytes(
            Ether(src=lab.b.mac, dst=lab.a.mac)
            / IP(src=lab.b.ip, dst=lab.a.ip)
            / TCP(sport=5000, dport=4433, flags="S")
        )
    )
    bad[14 + 20 + 16] ^= 0xFF
    scapy_send(lab.b, [bytes(bad)], tmp_path)
    out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert client.stdout.count("connected") == 3
    assert "handshakes 3, bad acks 0, malformed {'bad_checksum': 1}" in out


def test_reflector_answers_in_the_driver(lab: Lab) -> None:
    with Reflector(lab.b, udp_ports=[7], peer_pass=True) as reflector:
        ping = lab.a.run("ping", "-c", "5", "-i", "0.05", lab.b.ip)
        assert "5 received" in ping.stdout
        assert udp_client(lab.a, lab.b.ip, 7, 500) == 500
        counters = reflector.counters()
    assert counters["icmp"] == 5
    assert counters["udp"] == 500
    nstat = lab.b.run("nstat", "-az", "IcmpInEchos").stdout
    assert " 0 " in nstat.splitlines()[-1] + " ", "the kernel of b saw the echo requests"


SEND_FROM_PORTS = """
import socket, sys
dest = sys.argv[1]
for sport, n in ((7, 300), (7100, 20)):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", sport))
    for i in range(n):
        s.sendto(b"x%d" % i, (dest, 7200))
    s.close()
"""


def test_the_sink_counts_and_drops_datagrams_from_its_ports_only(lab: Lab) -> None:
    """The reflector's sink (bench/udp_echo.py --peer generator counts a
    server's echoes with it): datagrams from port 7 counted and dropped in
    b's driver, never answered, those from another port passed to b's
    kernel, whose own counters (nstat) are the witness."""
    receiver = lab.b.popen(
        sys.executable,
        "-c",
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 7200))\n"
        "s.settimeout(2); print('up', flush=True); got = 0\n"
        "try:\n    while True: s.recv(2048); got += 1\nexcept TimeoutError: pass\nprint(got)\n",
        stdout=subprocess.PIPE,
        text=True,
    )
    assert read_line(receiver) == "up"
    lab.b.run("nstat", "-n")  # counters from here on
    with Reflector(lab.b, udp_ports=[7], peer_pass=True, sink=True) as sink:
        lab.a.run(sys.executable, "-c", SEND_FROM_PORTS, lab.b.ip)
        out, _ = receiver.communicate(timeout=30)
        counters = sink.counters()
    assert int(out.split()[-1]) == 20  # only those from port 7100 reached b's socket
    assert (counters["sunk"], counters["udp"], counters["icmp"]) == (300, 0, 0)
    assert counters["passed"] >= 20
    nstat = lab.b.run("nstat", "-az", "UdpInDatagrams").stdout.split()
    assert int(nstat[nstat.index("UdpInDatagrams") + 1]) == 20


async def test_sendto_bursts_past_a_tiny_pool_lose_nothing(lab_a: Lab) -> None:
    receiver = lab_a.b.popen(
        sys.executable,
        "-c",
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 7100))\n"
        # room for the whole burst: a receiver slowed by a busy machine must not drop it
        "s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE\n"
        "s.settimeout(3); print('up', flush=True); got = set()\n"
        "try:\n    while len(got) < 500: got.add(s.recv(2048))\nexcept TimeoutError: pass\nprint(len(got))\n",
        stdout=subprocess.PIPE,
        text=True,
    )
    assert read_line(receiver) == "up"
    tiny = aioxdp.UmemConfig(nframes=64, fill_size=16, comp_size=16, rx_size=16, tx_size=16)
    async with aioxdp.Interface(lab_a.a.ifname, config=tiny) as nic:
        transport, echo = await nic.create_datagram_endpoint(Echo, local_addr=(lab_a.a.ip, 7000))
        for i in range(500):  # the first ones wait for ARP, the rest outrun 48 free frames
            transport.sendto(b"burst %d" % i, (lab_a.b.ip, 7100))
        out, _ = await asyncio.to_thread(receiver.communicate, timeout=30)
        assert int(out.split()[-1]) == 500
        assert echo.errors == []
        assert nic.frame_counts()[0].tx_no_frame > 0, (
            "the pool never ran out: the test did not test"
        )


async def test_a_route_added_after_the_endpoint_opened_is_followed(
    lab_a: Lab, tmp_path: Path
) -> None:
    """The endpoint routes new hosts from a snapshot of the kernel's tables
    taken when it opened. A prefix routed later (via b) is found by a fresh
    read, not reported as unroutable; a host no route holds still is. b's
    tcpdump sees the datagrams go to b's MAC, for an address b does not own."""
    a, b = lab_a.a, lab_a.b
    async with aioxdp.Interface(a.ifname) as nic:
        transport, echo = await nic.create_datagram_endpoint(Echo, local_addr=(a.ip, 7000))
        a.run("ip", "route", "add", "198.19.0.0/16", "via", b.ip)
        capture = Capture(b, "udp and dst port 9", 3, tmp_path)
        for i in range(3):
            transport.sendto(b"far %d" % i, (f"198.19.{i}.1", 9))
        frames = await asyncio.to_thread(capture.frames)  # the loop runs meanwhile
        assert sorted(Ether(f)[IP].dst for f in frames) == [
            "198.19.0.1",
            "198.19.1.1",
            "198.19.2.1",
        ]
        assert all(Ether(f).dst == b.mac and Ether(f)[IP].src == a.ip for f in frames)
        assert echo.errors == []
        # a lab-range address (198.18.0.0/16) outside the lab's /24: no route holds it
        third = lab_a.subnet.network_address.packed[2]
        nowhere = (
            f"198.18.{(third + 1) % 256 if lab_a.subnet.network_address.packed[1] == 18 else 0}.1"
        )
        transport.sendto(b"nowhere", (nowhere, 9))
        assert await eventually(lambda: echo.errors), "error_received never came"
        assert isinstance(echo.errors[0], NoRouteError)
        assert nowhere in str(echo.errors[0])
        transport.close()
