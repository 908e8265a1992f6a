"""A protocol that raises hurts only its own endpoint: the exception reaches
the loop's exception handler, the other endpoints of the Interface (a UDP
echo, a running ping) and the rest of the batch are served, and the raising
endpoint receives its next packet. A socket or link error, on the other
hand, closes the whole Interface, and it says why."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from conftest import eventually
from test_udp_tcp import Echo, udp_client

import aioxdp
from aioxdp import PacketBatch, PacketProtocol, Rule, XDPError
from aioxdp.testing import Lab

ECHO_PORT, BUG_PORT = 7000, 9000

# From b: pairs of datagrams sent back to back, one to the raising endpoint
# and one to the echo, so that both land in the same receive batches; the
# echoes of each window are counted before the next.
MIXED = """
import socket, sys
server, pairs = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 1 << 22)  # SO_RCVBUFFORCE: room for every echo
s.settimeout(2.0)
got = set()
for start in range(0, pairs, 50):  # windows of 50 pairs, so that b's kernel is no bottleneck
    for i in range(start, min(start + 50, pairs)):
        s.sendto(b"bug%d" % i, (server, 9000))
        s.sendto(b"echo%d" % i, (server, 7000))
    try:
        while len(got) < min(start + 50, pairs):
            got.add(s.recvfrom(100)[0])
    except socket.timeout:
        break
print(len(got))
"""


class Buggy(PacketProtocol):
    def __init__(self) -> None:
        self.calls = 0
        self.packets = 0
        self.lost: list[Exception | None] = []

    def packets_received(self, batch: PacketBatch) -> None:
        self.calls += 1
        self.packets += len(batch)
        raise RuntimeError("user bug")

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)


class Watched(Echo):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.lost: list[Exception | None] = []

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)


async def test_a_raising_handler_hurts_only_itself(lab_a: Lab) -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        async with aioxdp.Interface(lab_a.a.ifname) as nic:
            udp, echo = await nic.create_datagram_endpoint(
                Watched, local_addr=(lab_a.a.ip, ECHO_PORT)
            )
            bug_transport, bug = await nic.create_packet_endpoint(
                Buggy, rules=[Rule("udp", dst=lab_a.a.ip, dst_port=BUG_PORT)]
            )
            async with aioxdp.Pinger(lab_a.b.ip, count=200, interval=0.005) as pinger:
                answered = await asyncio.to_thread(
                    lab_a.b.run, sys.executable, "-c", MIXED, lab_a.a.ip, "300", timeout=60
                )
                ping = await pinger.result()
            # every echo came back, though its batch mates raised
            assert int(answered.stdout) == 300
            assert (ping.sent, ping.received) == (200, 200)
            assert await eventually(lambda: bug.packets == 300), bug.packets
            # each raising call reached the loop's handler, naming who raised
            assert bug_transport.callback_errors == bug.calls == len(reported) > 0
            context = reported[0]
            assert isinstance(context["exception"], RuntimeError)
            assert str(context["exception"]) == "user bug"
            assert context["protocol"] is bug
            assert context["transport"] is bug_transport
            assert "Buggy.packets_received" in context["message"]
            # the raising endpoint still receives, and nothing was closed
            calls = bug.calls
            lab_a.b.run(
                sys.executable,
                "-c",
                "import socket\n"
                "socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                f".sendto(b'again', ({lab_a.a.ip!r}, {BUG_PORT}))",
            )
            assert await eventually(lambda: bug.calls == calls + 1)
            assert await asyncio.to_thread(udp_client, lab_a.b, lab_a.a.ip, ECHO_PORT, 50) == 50
            assert bug.lost == echo.lost == []
            assert not bug_transport.is_closing()
            assert not udp.is_closing()
            assert nic.error is None
    finally:
        loop.set_exception_handler(None)


class RaisesOnSome(Echo):
    """Raises for every datagram that starts with b"x"; echoes the rest."""

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.startswith(b"x"):
            raise ValueError(f"cannot handle {data!r}")
        super().datagram_received(data, addr)


async def test_one_datagrams_exception_leaves_the_rest_of_its_batch(lab_a: Lab) -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    code = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2.0)\n"
        "s.setsockopt(socket.SOL_SOCKET, 33, 1 << 22)\n"  # SO_RCVBUFFORCE
        "for i in range(200):\n"
        f"    s.sendto((b'x%d' if i % 2 else b'ok%d') % i, ({lab_a.a.ip!r}, {ECHO_PORT}))\n"
        "got = set()\n"
        "try:\n"
        "    while len(got) < 100: got.add(s.recvfrom(100)[0])\n"
        "except socket.timeout: pass\n"
        "print(len(got))\n"
    )
    try:
        async with aioxdp.Interface(lab_a.a.ifname) as nic:
            udp, _ = await nic.create_datagram_endpoint(
                RaisesOnSome, local_addr=(lab_a.a.ip, ECHO_PORT)
            )
            out = await asyncio.to_thread(lab_a.b.run, sys.executable, "-c", code, timeout=60)
            assert int(out.stdout) == 100  # every b"ok" datagram was answered
            assert await eventually(lambda: len(reported) == 100), len(reported)
            assert udp.callback_errors == 100
            assert all(isinstance(c["exception"], ValueError) for c in reported)
            assert "RaisesOnSome.datagram_received" in reported[0]["message"]
    finally:
        loop.set_exception_handler(None)


async def test_a_link_error_closes_the_interface_and_says_why(lab_a: Lab) -> None:
    async with aioxdp.Interface(lab_a.a.ifname) as nic:
        udp, echo = await nic.create_datagram_endpoint(Watched, local_addr=(lab_a.a.ip, ECHO_PORT))
        lab_a.a.run("ip", "link", "set", lab_a.a.ifname, "down")
        assert await eventually(lambda: nic.error is not None and echo.lost), nic
        assert isinstance(nic.error, XDPError)
        assert "went down" in str(nic.error)
        assert len(echo.lost) == 1
        assert echo.lost[0] is nic.error
        assert udp.is_closing()
        # it is closed for real: the program is off the link, new endpoints are refused
        assert await eventually(lambda: nic.frame_counts() == {})
        assert "prog/xdp" not in lab_a.a.run("ip", "link", "show", lab_a.a.ifname).stdout
        with pytest.raises(XDPError, match=r"was closed by an error.*went down"):
            await nic.create_datagram_endpoint(Echo, local_addr=(lab_a.a.ip, ECHO_PORT + 1))
        assert "closed by" in repr(nic)
