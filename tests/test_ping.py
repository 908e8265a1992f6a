"""ping() against the peer namespace's kernel, on asyncio and uvloop (and trio),
with tshark and the kernel's own ping as witnesses."""

from __future__ import annotations

import asyncio
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import AS_NOBODY, eventually, read_line_matching, tshark
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from test_datapath import scapy_send
from test_surface import icmp_counters, udp_burst

import aioxdp
from aioxdp.errors import XDPError
from aioxdp.route import NoRouteError, UnresolvedNeighbourError
from aioxdp.testing import Lab


def assert_nothing_left(lab: Lab) -> None:
    """The shared Interface closed with the last ping: no program on the link."""
    assert "prog/xdp" not in lab.a.run("ip", "-d", "link", "show", lab.a.ifname).stdout


async def test_thousand_flood_replies_in_order_with_seq_rtt_ttl(lab_a: Lab) -> None:
    result = await aioxdp.ping(lab_a.b.ip, count=1000, interval=0, timeout=1.0)
    assert (result.sent, result.received, result.loss) == (1000, 1000, 0.0)
    assert [r.seq for r in result.replies] == list(range(1, 1001))
    assert all(r.ttl == 64 and r.size == 64 and r.source == lab_a.b.ip for r in result.replies)
    assert all(0 < r.rtt < 1.0 for r in result.replies)
    assert result.min <= result.avg <= result.max
    assert result.duplicates == result.late == result.foreign == 0
    assert result.malformed == {}
    assert_nothing_left(lab_a)


async def test_a_one_probe_flood_goes_on_in_c_and_the_peer_kernel_agrees(lab_a: Lab) -> None:
    """ping -f's flood (one probe in flight, no reply listener): after the
    first reply each next probe is sent from C as the last reply is taken.
    b's kernel answered every probe once, and each reply is accounted once,
    in order, timed; the forwarder's count of what it redirected is what the
    interface says it drained (the replies taken in C counted too)."""
    mac = lab_a.b.run("cat", f"/sys/class/net/{lab_a.b.ifname}/address").stdout.strip()
    lab_a.a.run("ip", "neigh", "replace", lab_a.b.ip, "lladdr", mac, "dev", lab_a.a.ifname)
    before = icmp_counters(lab_a.b)
    async with aioxdp.Interface(lab_a.a.ifname) as nic:  # ping borrows it
        redirected = nic.forwarder.counters.redirected  # (no ARP: the kernel knows b)
        drained = nic.received
        result = await aioxdp.ping(lab_a.b.ip, count=20000, interval=0, window=1, timeout=1.0)
        stats = nic.stats()["queues"][0]["xdp"]
        assert stats.rx_dropped + stats.rx_ring_full == 0
        assert nic.forwarder.counters.redirected - redirected == 20000
        assert nic.received - drained == 20000
    assert icmp_counters(lab_a.b)["OutEchoReps"] - before["OutEchoReps"] == 20000
    assert (result.sent, result.received) == (20000, 20000)
    assert [r.seq for r in result.replies] == [(k % 65536) for k in range(1, 20001)]
    assert all(0 < r.rtt < 1.0 and r.ttl == 64 for r in result.replies)
    assert result.duplicates == result.late == result.foreign == 0
    assert result.malformed == {}
    assert_nothing_left(lab_a)


