"""``aioxdp fping`` against fping 5.1, line for line, on the same lab targets.

Both run in lab host a: b answers from its kernel, and 198.19.240.0/24 is
routed via b, whose kernel drops it silently (no forwarding), so fping sees
timeouts and no ICMP errors (which aioxdp does not print yet). Each case
compares the exit code, stdout's lines (sorted: replies interleave as they
come) and stderr's lines in order, with every decimal number (times) made
``N.N``; counts, sequence numbers, widths and words must be equal.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aioxdp.testing import Lab

SILENT_NET = "198.19.240.0/24"
SILENT = ["198.19.240.9", "198.19.240.10"]
DECIMAL = re.compile(r"\d+\.\d+")


def shapes(text: str) -> list[str]:
    return [DECIMAL.sub("N.N", line.rstrip()) for line in text.splitlines()]


def fping(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    """The real fping, in lab host a."""
    return subprocess.run(
        ["ip", "netns", "exec", lab.a.netns, "fping", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def aioxdp_fping(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    """``aioxdp fping``, in lab host a."""
    return subprocess.run(
        ["ip", "netns", "exec", lab.a.netns, sys.executable, "-m", "aioxdp", "fping", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def same(ours: subprocess.CompletedProcess[str], theirs: subprocess.CompletedProcess[str]) -> None:
    """Equal exit codes, stdout lines (sorted) and stderr lines (in order), times aside."""
    assert ours.returncode == theirs.returncode, (ours.stderr, theirs.stderr)
    assert sorted(shapes(ours.stdout)) == sorted(shapes(theirs.stdout)), (
        ours.stdout,
        theirs.stdout,
    )
    assert shapes(ours.stderr) == shapes(theirs.stderr), (ours.stderr, theirs.stderr)


@pytest.fixture
def lab_silent(lab_a: Lab) -> Lab:
    lab_a.a.run("ip", "route", "add", SILENT_NET, "via", lab_a.b.ip)
    lab_a.a.run("ping", "-c", "1", "-W", "1", lab_a.b.ip)  # b's MAC known to both kernels
    return lab_a


@pytest.mark.parametrize(
    "args",
    [
        ["-c", "3", "-p", "20"],
        ["-C", "3", "-p", "20"],
        ["-c", "2", "-q", "-p", "20"],
        ["-c", "2", "-p", "20", "-4"],
        ["-c", "1", "-p", "20", "-b", "100"],
        ["-s", "-c", "2", "-p", "20"],
        ["-t", "100", "-r", "1"],
        ["-a", "-t", "100", "-r", "1"],
        ["-u", "-t", "100", "-r", "1"],
        ["-e", "-t", "100", "-r", "1"],
        ["-s", "-t", "100", "-r", "0"],
        ["-c", "1", "-i", "5", "-p", "20", "-t", "150"],
    ],
)
def test_fping_lines_and_exit_codes_match(lab_silent: Lab, args: list[str]) -> None:
    targets = [lab_silent.b.ip, *SILENT]
    same(aioxdp_fping(lab_silent, *args, *targets), fping(lab_silent, *args, *targets))


def test_through_a_named_interface(lab_silent: Lab) -> None:
    ifname = lab_silent.a.ifname
    same(
        aioxdp_fping(lab_silent, "-I", ifname, "-c", "2", "-p", "20", lab_silent.b.ip),
        fping(lab_silent, "-I", ifname, "-c", "2", "-p", "20", lab_silent.b.ip),
    )


@pytest.mark.parametrize(
    "args",
    [
        ["-g", "198.19.240.8/30", "-c", "1", "-p", "20"],
        ["-g", "198.19.240.9", "198.19.240.11", "-a", "-r", "0", "-t", "100"],
    ],
)
def test_generated_targets_match(lab_silent: Lab, args: list[str]) -> None:
    same(aioxdp_fping(lab_silent, *args), fping(lab_silent, *args))


def test_targets_from_a_file_match(lab_silent: Lab, tmp_path: Path) -> None:
    path = tmp_path / "targets"
    path.write_text(f"# the peer and a silent one\n{lab_silent.b.ip}\n\n{SILENT[0]}  # quiet\n")
    ours = aioxdp_fping(lab_silent, "-c", "2", "-p", "20", "-f", str(path))
    theirs = fping(lab_silent, "-c", "2", "-p", "20", "-f", str(path))
    assert theirs.returncode == 1
    same(ours, theirs)


@pytest.mark.parametrize(
    "args", [["-c", "0"], ["-p", "-5"], ["-t", "abc"], ["-g", "198.19.240.0/40"]]
)
def test_usage_errors_exit_as_fping_does(lab_silent: Lab, args: list[str]) -> None:
    theirs = fping(lab_silent, *args, lab_silent.b.ip)
    ours = aioxdp_fping(lab_silent, *args, lab_silent.b.ip)
    assert ours.returncode == theirs.returncode == 1, (ours.stderr, theirs.stderr)
    assert ours.stderr.count("\n") == 1, "one line that names the flag"
    assert ours.stdout == theirs.stdout == ""


def test_all_answer_exits_zero_and_too_many_targets_are_refused(lab_silent: Lab) -> None:
    assert aioxdp_fping(lab_silent, "-c", "1", lab_silent.b.ip).returncode == 0
    refused = aioxdp_fping(lab_silent, "-g", "198.18.0.0/15", "-c", "1")
    assert refused.returncode == 1
    assert "131070 targets exceed the limit of 65536" in refused.stderr
    assert refused.stdout == ""
    two = aioxdp_fping(lab_silent, "--max-targets", "1", "-c", "1", lab_silent.b.ip, SILENT[0])
    assert two.returncode == 1
    assert "2 targets exceed the limit of 1" in two.stderr
    helped = aioxdp_fping(lab_silent, "-h")
    assert helped.returncode == fping(lab_silent, "-h").returncode == 0
    assert "-g" in helped.stdout


@pytest.fixture
def lab6_silent() -> Iterator[Lab]:
    """An IPv6 lab; SILENT6 is routed via b, which drops it without a word
    (a blackhole route: without one, b's kernel would answer "no route")."""
    with Lab(ipv6=True) as lab:
        lab.a.run("ip", "-6", "route", "add", SILENT6_NET, "via", lab.b.ip6 or "")
        lab.b.run("ip", "-6", "route", "add", "blackhole", SILENT6_NET)
        lab.a.run("ping", "-c", "1", "-W", "1", lab.b.ip6 or "")  # neighbours known
        yield lab


SILENT6_NET = "2001:2:ee::/64"
SILENT6 = "2001:2:ee::9"


@pytest.mark.parametrize(
    ("args", "which"),
    [
        (["-c", "2", "-p", "20"], "both"),
        (["-C", "2", "-p", "20"], "both"),
        (["-6", "-c", "2", "-p", "20"], "ipv6"),
        (["-4", "-c", "1"], "ipv6"),
        (["-6", "-c", "1"], "ipv4"),
        (["-s", "-c", "1", "-p", "20"], "ipv6"),
        (["-e", "-t", "100", "-r", "1"], "ipv6"),
    ],
    ids=["both families", "-C", "-6", "-4 refuses IPv6", "-6 refuses IPv4", "-s", "default mode"],
)
def test_fping6_lines_and_exit_codes_match(lab6_silent: Lab, args: list[str], which: str) -> None:
    lab = lab6_silent
    targets = {
        "both": [lab.b.ip6 or "", lab.b.ip, SILENT6],
        "ipv6": [lab.b.ip6 or "", SILENT6],
        "ipv4": [lab.b.ip],
    }[which]
    same(aioxdp_fping(lab, *args, *targets), fping(lab, *args, *targets))
