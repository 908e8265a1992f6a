"""UDP endpoints under growth and odd input (issue 11, items 11-13): the batch
echo answers what the per-datagram path would, per-destination state is
bounded, checksums hold at any length, a failed open stays silent.

Witnesses: tcpdump captures decoded by scapy (which computes checksums on its
own), RFC 1071's worked example, and hand-computed bounds."""

from __future__ import annotations

import asyncio
import errno
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import PYTHON, eventually, link_stat, read_line
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from test_datapath import Capture, scapy_send

import aioxdp
from aioxdp import Interface
from aioxdp._libs import ffi, lib
from aioxdp.datagram import MAX_RESOLVING
from aioxdp.errors import FrameOwnershipError
from aioxdp.testing import Lab
from aioxdp.udp_paths import MAX_DESTINATIONS
from aioxdp.xsk import XSK

PORT = 7400


class BatchEcho(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.echoed = 0

    def datagrams_received(self, batch: Any) -> None:
        self.echoed += batch.echo()


def scapy_checksums_hold(frame: bytes) -> bool:
    pkt = Ether(frame)
    fresh = Ether(frame)
    del fresh[IP].chksum
    del fresh[UDP].chksum
    fresh = Ether(bytes(fresh))
    return bool(pkt[IP].chksum == fresh[IP].chksum and pkt[UDP].chksum == fresh[UDP].chksum)


async def test_batch_echo_answers_options_short_udp_and_zero_checksum(
    lab_a: Lab, tmp_path: Path
) -> None:
    a, b = lab_a.a, lab_a.b
    base = Ether(src=b.mac, dst=a.mac)
    with_options = bytes(
        base
        / IP(src=b.ip, dst=a.ip, options=[b"\x01\x01\x01\x00"])
        / UDP(sport=5001, dport=PORT)
        / Raw(b"options")
    )
    # IP payload longer than the UDP datagram: 6 trailing bytes inside the datagram
    short = base / IP(src=b.ip, dst=a.ip) / UDP(sport=5002, dport=PORT) / Raw(b"short")
    short_bytes = bytearray(bytes(short) + b"TRAIL!")
    short_bytes[16:18] = (len(short_bytes) - 14).to_bytes(2, "big")
    short_bytes[24:26] = b"\x00\x00"
    ip_fixed = Ether(bytes(short_bytes))
    del ip_fixed[IP].chksum
    short_frame = bytes(Ether(bytes(ip_fixed)))
    no_sum = bytearray(
        bytes(base / IP(src=b.ip, dst=a.ip) / UDP(sport=5003, dport=PORT) / Raw(b"nosum"))
    )
    no_sum[40:42] = b"\x00\x00"  # UDP checksum 0: none computed by the sender
    async with Interface(a.ifname) as nic:
        transport, echo = await nic.create_datagram_endpoint(BatchEcho, local_addr=(a.ip, PORT))
        capture = Capture(b, f"udp and src host {a.ip} and src port {PORT}", 3, tmp_path)
        await asyncio.to_thread(scapy_send, b, [with_options, short_frame, bytes(no_sum)], tmp_path)
        frames = await asyncio.to_thread(capture.frames)
        assert echo.echoed == 3
        assert transport.malformed == {}
        transport.close()
    replies = {Ether(f)[UDP].dport: Ether(f) for f in frames}
    assert sorted(replies) == [5001, 5002, 5003]
    for port, reply in replies.items():
        assert reply[IP].ihl == 5, port  # options are not echoed (as per-datagram sends)
        assert reply[IP].len == 20 + reply[UDP].len, port
        assert reply[UDP].chksum != 0, port
        assert scapy_checksums_hold(bytes(reply)), port
    assert bytes(replies[5001][Raw].load) == b"options"
    assert bytes(replies[5002][Raw].load) == b"short"  # the trailing bytes are not echoed
    assert bytes(replies[5003][Raw].load) == b"nosum"


async def test_per_destination_state_is_bounded(lab_a: Lab) -> None:
    a, b = lab_a.a, lab_a.b
    async with Interface(a.ifname) as nic:
        transport, _ = await nic.create_datagram_endpoint(BatchEcho, local_addr=(a.ip, PORT))
        # 10 000 ports of one peer: at most MAX_DESTINATIONS stay cached
        arrived = link_stat(b, "rx_packets")
        transport.sendto(b"warm", (b.ip, 9))
        assert await eventually(lambda: transport.cached_destinations == 1), (
            "the first datagram's destination was never resolved"
        )
        for port in range(1, 10_001):
            transport.sendto(b"x", (b.ip, port))
        # all sent: b's kernel received the warm-up and the 10 000
        assert await eventually(lambda: link_stat(b, "rx_packets") - arrived >= 10_001), (
            f"b's veth received {link_stat(b, 'rx_packets') - arrived} of 10001 datagrams"
        )
        assert transport.cached_destinations <= MAX_DESTINATIONS
        # 200 on-link addresses nobody answers: at most MAX_RESOLVING asked at once
        assert transport.dropped_unresolved == 0  # a new port of a known host waits for nothing
        net = lab_a.subnet
        silent = [str(net[i]) for i in range(10, 210)]
        for host in silent:
            transport.sendto(b"spoofed?", (host, 53))
        assert transport.resolving == MAX_RESOLVING
        assert transport.dropped_unresolved == len(silent) - MAX_RESOLVING
        transport.close()


SINK = """
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE: none dropped here
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(10.0)
print("ready", flush=True)
got = []
try:
    while len(got) < int(sys.argv[3]):
        got.append(s.recv(2048).decode())
except socket.timeout:
    pass
print(json.dumps(got), flush=True)
"""


async def test_datagrams_sendto_queued_arrive_whole_and_in_order_through_the_backlog(
    lab_a: Lab,
) -> None:
    """3000 numbered datagrams from one synchronous loop, on a UMEM of 64
    frames: most wait in the endpoint's backlog, built whole, while C sends
    what frames allow. b's kernel socket receives every one, byte for byte,
    in the order sent."""
    a, b = lab_a.a, lab_a.b
    n = 3000
    sink = b.popen(
        PYTHON, "-c", SINK, b.ip, str(PORT + 1), str(n + 1), stdout=subprocess.PIPE, text=True
    )
    try:
        assert read_line(sink) == "ready"
        tiny = aioxdp.UmemConfig(nframes=64, fill_size=32, comp_size=32, rx_size=32, tx_size=32)
        async with Interface(a.ifname, config=tiny) as nic:
            transport, _ = await nic.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=(a.ip, PORT + 1)
            )
            transport.sendto(b"warm", (b.ip, PORT + 1))
            assert await eventually(lambda: transport.cached_destinations == 1)
            waited = 0
            for i in range(n):
                transport.sendto(b"%06d:" % i + b"y" * (i % 300), (b.ip, PORT + 1))
                if i % 300 == 299:  # let the kernel complete some: frames free up mid-backlog
                    waited = max(waited, transport.get_write_buffer_size())
                    await asyncio.sleep(0.001)
            assert waited > 0  # the backlog was used
            assert await eventually(lambda: transport.get_write_buffer_size() == 0, timeout=20)
            transport.close()
        got = json.loads(read_line(sink, timeout=30))
    finally:
        sink.kill()
        sink.wait()
    assert got[0] == "warm"
    expected = [f"{i:06d}:" + "y" * (i % 300) for i in range(n)]
    assert len(got) == n + 1, f"{len(got) - 1} of {n} arrived"
    assert got[1:] == expected