async def test_a_flood_in_c_leaves_other_endpoints_frames_to_them(lab_a: Lab) -> None:
    """While a one-probe flood runs in C, b's kernel sends 2000 datagrams to a
    UDP endpoint on the same socket: the flood takes only its own replies, so
    the endpoint gets every datagram (many while the flood is mid-run), and
    the flood every reply."""
    a, b = lab_a.a, lab_a.b
    count, datagrams = 300_000, 2000
    async with aioxdp.Interface(a.ifname) as nic:  # ping borrows it
        got: list[bytes] = []
        during: list[int] = []
        pinger = aioxdp.Pinger(b.ip, count=count, interval=0, window=1, timeout=1.0)

        class Sink(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                got.append(data)
                sent = pinger.progress()[0]
                if 0 < sent < count:
                    during.append(sent)

        transport, _ = await nic.create_datagram_endpoint(Sink, local_addr=(a.ip, 7301))
        async with pinger:
            assert await eventually(lambda: pinger.progress()[0] > 1000)
            await asyncio.to_thread(udp_burst, b, a.ip, 7301, datagrams)
            result = await pinger.result()
        assert await eventually(lambda: len(got) == datagrams)
        transport.close()
    assert result.received == count
    assert result.foreign == result.duplicates == 0
    assert result.malformed == {}
    assert len(during) > datagrams // 2, len(during)  # they came while it flooded


async def test_a_flood_in_c_on_a_tiny_umem_runs_out_of_frames_and_goes_on(lab_a: Lab) -> None:
    """64 frames, rings of 32, a window of 24: the C loop runs out of free
    frames mid-run, takes back what the kernel has sent, and goes on; every
    probe is answered once, and the frame ledger balances at close."""
    before = icmp_counters(lab_a.b)
    tiny = aioxdp.UmemConfig(nframes=64, fill_size=32, comp_size=32, rx_size=32, tx_size=32)
    async with aioxdp.Interface(lab_a.a.ifname, config=tiny):  # ping borrows it
        result = await aioxdp.ping(lab_a.b.ip, count=5000, interval=0, window=24, timeout=1.0)
    assert icmp_counters(lab_a.b)["OutEchoReps"] - before["OutEchoReps"] == 5000
    assert (result.sent, result.received) == (5000, 5000)
    assert [r.seq for r in result.replies] == list(range(1, 5001))
    assert result.duplicates == result.foreign == 0


async def test_a_flood_in_c_with_losses_times_them_out_and_goes_on(lab_a: Lab) -> None:
    """b's nftables drops every 7th echo request (its own counter says how
    many): the C loop stops at each silence, the probe times out in Python,
    and the flood goes on; received is what b answered, the rest are lost."""
    b = lab_a.b
    b.run(
        "nft",
        "-f",
        "-",
        input="""
table inet aioxdp_test {
    counter dropped {}
    chain input {
        type filter hook input priority 0;
        icmp type echo-request numgen inc mod 7 == 3 counter name dropped drop
    }
}
""",
    )
    before = icmp_counters(b)
    result = await aioxdp.ping(b.ip, count=700, interval=0, window=1, timeout=0.02)
    answered = icmp_counters(b)["OutEchoReps"] - before["OutEchoReps"]
    dropped = int(
        re.findall(
            r"packets (\d+)",
            b.run("nft", "list", "counter", "inet", "aioxdp_test", "dropped").stdout,
        )[0]
    )
    assert dropped == 100
    assert (result.sent, result.received, answered) == (700, 600, 600)
    assert result.duplicates == result.late == result.foreign == 0
    # the seqs of the lost ones are the dropped requests': every 7th, from the 4th
    assert sorted(set(range(1, 701)) - {r.seq for r in result.replies}) == list(range(4, 701, 7))


async def test_icmp_errors_in_a_one_probe_flood_are_each_told(lab_a: Lab) -> None:
    """A flood whose every probe b's kernel answers with time exceeded (TTL 1
    through b): the C loop leaves each error to the receive path, which tells
    it; b's counter says how many it sent."""
    b = lab_a.b
    for key in ("icmp_ratelimit=0", "icmp_msgs_per_sec=100000", "icmp_msgs_burst=10000"):
        b.run("sysctl", "-qw", f"net.ipv4.{key}")
    b.run("sysctl", "-qw", "net.ipv4.conf.all.forwarding=1")
    b.run("ip", "route", "add", "198.19.8.0/24", "via", lab_a.a.ip)  # onward: TTL 1 ends at b
    lab_a.a.run("ip", "route", "add", "198.19.0.0/16", "via", b.ip)
    before = icmp_counters(b)
    told: list[Any] = []
    result = await aioxdp.ping(
        "198.19.8.7", count=300, interval=0, window=1, ttl=1, timeout=1.0, on_error=told.append
    )
    assert icmp_counters(b)["OutTimeExcds"] - before["OutTimeExcds"] == 300
    assert (result.sent, result.received) == (300, 0)
    assert result.errors == {"ttl_exceeded": 300}
    assert [e.seq for e in told] == list(range(1, 301))


async def test_a_reply_is_timed_when_the_driver_saw_it_not_when_the_loop_read_it(
    lab_a: Lab,
) -> None:
    """Reading stops for 0.4 s while five requests go and are answered. The
    replies wait in the RX ring, and are timed by the forwarder's stamp (taken
    in the driver, as iputils takes the kernel's): well under the pause.
    Timed by when the loop read them, they would all be >= 0.3 s."""
    mac = lab_a.b.run("cat", f"/sys/class/net/{lab_a.b.ifname}/address").stdout.strip()
    lab_a.a.run("ip", "neigh", "replace", lab_a.b.ip, "lladdr", mac, "dev", lab_a.a.ifname)
    async with aioxdp.Interface(lab_a.a.ifname) as nic:  # ping borrows it
        reader = nic.transport(0)
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, reader.pause_reading)  # after ping's own setup
        loop.call_later(0.45, reader.resume_reading)
        await asyncio.sleep(0.06)
        result = await aioxdp.ping(lab_a.b.ip, count=5, interval=0.01, timeout=2.0)
    assert result.received == 5
    assert max(result.rtts) < 0.1, result.rtts
    # the kernel's own ping to the same peer, for scale: the same order
    kernel = lab_a.a.run("ping", "-c", "3", "-i", "0.01", "-q", lab_a.b.ip).stdout
    avg_ms = float(re.search(r"= [\d.]+/([\d.]+)/", kernel).group(1))  # type: ignore[union-attr]
    assert avg_ms < 100, kernel


