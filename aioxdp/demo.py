"""``aioxdp demo``: build a lab, put the forwarder on it, show what happened.

This is the README's main job. It grows with the project: today it loads
and attaches the forwarder in each XDP mode and runs a packet through it;
ping across the lab joins it when ping exists.
"""

from __future__ import annotations

import struct
from typing import TextIO

from aioxdp.bpf import BPFObject, XDPVerdict, attached_program
from aioxdp.testing import Lab


def _probe_frame(src_mac: str, dst_mac: str) -> bytes:
    """An Ethernet + IPv4 + ICMP echo request, enough for test_run."""

    def mac(text: str) -> bytes:
        return bytes.fromhex(text.replace(":", ""))

    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 1, 0, 64, 1, 0, bytes(4), bytes(4))
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 1)
    return mac(dst_mac) + mac(src_mac) + b"\x08\x00" + ip + icmp


def run_demo(out: TextIO) -> int:
    def say(line: str) -> None:
        print(line, file=out, flush=True)

    with Lab() as lab:
        a, b = lab.a, lab.b
        say(f"lab {lab.index}: {a.netns} {a.ifname} {a.ip} <-veth-> {b.netns} {b.ifname} {b.ip}")
        ping = b.run("ping", "-c", "3", "-i", "0.2", "-W", "1", a.ip, check=False)
        say(
            f"kernel ping {b.ip} -> {a.ip}: "
            + (ping.stdout.strip().splitlines() or ["no output"])[-2]
        )
        with a.enter(), BPFObject.packaged("forwarder") as obj:
            obj.load()
            prog = obj.program("aioxdp_forwarder")
            say(f"loaded {obj.path.name}: program {prog.name}, maps {', '.join(obj.map_names())}")
            for mode in ("native", "generic"):
                with prog.attach(a.ifname, mode=mode) as link:
                    prog_id, seen = attached_program(a.ifname)
                    shown = a.run("ip", "-d", "link", "show", a.ifname).stdout
                    tag = "xdpgeneric" if mode == "generic" else "xdp"
                    ok = f"prog/{tag} id {prog_id}" in shown or f" {tag} " in shown
                    say(
                        f"attached {prog.name} to {a.ifname} "
                        f"in {link.mode} mode via {link.method}: "
                        f"kernel reports program id {prog_id} in {seen} mode"
                        + ("" if ok else " (not visible in ip link!)")
                    )
                after, _ = attached_program(a.ifname)
                say(
                    f"detached: {a.ifname} "
                    + ("is clean" if after == 0 else f"still has program {after}!")
                )
            verdict, _ = prog.test_run(_probe_frame(b.mac, a.mac))
            say(f"BPF_PROG_TEST_RUN of an ICMP echo request: {XDPVerdict(verdict).name}")
        say(f"removed lab {lab.index}")
    return 0