async def test_a_burst_to_a_peer_being_resolved_waits_and_arrives_in_order(lab_a: Lab) -> None:
    """1000 numbered datagrams to a peer whose MAC neither kernel knows, sent
    in one synchronous loop: the first starts our ARP, the rest wait with it
    (a dict lookup each, no route lookup), and b's kernel socket receives
    every one, in order, once b answers."""
    a, b = lab_a.a, lab_a.b
    n = 1000
    a.run("ip", "neigh", "flush", "dev", a.ifname)
    b.run("ip", "neigh", "flush", "dev", b.ifname)
    sink = b.popen(
        PYTHON, "-c", SINK, b.ip, str(PORT + 2), str(n), stdout=subprocess.PIPE, text=True
    )
    try:
        assert read_line(sink) == "ready"
        async with Interface(a.ifname) as nic:
            transport, _ = await nic.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=(a.ip, PORT + 2)
            )
            for i in range(n):
                transport.sendto(b"%04d" % i, (b.ip, PORT + 2))
            assert transport.resolving == 1  # all of them behind one ARP
            assert await eventually(lambda: transport.cached_destinations == 1)
            assert transport.dropped_unresolved == 0
            # read off the loop: our kicks (and the last sends) need it running
            got = json.loads(await asyncio.to_thread(read_line, sink, timeout=30))
            transport.close()
    finally:
        sink.kill()
        sink.wait()
    assert got == [f"{i:04d}" for i in range(n)]


