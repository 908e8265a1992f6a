"""The public surface no other test touches (issue 12): transport flow control and
pausing, abort and extra info, Interface modes and explicit open/aclose, ping's
source, window, snapshot, names and gateways, misuse named, and a check that
every public name and every CLI option is exercised somewhere.

Witnesses: the kernel's link and SNMP counters, kernel sockets and tcpdump in
the peer namespace, ``ip -d link``, and values computed by hand."""

from __future__ import annotations

import argparse
import ast
import asyncio
import errno
import itertools
import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PYTHON, TESTS, FlowEvents, eventually, link_stat, read_line
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether
from test_datapath import Capture

import aioxdp
from aioxdp import (
    FrameCounts,
    Interface,
    PacketBatch,
    PacketProtocol,
    PacketTransport,
    PingReply,
    Rule,
    UmemConfig,
    XDPTransport,
)
from aioxdp.datagram import DatagramTransport
from aioxdp.errors import XDPError
from aioxdp.route import NoRouteError
from aioxdp.testing import Host, Lab
from aioxdp.xsk import XSK

TINY = UmemConfig(nframes=64, fill_size=32, comp_size=32, rx_size=32, tx_size=32)


class Recorder(FlowEvents, PacketProtocol):
    """Counts packets and every connection and flow-control event."""

    def __init__(self) -> None:
        self.count = 0
        self.made = 0
        FlowEvents.__init__(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made += 1

    def packets_received(self, batch: PacketBatch) -> None:
        self.count += len(batch)


class Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.errors: list[Exception] = []
        self.lost: list[Exception | None] = []

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)


def icmp_counters(host: Host) -> dict[str, int]:
    """The Icmp line of ``host``'s /proc/net/snmp (the kernel's own ICMP counters)."""
    lines = [ln.split() for ln in host.run("cat", "/proc/net/snmp").stdout.splitlines()]
    names, values = [ln for ln in lines if ln[0] == "Icmp:"][:2]
    return dict(zip(names[1:], map(int, values[1:]), strict=True))


def udp_burst(host: Host, dst: str, port: int, count: int) -> None:
    """``count`` datagrams of 20 bytes from a kernel socket in ``host``."""
    code = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "for i in range(int(sys.argv[3])): s.sendto(b'%020d' % i, (sys.argv[1], int(sys.argv[2])))\n"
    )
    host.run(sys.executable, "-c", code, dst, str(port), str(count), timeout=30)


def raw_frame(lab: Lab, i: int = 0) -> bytes:
    """An Ethernet frame from a to b of the local experimental ethertype: b's kernel drops it."""
    dst = bytes.fromhex(lab.b.mac.replace(":", ""))
    src = bytes.fromhex(lab.a.mac.replace(":", ""))
    return dst + src + b"\x88\xb5" + i.to_bytes(4, "big") + bytes(42)


# -- transports -----------------------------------------------------------------


async def test_pause_reading_holds_frames_in_the_ring_and_the_kernel_drops_the_rest(
    lab_a: Lab,
) -> None:
    async with Interface(lab_a.a.ifname, config=TINY) as nic:
        _t, proto = await nic.create_packet_endpoint(Recorder, rules=[Rule("udp", dst_port=9200)])
        xdp = nic.transport(0)
        assert isinstance(xdp, XDPTransport)
        counts = nic.frame_counts()[0]
        assert isinstance(counts, FrameCounts)
        assert counts.fill == 32  # TINY lends the kernel 32 frames to receive into
        assert xdp.is_reading()
        xdp.pause_reading()
        xdp.pause_reading()  # twice is once
        assert not xdp.is_reading()
        before = link_stat(lab_a.a, "rx_packets")
        await asyncio.to_thread(udp_burst, lab_a.b, lab_a.a.ip, 9200, 50)
        assert await eventually(lambda: link_stat(lab_a.a, "rx_packets") - before >= 50)
        await asyncio.sleep(0.2)
        assert proto.count == 0, "delivered while reading was paused"
        stats = nic.socket(0).statistics()
        # 32 wait in the RX ring; the other 18 found no fill frame and the kernel dropped them
        assert (stats.rx_dropped, stats.rx_fill_ring_empty_descs) == (18, 18)
        xdp.resume_reading()
        xdp.resume_reading()
        assert xdp.is_reading()
        assert await eventually(lambda: proto.count == 32)
        await asyncio.sleep(0.1)
        assert proto.count == 32
        # reading again: a new datagram goes straight through
        await asyncio.to_thread(udp_burst, lab_a.b, lab_a.a.ip, 9200, 1)
        assert await eventually(lambda: proto.count == 33)


