"""UDP echo server datagrams per second, in the lab, same client, same run:

    .venv/bin/python bench/udp_echo.py [--seconds 3] [--window 256] [--repeat 1] [--family 4|6]
                                       [--peer client|reflector|generator] [--peer-receive inline|thread]

  uvloop   a uvloop DatagramProtocol echo server on a kernel socket
  aioxdp   create_datagram_endpoint, datagram_received() + sendto() per datagram
  batch    create_datagram_endpoint, datagrams_received(batch) -> batch.echo()

The client (bench/udp_client.py, a C pump over aioxdp in the peer) keeps a
window of requests in flight and counts the echoes.

With ``--peer-receive thread`` b's veth receives in a kernel thread of its
own: veth otherwise runs the peer's receive of each echo inside the server's
send, on the server's CPU time, so each server's CPU per datagram is then
its own work (the client, on the other CPU with that thread, becomes the
cap of datagrams/s).

With ``--peer generator`` no client bounds the servers: b's kernel offers
requests as fast as it can make them (bench/blast.py live: BPF_PROG_RUN with
live frames, XDP_TX), more than any of the servers takes, and b's driver
counts each server's echoes and drops them (the reflector's sink). Prints
offered and echoed per second for each server (IPv4).

With ``--peer reflector`` the roles turn: the peer is the XDP reflector
(aioxdp.testing.reflector, echoing UDP port 7 in b's driver, never the
bottleneck), and the clients under test in host a keep WINDOW requests in
flight, each echo answered by the next request (``--family 6``: all of it
over IPv6, in a lab with IPv6 on):

  C        bench/udp_client.py's C pump over an XSK (the reference)
  aioxdp   create_datagram_endpoint, datagram_received() + sendto() per datagram
  uvloop   the same protocol on a uvloop kernel socket
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from aioxdp.testing import Host, Lab
from aioxdp.testing.reflector import Reflector

BENCH = Path(__file__).resolve().parent
EXAMPLES = BENCH.parent / "examples"
PORT = 7
SERVERS = ("uvloop", "aioxdp", "batch")


class Served(NamedTuple):
    """One server's turn: what the client counted, and what it cost the server."""

    rate: float  # echoes/s the client counted
    user_us: float  # server CPU per datagram sent, in user space (Python, our C)
    kernel_us: float  # and in the kernel: its sends, and the peer's receive run on it


UVLOOP_SERVER = """
import asyncio, sys, uvloop
class Echo(asyncio.DatagramProtocol):
    def connection_made(self, t): self.t = t
    def datagram_received(self, d, a): self.t.sendto(d, a)
async def main():
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Echo, local_addr=(sys.argv[1], int(sys.argv[2])))
    print("echoing", flush=True)
    await asyncio.sleep(float(sys.argv[3]))
uvloop.run(main())
"""


