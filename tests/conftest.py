"""Shared helpers of the test suite (fixtures come from aioxdp's pytest plugin)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
PYTHON = sys.executable
sys.path.insert(0, str(TESTS.parent / "bench"))

# Run a command as nobody, with no capabilities at all.
AS_NOBODY = [
    "setpriv",
    "--reuid=nobody",
    "--regid=nogroup",
    "--clear-groups",
    "--inh-caps=-all",
]  # the soak test runs bench/soak.py's core


def wait_until(
    predicate: Callable[[], bool], *, timeout: float = 5.0, interval: float = 0.02
) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def link_stat(host: Any, name: str) -> int:
    """A counter of ``host``'s veth as its kernel keeps it (rx_packets, tx_packets...)."""
    return int(host.run("cat", f"/sys/class/net/{host.ifname}/statistics/{name}").stdout)


def start_python(code: str, *, prefix: list[str] | None = None) -> subprocess.Popen[str]:
    """Run ``code`` in a fresh interpreter (optionally under a prefix like ip netns exec)."""
    return subprocess.Popen(
        [*(prefix or []), PYTHON, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_line(proc: subprocess.Popen[str], *, timeout: float = 30.0) -> str:
    """First stdout line of ``proc``; fails with its stderr if it dies first."""
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            proc.kill()
            pytest.fail(f"no output from child within {timeout}s")
    line = proc.stdout.readline()
    if not line:
        proc.wait(5)
        assert proc.stderr is not None
        pytest.fail(f"child exited {proc.returncode}: {proc.stderr.read()}")
    return line.strip()


@pytest.fixture(autouse=True)
def _no_leaks(xdp_leak_check: object) -> None:
    """Every test: what it opened (sockets, labs) it closed, with no frame out."""
