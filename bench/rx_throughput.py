"""Frames per second through XDPTransport to a protocol that counts them,
against a C loop over the same XSK, at batch size 64, in the lab.

    .venv/bin/python bench/rx_throughput.py [--seconds 3] [--loop asyncio|uvloop]
                                            [--generator live|xsk]

A generator on the peer (bench/blast.py) floods UDP at host a: by default
the kernel's own (BPF_PROG_RUN with live frames, XDP_TX out of b's veth),
which offers more than either receiver takes; ``xsk`` is the older C loop
over an XSK, which a receiver can outrun. Host a's Interface counts batches
in Python for a window, then the same socket is drained by the C loop
(bench/xsk_loops.c) for a window, then Python again. The ratio printed is
Python / C: 1.0 means Python adds nothing; "offered" says whether the
generator outran both (offered > C loop).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import native

from aioxdp import Interface, PacketBatch, PacketProtocol, Rule
from aioxdp.testing import Lab

PORT = 9999
BUSY_POLL = 200e-6  # seconds: Interface.busy_poll of the never-sleeping Python windows


class Counter(PacketProtocol):
    def __init__(self) -> None:
        self.count = 0

    def packets_received(self, batch: PacketBatch) -> None:
        self.count += len(batch)


async def python_rate(proto: Counter, seconds: float) -> tuple[float, float]:
    """Frames/s the protocol counted, and this thread's CPU seconds meanwhile."""
    start, t0, cpu0 = proto.count, time.perf_counter(), time.thread_time()
    await asyncio.sleep(seconds)
    return (proto.count - start) / (time.perf_counter() - t0), time.thread_time() - cpu0


def placement() -> tuple[int, int] | None:
    """(generator's CPU, receiver's CPU): two different ones, or None on one.
    Left to the scheduler, a receiver that sleeps is woken onto the CPU of
    the generator that woke it, and the two then share it: Python took 0.92
    Mpps sharing, 1.79 apart, with the same generator."""
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else None


async def measure(
    lab: Lab, seconds: float, batch: int, generator: str = "live"
) -> dict[str, float]:
    loops = native.load()
    cpus = placement()
    mask = os.sched_getaffinity(0)
    if cpus is not None:
        os.sched_setaffinity(0, {cpus[1]})  # this thread: both receivers run in it
    try:
        return await _measure(lab, seconds, batch, generator, loops, cpus)
    finally:
        os.sched_setaffinity(0, mask)