async def test_paced_ping_keeps_its_interval(lab_a: Lab) -> None:
    # the Interface is opened first, so the time measured has no BPF load in it
    async with aioxdp.Interface(lab_a.a.ifname):
        start = time.monotonic()
        result = await aioxdp.ping(lab_a.b.ip, count=5, interval=0.1, ttl=7, size=100)
        took = time.monotonic() - start
    assert result.received == 5
    assert {r.size for r in result.replies} == {108}
    # the 5th probe leaves 4 intervals after the 1st; its reply ends the run
    assert 0.4 <= result.elapsed <= took < 0.4 + 0.3, (result.elapsed, took)


async def test_paced_probes_late_together_go_one_per_kick(lab_a: Lab) -> None:
    """The loop stalls 40 ms, so about 8 probes of a 5 ms ping fall due at
    once. In copy mode a frame's round trip happens inside the kick that
    sends it; sent in one kick, a later probe, stamped before the first
    left, would carry the first's round trip. Each goes in its own kick, as
    ping's each go in their own sendmsg: the kicks counted in C (one per
    sendto) grow by at least one per probe."""

    def stall(reply: aioxdp.PingReply) -> None:
        if reply.seq == 3:
            time.sleep(0.04)

    async with aioxdp.Interface(lab_a.a.ifname) as nic:
        before = nic.frame_counts()[0].tx_wakeups
        result = await aioxdp.ping(
            lab_a.b.ip, count=20, interval=0.005, timeout=1.0, on_reply=stall
        )
        kicks = nic.frame_counts()[0].tx_wakeups - before
    assert result.received == 20
    assert kicks >= 20, kicks


async def test_a_windowed_flood_times_each_probe_not_its_place_in_the_kick(
    lab_a: Lab,
) -> None:
    """256 probes in flight: in copy mode the kernel sends a kick's frames
    one after another, each round trip inside the call, so a probe stamped
    with the others and kicked with them carried the round trips of all
    ahead of it (median 794 us against ping -f's 7). Each is kicked as it is
    stamped: the median stays within 20x of iputils' own flood on the same
    link (ping -f keeps one in flight)."""
    result = await aioxdp.ping(lab_a.b.ip, count=3000, interval=0, window=256, timeout=1.0)
    assert result.received == 3000
    ours_ms = statistics.median(result.rtts) * 1000
    out = lab_a.a.run("ping", "-f", "-q", "-c", "3000", lab_a.b.ip).stdout
    theirs_ms = float(re.search(r"= [\d.]+/([\d.]+)/", out).group(1))  # type: ignore[union-attr]
    assert ours_ms < 20 * max(theirs_ms, 0.005), (ours_ms, out)


