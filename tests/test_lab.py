"""The lab: namespaces and veth made and removed, isolation, stale cleanup."""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import subprocess
import threading

import pytest
from conftest import read_line, start_python, wait_until

from aioxdp.errors import LabError
from aioxdp.testing import Lab
from aioxdp.testing.lab import LAB_NETWORK, LAB_NETWORK6, LEASE_DIR
from aioxdp.testing.netns import current_netns_inode


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_lab_builds_two_hosts_and_removes_everything() -> None:
    with Lab() as lab:
        made = {lab.a.netns, lab.b.netns}
        assert made <= namespaces()
        for host in lab.hosts:
            assert ipaddress.ip_address(host.ip) in LAB_NETWORK
            link = host.run("ip", "-o", "link", "show", host.ifname).stdout
            assert "state UP" in link
            assert host.mac in link
            addr = host.run("ip", "-o", "-4", "addr", "show", host.ifname).stdout
            assert f"{host.ip}/24" in addr
            # nothing routes out: only the lab subnet is reachable
            routes = host.run("ip", "-4", "route", "show").stdout.strip().splitlines()
            assert routes == [
                f"{lab.subnet} dev {host.ifname} proto kernel scope link src {host.ip}"
            ]
        index = lab.index
    assert not made & namespaces()
    assert not (LEASE_DIR / str(index)).exists()


def test_kernel_ping_crosses_the_lab(lab: Lab) -> None:
    out = lab.b.run("ping", "-c", "3", "-i", "0.2", "-W", "2", lab.a.ip).stdout
    assert "3 packets transmitted, 3 received, 0% packet loss" in out


def test_two_labs_coexist_on_distinct_subnets() -> None:
    with Lab() as one, Lab() as two:
        assert one.index != two.index
        assert not one.subnet.overlaps(two.subnet)
        # each lab only reaches itself
        assert one.b.run("ping", "-c1", "-W1", one.a.ip, check=False).returncode == 0
        assert one.b.run("ping", "-c1", "-W1", two.a.ip, check=False).returncode != 0


def test_enter_moves_this_thread_and_restores_it_even_on_error(lab: Lab) -> None:
    outside = current_netns_inode()
    # a thread that was already running stays where it was: only ours moves
    go, seen = threading.Event(), []

    def look() -> None:
        go.wait(5)
        seen.append(current_netns_inode())

    other = threading.Thread(target=look)
    other.start()
    with lab.a.enter():
        inside = current_netns_inode()
        assert inside != outside
        go.set()
        other.join()
        assert seen == [outside]
    assert current_netns_inode() == outside
    with pytest.raises(RuntimeError, match="boom"), lab.b.enter():
        raise RuntimeError("boom")
    assert current_netns_inode() == outside


def test_enter_after_close_says_so() -> None:
    lab = Lab().open()
    lab.close()
    with pytest.raises(LabError, match="does not exist"), lab.a.enter():
        pass


def test_stale_lab_of_a_killed_process_is_removed_by_the_next_lab() -> None:
    child = start_python(
        "import time; from aioxdp.testing import Lab\n"
        "lab = Lab().open()\n"
        "print(lab.index, lab.a.netns, lab.b.netns, flush=True)\n"
        "time.sleep(60)\n"
    )
    try:
        index, *left = read_line(child).split()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert set(left) <= namespaces(), "SIGKILL leaves the namespaces until the next lab"
    stale = {name: ns_inode(name) for name in left}
    with Lab() as fresh:
        # the dead lab's namespaces are gone; a name may be reused, a namespace is not
        for name, inode in stale.items():
            assert name not in namespaces() or ns_inode(name) != inode
        assert fresh.b.run("ping", "-c1", "-W2", fresh.a.ip).returncode == 0
    assert not set(left) & namespaces()
    assert not (LEASE_DIR / index).exists()


def ns_inode(name: str) -> int:
    return os.stat(f"/run/netns/{name}").st_ino


def test_sigterm_removes_the_lab() -> None:
    child = start_python(
        "import time; from aioxdp.testing import Lab\n"
        "lab = Lab().open()\n"
        "print(lab.a.netns, lab.b.netns, flush=True)\n"
        "time.sleep(60)\n"
    )
    left = read_line(child).split()
    child.send_signal(signal.SIGTERM)
    assert child.wait(10) == -signal.SIGTERM
    assert wait_until(lambda: not set(left) & namespaces())


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="queues"):
        Lab(queues=0)
    with pytest.raises(ValueError, match="mtu"):
        Lab(mtu=20)


def test_multi_queue_veth() -> None:
    with Lab(queues=4) as lab:
        out = lab.a.run("ip", "-d", "link", "show", lab.a.ifname).stdout
        assert "numrxqueues 4" in out or "numtxqueues 4" in out


def test_lab_veth_finish_their_checksums(lab: Lab) -> None:
    # The lab turns TX checksum offload off itself (no ethtool binary needed);
    # ethtool's own view of the features is the witness.
    for host in lab.hosts:
        features = host.run("ethtool", "-k", host.ifname).stdout
        assert re.search(r"^tx-checksumming: off", features, re.M), features
        assert re.search(r"^\s+tx-checksum-ip-generic: off", features, re.M), features


def test_an_ipv6_lab_gives_each_host_a_benchmarking_address_ready_at_once() -> None:
    with Lab(ipv6=True) as lab:
        assert lab.subnet6.prefixlen == 64
        assert lab.subnet6.subnet_of(LAB_NETWORK6)
        for host in lab.hosts:
            assert host.ip6 is not None
            assert ipaddress.ip_address(host.ip6) in lab.subnet6
            addrs = host.run("ip", "-o", "-6", "addr", "show", host.ifname).stdout
            assert f"{host.ip6}/64" in addrs
            assert "tentative" not in addrs  # no DAD to wait for
            assert "scope link" in addrs  # the kernel's own link-local address
            # nothing routes out: the lab's /64 and link-local, no default route
            routes = host.run("ip", "-6", "route", "show").stdout
            assert "default" not in routes
            for line in routes.strip().splitlines():
                prefix = ipaddress.IPv6Network(line.split()[0])
                assert prefix.subnet_of(LAB_NETWORK6) or prefix.subnet_of(
                    ipaddress.IPv6Network("fe80::/10")
                ), line
        assert lab.b.ip6 is not None
        out = lab.a.run("ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", lab.b.ip6).stdout
        assert "2 packets transmitted, 2 received, 0% packet loss" in out


def test_a_default_lab_has_ipv6_off() -> None:
    with Lab() as lab:
        assert lab.a.ip6 is None
        assert lab.b.ip6 is None
        flag = lab.a.run("cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6").stdout.strip()
        assert flag == "1"
        assert not lab.a.run("ip", "-o", "-6", "addr", "show").stdout.strip()
    with pytest.raises(ValueError, match="IPv6 needs at least 1280"):
        Lab(ipv6=True, mtu=1000)