# a client that keeps WINDOW requests in flight; prints echoes per second
CLIENT = """
import asyncio, sys, time
ifname, local, server, seconds, window, kind = sys.argv[1:7]
class Pump(asyncio.DatagramProtocol):
    def connection_made(self, t):
        self.t, self.n = t, 0
        for _ in range(int(window)):
            t.sendto(b"q" * 32, (server, 7))
    def datagram_received(self, d, a):
        self.n += 1
        self.t.sendto(d, a)
async def main():
    if kind == "aioxdp":
        import aioxdp
        nic = await aioxdp.Interface(ifname).open()
        t, p = await nic.create_datagram_endpoint(Pump, local_addr=(local, 40000))
    else:
        loop = asyncio.get_running_loop()
        t, p = await loop.create_datagram_endpoint(Pump, local_addr=(local, 40000))
    await asyncio.sleep(0.5)  # warm up
    n0, t0 = p.n, time.perf_counter()
    await asyncio.sleep(float(seconds))
    print((p.n - n0) / (time.perf_counter() - t0), flush=True)
    t.close()
    if kind == "aioxdp":
        await nic.aclose()
if kind == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""


def addresses(lab: Lab, family: int) -> tuple[str, str]:
    """Host a's and host b's address of ``family`` (6 needs Lab(ipv6=True))."""
    if family == 6:
        if lab.a.ip6 is None or lab.b.ip6 is None:
            raise ValueError("family: 6 needs a lab made with Lab(ipv6=True)")
        return lab.a.ip6, lab.b.ip6
    return lab.a.ip, lab.b.ip


def reflected_rates(
    lab: Lab, seconds: float, window: int, repeat: int = 1, family: int = 4
) -> dict[str, float]:
    """Echoes/s of each client in host a against the XDP reflector in b."""
    a_ip, b_ip = addresses(lab, family)
    runs = []
    for _ in range(repeat):
        found = {}
        with Reflector(lab.b, udp_ports=[PORT]):
            out = lab.a.run(
                sys.executable,
                str(BENCH / "udp_client.py"),
                lab.a.ifname,
                b_ip,
                str(PORT),
                str(seconds),
                str(window),
                timeout=seconds + 60,
            ).stdout.split()
            found["C"] = float(out[-1])
            found["aioxdp"] = _client(lab, "aioxdp", seconds, window, a_ip, b_ip)
        # the kernel's socket: veth hands XDP_TX'd frames only to a peer that runs XDP
        with Reflector(lab.b, udp_ports=[PORT], peer_pass=True):
            found["uvloop"] = _client(lab, "uvloop", seconds, window, a_ip, b_ip)
        runs.append(found)
    return {name: statistics.median(r[name] for r in runs) for name in runs[0]}


def _client(lab: Lab, kind: str, seconds: float, window: int, a_ip: str, b_ip: str) -> float:
    args = [lab.a.ifname, a_ip, b_ip, str(seconds), str(window), kind]
    out = lab.a.run(sys.executable, "-c", CLIENT, *args, timeout=seconds + 60).stdout
    return float(out.split()[-1])


def serve(host: Host, argv: list[str]) -> subprocess.Popen[str]:
    proc = host.popen(*argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "echoing" in line, proc.stderr.read() if proc.stderr else line
    return proc


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and kernel CPU seconds of process ``pid`` so far. Softirq work run
    in its context (veth hands the peer its frames there) is its kernel time:
    this kernel accounts CPU by tick, without IRQ time accounting."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def tx_packets(host: Host) -> int:
    """Frames host's veth has sent (the kernel's counter, ip -s link)."""
    link = json.loads(host.run("ip", "-j", "-s", "link", "show", "dev", host.ifname).stdout)
    return int(link[0]["stats64"]["tx"]["packets"])


def measure(lab: Lab, server: list[str], seconds: float, window: int, a_ip: str) -> Served:
    proc = serve(lab.a, server)
    try:
        cpu0, sent0 = cpu_seconds(proc.pid), tx_packets(lab.a)
        client = lab.b.run(
            sys.executable,
            str(BENCH / "udp_client.py"),
            lab.b.ifname,
            a_ip,
            str(PORT),
            str(seconds),
            str(window),
            timeout=seconds + 60,
        )
        cpu1, sent1 = cpu_seconds(proc.pid), tx_packets(lab.a)
        sent = max(1, sent1 - sent0)
        return Served(
            float(client.stdout.split()[-1]),
            (cpu1[0] - cpu0[0]) / sent * 1e6,
            (cpu1[1] - cpu0[1]) / sent * 1e6,
        )
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def peer_receive_threaded(host: Host) -> Iterator[None]:
    """``host``'s veth receives in a kernel thread of its own: GRO on gives
    veth a NAPI instance, and ``threaded`` polls it from a kthread. veth
    otherwise runs the peer's receive of every frame a server sends inside
    the server's own send (softirq on its way out of the syscall), on the
    server's CPU time; with this the server's CPU is its own work."""
    knob = f"/sys/class/net/{host.ifname}/threaded"
    host.run("ethtool", "-K", host.ifname, "gro", "on")
    host.run("sh", "-c", f"echo 1 > {knob}")
    if host.run("cat", knob).stdout.strip() != "1":
        raise RuntimeError(f"{host.name}: {host.ifname} did not take threaded NAPI")
    try:
        yield
    finally:
        host.run("sh", "-c", f"echo 0 > {knob}")
        host.run("ethtool", "-K", host.ifname, "gro", "off")


def rates(
    lab: Lab,
    seconds: float,
    window: int,
    repeat: int = 1,
    family: int = 4,
    *,
    peer_thread: bool = False,
) -> dict[str, float]:
    """Datagrams/s of each server in ``lab``, the same client against each,
    and each server's CPU per datagram it sent ("NAME user us", "NAME kernel
    us"); with ``repeat`` > 1 the servers take turns that many times and each
    figure's median is kept (this VM's speed drifts from minute to minute).
    With ``peer_thread`` the peer receives in a thread of its own
    (peer_receive_threaded), so CPU per datagram is the server's alone."""
    with peer_receive_threaded(lab.b) if peer_thread else contextlib.nullcontext():
        runs = [_rates_once(lab, seconds, window, family) for _ in range(repeat)]
    found = {}
    for name in runs[0]:
        found[name] = statistics.median(r[name].rate for r in runs)
        found[f"{name} user us"] = statistics.median(r[name].user_us for r in runs)
        found[f"{name} kernel us"] = statistics.median(r[name].kernel_us for r in runs)
    return found