def test_checksum_helpers_hold_past_128_kib() -> None:
    # RFC 1071 section 3's example: the words 0001 f203 f4f5 f6f7 sum to ddf2
    words = bytes.fromhex("0001f203f4f5f6f7")
    assert lib.aioxdp_ones_sum(words, len(words), 0) == 0xDDF2
    # 256 KiB of 0xff: every word is 0xffff, whose one's complement sum is 0xffff
    big = b"\xff" * (256 * 1024)
    assert lib.aioxdp_ones_sum(big, len(big), 0) == 0xFFFF
    # 192 KiB of 0x01 bytes: 98 304 words of 0x0101, folded by hand
    total = 98_304 * 0x0101
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    ones = b"\x01" * (192 * 1024)
    assert lib.aioxdp_ones_sum(ones, len(ones), 0) == total


async def test_a_failed_open_leaves_no_callbacks_behind() -> None:
    errors: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    with Lab(queues=2) as lab, lab.a.enter():
        # queue 1 is taken: the Interface's second socket fails after the
        # first transport was made and scheduled its start
        squatter = XSK(lab.a.ifname, 1)
        try:
            with pytest.raises(aioxdp.errors.XDPError) as info:
                async with Interface(lab.a.ifname):
                    pass
            assert info.value.errno == errno.EBUSY, info.value
            for _ in range(5):
                await asyncio.sleep(0)
            assert errors == []
        finally:
            squatter.close()
        async with Interface(lab.a.ifname) as nic:  # the interface is free again
            assert sorted(nic.frame_counts()) == [0, 1]


def test_checksum_cdata_is_not_a_leak() -> None:
    buf = ffi.new("uint8_t[]", 70_000)
    assert lib.aioxdp_checksum(buf, 70_000, 0) == 0xFFFF


async def test_any_address_means_this_hosts_addresses(lab_a: Lab) -> None:
    # the witness: the addresses iproute2 lists in the namespace
    out = await asyncio.to_thread(lab_a.a.run, "ip", "-j", "-4", "addr", "show")
    listed = sorted(a["local"] for link in json.loads(out.stdout) for a in link["addr_info"])
    async with Interface(lab_a.a.ifname) as nic:
        transport, _ = await nic.create_datagram_endpoint(BatchEcho, local_addr=("0.0.0.0", PORT))
        assert sorted(str(rule.dst) for rule in transport.rules) == listed
        assert all(rule.dst_port == PORT for rule in transport.rules)
        transport.close()