async def test_write_buffer_limits_are_per_endpoint_and_drive_pause_and_resume(
    lab_a: Lab,
) -> None:
    async with Interface(lab_a.a.ifname, config=TINY) as nic:
        transport, proto = await nic.create_packet_endpoint(
            Recorder, rules=[Rule("udp", dst_port=9201)]
        )
        _other, bystander = await nic.create_packet_endpoint(
            Recorder, rules=[Rule("udp", dst_port=9210)]
        )
        assert transport.get_write_buffer_limits() == (8, 32)  # tx_size // 4, tx_size
        with pytest.raises(ValueError, match=r"high \(1\) must be >= low \(2\) must be >= 0"):
            transport.set_write_buffer_limits(high=1, low=2)
        with pytest.raises(ValueError, match=r"low \(-1\)"):
            transport.set_write_buffer_limits(high=4, low=-1)
        assert transport.get_write_buffer_limits() == (8, 32), "a refused call changed them"
        transport.set_write_buffer_limits(low=3)
        assert transport.get_write_buffer_limits() == (3, 12)
        transport.set_write_buffer_limits(high=20)
        assert transport.get_write_buffer_limits() == (5, 20)
        transport.set_write_buffer_limits()
        assert transport.get_write_buffer_limits() == (8, 32)

        before = link_stat(lab_a.b, "rx_packets")
        for i in range(10):
            transport.write(raw_frame(lab_a, i))
        # 32 frames are free for TX: these 10 wait for nothing
        assert transport.get_write_buffer_size() == 0
        assert proto.paused == 0
        assert await eventually(lambda: link_stat(lab_a.b, "rx_packets") - before == 10)
        # a burst past the pool: what waits is this endpoint's, and only it pauses
        transport.writelines(raw_frame(lab_a, i) for i in range(100))
        assert transport.get_write_buffer_size() > 32
        assert proto.paused == 1
        assert await eventually(
            lambda: proto.resumed == 1 and transport.get_write_buffer_size() == 0
        )
        assert await eventually(lambda: link_stat(lab_a.b, "rx_packets") - before == 110)
        assert (proto.paused, proto.resumed) == (1, 1)
        assert (bystander.paused, bystander.resumed) == (0, 0)
        # limits lowered below what waits pause at once
        transport.writelines(raw_frame(lab_a, i) for i in range(40))
        waiting = transport.get_write_buffer_size()
        assert waiting > 0
        assert proto.paused == 1
        transport.set_write_buffer_limits(high=waiting - 1, low=0)
        assert proto.paused == 2
        assert await eventually(lambda: proto.resumed == 2)


async def test_xdp_transport_abort_drops_the_backlog_and_counts_it(lab_a: Lab) -> None:
    loop = asyncio.get_running_loop()
    xsk = XSK(lab_a.a.ifname, 0, config=TINY)
    proto = Recorder()
    transport = XDPTransport(loop, xsk, proto)
    try:
        await asyncio.sleep(0)
        assert proto.made == 1
        assert transport.get_extra_info("ifname") == lab_a.a.ifname
        assert transport.get_extra_info("queue") == 0
        assert transport.get_extra_info("xsk") is xsk
        assert transport.get_extra_info("nosuch", "default") == "default"
        assert transport.get_protocol() is proto
        assert not transport.can_write_eof()
        with pytest.raises(NotImplementedError, match="no end of stream"):
            transport.write_eof()
        before = link_stat(lab_a.b, "rx_packets")
        for i in range(100):
            transport.write(raw_frame(lab_a, i))
        assert not transport.is_closing()
        transport.abort()
        assert transport.is_closing()
        transport.abort()
        transport.close()
        # written after close: counted and dropped, as asyncio's transports do
        transport.write(raw_frame(lab_a))
        assert transport.dropped_after_close == 1
        await asyncio.sleep(0.1)
        assert proto.lost == [None]
        # 64 frames, 32 lent for RX: 32 could be queued, the other 68 waited and were dropped
        assert transport.dropped_on_abort == 68
        sent = link_stat(lab_a.b, "rx_packets") - before
        assert sent + transport.dropped_on_abort == 100
    finally:
        xsk.close()


