"""Faults and who-sees-what: nothing left behind, nothing hangs, nothing leaks."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import AS_NOBODY, eventually, read_line, start_python, wait_until
from test_datapath import Counter, udp_frames
from test_ping import assert_nothing_left

import aioxdp
from aioxdp import Interface, Rule, UmemConfig
from aioxdp.bpf import attached_program
from aioxdp.errors import AlreadyAttachedError
from aioxdp.testing import Lab
from aioxdp.testing.lab import LEASE_DIR


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def link_details(netns: str) -> str:
    """``ip -d link show veth-a`` in ``netns`` (a checked call: empty output is no answer)."""
    return subprocess.run(
        ["ip", "netns", "exec", netns, "ip", "-d", "link", "show", "veth-a"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_sigkill_mid_flood_leaves_no_program_no_namespace_no_pin() -> None:
    child = start_python(
        "import asyncio, aioxdp\n"
        "from aioxdp.testing import Lab\n"
        "lab = Lab().open()\n"
        "async def main():\n"
        "    async with aioxdp.Pinger(lab.b.ip, count=2_000_000, interval=0) as p:\n"
        "        print(lab.index, lab.a.netns, lab.b.netns, flush=True)\n"
        "        await p.result()\n"
        "with lab.a.enter():\n"
        "    asyncio.run(main())\n"
    )
    try:
        index, ns_a, ns_b = read_line(child).split()
        attached = link_details(ns_a)
        assert "prog/xdp" in attached, attached  # the kill below lands mid-flood
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    # the bpf_link died with the process: the veth has no program even before cleanup
    shown = link_details(ns_a)
    assert "veth-a" in shown  # the link is still there to be looked at
    assert "prog/xdp" not in shown
    assert not list(Path("/sys/fs/bpf").glob("aioxdp*"))  # nothing pinned, ever
    with Lab():
        pass  # starting a lab removes the stale one of the dead process
    assert {ns_a, ns_b}.isdisjoint(namespaces())
    assert not (LEASE_DIR / index).exists()


@pytest.mark.parametrize("how", ["down", "deleted"])
async def test_interface_lost_under_a_running_ping_and_transport(how: str) -> None:
    with Lab() as lab, lab.a.enter():
        async with Interface(lab.a.ifname) as nic:
            lost: list[Exception | None] = []

            class Watch(aioxdp.PacketProtocol):
                def connection_lost(self, exc: Exception | None) -> None:
                    lost.append(exc)

            await nic.create_packet_endpoint(Watch, rules=[Rule("udp", dst_port=9)])
            before = nic.forwarder.counters.redirected
            task = asyncio.ensure_future(aioxdp.ping(lab.b.ip, count=1000, interval=0.01))
            # mid-run: the forwarder handed the ping some replies (nothing else is redirected)
            assert await eventually(lambda: nic.forwarder.counters.redirected - before >= 3), (
                f"{nic.forwarder.counters.redirected - before} replies redirected to the ping"
            )
            if how == "down":
                lab.a.run("ip", "link", "set", lab.a.ifname, "down")
            else:
                lab.a.run("ip", "link", "del", lab.a.ifname)
            result = await asyncio.wait_for(task, 5)
            assert await eventually(lambda: lost), "the packet endpoint never heard of the loss"
        assert 0 < result.received < 1000
        assert result.error is not None
        assert len(lost) == 1
        assert lost[0] is not None
        cause = str(lost[0])
        assert (
            ("went down" in cause or "Network is down" in cause)
            if how == "down"
            else "was deleted" in cause
        )
        assert nic.final_counts, "no socket was checked"
        for counts in nic.final_counts.values():
            assert counts.balanced
            assert (
                counts.leaked == 0
            )  # frames the dead link never sent went with the socket: counts.unsent


async def test_starved_fill_ring_drops_are_counted_and_nothing_hangs(tmp_path: object) -> None:
    tiny = UmemConfig(nframes=32, fill_size=8, comp_size=8, rx_size=8, tx_size=8)
    with Lab() as lab, lab.a.enter():
        async with Interface(lab.a.ifname, config=tiny, batch_size=4) as nic:

            class Slow(Counter):
                def packets_received(self, batch: aioxdp.PacketBatch) -> None:
                    super().packets_received(batch)
                    time.sleep(0.0005)  # a handler slower than the wire

            _t, proto = await nic.create_packet_endpoint(Slow, rules=[Rule("udp", dst_port=9005)])
            frames = udp_frames(lab, 9005, 3000, towards=lab.a)
            path = f"{tmp_path}/frames.bin"
            with open(path, "wb") as f:
                for frame in frames:
                    f.write(len(frame).to_bytes(2, "big") + frame)
            sender = lab.b.popen(
                sys.executable,
                "-c",
                "import socket, sys\ndata = open(sys.argv[1], 'rb').read()\n"
                "s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind((sys.argv[2], 0))\n"
                "off = 0\nwhile off < len(data):\n"
                "    n = int.from_bytes(data[off:off + 2], 'big'); s.send(data[off + 2:off + 2 + n]); off += 2 + n\n",
                path,
                lab.b.ifname,
            )
            assert sender.wait(30) == 0

            def accounted() -> int:
                stats = nic.stats()["queues"][0]["xdp"]
                return int(proto.count + stats.rx_dropped + stats.rx_ring_full)

            # what did not fit is counted by the kernel, the rest reached the protocol
            assert await eventually(
                lambda: nic.forwarder.counters.redirected >= 3000 and accounted() >= 3000
            ), (
                f"redirected {nic.forwarder.counters.redirected}, protocol + kernel drops "
                f"{accounted()}, of 3000 sent"
            )
            assert nic.forwarder.counters.redirected == 3000
            assert accounted() == 3000
            assert proto.count < 3000, "the rings never ran short: the test did not test"
            # and the socket still works afterwards
            before = proto.count
            lab.b.run(
                sys.executable,
                "-c",
                "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                f"[s.sendto(b'x', ({lab.a.ip!r}, 9005)) for _ in range(5)]",
            )
            assert await eventually(lambda: proto.count == before + 5), (
                f"{proto.count - before} of 5 datagrams after the flood reached the protocol"
            )
        assert nic.final_counts[0].leaked == 0


def test_a_second_process_on_the_same_interface_is_refused(lab: Lab) -> None:
    first = lab.a.popen(
        sys.executable,
        "-c",
        "import asyncio, aioxdp\n"
        "async def main():\n"
        "    async with aioxdp.Interface('veth-a'):\n"
        "        print('up', flush=True); await asyncio.sleep(10)\n"
        "asyncio.run(main())\n",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(first) == "up"
        second = lab.a.run(sys.executable, "-m", "aioxdp", "ping", "-c", "1", lab.b.ip, check=False)
        assert second.returncode == 2
        assert "already runs XDP program id" in second.stderr
        assert second.stderr.count("\n") == 1
        with lab.a.enter(), pytest.raises(AlreadyAttachedError, match="stop its owner"):
            asyncio.run(aioxdp.ping(lab.b.ip, count=1))
        # the first one's program is untouched
        with lab.a.enter():
            assert attached_program(lab.a.ifname)[0] > 0
    finally:
        first.kill()
        first.wait()
    with lab.a.enter():
        assert wait_until(lambda: attached_program(lab.a.ifname) == (0, None))


def test_doctor(lab: Lab) -> None:
    ok = lab.a.run(sys.executable, "-m", "aioxdp", "doctor", "-I", lab.a.ifname)
    assert "[ ok ] XDP on veth-a: modes: native, generic" in ok.stdout
    assert "[FAIL]" not in ok.stdout
    assert ok.stdout.rstrip().endswith("aioxdp can run here")
    nobody = lab.a.run(
        *AS_NOBODY,
        sys.executable,
        "-m",
        "aioxdp",
        "doctor",
        check=False,
    )
    assert nobody.returncode == 1
    assert "[FAIL] privileges: missing CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW" in nobody.stdout
    assert "fix: run as root" in nobody.stdout
    with lab.a.enter():
        assert attached_program(lab.a.ifname) == (0, None)  # the doctor left nothing attached


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_short_soak_leaks_nothing_and_adds_up() -> None:
    """The short form of bench/soak.py: ping flood, UDP echo and rule churn at once."""
    from soak import soak  # bench/soak.py, shared with the long run

    with Lab() as lab, lab.a.enter():
        report = await soak(lab, seconds=6.0)
        assert_nothing_left(lab)
    assert report["leaked"] == 0
    assert report["ping_lost"] <= report["kernel_drops"], (
        "pings lost that no kernel counter explains"
    )
    assert report["udp_good"] == report["udp_sent"]
    assert report["rule_changes"] >= 50


CYCLE_SCRIPT = """
import gc
from aioxdp.echo import EchoSession
from aioxdp.route import ResolvedRoute

