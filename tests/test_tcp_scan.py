"""tcp_scan against nmap -sS on the same lab targets: the same verdict for
every (host, port), and no half-open connection left in the peer.

Host b listens on 30 of 300 ports (its kernel answers the rest with RST);
198.19.240.0/24 is routed via b, whose kernel drops it (silent: nmap says
"filtered").
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

import aioxdp
from aioxdp.testing import Lab

PORTS = range(9000, 9300)
OPEN = set(range(9000, 9300, 10))
SILENT_HOST = "198.19.240.9"
SILENT_PORTS = range(9000, 9020)

LISTEN = """
import socket, sys, time
servers = [socket.create_server(("0.0.0.0", int(p))) for p in sys.argv[1:]]
print("up", flush=True)
time.sleep(120)
"""


def nmap_states(lab: Lab) -> dict[tuple[str, int], str]:
    """nmap -sS's verdicts, from its grepable output."""
    out = subprocess.run(
        [
            *("ip", "netns", "exec", lab.a.netns),
            *("nmap", "-sS", "-n", "-Pn", "--max-retries", "1", "--max-rtt-timeout", "300ms"),
            *("-p", f"{PORTS.start}-{PORTS.stop - 1}", "-oG", "-", lab.b.ip, SILENT_HOST),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    states = {}
    for host, ports in re.findall(r"Host: (\S+) \(\)\tPorts: (.*)", out):
        for port, state in re.findall(r"(\d+)/(\w+)/tcp", ports):
            states[(host, int(port))] = state
    # nmap folds a long run of one state into "Ignored State: closed (n)"
    ignored = dict(re.findall(r"Host: (\S+) \(\).*Ignored State: (\w+)", out))
    for host, state in ignored.items():
        for port in PORTS:
            states.setdefault((host, port), state)
    return states


@pytest.fixture
def listening(lab_a: Lab) -> Iterator[Lab]:
    lab_a.a.run("ip", "route", "add", "198.19.240.0/24", "via", lab_a.b.ip)
    server = lab_a.b.popen(
        sys.executable, "-c", LISTEN, *map(str, sorted(OPEN)), stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "up"
    yield lab_a
    server.kill()
    server.wait()


def test_tcp_scan_agrees_with_nmap_and_leaves_nothing_half_open(listening: Lab) -> None:
    """Once, on asyncio (nmap takes its time); the other loops scan in the next test."""
    lab = listening
    pairs = [(lab.b.ip, p) for p in PORTS] + [(SILENT_HOST, p) for p in SILENT_PORTS]
    results = asyncio.run(aioxdp.tcp_scan(pairs, timeout=0.5, retries=1))
    assert all(isinstance(r, aioxdp.PortState) for r in results)
    half_open = lab.b.run("ss", "-tan", "state", "syn-recv").stdout
    theirs = nmap_states(lab)
    assert [(r.host, r.port) for r in results] == pairs  # in order
    ours = {(r.host, r.port): r.state for r in results}
    named = {"open": "open", "closed": "closed", "silent": "filtered"}
    wanted = {pair: theirs.get(pair, "absent") for pair in pairs}
    assert {pair: named[state] for pair, state in ours.items()} == wanted
    assert {p for (h, p), s in ours.items() if s == "open"} == OPEN  # and the truth
    assert half_open.count("\n") <= 1, f"half-open connections left in b: {half_open}"
    assert all(r.rtt is not None and 0 < r.rtt < 0.5 for r in results if r.state != "silent")


async def test_tcp_scan_refuses_bad_targets_and_names_them(lab_a: Lab) -> None:
    with pytest.raises(ValueError, match=r"port must be 1\.\.65535"):
        await aioxdp.tcp_scan([(lab_a.b.ip, 0)])
    with pytest.raises(TypeError, match=r"\(host, port\) tuple"):
        await aioxdp.tcp_scan([lab_a.b.ip])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="at least one"):
        await aioxdp.tcp_scan([])
    with pytest.raises(ValueError, match="3 targets exceed the limit of 2"):
        await aioxdp.tcp_scan([(lab_a.b.ip, p) for p in (1, 2, 3)], max_targets=2)
    unrouted = await aioxdp.tcp_scan([("198.19.250.1", 80), (lab_a.b.ip, 9)], timeout=0.3)
    assert unrouted[0].state == "error"
    assert "no route" in (unrouted[0].error or "")
    assert unrouted[1].state == "closed"
