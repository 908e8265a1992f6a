"""``aioxdp ping`` against iputils' ping (20221126), row by row, on the same
lab targets: exit code, and the lines a script would parse, with the
figures that differ run to run (times, rates) masked.

Where aioxdp deliberately differs, the test says so and checks aioxdp's
own clear answer instead (README, "aioxdp ping": where it differs).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import read_line_matching

from aioxdp.testing import Lab

FAR = "198.19.0.0/16"  # routed via b; what b does with it depends on the row
NOBODY = "198.18.0.77"  # on the link, nobody answers ARP for it

# numbers that change from run to run: times in ms, and rates
_DECIMAL = re.compile(r"\d+\.\d+")
_TIME = re.compile(r"time[= ]\d+(\.\d+)?( ?ms)")


def masked(line: str) -> str:
    return _DECIMAL.sub("X", _TIME.sub(r"time=X\2", line))


def run(lab: Lab, tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``ping`` (iputils) or ``aioxdp ping`` with ``args``, in host a."""
    if tool == "iputils":
        return lab.a.run("ping", *args, check=False, timeout=timeout)
    return lab.a.run(sys.executable, "-m", "aioxdp", "ping", *args, check=False, timeout=timeout)


def both(lab: Lab, *args: str) -> tuple[subprocess.CompletedProcess[str], ...]:
    return run(lab, "iputils", *args), run(lab, "aioxdp", *args)


def parsed(out: str) -> list[str]:
    """The lines a script reads, figures masked (a flood's dots rendered first)."""
    return [masked(line) for line in rendered(out).split("\n")]


def rendered(out: str) -> str:
    """What a terminal shows of ``out``: a backspace moves back, a space overwrites."""
    lines = []
    for raw in out.split("\n"):
        cells: list[str] = []
        at = 0
        for ch in raw:
            if ch == "\b":
                at = max(at - 1, 0)
                continue
            if at < len(cells):
                cells[at] = ch
            else:
                cells.append(ch)
            at += 1
        lines.append("".join(cells).rstrip())
    return "\n".join(lines)


@pytest.fixture
def lab(lab_a: Lab) -> Lab:
    """b forwards, without ICMP rate limits (per peer or global), and a routes FAR via b."""
    b = lab_a.b
    for key in ("icmp_ratelimit=0", "icmp_msgs_per_sec=100000", "icmp_msgs_burst=10000"):
        b.run("sysctl", "-qw", f"net.ipv4.{key}")
    b.run("sysctl", "-qw", "net.ipv4.conf.all.forwarding=1")
    lab_a.a.run("ip", "route", "add", FAR, "via", b.ip)
    return lab_a


def test_a_reply_run_line_for_line(lab: Lab) -> None:
    theirs, ours = both(lab, "-c", "3", "-i", "0.2", lab.b.ip)
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert parsed(ours.stdout) == parsed(theirs.stdout)


def test_a_lab_address_nobody_has(lab: Lab) -> None:
    theirs, ours = both(lab, "-c", "3", "-i", "0.2", NOBODY)
    assert ours.returncode == theirs.returncode == 1, ours.stderr
    assert parsed(ours.stdout) == parsed(theirs.stdout)
    assert "3 packets transmitted, 0 received, +3 errors, 100% packet loss" in ours.stdout
    assert ours.stdout.count("Destination Host Unreachable") == 3


@pytest.mark.parametrize(
    ("on_b", "words"),
    [
        ([], "Destination Net Unreachable"),  # b forwards, but has no route onward
        (["ip", "route", "add", "prohibit", "198.19.7.0/24"], "Packet filtered"),
        (["ip", "route", "add", "198.19.7.0/24", "via", "198.18.0.1"], "Time to live exceeded"),
    ],
    ids=["no route onward", "prohibit route", "ttl 1 through b"],
)
def test_icmp_errors_from_the_peer(lab: Lab, on_b: list[str], words: str) -> None:
    if on_b:
        lab.b.run(*on_b)
    ttl = ["-t", "1"] if "Time" in words else []
    args = ("-c", "3", "-i", "0.2", *ttl, "198.19.7.7")
    theirs = run(lab, "iputils", *args)
    # b's kernel sends routing errors 5 in a burst, then one a second to a
    # sender (net.ipv4.route.error_burst/error_cost, global, not the lab's to
    # change): six within a second lose the sixth, so ours waits for one more
    time.sleep(1.5)
    ours = run(lab, "aioxdp", *args)
    assert ours.returncode == theirs.returncode == 1, ours.stderr
    assert parsed(ours.stdout) == parsed(theirs.stdout)
    assert ours.stdout.count(f"From {lab.b.ip} icmp_seq=") == 3
    assert ours.stdout.count(words) == 3
    assert "+3 errors" in ours.stdout


