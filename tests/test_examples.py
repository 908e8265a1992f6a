"""Every example runs, as a user would run it, and says what it should."""

from __future__ import annotations

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
    assert "in native mode via link" in proc.stdout
    assert "in generic mode via link" in proc.stdout
    assert "still has" not in proc.stdout
    assert "not visible" not in proc.stdout
    assert "BPF_PROG_TEST_RUN of an ICMP echo request: PASS" in proc.stdout