async def test_tshark_sees_valid_requests_and_the_kernel_answers_each(
    lab_a: Lab, tmp_path: Path
) -> None:
    count, size = 50, 200
    capture = tshark(
        lab_a,
        2 * count,
        "icmp",
        *("icmp.type", "ip.checksum.status", "icmp.checksum.status", "ip.len", "icmp.seq"),
        options=("-o", "ip.check_checksum:TRUE"),
    )
    result = await aioxdp.ping(lab_a.b.ip, count=count, interval=0.005, size=size)
    out, _ = await asyncio.to_thread(capture.communicate, timeout=30)
    rows = [line.split(",") for line in out.strip().splitlines()]
    requests = [r for r in rows if r[0] == "8"]
    replies = [r for r in rows if r[0] == "0"]
    assert len(requests) == len(replies) == count
    for _type, ip_ok, icmp_ok, ip_len, _seq in requests:
        assert (ip_ok, icmp_ok) == ("1", "1"), "tshark says a checksum is bad"
        assert int(ip_len) == 20 + 8 + size
    assert sorted(int(r[4]) for r in requests) == list(range(1, count + 1))
    assert result.received == count


async def test_unanswered_probes_time_out_within_the_bound(lab_a: Lab) -> None:
    # b knows a's MAC and a knows b's; then b stops answering (address gone)
    lab_a.b.run("ping", "-c1", "-W1", lab_a.a.ip)
    lab_a.b.run("ip", "addr", "del", f"{lab_a.b.ip}/24", "dev", lab_a.b.ifname)
    async with aioxdp.Interface(lab_a.a.ifname):  # opened first: no BPF load in the time
        start = time.monotonic()
        result = await aioxdp.ping(lab_a.b.ip, count=20, interval=0.01, timeout=0.3)
        took = time.monotonic() - start
    assert (result.sent, result.received, result.loss) == (20, 0, 1.0)
    # the last probe leaves 19 intervals after the first and is given up 0.3 s later
    assert 19 * 0.01 + 0.3 <= result.elapsed <= took < 19 * 0.01 + 0.3 + 0.4, (
        result.elapsed,
        took,
    )
    assert result.replies == []


async def test_unknown_neighbour_is_a_clear_error(lab_a: Lab) -> None:
    ghost = str(lab_a.subnet[3])  # in the lab subnet, nobody there
    async with aioxdp.Interface(lab_a.a.ifname):  # opened first: no BPF load in the time
        start = time.monotonic()
        with pytest.raises(UnresolvedNeighbourError, match=rf"{ghost}.*no ARP reply after 3 tries"):
            await aioxdp.ping(ghost, count=3)
        took = time.monotonic() - start
    # 3 ARP requests, 0.5 s apart, the last one waited for too
    assert 3 * 0.5 <= took < 3 * 0.5 + 0.5, took
    assert_nothing_left(lab_a)


async def test_kernel_ping_and_two_pingers_never_mix(lab_a: Lab) -> None:
    kernel = await asyncio.create_subprocess_exec(
        "ping",
        "-n",
        "-c",
        "40",
        "-i",
        "0.01",
        "-W",
        "2",
        lab_a.b.ip,
        stdout=asyncio.subprocess.PIPE,
    )
    # two floods of 128 in flight: together no more than the 256 frames veth's
    # ring holds, so b's answers to both cannot overflow it (issue 14's topic)
    one, two = await asyncio.gather(
        aioxdp.ping(lab_a.b.ip, count=3000, interval=0, window=128),
        aioxdp.ping(lab_a.b.ip, count=3000, interval=0, size=120, window=128),
    )
    out, _ = await kernel.communicate()
    assert "40 packets transmitted, 40 received" in out.decode()
    for result, size in ((one, 64), (two, 128)):
        assert result.received == 3000
        assert result.duplicates == result.foreign == 0
        assert result.malformed == {}
        assert {r.size for r in result.replies} == {size}  # nobody saw the other's replies
    assert_nothing_left(lab_a)