async def test_set_protocol_swaps_who_receives(lab_a: Lab) -> None:
    async with Interface(lab_a.a.ifname) as nic:
        transport, first = await nic.create_packet_endpoint(
            Recorder, rules=[Rule("udp", dst_port=9202)]
        )
        assert isinstance(transport, PacketTransport)
        second = Recorder()
        transport.set_protocol(second)
        assert transport.get_protocol() is second
        with pytest.raises(TypeError, match="protocol: expected a PacketProtocol, got Datagrams"):
            transport.set_protocol(Datagrams())
        assert transport.get_protocol() is second
        await asyncio.to_thread(udp_burst, lab_a.b, lab_a.a.ip, 9202, 5)
        assert await eventually(lambda: second.count == 5)
        assert first.count == 0
        transport.close()
        await asyncio.sleep(0)
        assert second.lost == [None]
        assert first.lost == []


async def test_abort_is_closing_and_extra_info_of_endpoints(
    lab_a: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    rule = Rule("udp", dst_port=9203)
    # a kernel socket on a, on the same port: it gets what the forwarder does not take
    kernel = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    kernel.bind((lab_a.a.ip, 9203))
    kernel.settimeout(3)
    try:
        async with Interface(lab_a.a.ifname) as nic:
            transport, proto = await nic.create_packet_endpoint(Recorder, rules=[rule])
            assert transport.get_extra_info("ifname") == lab_a.a.ifname
            assert transport.get_extra_info("mode") == nic.mode
            assert transport.get_extra_info("rules") == (rule,)
            assert transport.get_extra_info("peername") is None
            await asyncio.to_thread(udp_burst, lab_a.b, lab_a.a.ip, 9203, 3)
            assert await eventually(lambda: proto.count == 3)
            assert not transport.is_closing()
            transport.abort()
            assert transport.is_closing()
            transport.abort()
            transport.close()
            # written after close: counted and dropped, as asyncio's transports do
            transport.write(raw_frame(lab_a))
            transport.writelines([raw_frame(lab_a)])
            assert transport.dropped_after_close == 2
            with pytest.raises(XDPError, match="adding a rule to a closed endpoint") as info:
                transport.add_rule(Rule("udp", dst_port=9204))
            assert info.value.errno == errno.EPIPE
            await asyncio.sleep(0.05)
            assert proto.lost == [None]
            assert rule not in nic.forwarder.rules
            # the forwarder lets the port's traffic through to the kernel now
            await asyncio.to_thread(udp_burst, lab_a.b, lab_a.a.ip, 9203, 1)
            data, _ = await asyncio.to_thread(kernel.recvfrom, 100)
            assert data == b"%020d" % 0
            assert proto.count == 3

            dgram, dproto = await nic.create_datagram_endpoint(
                Datagrams, local_addr=(lab_a.a.ip, 9205)
            )
            assert isinstance(dgram, DatagramTransport)
            assert dgram.get_extra_info("sockname") == (lab_a.a.ip, 9205)
            assert dgram.get_extra_info("peername") is None
            assert dgram.get_extra_info("ifname") == lab_a.a.ifname
            assert dgram.get_extra_info("mode") == nic.mode
            dgram.abort()
            assert dgram.is_closing()
            dgram.close()
            await asyncio.sleep(0.05)
            assert dproto.lost == [None]
            with caplog.at_level("WARNING", logger="aioxdp"):
                for _ in range(6):  # dropped and counted; asyncio warns from the fifth on
                    dgram.sendto(b"x", (lab_a.b.ip, 9))
            assert dgram.dropped_after_close == 6
            warned = [r for r in caplog.records if "written after close" in r.getMessage()]
            assert len(warned) == 2
    finally:
        kernel.close()


# -- Interface --------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "shown"), [("native", "xdp"), ("generic", "xdpgeneric")])
async def test_interface_mode_asked_for_is_the_mode_attached(
    lab_a: Lab, mode: str, shown: str
) -> None:
    async with Interface(lab_a.a.ifname, mode=mode) as nic:  # type: ignore[arg-type]
        assert nic.mode == mode
        link = lab_a.a.run("ip", "-d", "link", "show", lab_a.a.ifname).stdout
        flags = link.split("mtu", 1)[1].split()
        assert shown in flags, link  # "... mtu 1500 xdp qdisc ..." or "... xdpgeneric ..."
        assert ({"xdp", "xdpgeneric"} - {shown}).isdisjoint(flags), link
        before = icmp_counters(lab_a.b)
        result = await aioxdp.ping(lab_a.b.ip, count=3, interval=0.02)
        assert result.received == 3
        assert icmp_counters(lab_a.b)["InEchos"] - before["InEchos"] == 3
    assert "prog/xdp" not in lab_a.a.run("ip", "-d", "link", "show", lab_a.a.ifname).stdout


async def test_explicit_open_and_aclose_and_calls_after_close(lab_a: Lab) -> None:
    nic = Interface(lab_a.a.ifname)
    assert "closed" in repr(nic)
    assert await nic.open() is nic
    try:
        assert "prog/xdp" in lab_a.a.run("ip", "-d", "link", "show", lab_a.a.ifname).stdout
        transport, proto = await nic.create_packet_endpoint(
            Recorder, rules=[Rule("udp", dst_port=9206)]
        )
        await asyncio.to_thread(udp_burst, lab_a.b, lab_a.a.ip, 9206, 2)
        assert await eventually(lambda: proto.count == 2)
    finally:
        await nic.aclose()
    assert "prog/xdp" not in lab_a.a.run("ip", "-d", "link", "show", lab_a.a.ifname).stdout
    assert proto.lost == [None]
    assert nic.final_counts[0].balanced
    assert nic.final_counts[0].leaked == 0
    await nic.aclose()  # twice is harmless
    with pytest.raises(XDPError, match=f"creating an endpoint.*{lab_a.a.ifname} is not open") as e:
        await nic.create_packet_endpoint(Recorder, rules=[Rule("udp", dst_port=9207)])
    assert e.value.errno == errno.EBADF
    with pytest.raises(XDPError, match="is not open"):
        await nic.create_datagram_endpoint(Datagrams, local_addr=(lab_a.a.ip, 9207))
    transport.write(raw_frame(lab_a))  # dropped, counted
    assert transport.dropped_after_close == 1
    # and it opens again
    async with nic:
        assert nic.queues == [0]


async def test_interface_down_at_start_is_refused_saying_what_to_do(lab_a: Lab) -> None:
    ifname = lab_a.a.ifname
    lab_a.a.run("ip", "link", "set", "dev", ifname, "down")
    nic = Interface(ifname)
    with pytest.raises(XDPError, match=rf"{ifname} is down \(ip link set dev {ifname} up\)") as e:
        await nic.open()
    assert e.value.errno == errno.ENETDOWN
    assert "closed" in repr(nic)
    assert "prog/xdp" not in lab_a.a.run("ip", "-d", "link", "show", ifname).stdout
    with pytest.raises(NoRouteError, match="is the interface up"):
        await aioxdp.ping(lab_a.b.ip, count=1)
    lab_a.a.run("ip", "link", "set", "dev", ifname, "up")
    assert await eventually(lambda: "state UP" in lab_a.a.run("ip", "link", "show", ifname).stdout)
    before = icmp_counters(lab_a.b)
    result = await aioxdp.ping(lab_a.b.ip, count=2, interval=0.02)
    assert result.received == 2
    assert icmp_counters(lab_a.b)["InEchos"] - before["InEchos"] == 2


async def test_a_rule_of_another_endpoint_is_not_this_ones(lab_a: Lab) -> None:
    mine, theirs = Rule("udp", dst_port=9209), Rule("udp", dst_port=9210)
    async with Interface(lab_a.a.ifname) as nic:
        t1, p1 = await nic.create_packet_endpoint(Recorder, rules=[mine])
        t2, p2 = await nic.create_packet_endpoint(Recorder, rules=[theirs])
        with pytest.raises(KeyError, match="is not one of this endpoint's rules"):
            t1.remove_rule(theirs)
        with pytest.raises(ValueError, match="is already installed"):
            t1.add_rule(theirs)
        assert t1.rules == [mine]
        assert t2.rules == [theirs]
        assert set(nic.forwarder.rules) == {mine, theirs}
        await asyncio.to_thread(udp_burst, lab_a.b, lab_a.a.ip, 9210, 4)
        await asyncio.to_thread(udp_burst, lab_a.b, lab_a.a.ip, 9209, 2)
        assert await eventually(lambda: p2.count == 4 and p1.count == 2)
        t1.remove_rule(mine)
        assert t1.rules == []
        with pytest.raises(KeyError, match="is not one of this endpoint's rules"):
            t1.remove_rule(mine)


# -- sendto misuse ---------------------------------------------------------------------


async def test_sendto_bad_addresses_are_named_and_the_endpoint_still_works(lab_a: Lab) -> None:
    listener = lab_a.b.popen(
        PYTHON,
        "-c",
        textwrap.dedent(
            f"""
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("{lab_a.b.ip}", 9211))
            s.settimeout(10)
            print("up", flush=True)
            data, addr = s.recvfrom(100)
            print(data.decode(), addr[0], addr[1], flush=True)
            """
        ),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(listener) == "up"
        async with Interface(lab_a.a.ifname) as nic:
            transport, proto = await nic.create_datagram_endpoint(
                Datagrams, local_addr=(lab_a.a.ip, 9212)
            )
            bad: list[tuple[Any, type[Exception], str]] = [
                (lab_a.b.ip, ValueError, r"addr: expected \(host, port\)"),
                ((lab_a.b.ip,), ValueError, r"addr: expected \(host, port\)"),
                (None, ValueError, r"addr: expected \(host, port\)"),
                ((lab_a.b.ip, 0), ValueError, r"port must be 1\.\.65535, got 0"),
                ((lab_a.b.ip, 65536), ValueError, r"port must be 1\.\.65535"),
                ((lab_a.b.ip, "9211"), ValueError, r"port must be 1\.\.65535, got '9211'"),
                ((lab_a.b.ip, True), ValueError, r"port must be 1\.\.65535, got True"),
                ((123, 9211), TypeError, r"addr: host must be an address or name \(str\), got 123"),
                (([1], 9211), TypeError, r"host must be .*got \[1\]"),
                (("", 9211), TypeError, r"host must be .*got ''"),
            ]
            for addr, kind, words in bad:
                with pytest.raises(kind, match=words):
                    transport.sendto(b"x", addr)
            with pytest.raises(TypeError, match="data: expected bytes-like, got str"):
                transport.sendto("text", (lab_a.b.ip, 9211))  # type: ignore[arg-type]
            # a host name is resolved in the background: its failure comes to
            # error_received as an OSError, named, as asyncio's transports do
            transport.sendto(b"x", ("2001:2::1", 9211))
            assert await eventually(lambda: len(proto.errors) == 1)
            (error,) = proto.errors
            assert isinstance(error, NoRouteError)
            assert "resolving host '2001:2::1'" in str(error)
            assert transport.dropped_unresolved == 1
            assert not transport.is_closing()
            transport.sendto(b"still works", (lab_a.b.ip, 9211))
            line = await asyncio.to_thread(read_line, listener, timeout=10)
            assert line == f"still works {lab_a.a.ip} 9212"
    finally:
        listener.kill()
        listener.wait()


# -- ping ----------------------------------------------------------------------------


async def test_ping_from_a_second_source_address(lab_a: Lab, tmp_path: Path) -> None:
    second = str(lab_a.subnet[10])
    lab_a.a.run("ip", "addr", "add", f"{second}/24", "dev", lab_a.a.ifname)
    capture = Capture(lab_a.b, "icmp[icmptype] == icmp-echo", 3, tmp_path)
    result = await aioxdp.ping(lab_a.b.ip, count=3, interval=0.02, source=second)
    assert result.received == 3
    frames = [Ether(f) for f in await asyncio.to_thread(capture.frames)]
    assert len(frames) == 3
    assert {f[IP].src for f in frames} == {second}
    # b's kernel answered the second address, so it asked for its MAC: a's
    neigh = lab_a.b.run("ip", "neigh", "show", second).stdout
    assert lab_a.a.mac in neigh, neigh


async def test_flood_with_a_small_window_never_has_more_in_flight(lab_a: Lab) -> None:
    count, window = 200, 2
    lab_a.a.run("ping", "-c1", "-W1", lab_a.b.ip)  # b's MAC known: no ARP through the paused XSK
    before = icmp_counters(lab_a.b)
    async with Interface(lab_a.a.ifname) as nic:  # the Pinger shares it
        xdp = nic.transport(0)
        # no reply can come back while reading is paused: the window stays full
        xdp.pause_reading()
        async with aioxdp.Pinger(
            lab_a.b.ip, count=count, interval=0, window=window, timeout=2.0
        ) as pinger:
            await asyncio.sleep(0.3)
            held = icmp_counters(lab_a.b)
            assert held["InEchos"] - before["InEchos"] == window
            assert held["OutEchoReps"] - before["OutEchoReps"] == window
            xdp.resume_reading()
            result = await pinger.result()
    assert (result.sent, result.received) == (count, count)
    assert [r.seq for r in result.replies] == list(range(1, count + 1))
    assert icmp_counters(lab_a.b)["InEchos"] - before["InEchos"] == count
    with pytest.raises(ValueError, match=r"window: must be 1\.\.4096"):
        aioxdp.Pinger(lab_a.b.ip, window=0)


async def test_snapshot_while_a_pinger_runs(lab_a: Lab) -> None:
    count = 40
    before = icmp_counters(lab_a.b)
    snaps: list[tuple[int, int, int]] = []
    elapsed: list[float] = []
    async with aioxdp.Pinger(lab_a.b.ip, count=count, interval=0.025) as pinger:
        task = asyncio.ensure_future(pinger.result())
        while not task.done():
            (snap,) = pinger.snapshot()
            answered = icmp_counters(lab_a.b)["OutEchoReps"] - before["OutEchoReps"]
            snaps.append((snap.sent, snap.received, answered))
            elapsed.append(snap.elapsed)
            assert len(snap.rtts) == snap.received == len(snap.replies)
            await asyncio.sleep(0.1)
        result = await task
    assert (result.sent, result.received) == (count, count)
    assert all(isinstance(r, PingReply) for r in result.replies)
    partial = [s for s in snaps if 0 < s[0] < count]
    assert len(partial) >= 3, snaps
    for sent, received, answered in snaps:
        assert received <= sent
        assert received <= answered, "a reply counted that b's kernel never sent"
    for (sent, received, _), (later_sent, later_received, _) in itertools.pairwise(snaps):
        assert later_sent >= sent
        assert later_received >= received
    # each snapshot's run time is its own: 0.1 s of sleep between two of them
    assert elapsed[0] >= 0
    for earlier, later in itertools.pairwise(elapsed[1:]):
        assert later - earlier >= 0.09, elapsed
    assert result.elapsed >= elapsed[-1]


async def test_ping_through_a_gateway_goes_to_the_gateways_mac(lab_a: Lab, tmp_path: Path) -> None:
    far = "198.19.77.1"
    lab_a.b.run("ip", "addr", "add", f"{far}/32", "dev", "lo")
    # b answers ARP only for addresses of the asking link: a must ask for b.ip
    lab_a.b.sysctl("net.ipv4.conf.all.arp_ignore", "1")
    lab_a.a.run("ip", "route", "add", "198.19.77.0/24", "via", lab_a.b.ip)
    capture = Capture(lab_a.b, f"icmp and host {far}", 6, tmp_path)
    result = await aioxdp.ping(far, count=3, interval=0.02)
    assert (result.address, result.received) == (far, 3)
    assert {r.source for r in result.replies} == {far}
    frames = [Ether(f) for f in await asyncio.to_thread(capture.frames)]
    requests = [f for f in frames if f[ICMP].type == 8]
    assert len(requests) == 3
    assert {(f.dst, f.src, f[IP].dst) for f in requests} == {(lab_a.b.mac, lab_a.a.mac, far)}


async def test_ping_localhost_is_refused_by_name(lab_a: Lab) -> None:
    with pytest.raises(NoRouteError, match="it is an address of this host") as info:
        await aioxdp.ping("localhost", count=1)
    assert "127.0.0.1" in str(info.value)


@pytest.fixture
def named_lab() -> Iterator[Lab]:
    """A lab whose host a resolves peer-b to b (ip netns exec mounts /etc/netns/<ns>/*)
    and has a resolver that answers nothing, on its own loopback."""
    with Lab() as lab:
        etc = Path("/etc/netns") / lab.a.netns
        etc.mkdir(parents=True)
        try:
            (etc / "hosts").write_text(f"127.0.0.1 localhost\n{lab.b.ip} peer-b peer-b.lab\n")
            (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
            yield lab
        finally:
            shutil.rmtree(etc)
            with_parent = etc.parent
            if with_parent.exists() and not any(with_parent.iterdir()):
                with_parent.rmdir()


def test_ping_and_sendto_by_name(named_lab: Lab) -> None:
    lab = named_lab
    assert lab.a.run("getent", "hosts", "peer-b").stdout.split()[0] == lab.b.ip
    before = icmp_counters(lab.b)
    code = textwrap.dedent(
        f"""
        import asyncio, aioxdp
        class P(asyncio.DatagramProtocol):
            errors = []
            def error_received(self, exc):
                self.errors.append(exc)
        async def main():
            r = await aioxdp.ping("peer-b.lab", count=2, interval=0.05)
            print(r.host, r.address, r.received)
            async with aioxdp.Interface("{lab.a.ifname}") as nic:
                t, p = await nic.create_datagram_endpoint(P, local_addr=("{lab.a.ip}", 9213))
                t.sendto(b"x", ("nosuch-host.invalid", 9))
                for _ in range(500):
                    if p.errors:
                        break
                    await asyncio.sleep(0.01)
                print(type(p.errors[0]).__name__, p.errors[0])
        asyncio.run(main())
        """
    )
    out = lab.a.run(PYTHON, "-c", code, timeout=60).stdout.splitlines()
    assert out[0] == f"peer-b.lab {lab.b.ip} 2"
    assert icmp_counters(lab.b)["InEchos"] - before["InEchos"] == 2
    # a NoRouteError, named for what went wrong
    assert out[1].startswith("HostNameError resolving host 'nosuch-host.invalid'"), out
    cli = lab.a.run(PYTHON, "-m", "aioxdp", "ping", "-c", "1", "peer-b", check=False)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.splitlines()[0] == f"PING peer-b ({lab.b.ip}) 56(84) bytes of data."
    bad = lab.a.run(PYTHON, "-m", "aioxdp", "ping", "-c", "1", "nosuch-host.invalid", check=False)
    assert bad.returncode == 2
    assert bad.stderr.startswith("aioxdp: nosuch-host.invalid: "), bad.stderr  # as ping says it
    assert "Traceback" not in bad.stderr


# -- the command line options no other test uses ---------------------------------------


def test_tcping_quiet_timeout_and_interface(lab: Lab) -> None:
    def tcping(*args: str) -> subprocess.CompletedProcess[str]:
        return lab.a.run(PYTHON, "-m", "aioxdp", "tcping", *args, check=False, timeout=60)

    quiet = tcping("-q", "-I", lab.a.ifname, "-c", "2", "-i", "0.05", lab.b.ip, "7700")
    assert quiet.returncode == 0, quiet.stderr
    assert "closed (RST)" not in quiet.stdout  # no probe lines
    assert "port 7700 is closed" in quiet.stdout
    assert "2 packets transmitted, 2 received" in quiet.stdout
    elsewhere = tcping("-I", "nosuch0", "-c", "1", lab.b.ip, "7700")
    assert elsewhere.returncode == 2
    assert "nosuch0" in elsewhere.stderr
    # b goes silent (a knows its MAC from b's ping): each probe waits -W, not 1 s
    lab.b.run("ping", "-c1", "-W1", lab.a.ip)
    lab.b.run("ip", "addr", "del", f"{lab.b.ip}/24", "dev", lab.b.ifname)
    silent = tcping("--json", "-W", "0.2", "-c", "2", "-i", "0.05", lab.b.ip, "7700")
    assert silent.returncode == 1, silent.stderr
    doc = json.loads(silent.stdout)
    assert (doc["sent"], doc["received"], doc["open"]) == (2, 0, None)
    assert doc["elapsed_s"] < 0.8  # 0.05 + 0.2 with slack; -W 1 would take over 1 s


@pytest.mark.parametrize("command", [[], ["ping"], ["tcping"], ["doctor"], ["demo"]])
def test_help_of_every_command(command: list[str]) -> None:
    proc = subprocess.run(
        [PYTHON, "-m", "aioxdp", *command, "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: {' '.join(['aioxdp', *command])}")


# -- everything public is exercised somewhere --------------------------------------------


def _test_trees() -> dict[str, ast.Module]:
    return {p.name: ast.parse(p.read_text()) for p in sorted(TESTS.glob("*.py"))}


def test_every_public_name_is_used_by_a_test() -> None:
    """Referenced as ``aioxdp.X``, imported ``from aioxdp[.mod] import X``, or a module
    ``aioxdp.X`` imported from; test_values.py only checks that the names exist."""
    used: dict[str, set[str]] = {}
    for name, tree in _test_trees().items():
        if name == "test_values.py":
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "aioxdp"
            ):
                used.setdefault(node.attr, set()).add(name)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "aioxdp":
                for alias in node.names:
                    used.setdefault(alias.name, set()).add(name)
                parts = (node.module or "").split(".")
                if len(parts) > 1:
                    used.setdefault(parts[1], set()).add(name)
    missing = [name for name in aioxdp.__all__ if name not in used]
    assert not missing, f"public names no test uses: {missing}"


def _cli_options() -> dict[str, list[tuple[str, ...]]]:
    """The option strings of every action of the parser, by subcommand ("" for the top)."""
    from aioxdp.cli import build_parser

    parser = build_parser()
    out: dict[str, list[tuple[str, ...]]] = {"": []}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                out[command] = [tuple(a.option_strings) for a in sub._actions if a.option_strings]
        elif action.option_strings:
            out[""].append(tuple(action.option_strings))
    return out


def _strings(node: ast.AST) -> list[str]:
    return [
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def _after_aioxdp(words: list[str]) -> list[str] | None:
    """The argv after ``-m aioxdp`` if ``words`` hold one, else None."""
    for i in range(len(words) - 1):
        if words[i : i + 2] == ["-m", "aioxdp"]:
            return words[i + 2 :]
    return None


def _cli_invocations(commands: set[str]) -> list[list[str]]:
    """The string arguments of every call in a test that runs the command line.

    Such a call holds "-m", "aioxdp", or calls a helper whose body makes such a
    call (cli, aioxdp_cli...; what the helper puts first comes first). The values
    of a test's parametrize go in after the command (or first, with none)."""
    found: list[list[str]] = []
    for tree in _test_trees().values():
        helpers: dict[str, list[str]] = {}
        for func in ast.walk(tree):
            if isinstance(func, ast.FunctionDef):
                for call in ast.walk(func):
                    argv = _after_aioxdp(_strings(call)) if isinstance(call, ast.Call) else None
                    if argv is not None:
                        helpers[func.name] = argv
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef) or not func.name.startswith("test_"):
                continue
            params: list[list[str]] = [[]] + [
                _strings(value)
                for d in func.decorator_list
                if isinstance(d, ast.Call) and "parametrize" in ast.unparse(d.func)
                if len(d.args) > 1 and isinstance(d.args[1], (ast.List, ast.Tuple))
                for value in d.args[1].elts
            ]
            for call in ast.walk(func):
                if not isinstance(call, ast.Call):
                    continue
                argv = _after_aioxdp(_strings(call))
                if argv is None and isinstance(call.func, ast.Name) and call.func.id in helpers:
                    argv = helpers[call.func.id] + _strings(call)
                if argv is None:
                    continue
                at = next((i + 1 for i, w in enumerate(argv) if w in commands), 0)
                found += [argv[:at] + extra + argv[at:] for extra in params]
    return found


def test_every_cli_command_and_option_is_used_by_a_test() -> None:
    options = _cli_options()
    commands = set(options) - {""}
    used: dict[str, set[str]] = {command: set() for command in options}
    for argv in _cli_invocations(commands):
        command = next((w for w in argv if w in commands), "")
        head = argv[: argv.index(command)] if command else argv
        used[""].update(head)
        if command:
            used[command].add(command)
            used[command].update(argv[argv.index(command) + 1 :])
    missing = [
        f"aioxdp {command} {'/'.join(strings)}".replace("  ", " ")
        for command, actions in options.items()
        for strings in actions + ([(command,)] if command else [])
        if not used[command] & set(strings)
    ]
    assert not missing, f"no test runs: {missing}"


def test_the_option_walk_sees_every_option() -> None:
    """The walk above must see what the parser defines (written out by hand from cli.py)."""
    options = {command: set(actions) for command, actions in _cli_options().items()}
    assert options[""] == {("-h", "--help"), ("--version",), ("-v", "--verbose"), ("--loop",)}
    probe = {("-h", "--help"), ("-c",), ("-i",), ("-W",), ("-I",), ("-q",), ("--json",)}
    assert options["ping"] == probe | {("-s",), ("-t",), ("-f",), ("-l",), ("-4",), ("-6",)}
    assert options["tcping"] == probe
    assert options["doctor"] == {("-h", "--help"), ("-I",)}
    assert options["demo"] == {("-h", "--help")}
    assert Path(__file__).name in _test_trees()