class ClosesOnFirst(asyncio.DatagramProtocol):
    """Closes its transport from inside datagram_received, on the first one."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.got: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.append(data)
        self.transport.close()


async def test_a_transport_closed_in_datagram_received_delivers_no_more(lab_a: Lab) -> None:
    """As asyncio's own transports: once the protocol closes its transport,
    the rest of the batch it was reading is not delivered. b sends 20
    datagrams while this loop is held, so they arrive in one batch."""
    a, b = lab_a.a, lab_a.b
    async with Interface(a.ifname) as nic:
        transport, protocol = await nic.create_datagram_endpoint(
            ClosesOnFirst, local_addr=(a.ip, PORT + 3)
        )
        send = (
            "import socket\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"for i in range(20): s.sendto(b'%02d' % i, ({a.ip!r}, {PORT + 3}))\n"
        )
        b.run(PYTHON, "-c", send)  # the loop is held meanwhile: no batch is read yet
        assert await eventually(lambda: transport.is_closing())
        await asyncio.sleep(0.05)
        assert transport.received > 1  # the batch that closed it held more
        assert protocol.got == [b"00"]


class Keeps(asyncio.DatagramProtocol):
    """Reads each batch every way it can, and keeps what it was handed."""

    def __init__(self) -> None:
        self.read: list[tuple[bytes, Any]] = []
        self.views: list[memoryview] = []
        self.batches: list[Any] = []

    def datagrams_received(self, batch: Any) -> None:
        self.read.extend(batch)
        self.views.extend(view for view, _ in batch.views())
        assert [bytes(v) for v in self.views[-len(batch) :]] == [d for d, _ in list(batch)]
        self.batches.append(batch)


async def test_a_datagram_batch_is_read_while_delivered_and_skips_the_malformed(
    lab_a: Lab, tmp_path: Path
) -> None:
    """Iterating a batch gives each valid datagram with its sender, bad
    checksums left out (and counted); after the callback, iterating is
    refused and the views are released."""
    a, b = lab_a.a, lab_a.b
    base = Ether(src=b.mac, dst=a.mac) / IP(src=b.ip, dst=a.ip)
    frames = [
        bytes(base / UDP(sport=6000 + i, dport=PORT + 5) / Raw(b"dgram%d" % i)) for i in range(4)
    ]
    bad = bytearray(frames[2])
    bad[40:42] = b"\x12\x34"  # a wrong UDP checksum
    frames[2] = bytes(bad)
    async with Interface(a.ifname) as nic:
        transport, proto = await nic.create_datagram_endpoint(Keeps, local_addr=(a.ip, PORT + 5))
        await asyncio.to_thread(scapy_send, b, frames, tmp_path)
        assert await eventually(lambda: len(proto.read) == 3)
        assert transport.malformed == {"bad_udp_checksum": 1}
        assert sorted(proto.read) == [
            (b"dgram0", (b.ip, 6000)),
            (b"dgram1", (b.ip, 6001)),
            (b"dgram3", (b.ip, 6003)),
        ]
        with pytest.raises(FrameOwnershipError):
            list(proto.batches[0])
        with pytest.raises(ValueError, match="released memoryview"):
            bytes(proto.views[0])
        transport.close()


async def test_every_misuse_of_sendto_is_refused_by_name_and_sends_nothing(lab_a: Lab) -> None:
    """The transport's sendto is a builtin that takes a cached address: a
    misuse aimed at a cached destination must still reach the checks. b's
    kernel socket receives the good datagrams and nothing else."""
    a, b = lab_a.a, lab_a.b
    port = PORT + 6
    sink = b.popen(PYTHON, "-c", SINK, b.ip, str(port), "3", stdout=subprocess.PIPE, text=True)
    try:
        assert read_line(sink) == "ready"
        async with Interface(a.ifname) as nic:
            transport, _ = await nic.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=(a.ip, port)
            )
            transport.sendto(b"first", (b.ip, port))  # routed: its word is cached now
            assert await eventually(lambda: transport.cached_destinations == 1)
            too_long = b"x" * (min(nic.mtu, nic.frame_size - 14) - 28 + 1)
            misuses: list[tuple[tuple[Any, ...], dict[str, Any], type[Exception]]] = [
                (("text", (b.ip, port)), {}, TypeError),
                ((None, (b.ip, port)), {}, TypeError),
                ((7, (b.ip, port)), {}, TypeError),
                ((b"x", None), {}, ValueError),
                ((b"x",), {}, ValueError),
                ((b"x", [b.ip, port]), {}, ValueError),
                ((b"x", (b.ip,)), {}, ValueError),
                ((b"x", (b.ip, port, 0, 0)), {}, ValueError),  # an IPv4 endpoint
                ((b"x", (b.ip, float(port))), {}, ValueError),  # == port as a key
                ((b"x", (b.ip, True)), {}, ValueError),
                ((b"x", (b.ip, 0)), {}, ValueError),
                ((b"x", (b.ip, 65536)), {}, ValueError),
                ((b"x", (7, port)), {}, TypeError),
                ((b"x", ("", port)), {}, TypeError),
                ((b"x", (b.ip, [port])), {}, ValueError),  # unhashable
                ((too_long, (b.ip, port)), {}, ValueError),
                ((b"x", (b.ip, port), "extra"), {}, TypeError),
                ((), {"data": b"x", "addr": (b.ip, port), "flags": 0}, TypeError),
            ]
            for args, kwargs, error in misuses:
                with pytest.raises(error, match=r"data|addr|argument"):
                    transport.sendto(*args, **kwargs)
            transport.sendto(b"second", addr=(b.ip, port))  # keywords, as asyncio's
            transport.sendto(bytearray(b"third"), (b.ip, port))
            await asyncio.sleep(0.05)
            transport.close()
            transport.sendto(b"after close", (b.ip, port))
            assert transport.dropped_after_close == 1
        got = json.loads(read_line(sink, timeout=30))
    finally:
        sink.kill()
        sink.wait()
    assert got == ["first", "second", "third"]
    assert nic.final_counts, "no socket was checked"
    assert all(counts.leaked == 0 for counts in nic.final_counts.values())