async def test_broken_replies_from_the_wire_are_counted_and_ignored(
    lab_a: Lab, tmp_path: Path
) -> None:
    async with aioxdp.Pinger(lab_a.b.ip, count=400, interval=0.005, timeout=1.0) as pinger:
        ident = pinger.ident
        good = (
            Ether(src=lab_a.b.mac, dst=lab_a.a.mac)
            / IP(src=lab_a.b.ip, dst=lab_a.a.ip)
            / ICMP(type=0, id=ident, seq=60000)
            / Raw(b"\x00" * 8 + b"x" * 48)
        )
        raw = bytes(good)
        bad_ip_sum = bytearray(raw)
        bad_ip_sum[14 + 10] ^= 0x55
        bad_icmp_sum = bytearray(raw)
        bad_icmp_sum[34 + 2] ^= 0x55
        short = bytearray(raw[:50])  # IP total length says more than is there
        bad_ihl = bytearray(raw)
        bad_ihl[14] = 0x44
        foreign_frame = bytearray(raw)
        foreign_frame[34 + 4 : 34 + 6] = ((ident + 1) & 0xFFFF).to_bytes(2, "big")  # another id
        frames = [bytes(f) for f in (bad_ip_sum, bad_icmp_sum, short, bad_ihl, foreign_frame)] * 10
        before = pinger.nic.forwarder.counters
        await asyncio.to_thread(scapy_send, lab_a.b, frames, tmp_path)
        result = await pinger.result()
        after = pinger.nic.forwarder.counters
    assert result.received == 400
    assert result.duplicates == result.foreign == 0
    # checksums are checked in userspace (C, per batch): counted by the ping
    assert result.malformed == {"bad_ip_checksum": 10, "bad_icmp_checksum": 10}
    # bad lengths never leave the driver: the forwarder counts them and passes them on
    assert after.malformed - before.malformed == 20
    # another echo id is not ours: unmatched, to the kernel
    assert after.unmatched - before.unmatched >= 10


async def test_streaming_and_callbacks(lab_a: Lab) -> None:
    seen: list[int] = []
    streamed: list[int] = []
    async with aioxdp.Pinger(
        lab_a.b.ip, count=10, interval=0.01, on_reply=lambda r: seen.append(r.seq)
    ) as pinger:
        async for reply in pinger:
            streamed.append(reply.seq)
        result = await pinger.result()
    assert streamed == seen == list(range(1, 11))
    assert result.received == 10


async def test_multiping_over_one_xsk() -> None:
    with Lab() as one, Lab() as two:
        # host a of lab one reaches b of lab one; make a second peer on the same link
        one.b.run("ip", "addr", "add", f"{one.subnet[5]}/24", "dev", one.b.ifname)
        with one.a.enter():
            async with aioxdp.Interface(one.a.ifname) as nic:
                results = await aioxdp.multiping(
                    [one.b.ip, str(one.subnet[5])], count=200, interval=0
                )
                counts = nic.frame_counts()
        assert [r.address for r in results] == [one.b.ip, str(one.subnet[5])]
        assert [r.received for r in results] == [200, 200]
        # one socket carried both targets' probes and replies
        assert list(counts) == [0]
        assert counts[0].tx_packets >= 400
        assert counts[0].rx_packets >= 400
        assert two.index != one.index


async def test_cancelling_a_ping_releases_its_rule_and_frames(lab_a: Lab) -> None:
    # this Pinger keeps the shared Interface open
    async with aioxdp.Pinger(lab_a.b.ip, count=50, interval=0.01) as keeper:
        nic = keeper.nic
        # a ping's rules: its echo replies, and the three ICMP errors quoting its id
        kept = len(nic.forwarder.rules)
        assert kept == 4
        replies: list[int] = []
        task = asyncio.ensure_future(
            aioxdp.ping(
                lab_a.b.ip, count=1000, interval=0.01, on_reply=lambda r: replies.append(r.seq)
            )
        )
        # cancelled mid-run: its rule is in and replies come back
        assert await eventually(lambda: len(replies) >= 3), f"{len(replies)} replies came"
        assert len(nic.forwarder.rules) == 2 * kept
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(nic.forwarder.rules) == kept
        assert await eventually(lambda: nic.frame_counts()[0].app == 0), (
            f"frames still held by the application: {nic.frame_counts()[0]}"
        )
        counts = nic.frame_counts()[0]
        assert counts.balanced