mac = bytes.fromhex("02a00000000a")
hosts = ["198.19.0.1", "2001:2::9"]
routes = [
    ResolvedRoute(h, "veth-a", 2, src, mac, h, mac, 1500)
    for h, src in zip(hosts, ["198.18.0.1", "2001:2::1"])
]
session = EchoSession(
    hosts, routes, 7, count=3, size=56, ttl=64, interval=0.001, timeout=0.1, window=64
)
n = len(session.results())
# the collector clears objects in no order we choose: for none of them to
# crash it, no view the session holds may have a buffer exported from it
views = [v for v in vars(session).values() if isinstance(v, memoryview)]
exported = []
for view in views:
    try:
        view.release()
    except BufferError:
        exported.append(view.format)
session.me = session  # a cycle: only the collector frees it
del session, views, view
gc.collect()
print("collected", n, "exported", exported)
"""


def test_a_session_in_a_reference_cycle_is_collected_without_a_crash() -> None:
    """An echo session left to the cycle collector (as the interpreter's exit
    leaves one) is freed without a crash or a BufferError. CPython 3.11
    crashes when the collector clears a memoryview that something (cffi)
    still holds a buffer of, so no view a session holds may be exported."""
    run = subprocess.run(
        [sys.executable, "-c", CYCLE_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert (run.returncode, run.stdout, run.stderr) == (0, "collected 2 exported []\n", "")
