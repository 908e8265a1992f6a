"""bench/'s C reference loops build against the current _native sources
(they include them), so a change there cannot silently break the benchmarks."""

from __future__ import annotations

import asyncio
import ctypes
import subprocess

import native  # bench/native.py (conftest puts bench/ on sys.path)
import ping_rate
import pytest
import udp_echo
from test_surface import icmp_counters

from aioxdp.testing import Lab


def test_the_c_reference_loops_build_and_load() -> None:
    loops = native.load()
    for name in (
        "bench_blast",
        "bench_drain",
        "bench_echo",
        "bench_udp_pump",
        "bench_paced_echo",
    ):
        assert callable(getattr(loops, name)), name


@pytest.mark.parametrize("spin", [False, True], ids=["sleeping", "spinning"])
async def test_the_paced_c_loop_times_each_reply_the_peer_sent(lab: Lab, spin: bool) -> None:
    """latency.py's C reference for a paced ping: one reply per probe, as
    b's kernel counts them, each timed in microseconds, not zero or garbage."""
    loops = native.load()
    count = 50
    rtts = (ctypes.c_double * count)()
    before = icmp_counters(lab.b)["OutEchoReps"]
    with lab.a.enter():
        async with ping_rate.c_echo_socket(lab.a.ifname, lab.b.ip) as (xsk, template, ident):
            got = await asyncio.to_thread(
                loops.bench_paced_echo,
                xsk,
                template,
                len(template),
                ident,
                count,
                1_000_000,
                spin,
                rtts,
            )
    assert icmp_counters(lab.b)["OutEchoReps"] - before == count
    assert got == count
    assert all(0 < rtt < 1_000_000 for rtt in rtts), list(rtts)


def test_the_peer_receives_in_a_napi_thread_of_its_own_and_is_restored(lab: Lab) -> None:
    """udp_echo.py --peer-receive thread: b's veth is polled by a kthread of
    its own (the kernel names it napi/...) while it lasts, and frames still
    flow; afterwards the knob is off again."""
    knob = f"/sys/class/net/{lab.b.ifname}/threaded"

    def napi_threads() -> set[str]:
        names = subprocess.run(["ps", "-e", "-o", "comm="], capture_output=True, text=True)
        return {n for n in names.stdout.split() if n.startswith("napi/")}

    before = napi_threads()
    with udp_echo.peer_receive_threaded(lab.b):
        assert napi_threads() - before, "no napi/ kthread appeared"
        lab.a.run("ping", "-c", "3", "-i", "0.01", "-W", "1", lab.b.ip)
    assert lab.b.run("cat", knob).stdout.strip() == "0"
