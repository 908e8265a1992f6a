"""The command line where no other test goes: tcping (text and --json), -v,
and valid -I, -s, -t on ping. Witnesses: a listening socket of the peer's
kernel, tcpdump's capture decoded by scapy, and the command's exit status."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import PYTHON, read_line
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether
from test_datapath import Capture

from aioxdp.testing import Lab

OPEN_PORT = 7600
CLOSED_PORT = 7601


def cli(lab: Lab, *args: str) -> tuple[int, str, str]:
    proc = lab.a.run(sys.executable, "-m", "aioxdp", *args, check=False, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def test_tcping_open_and_closed_ports_in_text_and_json(lab: Lab) -> None:
    listener = lab.b.popen(
        PYTHON,
        "-c",
        textwrap.dedent(
            f"""
            import socket, time
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", {OPEN_PORT}))
            s.listen()
            print("up", flush=True)
            time.sleep(30)
            """
        ),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(listener) == "up"
        status, out, err = cli(lab, "tcping", "-c", "2", "-i", "0.05", lab.b.ip, str(OPEN_PORT))
        assert status == 0, err
        assert (
            out.splitlines()[0] == f"TCPING {lab.b.ip} port {OPEN_PORT}: SYN probes through AF_XDP"
        )
        assert sum("open (SYN-ACK)" in line for line in out.splitlines()) == 2
        assert f"port {OPEN_PORT} is open" in out
        status, out, err = cli(
            lab, "tcping", "--json", "-c", "2", "-i", "0.05", lab.b.ip, str(OPEN_PORT)
        )
        assert status == 0, err
        doc = json.loads(out)
        assert (doc["sent"], doc["received"], doc["open"]) == (2, 2, True)
        status, out, err = cli(lab, "tcping", "-c", "2", "-i", "0.05", lab.b.ip, str(CLOSED_PORT))
        assert status == 0, err  # a RST is an answer
        assert f"port {CLOSED_PORT} is closed" in out
    finally:
        listener.kill()
        listener.wait()


def test_verbose_logs_what_aioxdp_does(lab: Lab) -> None:
    status, out, err = cli(lab, "-v", "ping", "-c", "1", lab.b.ip)
    assert status == 0, err
    assert "1 packets transmitted, 1 received" in out
    assert "attached aioxdp_forwarder to veth-a" in err  # the log, on stderr


def test_ping_interface_size_and_ttl_reach_the_wire(lab: Lab, tmp_path: Path) -> None:
    capture = Capture(lab.b, f"icmp and src host {lab.a.ip}", 2, tmp_path)
    status, out, err = cli(
        lab,
        "ping",
        "-I",
        lab.a.ifname,
        "-s",
        "100",
        "-t",
        "9",
        "-c",
        "2",
        "-i",
        "0.05",
        lab.b.ip,
    )
    assert status == 0, err
    assert "100(128) bytes" in out.splitlines()[0]
    assert sum("108 bytes from" in line for line in out.splitlines()) == 2
    frames = [Ether(f) for f in capture.frames()]
    assert len(frames) == 2
    for frame in frames:
        assert frame[IP].ttl == 9
        assert frame[ICMP].type == 8
        assert len(bytes(frame[ICMP].payload)) == 100
