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
            str(seconds * 4 + 3),
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

        d0 = dropped()
        py1, py_cpu1 = await python_rate(proto, seconds)
        d1 = dropped()
        transport = nic.transport(0)
        transport.pause_reading()
        c_rates, c_cpu = {}, {}
        c_time = 0.0
        c_got = 0
        for style, spin in (("poll", 0), ("spin", 1)):
            t0, cpu0 = time.perf_counter(), time.thread_time()
            got = loops.bench_drain(native.pointer(nic.socket(0)), batch, seconds, spin)
            c_cpu[style] = (time.thread_time() - cpu0) / max(1, got) * 1e6
            c_time += time.perf_counter() - t0
            c_got += got
            c_rates[style] = got / (time.perf_counter() - t0)
        d2 = dropped()
        transport.resume_reading()
        py2, py_cpu2 = await python_rate(proto, seconds)
        d3 = dropped()
        sent = int(blaster.stdout.readline())
        blaster.wait(30)
        stats = nic.stats()["queues"][0]["xdp"]
    python = (py1 + py2) / 2
    return {
        "python": python,
        "c": max(c_rates.values()),
        **{f"c_{k}": v for k, v in c_rates.items()},
        "sent_per_s": sent / (seconds * 4 + 3),
        # offered at the socket while each receiver ran: taken + dropped there
        "offered_python": python + (d1 - d0 + d3 - d2) / (2 * seconds),
        "c_mean": c_got / c_time,  # both C windows: what offered_c is over
        "offered_c": (c_got + d2 - d1) / c_time,
        "rx_ring_full": stats.rx_ring_full,
        "fill_empty": stats.rx_fill_ring_empty_descs,
        # CPU per frame of the receiving thread (the receive path itself runs
        # in the generator's softirq, on its CPU): a ratio of costs even
        # where the generator, not the receiver, sets the rate
        "python_cpu_us": (py_cpu1 + py_cpu2) / ((py1 + py2) * seconds) * 1e6,
        "c_poll_cpu_us": c_cpu["poll"],
        "pinned": 1.0 if cpus is not None else 0.0,
    }


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
        print(
            f"{loop_name:8s} batch {args.batch}: python {result['python'] / 1e6:.3f} Mpps, "
            f"C loop {result['c'] / 1e6:.3f} Mpps (poll {result['c_poll'] / 1e6:.3f}, "
            f"spin {result['c_spin'] / 1e6:.3f}), python/C = {result['python'] / result['c']:.2f} "
            f"({args.generator} generator offered {result['sent_per_s'] / 1e6:.3f} Mpps on "
            f"average, at the socket {result['offered_python'] / 1e6:.3f} while Python read "
            f"and {result['offered_c'] / 1e6:.3f} while C did; "
            f"rx ring full {result['rx_ring_full']}, fill ring empty {result['fill_empty']}); "
            f"receiver CPU per frame: python {result['python_cpu_us']:.3f} us, C loop in poll() "
            f"{result['c_poll_cpu_us']:.3f} us"
        )


if __name__ == "__main__":
    main()
