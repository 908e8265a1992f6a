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
import subprocess
import sys
import time
from pathlib import Path

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


async def python_rate(proto: Counter, seconds: float) -> float:
    start, t0 = proto.count, time.perf_counter()
    await asyncio.sleep(seconds)
    return (proto.count - start) / (time.perf_counter() - t0)


async def measure(
    lab: Lab, seconds: float, batch: int, generator: str = "live"
) -> dict[str, float]:
    loops = native.load()
    async with Interface(lab.a.ifname, batch_size=batch) as nic:
        _t, proto = await nic.create_packet_endpoint(Counter, rules=[Rule("udp", dst_port=PORT)])
        blaster = lab.b.popen(
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
        py1 = await python_rate(proto, seconds)
        d1 = dropped()
        transport = nic.transport(0)
        transport.pause_reading()
        c_rates = {}
        c_time = 0.0
        c_got = 0
        for style, spin in (("poll", 0), ("spin", 1)):
            t0 = time.perf_counter()
            got = loops.bench_drain(native.pointer(nic.socket(0)), batch, seconds, spin)
            c_time += time.perf_counter() - t0
            c_got += got
            c_rates[style] = got / (time.perf_counter() - t0)
        d2 = dropped()
        transport.resume_reading()
        py2 = await python_rate(proto, seconds)
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
            f"rx ring full {result['rx_ring_full']}, fill ring empty {result['fill_empty']})"
        )


if __name__ == "__main__":
    main()
