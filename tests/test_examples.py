"""Every example runs, as a user would run it, and says what it should."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import TESTS

from aioxdp.testing import Host, Lab

EXAMPLES = TESTS.parent / "examples"


def run_example(name: str, *args: str, host: Host | None = None) -> str:
    argv = [sys.executable, str(EXAMPLES / name), *args]
    if host is not None:
        proc = host.run(*argv, check=False, timeout=120)
    else:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_ping_example(lab: Lab) -> None:
    out = run_example("ping.py", lab.b.ip, host=lab.a)
    assert re.search(
        rf"^64 bytes from {re.escape(lab.b.ip)}: icmp_seq=5 ttl=64 time=[\d.]+ ms$", out, re.M
    )
    assert "5/5 replies, loss 0%" in out


def test_multiping_example(lab: Lab) -> None:
    extra = str(lab.subnet[7])
    lab.b.run("ip", "addr", "add", f"{extra}/24", "dev", lab.b.ifname)
    out = run_example("multiping.py", lab.b.ip, extra, host=lab.a)
    assert re.search(rf"^{re.escape(lab.b.ip)}\s+100/100 replies", out, re.M)
    assert re.search(rf"^{re.escape(extra)}\s+100/100 replies", out, re.M)


def test_custom_protocol_example_answers_the_peers_ping(lab: Lab) -> None:
    server = lab.a.popen(
        sys.executable,
        str(EXAMPLES / "custom_protocol.py"),
        lab.a.ifname,
        lab.a.ip,
        "4",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    assert server.stdout.readline().startswith(f"answering pings to {lab.a.ip}")
    ping = lab.b.run("ping", "-c", "5", "-i", "0.2", "-W", "1", lab.a.ip)
    out, err = server.communicate(timeout=20)
    assert server.returncode == 0, err
    assert "5 packets transmitted, 5 received" in ping.stdout
    assert ping.stdout.count("ttl=99") == 5  # answered by the example, not the kernel
    assert "answered 5, malformed {}" in out


def test_attach_forwarder() -> None:
    out = run_example("attach_forwarder.py")
    assert "aioxdp_forwarder on veth-a: id " in out
    assert "native mode, via link" in out
    assert "test_run verdict: PASS" in out


def test_demo_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "aioxdp", "demo"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "aioxdp forwarder attached to veth-a in native mode (bpf_link)" in out
    assert re.search(
        r"^64 bytes from 198\.1[89]\.\d+\.2: icmp_seq=5 ttl=64 time=[\d.]+ ms$", out, re.M
    )
    assert "5 packets transmitted, 5 received, 0% packet loss" in out
    assert "50000 packets transmitted, 50000 received, 0% packet loss" in out
    assert (
        "the kernel's own ping on the same interface still works: 2 packets transmitted, 2 received"
        in out
    )
    assert re.search(r"^removed lab \d+$", out, re.M)