def _rates_once(lab: Lab, seconds: float, window: int, family: int) -> dict[str, Served]:
    life = str(seconds + 30)
    a_ip, _ = addresses(lab, family)
    server = [sys.executable, str(EXAMPLES / "udp_echo_server.py"), lab.a.ifname, a_ip]
    servers = {
        "uvloop": [sys.executable, "-c", UVLOOP_SERVER, a_ip, str(PORT), life],
        "aioxdp": [*server, str(PORT), life],
        "batch": [*server, str(PORT), life, "--batch"],
    }
    return {name: measure(lab, argv, seconds, window, a_ip) for name, argv in servers.items()}


def generated_rates(
    lab: Lab, seconds: float, repeat: int = 1, *, peer_thread: bool = False
) -> dict[str, dict[str, float]]:
    """Echoes/s of each server under a generator that outruns all of them,
    counted in b's driver, what the generator offered, and the server's CPU
    per echo ("user_us", "kernel_us"); medians of ``repeat`` turns. With
    ``peer_thread`` b's veth receives the echoes in a thread of its own
    (peer_receive_threaded), not inside the server's sends."""
    runs = [_generated_once(lab, seconds, peer_thread) for _ in range(repeat)]
    return {
        name: {k: statistics.median(r[name][k] for r in runs) for k in runs[0][name]}
        for name in runs[0]
    }


