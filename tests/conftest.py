"""Shared helpers of the test suite (fixtures come from aioxdp's pytest plugin)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from aioxdp.testing import Lab

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


class FlowEvents:
    """A test protocol's record of flow control and of connection_lost."""

    def __init__(self) -> None:
        self.lost: list[Exception | None] = []
        self.paused = 0
        self.resumed = 0

    def pause_writing(self) -> None:
        self.paused += 1

    def resume_writing(self) -> None:
        self.resumed += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)


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


async def eventually(
    predicate: Callable[[], object], *, timeout: float = 10.0, interval: float = 0.005
) -> bool:
    """Await ``predicate`` true, checking every ``interval`` while the loop runs.

    True as soon as it holds; False if ``timeout`` passes first (assert on the
    result with a message that says what was awaited).
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)


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


def tshark(
    lab: Any, count: int, capture_filter: str, *fields: str, options: Sequence[str] = ()
) -> subprocess.Popen[str]:
    """tshark in lab host b, decoding ``count`` frames into comma-separated
    ``fields`` (``options``: more of its flags, such as ``-o`` preferences);
    returned once it captures."""
    proc: subprocess.Popen[str] = lab.b.popen(
        "tshark",
        *("-i", lab.b.ifname, "-n", "-l", "-c", str(count), "-f", capture_filter),
        *options,
        *("-T", "fields", "-E", "separator=,"),
        *[x for field in fields for x in ("-e", field)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_capture(proc)
    return proc


def wait_for_capture(proc: subprocess.Popen[str]) -> None:
    """Return once tshark (``proc``, stderr piped as text) captures: when its
    dumpcap has the interface open and the filter set ("Capture started"),
    not at "Capturing on", which it prints before (a ping started then lost
    its first requests). Fails if tshark ends first."""
    assert proc.stderr is not None
    while True:
        line = proc.stderr.readline()
        if not line:
            pytest.fail(f"tshark ended before capturing (exit {proc.wait()})")
        if "Capture started" in line:
            return


def read_line_matching(proc: subprocess.Popen[Any], pattern: str, *, timeout: float = 30.0) -> str:
    """The first stdout line of ``proc`` that matches ``pattern`` (``re.search``).

    Reads the pipe's descriptor a byte at a time, so nothing past that line is
    taken: ``communicate()`` still gets the rest (do not read ``proc.stdout``
    before this). Fails, naming the pattern, if no such line comes within
    ``timeout`` or the output ends first.
    """
    import selectors

    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    line = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                pytest.fail(
                    f"no line matching {pattern!r} within {timeout}s; last lines {seen[-5:]}"
                )
            byte = os.read(fd, 1)
            if not byte:
                pytest.fail(
                    f"output ended before a line matching {pattern!r}; last lines {seen[-5:]}"
                )
            if byte != b"\n":
                line += byte
                continue
            text = line.decode(errors="replace").rstrip("\r")
            if re.search(pattern, text):
                return text
            seen.append(text)
            line = b""


@pytest.fixture
def lab_a() -> Iterator[Lab]:
    """A lab, with this thread inside host a for the test."""
    with Lab() as lab, lab.a.enter():
        yield lab


@pytest.fixture(autouse=True)
def _no_leaks(xdp_leak_check: object) -> None:
    """Every test: what it opened (sockets, labs) it closed, with no frame out."""