async def _measure(
    lab: Lab,
    seconds: float,
    batch: int,
    generator: str,
    loops: Any,
    cpus: tuple[int, int] | None,
) -> dict[str, float]:
    pin = ["taskset", "-c", str(cpus[0])] if cpus is not None else []
    async with Interface(lab.a.ifname, batch_size=batch) as nic:
        _t, proto = await nic.create_packet_endpoint(Counter, rules=[Rule("udp", dst_port=PORT)])
        blaster = lab.b.popen(
            *pin,
            sys.executable,
            str(Path(__file__).with_name("blast.py")),
            lab.b.ifname,
            lab.b.mac,
            lab.a.mac,
            lab.b.ip,
            lab.a.ip,
            str(PORT),
            str(seconds * 6 + 3),
            generator,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert blaster.stdout is not None
        assert blaster.stdout.readline().strip() == "ready"
        await asyncio.sleep(0.5)  # warm up

        def dropped() -> int:  # what the kernel could not hand the socket: offered, not taken
            xdp = nic.stats()["queues"][0]["xdp"]
            return int(xdp.rx_dropped + xdp.rx_ring_full + xdp.rx_fill_ring_empty_descs)

        # Python waiting in epoll, then busy polling; the C loop in poll(),
        # then spinning; Python busy polling, then waiting: each kind's two
        # windows straddle the C ones, so a drift of the VM's speed cancels
        py: dict[str, list[tuple[float, float, int]]] = {"epoll": [], "busy": []}

        async def python_window(kind: str) -> None:
            nic.busy_poll = BUSY_POLL if kind == "busy" else 0.0
            d0 = dropped()
            rate, cpu = await python_rate(proto, seconds)
            py[kind].append((rate, cpu, dropped() - d0))

        await python_window("epoll")
        await python_window("busy")
        transport = nic.transport(0)
        transport.pause_reading()
        c_rates, c_cpu, c_offered = {}, {}, {}
        for style, spin in (("poll", 0), ("spin", 1)):
            d0, t0, cpu0 = dropped(), time.perf_counter(), time.thread_time()
            got = loops.bench_drain(native.pointer(nic.socket(0)), batch, seconds, spin)
            elapsed = time.perf_counter() - t0
            c_cpu[style] = (time.thread_time() - cpu0) / max(1, got) * 1e6
            c_rates[style] = got / elapsed
            c_offered[style] = (got + dropped() - d0) / elapsed
        transport.resume_reading()
        await python_window("busy")
        await python_window("epoll")
        # (the receiver reads on while the generator finishes its run)
        sent = int(await asyncio.to_thread(blaster.stdout.readline))
        blaster.wait(30)
        stats = nic.stats()["queues"][0]["xdp"]

    def mean(kind: str, at: int) -> float:
        return sum(w[at] for w in py[kind]) / len(py[kind])

    found = {
        "sent_per_s": sent / (seconds * 6 + 3),
        "rx_ring_full": stats.rx_ring_full,
        "fill_empty": stats.rx_fill_ring_empty_descs,
        "pinned": 1.0 if cpus is not None else 0.0,
    }
    for kind in ("epoll", "busy"):
        rate = mean(kind, 0)
        found[f"python_{kind}"] = rate
        # offered at the socket while it read: taken + dropped there
        found[f"offered_python_{kind}"] = rate + mean(kind, 2) / seconds
        # CPU per frame of the receiving thread (the receive path itself runs
        # in the generator's softirq, on its CPU)
        found[f"python_{kind}_cpu_us"] = mean(kind, 1) / (rate * seconds) * 1e6
    for style in ("poll", "spin"):
        found[f"c_{style}"] = c_rates[style]
        found[f"offered_c_{style}"] = c_offered[style]
        found[f"c_{style}_cpu_us"] = c_cpu[style]
    # like with like: each sleeping receiver, and each that does not
    found["python"] = max(found["python_epoll"], found["python_busy"])
    found["c"] = max(c_rates.values())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], action="append")
    parser.add_argument("--generator", choices=["live", "xsk"], default="live")
    args = parser.parse_args()
    for loop_name in args.loop or ["asyncio", "uvloop"]:
        with Lab() as lab, lab.a.enter():
            if loop_name == "uvloop":
                import uvloop

                result = uvloop.run(measure(lab, args.seconds, args.batch, args.generator))
            else:
                result = asyncio.run(measure(lab, args.seconds, args.batch, args.generator))
        r = result
        print(
            f"{loop_name:8s} batch {args.batch}, {args.generator} generator offering "
            f"{r['sent_per_s'] / 1e6:.3f} Mpps on average (over the whole run: rx ring full "
            f"{r['rx_ring_full']}, fill ring empty {r['fill_empty']}):\n"
            f"  sleeping when idle: python {r['python_epoll'] / 1e6:.3f} Mpps of "
            f"{r['offered_python_epoll'] / 1e6:.3f} at the socket, C loop in poll() "
            f"{r['c_poll'] / 1e6:.3f} of {r['offered_c_poll'] / 1e6:.3f}: python/C = "
            f"{r['python_epoll'] / r['c_poll']:.2f}; CPU per frame python "
            f"{r['python_epoll_cpu_us']:.3f} us, C {r['c_poll_cpu_us']:.3f} us\n"
            f"  never sleeping: python busy_poll {BUSY_POLL * 1e6:.0f} us "
            f"{r['python_busy'] / 1e6:.3f} Mpps of {r['offered_python_busy'] / 1e6:.3f}, "
            f"C loop spinning {r['c_spin'] / 1e6:.3f} of {r['offered_c_spin'] / 1e6:.3f}: "
            f"python/C = {r['python_busy'] / r['c_spin']:.2f}\n"
            f"  best of each: python/C = {r['python'] / r['c']:.2f}"
        )


if __name__ == "__main__":
    main()