async def test_a_raising_callback_loses_no_reply_and_is_reported(lab_a: Lab) -> None:
    """A user's on_reply that raises: every reply still counted, the stream
    still told, the run ends on time, and the loop's handler hears of it."""
    reported: list[Any] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context.get("exception")))

    def fussy(reply: aioxdp.PingReply) -> None:
        if reply.seq % 10 == 0:
            raise RuntimeError(f"no thanks, {reply.seq}")

    try:
        async with aioxdp.Pinger(lab_a.b.ip, count=50, interval=0.002, on_reply=fussy) as pinger:
            streamed = [event.seq async for event in pinger]
            result = await pinger.result()
    finally:
        loop.set_exception_handler(None)
    assert (result.sent, result.received) == (50, 50)
    assert streamed == list(range(1, 51))
    assert result.elapsed < 5
    assert reported
    assert all(isinstance(exc, RuntimeError) for exc in reported)
    for bad in ("on_reply", "on_error", "on_timeout"):
        with pytest.raises(TypeError, match=f"^{bad}: must be callable"):
            aioxdp.Pinger(lab_a.b.ip, **{bad: 5})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"count": 0}, "count"),
        ({"count": -3}, "count"),
        ({"interval": -1}, "interval"),
        ({"interval": float("nan")}, "interval"),
        ({"timeout": 0}, "timeout"),
        ({"size": -1}, "size"),
        ({"ttl": 0}, "ttl"),
        ({"ttl": 256}, "ttl"),
        ({"size": 65508}, "size"),
    ],
)
async def test_bad_arguments_name_themselves(
    lab_a: Lab, kwargs: dict[str, object], named: str
) -> None:
    with pytest.raises(ValueError, match=f"^{named}:"):
        await aioxdp.ping(lab_a.b.ip, **kwargs)  # type: ignore[arg-type]


async def test_no_route_and_local_address(lab_a: Lab) -> None:
    with pytest.raises(NoRouteError, match="no route"):
        await aioxdp.ping("198.19.250.1", count=1)
    with pytest.raises(NoRouteError, match="address of this host"):
        await aioxdp.ping(lab_a.a.ip, count=1)
    with pytest.raises(XDPError, match="nosuch0"):
        await aioxdp.ping(lab_a.b.ip, count=1, interface="nosuch0")


def test_ping_under_trio(lab_a: Lab) -> None:
    import trio

    async def main() -> aioxdp.PingResult:
        return await aioxdp.ping(lab_a.b.ip, count=500, interval=0)

    result = trio.run(main)
    assert result.received == 500
    assert [r.seq for r in result.replies] == list(range(1, 501))
    assert_nothing_left(lab_a)


# -- the command line -------------------------------------------------------

REPLY = re.compile(r"^\d+ bytes from [\d.]+: icmp_seq=\d+ ttl=\d+ time=\d+(\.\d+)? ms$")
SHAPES = [
    re.compile(r"^PING \S+ \([\d.]+\) \d+\(\d+\) bytes of data\.$"),
    REPLY,
    re.compile(r"^$"),
    re.compile(r"^--- \S+ ping statistics ---$"),
    re.compile(
        r"^\d+ packets transmitted, \d+ received, (\+\d+ duplicates, )?[\d.]+% packet loss, time \d+ms$"
    ),
    re.compile(r"^rtt min/avg/max/mdev = [\d.]+/[\d.]+/[\d.]+/[\d.]+ ms$"),
]


def shape(lines: list[str]) -> list[int]:
    out: list[int] = []
    for line in lines:
        kinds = [i for i, rx in enumerate(SHAPES) if rx.match(line)]
        assert kinds, f"unexpected line {line!r}"
        if not out or out[-1] != kinds[0] or kinds[0] != 1:
            out.append(kinds[0])
    return out


def aioxdp_cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return lab.a.run(sys.executable, "-m", "aioxdp", *args, check=False, timeout=60)


def test_cli_output_has_pings_shape_line_for_line(lab_a: Lab) -> None:
    theirs = lab_a.a.run("ping", "-c", "3", "-i", "0.2", lab_a.b.ip)
    ours = aioxdp_cli(lab_a, "ping", "-c", "3", "-i", "0.2", lab_a.b.ip)
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    their_lines = theirs.stdout.rstrip("\n").splitlines()
    our_lines = ours.stdout.rstrip("\n").splitlines()
    assert len(our_lines) == len(their_lines)
    assert shape(our_lines) == shape(their_lines)
    assert our_lines[-2].startswith("3 packets transmitted, 3 received, 0% packet loss")


