"""The data path in the lab, on asyncio and uvloop: the peer namespace's kernel
and scapy on one side, aioxdp on the other, tcpdump as the witness."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import FlowEvents, eventually
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import rdpcap, wrpcap

import aioxdp
from aioxdp import Interface, PacketBatch, PacketProtocol, Rule, UmemConfig
from aioxdp.echo import pick_ident
from aioxdp.errors import InterfaceNotFoundError
from aioxdp.testing import Host, Lab


class Recorder(FlowEvents, PacketProtocol):
    """Keeps a copy of every frame, and counts connection events."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.made = asyncio.Event()
        FlowEvents.__init__(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.made.set()

    def packet_received(self, packet: aioxdp.Packet) -> None:
        self.frames.append(bytes(packet.data))


class Counter(PacketProtocol):
    """Counts a batch at a time, never touching a packet."""

    def __init__(self) -> None:
        self.count = 0

    def packets_received(self, batch: PacketBatch) -> None:
        self.count += len(batch)


@pytest.fixture
async def nic(lab_a: Lab) -> AsyncIterator[Interface]:
    async with Interface(lab_a.a.ifname) as opened:
        yield opened
    assert opened.final_counts, "no socket was checked"
    for counts in opened.final_counts.values():
        assert counts.balanced, counts
        assert counts.leaked == 0, f"frames leaked: {counts}"


def scapy_send(host: Host, frames: list[bytes], tmp: Path) -> None:
    """Send raw frames out of ``host``'s interface with scapy, in its namespace."""
    pcap = tmp / f"send-{random.getrandbits(32)}.pcap"
    wrpcap(str(pcap), [Ether(fr) for fr in frames])
    code = (
        "from scapy.all import rdpcap, sendp\n"
        f"sendp(rdpcap({str(pcap)!r}), iface={host.ifname!r}, verbose=False)\n"
    )
    host.run(sys.executable, "-c", code, timeout=120)


class Capture:
    """tcpdump in a host, writing a pcap we read back with scapy."""

    def __init__(self, host: Host, bpf_filter: str, count: int, tmp: Path) -> None:
        self.path = tmp / f"capture-{random.getrandbits(32)}.pcap"
        self.proc = host.popen(
            "tcpdump",
            "-i",
            host.ifname,
            "-U",
            "-n",
            "-c",
            str(count),
            "-w",
            str(self.path),
            bpf_filter,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # "listening on ..." once the socket is up
        assert "listening on" in line, line

    def frames(self, timeout: float = 20.0) -> list[bytes]:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(5)
        return [bytes(p) for p in rdpcap(str(self.path))]


def udp_frames(lab: Lab, port: int, n: int, *, towards: Host) -> list[bytes]:
    src = lab.b if towards is lab.a else lab.a
    rng = random.Random(port)
    return [
        bytes(
            Ether(src=src.mac, dst=towards.mac)
            / IP(src=src.ip, dst=towards.ip, id=i)
            / UDP(sport=30000 + i, dport=port)
            / Raw(rng.randbytes(rng.randrange(18, 1400)))
        )
        for i in range(n)
    ]


async def test_frames_from_the_peer_reach_the_protocol_byte_identical(
    lab_a: Lab, nic: Interface, tmp_path: Path
) -> None:
    transport, proto = await nic.create_packet_endpoint(
        Recorder, rules=[Rule("udp", dst_port=9000)]
    )
    sent = udp_frames(lab_a, 9000, 300, towards=lab_a.a)
    await asyncio.to_thread(scapy_send, lab_a.b, sent, tmp_path)
    assert await eventually(lambda: len(proto.frames) >= len(sent)), (
        f"the protocol got {len(proto.frames)} of the {len(sent)} frames sent"
    )
    assert proto.frames == sent
    assert transport.get_extra_info("ifname") == lab_a.a.ifname
    assert nic.forwarder.counters.redirected == len(sent)


async def test_frames_the_protocol_writes_arrive_byte_identical(
    lab_a: Lab, nic: Interface, tmp_path: Path
) -> None:
    transport, _ = await nic.create_packet_endpoint(Recorder, rules=[Rule("udp", dst_port=9001)])
    frames = udp_frames(lab_a, 9001, 300, towards=lab_a.b)
    capture = Capture(lab_a.b, "udp dst port 9001", len(frames), tmp_path)
    transport.writelines(frames)
    got = await asyncio.to_thread(capture.frames)
    assert got == frames


def echo_request(lab: Lab, ident: int, seq: int = 1) -> bytes:
    return bytes(
        Ether(src=lab.a.mac, dst=lab.b.mac)
        / IP(src=lab.a.ip, dst=lab.b.ip)
        / ICMP(type=8, id=ident, seq=seq)
        / Raw(b"aioxdp-test" * 4)
    )


class EchoPump(PacketProtocol):
    """Keeps ``window`` echo requests in flight until ``total`` replies came."""

    def __init__(self, request: bytes, total: int, window: int) -> None:
        self.request = request
        self.total = total
        self.window = window
        self.sent = 0
        self.replies = 0
        self.done = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: aioxdp.PacketTransport = transport  # type: ignore[assignment]
        self._send(self.window)

    def _send(self, n: int) -> None:
        n = min(n, self.total - self.sent)
        for _ in range(n):
            self.transport.write(self.request)
        self.sent += n

    def packets_received(self, batch: PacketBatch) -> None:
        self.replies += len(batch)
        if self.replies >= self.total:
            self.done.set()
        else:
            self._send(len(batch))


async def test_100k_round_trips_through_the_kernel_peer_leak_no_frame(
    lab_a: Lab, nic: Interface
) -> None:
    ident = pick_ident()
    total = 100_000
    _t, pump = await nic.create_packet_endpoint(
        lambda: EchoPump(echo_request(lab_a, ident), total, window=256),
        rules=[Rule("icmp", src=lab_a.b.ip, icmp_type=0, icmp_id=ident)],
    )
    loop_deadline = 120
    await asyncio.wait_for(pump.done.wait(), loop_deadline)
    assert pump.replies == total
    assert pump.sent == total
    counts = nic.frame_counts()[0]
    assert counts.balanced
    # closing returns every frame (checked by the nic fixture: leaked == 0)


def epolls_watching(fd: int) -> int:
    """How many epoll instances of this process hold ``fd``, as the kernel
    lists them in /proc/self/fdinfo ("tfd: N" per watched file)."""
    found = 0
    for entry in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{entry}") != "anon_inode:[eventpoll]":
                continue
            info = Path(f"/proc/self/fdinfo/{entry}").read_text()
        except OSError:  # closed meanwhile (the listing's own fd, a thread's)
            continue
        found += any(line.split()[:2] == ["tfd:", str(fd)] for line in info.splitlines())
    return found


async def test_the_socket_is_watched_after_big_kicks_and_unwatched_while_paused(
    lab_a: Lab, nic: Interface
) -> None:
    """A kick of 16 frames or more takes the XSK out of the transport's epoll
    (the kernel frees and delivers inside the kick, and would call each
    waiter for each frame): after 20 000 round trips in windows of 256 it is
    watched again, by exactly one epoll, and every reply came back; paused,
    it is in none (nothing on its wait queue), resumed, in one."""
    fd = nic.socket(0).fd
    assert epolls_watching(fd) == 1
    ident = pick_ident()
    total = 20_000
    _t, pump = await nic.create_packet_endpoint(
        lambda: EchoPump(echo_request(lab_a, ident), total, window=256),
        rules=[Rule("icmp", src=lab_a.b.ip, icmp_type=0, icmp_id=ident)],
    )
    await asyncio.wait_for(pump.done.wait(), 60)
    assert pump.replies == total
    assert nic.socket(0).counts().tx_wakeups < total  # frames went many per kick
    assert epolls_watching(fd) == 1
    transport = nic.transport(0)
    transport.pause_reading()
    await asyncio.sleep(0.01)
    assert epolls_watching(fd) == 0
    transport.resume_reading()
    assert epolls_watching(fd) == 1


PACED_SENDER = """
import socket, sys, time
host, port, count, gap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(count):
    s.sendto(i.to_bytes(4, "big"), (host, port))
    time.sleep(gap)
"""


def paced_udp(lab: Lab, port: int, count: int, gap: float) -> subprocess.Popen[bytes]:
    """``count`` datagrams from b's kernel to a's ``port``, ``gap`` seconds apart."""
    return lab.b.popen(
        sys.executable, "-c", PACED_SENDER, lab.a.ip, str(port), str(count), str(gap)
    )


def sleeps_of_this_thread() -> int:
    """Times this thread went to sleep (the kernel's voluntary context switches)."""
    status = Path("/proc/thread-self/status").read_text()
    return int(status.split("voluntary_ctxt_switches:")[1].split()[0])


async def test_busy_poll_reads_without_sleeping_under_load_then_waits_in_epoll(
    lab_a: Lab,
) -> None:
    """With busy_poll, a socket that found frames is polled every loop
    iteration, out of every epoll, and the loop never sleeps while
    datagrams keep coming (1 ms apart); without it, each one wakes the loop.
    Idle for longer than busy_poll, the socket is watched again and the next
    datagram still arrives; paused, it is neither polled nor watched. No
    datagram is lost on any of these ways."""
    port = 7100
    async with Interface(lab_a.a.ifname, busy_poll=0.005) as nic:
        _t, counter = await nic.create_packet_endpoint(
            Counter, rules=[Rule("udp", dst=lab_a.a.ip, dst_port=port)]
        )
        fd = nic.socket(0).fd
        assert epolls_watching(fd) == 1
        sender = paced_udp(lab_a, port, 400, 0.001)
        try:
            assert await eventually(lambda: counter.count >= 20), "the stream began"
            assert epolls_watching(fd) == 0  # polled, on no wait queue
            before, got = sleeps_of_this_thread(), counter.count
            await asyncio.sleep(0.1)
            polled_sleeps = sleeps_of_this_thread() - before
            assert counter.count - got >= 40, "datagrams came meanwhile"
            nic.busy_poll = 0  # waiting in epoll at once: each datagram wakes the loop
            assert epolls_watching(fd) == 1
            before, got = sleeps_of_this_thread(), counter.count
            await asyncio.sleep(0.1)
            waited_sleeps = sleeps_of_this_thread() - before
            assert counter.count - got >= 40, "datagrams came meanwhile"
            assert polled_sleeps <= 5 < 30 <= waited_sleeps, (polled_sleeps, waited_sleeps)
            nic.busy_poll = 0.005
            transport = nic.transport(0)
            assert await eventually(lambda: epolls_watching(fd) == 0), "polling again"
            transport.pause_reading()
            assert epolls_watching(fd) == 0
            paused_at = counter.count
            await asyncio.sleep(0.05)
            assert counter.count == paused_at  # no poll ran while paused
            transport.resume_reading()
            assert sender.wait(30) == 0
            assert await eventually(lambda: counter.count == 400), counter.count
        finally:
            sender.kill()
            sender.wait()
        # quiet for more than busy_poll: back in epoll, and woken by the next one
        assert await eventually(lambda: epolls_watching(fd) == 1), "watched again"
        assert paced_udp(lab_a, port, 1, 0).wait(30) == 0
        assert await eventually(lambda: counter.count == 401), counter.count


async def test_closing_while_polling_stops_the_polls_and_leaks_nothing(
    lab_a: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    """An Interface closed while its socket is polled (busy_poll) mid-stream:
    no poll runs after (one would find the socket closed, and log it), the
    loop hears of no error, and every frame is back in the pool."""
    caplog.set_level(logging.DEBUG, logger="aioxdp.transport")
    port = 7101
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    sender = paced_udp(lab_a, port, 300, 0.001)
    try:
        async with Interface(lab_a.a.ifname, busy_poll=0.01) as nic:
            _t, counter = await nic.create_packet_endpoint(
                Counter, rules=[Rule("udp", dst=lab_a.a.ip, dst_port=port)]
            )
            fd = nic.socket(0).fd
            assert await eventually(lambda: counter.count >= 10), "the stream began"
            assert epolls_watching(fd) == 0
        closed_at = counter.count
        await asyncio.sleep(0.05)
        assert counter.count == closed_at
    finally:
        loop.set_exception_handler(None)
        sender.kill()
        sender.wait()
    assert errors == []
    assert [r.getMessage() for r in caplog.records if r.name == "aioxdp.transport"] == []
    for counts in nic.final_counts.values():
        assert counts.balanced, counts
        assert counts.leaked == 0, counts


async def test_kernel_ping_and_tcp_keep_working_beside_our_echo_rule(
    lab_a: Lab, nic: Interface
) -> None:
    ident = pick_ident()  # clear of the kernel ping this test runs beside
    total = 2000
    _t, pump = await nic.create_packet_endpoint(
        lambda: EchoPump(echo_request(lab_a, ident), total, window=8),
        rules=[Rule("icmp", icmp_type=0, icmp_id=ident)],
    )
    server = lab_a.b.popen(
        sys.executable,
        "-c",
        "import socket\n"
        "s = socket.create_server(('0.0.0.0', 7777)); print('up', flush=True)\n"
        "c, _ = s.accept()\n"
        "while data := c.recv(65536): c.sendall(data)\n",
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "up"

    def tcp_echo() -> bytes:
        blob = os.urandom(1 << 20)
        with socket.create_connection((lab_a.b.ip, 7777), timeout=10) as c:
            c.sendall(blob)
            c.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := c.recv(65536):
                got += chunk
        return got if got == blob else b""

    ping = subprocess.Popen(
        ["ping", "-n", "-c", "50", "-i", "0.01", "-W", "2", lab_a.b.ip],
        stdout=subprocess.PIPE,
        text=True,
    )  # the test thread is in host a: this ping runs there
    echoed = await asyncio.to_thread(tcp_echo)
    out, _ = await asyncio.to_thread(ping.communicate)
    server.wait(10)
    await asyncio.wait_for(pump.done.wait(), 30)
    assert "50 packets transmitted, 50 received" in out
    assert echoed, "the TCP stream came back altered"
    assert pump.replies == total


async def test_rule_changes_in_flight_lose_and_misdirect_nothing(
    lab_a: Lab, nic: Interface
) -> None:
    port, total = 9100, 4000
    got_kernel: list[int] = []
    kernel_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # created inside host a
    kernel_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    kernel_sock.bind((lab_a.a.ip, port))
    kernel_sock.settimeout(0.05)
    stop = threading.Event()

    def kernel_reader() -> None:
        # reads until told to stop, then until the socket is quiet: late extras are seen
        while True:
            try:
                data = kernel_sock.recv(2048)
            except TimeoutError:
                if stop.is_set():
                    return
                continue
            got_kernel.append(int(data.split(b":")[1]))

    class Seqs(PacketProtocol):
        def __init__(self) -> None:
            self.seqs: list[int] = []

        def packet_received(self, packet: aioxdp.Packet) -> None:
            payload = bytes(packet.data[42:])
            self.seqs.append(int(payload.split(b":")[1]))

    rule = Rule("udp", dst=lab_a.a.ip, dst_port=port)
    transport, proto = await nic.create_packet_endpoint(Seqs, rules=[rule])
    sender = lab_a.b.popen(
        sys.executable,
        "-c",
        "import socket, time\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"for i in range({total}):\n"
        f"    s.sendto(b'seq:%d:' % i, ({lab_a.a.ip!r}, {port}))\n"
        "    if i % 50 == 0: time.sleep(0.002)\n",
    )
    reader = threading.Thread(target=kernel_reader)
    reader.start()
    toggles = 0
    installed = True
    try:
        deadline = time.monotonic() + 60
        while sender.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # the pace of the rule changes
            if installed:
                transport.remove_rule(rule)
            else:
                transport.add_rule(rule)
            installed = not installed
            toggles += 1
        assert sender.wait(5) == 0
        # every datagram b's kernel sent went one way or the other
        assert await eventually(lambda: len(proto.seqs) + len(got_kernel) >= total), (
            f"XDP {len(proto.seqs)} + kernel {len(got_kernel)} of the {total} datagrams sent"
        )
    finally:
        stop.set()
        await asyncio.to_thread(reader.join, 10)
        kernel_sock.close()
    assert not reader.is_alive()
    assert toggles >= 10, "the run was too short to toggle the rule"
    assert proto.seqs, "no packet took the XDP path"
    assert got_kernel, "no packet took the kernel path"
    assert not set(proto.seqs) & set(got_kernel), "a packet went both ways"
    assert sorted(proto.seqs + got_kernel) == list(range(total)), "packets were lost"
    assert nic.unclaimed == 0


async def test_flow_control_pauses_and_resumes_and_loses_nothing(
    lab_a: Lab, tmp_path: Path
) -> None:
    tiny = UmemConfig(nframes=64, fill_size=16, comp_size=16, rx_size=16, tx_size=16)
    async with Interface(lab_a.a.ifname, config=tiny) as nic:
        transport, proto = await nic.create_packet_endpoint(
            Recorder, rules=[Rule("udp", dst_port=9002)]
        )
        await proto.made.wait()
        frames = udp_frames(lab_a, 9002, 500, towards=lab_a.b)
        capture = Capture(lab_a.b, "udp dst port 9002", len(frames), tmp_path)
        transport.writelines(frames)  # far more than the 48 frames the pool can spare
        assert proto.paused == 1
        assert transport.get_write_buffer_size() > 16
        assert await eventually(
            lambda: proto.resumed == 1 and transport.get_write_buffer_size() == 0
        ), f"no resume_writing with an empty buffer: {transport.get_write_buffer_size()} left"
        got = await asyncio.to_thread(capture.frames)
        assert got == frames
        counts = nic.frame_counts()[0]
        assert counts.tx_packets == 500
        assert counts.tx_no_frame > 0, "the pool never ran short: the test did not test"
    assert nic.final_counts[0].leaked == 0


class Keeper(PacketProtocol):
    """Keeps every packet it gets: the pool of free frames runs dry."""

    def __init__(self) -> None:
        self.kept: list[aioxdp.Packet] = []

    def packet_received(self, packet: aioxdp.Packet) -> None:
        self.kept.append(packet.keep())


async def test_a_backlog_waiting_for_free_frames_does_not_spin_the_loop(
    lab_a: Lab, tmp_path: Path
) -> None:
    """With every frame held by the application, written frames wait in the
    backlog; the TX ring is empty, so EPOLLOUT is always ready. The writer
    must wait for frames (a timer backoff), not poll: the process's own CPU
    time while it waits is the witness."""
    tiny = UmemConfig(nframes=64, fill_size=16, comp_size=16, rx_size=16, tx_size=16)
    async with Interface(lab_a.a.ifname, config=tiny) as nic:
        transport, keeper = await nic.create_packet_endpoint(
            Keeper, rules=[Rule("udp", dst_port=9003)]
        )
        sender = lab_a.b.popen(
            sys.executable,
            "-c",
            "import socket, time\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "for i in range(400):\n"
            f"    s.sendto(b'x' * 64, ({lab_a.a.ip!r}, 9003)); time.sleep(0.001)\n",
        )
        await asyncio.to_thread(sender.wait, 30)
        assert await eventually(lambda: nic.frame_counts()[0].pool == 0), nic.frame_counts()[0]
        frames = udp_frames(lab_a, 9004, 3, towards=lab_a.b)
        capture = Capture(lab_a.b, "udp dst port 9004", len(frames), tmp_path)
        transport.writelines(frames)
        assert transport.get_write_buffer_size() == 3  # no frame to put them in
        cpu = time.process_time()
        await asyncio.sleep(0.5)
        busy = time.process_time() - cpu
        assert busy < 0.15, f"{busy:.2f} s of CPU in 0.5 s of waiting: the writer spins"
        assert transport.get_write_buffer_size() == 3
        for packet in keeper.kept:
            packet.release()
        assert await eventually(lambda: transport.get_write_buffer_size() == 0)
        assert await asyncio.to_thread(capture.frames) == frames
    assert nic.final_counts[0].leaked == 0


async def test_transport_contract(lab_a: Lab, nic: Interface) -> None:
    transport, proto = await nic.create_packet_endpoint(
        Recorder, rules=[Rule("udp", dst_port=9003)]
    )
    await proto.made.wait()
    assert proto.transport is transport
    assert transport.get_extra_info("mode") == nic.mode == "native"
    xdp = nic.transport(0)
    assert xdp.get_extra_info("queue") == 0
    assert isinstance(xdp.get_extra_info("umem"), UmemConfig)
    assert "fd=" in repr(xdp)
    with pytest.raises(ValueError, match="data: a frame is 14"):
        transport.write(b"short")
    with pytest.raises(TypeError, match="data"):
        transport.write("text")  # type: ignore[arg-type]
    transport.close()
    assert transport.is_closing()
    assert await eventually(lambda: proto.lost), "connection_lost never came after close()"
    assert proto.lost == [None]
    assert Rule("udp", dst_port=9003) not in nic.forwarder.rules


async def test_several_queues(tmp_path: Path) -> None:
    with Lab(queues=2) as lab, lab.a.enter():
        async with Interface(lab.a.ifname) as nic:
            assert nic.queues == [0, 1]
            _t, proto = await nic.create_packet_endpoint(
                Counter, rules=[Rule("udp", dst_port=9004)]
            )
            await asyncio.to_thread(
                scapy_send, lab.b, udp_frames(lab, 9004, 100, towards=lab.a), tmp_path
            )
            assert await eventually(lambda: proto.count == 100), f"{proto.count} of 100 frames"
        async with Interface(lab.a.ifname, queues=[1]) as nic:
            assert nic.queues == [1]


async def test_missing_interface_and_bad_queue() -> None:
    with pytest.raises(InterfaceNotFoundError, match="nosuch0"):
        async with Interface("nosuch0"):
            pass
    with Lab() as lab, lab.a.enter():
        with pytest.raises(ValueError, match=r"queues: veth-a has RX queues 0\.\.0"):
            async with Interface(lab.a.ifname, queues=[3]):
                pass
        assert "prog/xdp" not in lab.a.run("ip", "-d", "link", "show", lab.a.ifname).stdout