def test_flood_times_the_wire_not_a_queue(lab: Lab) -> None:
    theirs, ours = both(lab, "-f", "-q", "-c", "2000", lab.b.ip)
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert parsed(ours.stdout) == parsed(theirs.stdout)  # ipg/ewma included
    avg_ms = float(re.search(r"= [\d.]+/([\d.]+)/", ours.stdout).group(1))  # type: ignore[union-attr]
    # one request at a time, as ping -f: no probe waits behind 255 others
    assert avg_ms < 1.0, ours.stdout


def interrupted(lab: Lab, tool: str, *args: str, after: str) -> subprocess.CompletedProcess[str]:
    """Run until ``after`` is printed (or a second passed), then Ctrl-C."""
    argv = ["ping"] if tool == "iputils" else [sys.executable, "-m", "aioxdp", "ping"]
    proc = lab.a.popen(*argv, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        read_line_matching(proc, after)
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_flood_with_a_preload_keeps_that_many_in_flight(lab: Lab) -> None:
    theirs = run(lab, "iputils", "-f", "-q", "-l", "8", "-c", "2000", lab.b.ip)
    ours = run(lab, "aioxdp", "-f", "-q", "-l", "8", "-c", "2000", lab.b.ip)
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert [re.sub(r"\d+", "N", line) for line in parsed(ours.stdout)] == [
        re.sub(r"\d+", "N", line) for line in parsed(theirs.stdout)
    ]
    assert ", pipe 8, ipg/ewma" in ours.stdout


def test_flood_interrupted_loses_nothing(lab: Lab) -> None:
    theirs = interrupted(lab, "iputils", "-f", lab.b.ip, after="^PING")
    ours = interrupted(lab, "aioxdp", "-f", lab.b.ip, after="^PING")
    assert ours.returncode == theirs.returncode == 0, ours.stderr

    # how many went differs with the speed of each, and so does whether two
    # were ever in flight at once ("pipe N"): the shape is the same
    def shape(out: str) -> list[str]:
        return [re.sub(r"\d+", "N", line.replace(", pipe 2", "")) for line in parsed(out)]

    assert shape(ours.stdout) == shape(theirs.stdout)
    sent, received = map(
        int, re.findall(r"(\d+) packets transmitted, (\d+) received", ours.stdout)[0]
    )
    assert sent == received > 100, ours.stdout  # in flight at the interrupt: not lost


def test_flood_dots_are_erased_and_the_summary_follows_them(lab: Lab) -> None:
    theirs, ours = both(lab, "-f", "-c", "300", lab.b.ip)
    assert ours.returncode == theirs.returncode == 0
    # on a terminal: the dots line is empty, and "---" follows it at once
    assert rendered(ours.stdout).split("\n")[1:3] == ["", f"--- {lab.b.ip} ping statistics ---"]
    assert parsed(ours.stdout) == parsed(theirs.stdout)


@pytest.mark.parametrize("size", ["0", "7", "8", "15", "16", "1473", "4000", "65507"])
def test_sizes_small_and_over_the_mtu(lab: Lab, size: str) -> None:
    # over 1472 bytes both send IPv4 fragments, and put the reply back together
    theirs, ours = both(lab, "-c", "2", "-i", "0.2", "-s", size, lab.b.ip)
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert parsed(ours.stdout) == parsed(theirs.stdout)
    assert ("time=" in ours.stdout) == (int(size) >= 16)  # iputils times a timeval or more


def test_wait_0_and_the_interface_header(lab: Lab) -> None:
    theirs, ours = both(lab, "-c", "2", "-i", "0.2", "-W", "0", "-I", lab.a.ifname, lab.b.ip)
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert parsed(ours.stdout) == parsed(theirs.stdout)
    assert f"from {lab.a.ip} {lab.a.ifname}: 56(84) bytes" in ours.stdout


def test_without_a_count_it_runs_until_interrupted(lab: Lab) -> None:
    theirs = interrupted(lab, "iputils", "-i", "0.2", lab.b.ip, after="icmp_seq=1 ")
    ours = interrupted(lab, "aioxdp", "-i", "0.2", lab.b.ip, after="icmp_seq=1 ")
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert len(parsed(ours.stdout)) >= 10
    sent = int(re.findall(r"(\d+) packets transmitted", ours.stdout)[0])
    assert sent > 4  # not stopped after 4, as it was


def test_zero_interval_summary_has_ipg_and_ewma(lab: Lab) -> None:
    theirs, ours = both(lab, "-q", "-i", "0", "-c", "200", lab.b.ip)
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert parsed(ours.stdout) == parsed(theirs.stdout)
    assert ", ipg/ewma X/X ms" in parsed(ours.stdout)[-2]


def test_total_loss_time_is_the_time_of_the_probes(lab: Lab) -> None:
    # b does not forward: nothing comes back, not even an error
    lab.b.run("sysctl", "-qw", "net.ipv4.conf.all.forwarding=0")
    theirs, ours = both(lab, "-c", "3", "-i", "0.2", "-W", "1", "198.19.7.7")
    assert ours.returncode == theirs.returncode == 1, ours.stderr
    assert parsed(ours.stdout) == parsed(theirs.stdout)
    ms = int(re.findall(r"time (\d+)ms", ours.stdout)[0])
    assert 350 <= ms < 1000, ours.stdout  # two intervals, not the final wait


@pytest.mark.parametrize(
    "args",
    [["-c", "0"], ["-c", "abc"], ["-c", "-5"], ["-t", "300"], ["-s", "-1"]],
    ids=["-c 0", "-c abc", "-c -5", "-t 300", "-s -1"],
)
def test_bad_values_exit_1_with_one_line(lab: Lab, args: list[str]) -> None:
    theirs, ours = both(lab, *args, lab.b.ip)
    assert theirs.returncode == ours.returncode == 1, (theirs, ours)
    assert ours.stdout == theirs.stdout == ""
    assert ours.stderr.count("\n") == 1, ours.stderr
    assert "invalid argument" in ours.stderr
    assert args[0] in ours.stderr


def test_errors_found_while_starting_exit_2(lab: Lab) -> None:
    for args in (["-W", "nan"], ["-t", "0"], ["-I", "nosuch0"]):
        theirs, ours = both(lab, "-c", "1", *args, lab.b.ip)
        assert theirs.returncode == ours.returncode == 2, (args, theirs, ours)
        assert ours.stderr.count("\n") == 1, ours.stderr
        assert "Traceback" not in ours.stderr


def test_a_name_that_does_not_resolve(lab: Lab) -> None:
    theirs, ours = both(lab, "-c", "1", "nosuch.invalid")
    assert theirs.returncode == ours.returncode == 2
    # "ping: NAME: <getaddrinfo's words>", with our program name
    assert ours.stderr.replace("aioxdp:", "ping:") == theirs.stderr, (ours.stderr, theirs.stderr)


# -- where aioxdp deliberately differs: a clear reason, exit 2 --------------


@pytest.mark.parametrize("target", ["127.0.0.1", "198.18.0.1"], ids=["loopback", "own address"])
def test_local_addresses_name_the_reason(lab: Lab, target: str) -> None:
    assert run(lab, "iputils", "-c", "1", target).returncode == 0
    ours = run(lab, "aioxdp", "-c", "1", target)
    assert ours.returncode == 2
    assert "an address of this host; aioxdp sends through a NIC" in ours.stderr


@pytest.mark.parametrize(
    "args",
    [["0"], ["65536"], ["-c", "0", "80"]],
    ids=["port 0", "port 65536", "-c 0"],
)
def test_tcping_checks_its_arguments_before_printing(lab: Lab, args: list[str]) -> None:
    proc = lab.a.run(
        sys.executable, "-m", "aioxdp", "tcping", *args[:-1], lab.b.ip, args[-1], check=False
    )
    assert proc.returncode == 2, proc
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert "invalid argument" in proc.stderr


# -- IPv6: ping -6 against iputils' ping -6 ----------------------------------


@pytest.fixture
def lab6() -> Iterator[Lab]:
    """An IPv6 lab (2001:2::/48); b forwards IPv6, a routes FAR6 via b."""
    with Lab(ipv6=True) as made:
        made.b.run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        made.b.run("sysctl", "-qw", "net.ipv6.icmp.ratelimit=0")
        made.a.run("ip", "-6", "route", "add", FAR6, "via", made.b.ip6 or "")
        yield made


FAR6 = "2001:2:ff::/48"


@pytest.mark.parametrize(
    "args",
    [
        ["-6", "-c", "3", "-i", "0.2"],
        ["-c", "2", "-i", "0.2", "-s", "100", "-t", "9"],
        ["-6", "-c", "2", "-i", "0.2", "-I", "veth-a"],
        ["-f", "-q", "-c", "500"],
        ["-6", "-c", "2", "-i", "0.2", "-s", "3000"],
    ],
    ids=["-6", "size and hop limit", "interface header", "flood", "fragments"],
)
def test_ping6_line_for_line(lab6: Lab, args: list[str]) -> None:
    theirs, ours = both(lab6, *args, lab6.b.ip6 or "")
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert parsed(ours.stdout) == parsed(theirs.stdout)
    assert ours.stdout.startswith(f"PING {lab6.b.ip6}({lab6.b.ip6}) ")


@pytest.mark.parametrize(
    ("on_b", "words"),
    [
        (["ip", "-6", "route", "add", "unreachable", FAR6], "Destination unreachable: No route"),
        (
            ["ip", "-6", "route", "add", FAR6, "via", "2001:2::99"],
            "Time exceeded: Hop limit",
        ),
    ],
    ids=["no route onward", "hop limit 1 through b"],
)
def test_icmpv6_errors_from_the_peer(lab6: Lab, on_b: list[str], words: str) -> None:
    lab6.b.run(*[part.replace("2001:2::99", f"{lab6.subnet6.network_address}99") for part in on_b])
    hops = ["-t", "1"] if "Hop" in words else []
    theirs, ours = both(lab6, "-c", "3", "-i", "0.2", *hops, "2001:2:ff::7")
    assert ours.returncode == theirs.returncode == 1, ours.stderr
    assert parsed(ours.stdout) == parsed(theirs.stdout)
    assert ours.stdout.count(words) == 3


def test_ping6_to_a_neighbour_nobody_has(lab6: Lab) -> None:
    nobody = f"{lab6.subnet6.network_address}77"
    theirs, ours = both(lab6, "-c", "3", "-i", "0.2", nobody)
    assert ours.returncode == theirs.returncode == 1, ours.stderr
    assert parsed(ours.stdout) == parsed(theirs.stdout)
    assert ours.stdout.count("Destination unreachable: Address unreachable") == 3


@pytest.mark.parametrize("flag", ["-4", "-6"])
def test_a_literal_of_the_other_family_is_refused_as_ping_does(lab6: Lab, flag: str) -> None:
    target = (lab6.b.ip6 if flag == "-4" else lab6.b.ip) or ""
    theirs = run(lab6, "iputils", flag, "-c", "1", target)
    ours = run(lab6, "aioxdp", flag, "-c", "1", target)
    assert ours.returncode == theirs.returncode == 2
    assert ours.stdout == theirs.stdout == ""
    assert "Address family for hostname not supported" in theirs.stderr
    assert ours.stderr.strip() == f"aioxdp: {target}: Address family for hostname not supported"


@pytest.fixture
def named_lab6(lab6: Lab) -> Iterator[Lab]:
    """lab6, whose host a resolves peer-b to both of b's addresses
    (ip netns exec mounts /etc/netns/<ns>/hosts)."""
    etc = Path("/etc/netns") / lab6.a.netns
    etc.mkdir(parents=True)
    try:
        (etc / "hosts").write_text(f"{lab6.b.ip} peer-b\n{lab6.b.ip6} peer-b\n")
        yield lab6
    finally:
        shutil.rmtree(etc)
        if etc.parent.exists() and not any(etc.parent.iterdir()):
            etc.parent.rmdir()


@pytest.mark.parametrize("flag", [[], ["-4"], ["-6"]], ids=["either", "-4", "-6"])
def test_a_name_with_both_families_resolves_as_iputils_chooses(
    named_lab6: Lab, flag: list[str]
) -> None:
    """The same address, by the resolver's order or the flag. (iputils also
    names the peer by a reverse lookup in its lines; aioxdp prints addresses,
    as ping -n does: README, where it differs.)"""
    theirs = run(named_lab6, "iputils", *flag, "-c", "1", "peer-b")
    ours = run(named_lab6, "aioxdp", *flag, "-c", "1", "peer-b")
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    address = re.compile(r"\(([0-9a-f]*[.:][0-9a-f:.]+)\)")  # "(198.18.0.2)", not "(84)"
    chosen = [address.findall(out.stdout.splitlines()[0])[-1] for out in (theirs, ours)]
    assert chosen[0] == chosen[1]
    if flag:
        assert chosen[1] == (named_lab6.b.ip if flag == ["-4"] else named_lab6.b.ip6)
    assert "1 packets transmitted, 1 received, 0% packet loss" in ours.stdout