def test_cli_exit_codes(lab_a: Lab) -> None:
    quiet = aioxdp_cli(lab_a, "ping", "-q", "-c", "2", "-i", "0.05", lab_a.b.ip)
    assert quiet.returncode == 0
    assert not [ln for ln in quiet.stdout.splitlines() if REPLY.match(ln)]
    flood = aioxdp_cli(lab_a, "--loop", "uvloop", "ping", "-f", "-c", "2000", lab_a.b.ip)
    assert flood.returncode == 0
    assert "2000 packets transmitted, 2000 received" in flood.stdout
    # the header line has dots of its own: count what follows it
    body = flood.stdout.split("\n", 1)[1].split("---")[0]
    assert body.count(".") >= 1, flood.stdout
    assert set(body.replace("\b", "").replace(" ", "").replace("\n", "")) <= {"."}
    as_json = aioxdp_cli(lab_a, "ping", "--json", "-c", "2", "-i", "0.05", lab_a.b.ip)
    assert as_json.returncode == 0
    import json

    assert json.loads(as_json.stdout)["received"] == 2
    bad = aioxdp_cli(lab_a, "ping", "-c", "0", lab_a.b.ip)
    assert bad.returncode == 1  # as iputils: an invalid argument
    assert bad.stderr.strip().count("\n") == 0
    assert "-c" in bad.stderr
    assert "Traceback" not in bad.stderr
    unrouted = aioxdp_cli(lab_a, "ping", "-c", "1", "198.19.250.1")
    assert unrouted.returncode == 2
    assert "no route" in unrouted.stderr
    lab_a.b.run("ping", "-c1", "-W1", lab_a.a.ip)
    lab_a.b.run("ip", "addr", "del", f"{lab_a.b.ip}/24", "dev", lab_a.b.ifname)
    silent = aioxdp_cli(lab_a, "ping", "-c", "2", "-i", "0.05", "-W", "0.2", lab_a.b.ip)
    assert silent.returncode == 1
    assert "2 packets transmitted, 0 received, 100% packet loss" in silent.stdout


def test_cli_ctrl_c_prints_the_summary(lab_a: Lab) -> None:
    proc = lab_a.a.popen(
        sys.executable,
        "-m",
        "aioxdp",
        "ping",
        "-c",
        "1000",
        "-i",
        "0.05",
        lab_a.b.ip,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        read_line_matching(proc, REPLY.pattern)  # running: the first reply was printed
    except BaseException:
        proc.kill()
        proc.wait(10)
        raise
    proc.send_signal(2)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "packets transmitted" in out
    assert "Traceback" not in err


def test_pinger_streams_under_trio(lab_a: Lab) -> None:
    import trio

    async def main() -> tuple[list[int], aioxdp.PingResult]:
        seqs = []
        async with aioxdp.Pinger(lab_a.b.ip, count=20, interval=0.005) as pinger:
            async for reply in pinger:
                seqs.append(reply.seq)
            return seqs, await pinger.result()

    seqs, result = trio.run(main)
    assert seqs == list(range(1, 21))
    assert result.received == 20
    assert_nothing_left(lab_a)


def test_cli_as_an_unprivileged_user_says_what_to_do(lab_a: Lab) -> None:
    proc = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            lab_a.a.netns,
            *AS_NOBODY,
            sys.executable,
            "-m",
            "aioxdp",
            "ping",
            "-c",
            "1",
            lab_a.b.ip,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "run as root" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["-i", "-1"], "-i"),
        (["-W", "nan"], "-W"),
        (["-s", "100000"], "-s"),
        (["-t", "300"], "-t"),
        (["-I", "nosuch0"], "nosuch0"),
    ],
)
def test_cli_bad_flags_one_line_naming_them(lab_a: Lab, args: list[str], named: str) -> None:
    proc = aioxdp_cli(lab_a, "ping", *args, lab_a.b.ip)
    assert proc.returncode in (1, 2)  # 1 an invalid value, 2 a failure to start (iputils')
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert named in proc.stderr
    assert "Traceback" not in proc.stderr
