"""Every example runs, as a user would run it, and says what it should."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import TESTS

EXAMPLES = TESTS.parent / "examples"


def run_example(name: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


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