def pins() -> tuple[list[str], list[str]]:
    """taskset prefixes that put the generator and the server on CPUs of
    their own (none on one CPU). Left to the scheduler, the server, woken by
    the generator's softirq, is woken onto the generator's CPU, and its
    callers take both CPUs."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return [], []
    return ["taskset", "-c", str(cpus[0])], ["taskset", "-c", str(cpus[1])]


def _generated_once(lab: Lab, seconds: float, peer_thread: bool) -> dict[str, dict[str, float]]:
    life = str(seconds + 30)
    generator_pin, server_pin = pins()
    server = [sys.executable, str(EXAMPLES / "udp_echo_server.py"), lab.a.ifname, lab.a.ip]
    servers = {
        "uvloop": [sys.executable, "-c", UVLOOP_SERVER, lab.a.ip, str(PORT), life],
        "aioxdp": [*server, str(PORT), life],
        "batch": [*server, str(PORT), life, "--batch"],
    }
    found = {}
    for name, argv in servers.items():
        proc = serve(lab.a, [*server_pin, *argv])
        try:
            # a kernel socket on a needs an XDP program there for veth to hand
            # it the generator's XDP_TX'd frames (the aioxdp servers have theirs)
            with (
                Reflector(lab.b, udp_ports=[PORT], sink=True, peer_pass=name == "uvloop") as sink,
                peer_receive_threaded(lab.b) if peer_thread else contextlib.nullcontext(),
            ):
                span = seconds + 1.0
                blaster = lab.b.popen(
                    *generator_pin,
                    sys.executable,
                    str(BENCH / "blast.py"),
                    *(lab.b.ifname, lab.b.mac, lab.a.mac, lab.b.ip, lab.a.ip, str(PORT)),
                    *(str(span), "live"),
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert blaster.stdout is not None
                assert blaster.stdout.readline().strip() == "ready"
                time.sleep(0.5)  # warm up
                echoed0, t0 = sink.counters()["sunk"], time.perf_counter()
                cpu0 = cpu_seconds(proc.pid)
                time.sleep(seconds)
                echoed1, t1 = sink.counters()["sunk"], time.perf_counter()
                cpu1 = cpu_seconds(proc.pid)
                offered = int(blaster.stdout.readline()) / span
                blaster.wait(30)
        finally:
            proc.kill()
            proc.wait()
        echoed = max(1, echoed1 - echoed0)
        found[name] = {
            "echoed": echoed / (t1 - t0),
            "offered": offered,
            "user_us": (cpu1[0] - cpu0[0]) / echoed * 1e6,
            "kernel_us": (cpu1[1] - cpu0[1]) / echoed * 1e6,
        }
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=1, help="turns per server; medians kept")
    parser.add_argument("--peer", choices=["client", "reflector", "generator"], default="client")
    parser.add_argument("--family", type=int, choices=[4, 6], default=4)
    parser.add_argument(
        "--peer-receive",
        choices=["inline", "thread"],
        default="inline",
        help="client, generator: where b's veth receives (thread: off the server's CPU)",
    )
    args = parser.parse_args()
    if args.peer_receive != "inline" and args.peer == "reflector":
        parser.error("--peer-receive: with --peer client or generator")
    peer_thread = args.peer_receive == "thread"
    if not 1 <= args.repeat <= 9:
        raise SystemExit("--repeat: 1..9")
    if args.peer == "generator":
        if args.family != 4:
            raise SystemExit("--peer generator: IPv4 only (the generator's frames are IPv4)")
        with Lab() as lab:
            gen = generated_rates(lab, args.seconds, args.repeat, peer_thread=peer_thread)
        print(
            f"UDP echo under a generator (IPv4, {args.seconds:g}s each), echoes counted in b's driver"
            f"{', b receiving in a thread of its own' if peer_thread else ''}:"
        )
        base = gen["uvloop"]["echoed"]
        for name, r in gen.items():
            ratio = "" if name == "uvloop" else f"   {name}/uvloop = {r['echoed'] / base:.2f}x"
            print(f"  {name:8s} {r['echoed']:>12,.0f}/s of {r['offered']:>12,.0f}/s offered{ratio}")
        print(f"  aioxdp/batch = {gen['aioxdp']['echoed'] / gen['batch']['echoed']:.2f}x")
        print_cpu(gen, "echo", peer_thread)
        return
    if args.peer == "reflector":
        with Lab(ipv6=args.family == 6) as lab:
            got = reflected_rates(lab, args.seconds, args.window, args.repeat, args.family)
        print(f"UDP clients against the XDP reflector (IPv{args.family}, window {args.window}):")
        for name, rate in got.items():
            print(f"  {name:8s} {rate:>12,.0f}/s")
        print(
            f"  aioxdp/C = {got['aioxdp'] / got['C']:.2f}x, "
            f"aioxdp/uvloop = {got['aioxdp'] / got['uvloop']:.2f}x"
        )
        return
    with Lab(ipv6=args.family == 6) as lab:
        found = rates(
            lab,
            args.seconds,
            args.window,
            args.repeat,
            args.family,
            peer_thread=peer_thread,
        )
    base = found["uvloop"]
    print(f"UDP echo datagrams/s (IPv{args.family}, window {args.window}, {args.seconds:g}s each):")
    for name in SERVERS:
        rate = found[name]
        ratio = "" if name == "uvloop" else f"   {name}/uvloop = {rate / base:.2f}x"
        print(f"  {name:8s} {rate:>12,.0f}/s{ratio}")
    print_cpu(
        {
            n: {"user_us": found[f"{n} user us"], "kernel_us": found[f"{n} kernel us"]}
            for n in SERVERS
        },
        "datagram sent",
        peer_thread,
    )


def print_cpu(found: dict[str, dict[str, float]], per: str, peer_thread: bool) -> None:
    """Each server's CPU per echo or datagram: user, kernel and their sum."""
    where = "in its own thread" if peer_thread else "run on it"
    print(f"server CPU per {per} (us; the peer's receive {where}):")
    for name, r in found.items():
        user, kernel = r["user_us"], r["kernel_us"]
        print(f"  {name:8s} user {user:5.2f}  kernel {kernel:5.2f}  total {user + kernel:5.2f}")


if __name__ == "__main__":
    main()
