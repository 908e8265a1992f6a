"""Thousands of hosts in one run: no reply lost by construction, and what
the kernel drops anyway reported in the result.

198.19.0.0/17 is routed via lab host b, whose driver answers every echo
with the XDP reflector, so neither b's kernel nor a neighbour table bounds
anything. The reflector's own counter is the witness of what was sent.
"""

from __future__ import annotations

import asyncio
import ipaddress
import pickle
import sys
import time
from collections.abc import Iterator

import pytest

import aioxdp
from aioxdp.testing import Lab
from aioxdp.testing.reflector import Reflector

FAR = ipaddress.IPv4Network("198.19.0.0/17")


def far_hosts(n: int) -> list[str]:
    return [str(FAR.network_address + 1 + i) for i in range(n)]


@pytest.fixture
def reflected(lab_a: Lab) -> Iterator[Reflector]:
    lab_a.a.run("ip", "route", "add", str(FAR), "via", lab_a.b.ip)
    with Reflector(lab_a.b, udp_ports=[7]) as reflector:
        yield reflector


async def test_two_thousand_hosts_three_probes_each_lose_nothing(
    lab_a: Lab, reflected: Reflector
) -> None:
    hosts = far_hosts(2000)
    start = time.monotonic()
    results = await aioxdp.multiping(hosts, count=3, interval=0.001, timeout=2.0)
    elapsed = time.monotonic() - start
    assert [r.host for r in results] == hosts  # host order
    lost = {r.host: r.sent - r.received for r in results if r.received != 3}
    assert not lost, f"{len(lost)} hosts lost replies: {list(lost.items())[:5]}"
    assert all(r.sent == 3 and [x.seq for x in r.replies] == [1, 2, 3] for r in results)
    assert reflected.counters()["icmp"] == 6000  # the peer's driver saw every probe once
    assert results[0].kernel_drops == {}
    assert elapsed < 30, f"{elapsed:.1f}s"  # a bound on the run, not a benchmark
    # the results are a view in host order, each made when read, equal each time
    assert isinstance(results, aioxdp.PingResults)
    assert len(results) == 2000
    assert results[-1] == results[1999]
    assert results[10:13] == [results[10], results[11], results[12]]
    assert pickle.loads(pickle.dumps(results[7])) == results[7]
    assert results[7].to_dict()["received"] == 3


def known_neighbour(lab: Lab) -> None:
    """b's MAC in a's neighbour table, so no ARP of ours needs a paused reader."""
    mac = lab.b.run("cat", f"/sys/class/net/{lab.b.ifname}/address").stdout.strip()
    lab.a.run("ip", "neigh", "replace", lab.b.ip, "lladdr", mac, "dev", lab.a.ifname)


SMALL_RINGS = aioxdp.UmemConfig(fill_size=256, rx_size=256)


async def test_the_flight_fits_the_rings_even_when_nobody_reads(
    lab_a: Lab, reflected: Reflector
) -> None:
    """Reading stops for 0.3 s while 1000 probes are due. With 256-slot fill
    and RX rings the session keeps at most 192 in flight (the rings less a
    batch, even when asked for more), so the replies wait in the rings and
    none is lost."""
    known_neighbour(lab_a)
    hosts = far_hosts(1000)
    async with aioxdp.Interface(lab_a.a.ifname, config=SMALL_RINGS) as nic:  # multiping borrows it
        reader = nic.transport(0)
        reader.pause_reading()
        asyncio.get_running_loop().call_later(0.3, reader.resume_reading)
        results = await aioxdp.multiping(
            hosts, count=1, interval=0.001, timeout=1.5, max_in_flight=100_000
        )
    assert reflected.counters()["icmp"] == 1000
    assert sum(r.received for r in results) == 1000
    assert results[0].kernel_drops == {}


BLAST = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(1000):
    s.sendto(b"x" * 64, (sys.argv[1], 9))
"""


async def test_what_the_kernel_drops_anyway_is_in_the_result(
    lab_a: Lab, reflected: Reflector
) -> None:
    """Another endpoint's burst arrives while nobody reads: the fill ring runs
    empty and the kernel drops frames, ping replies among them. Each result
    carries the kernel's count, and it is exactly what went missing."""
    known_neighbour(lab_a)
    got = []

    class Count(aioxdp.PacketProtocol):
        def packets_received(self, batch: aioxdp.PacketBatch) -> None:
            got.append(len(batch))

    async with aioxdp.Interface(lab_a.a.ifname, config=SMALL_RINGS) as nic:
        await nic.create_packet_endpoint(Count, rules=[aioxdp.Rule("udp", dst_port=9)])
        reader = nic.transport(0)

        async def burst_while_paused() -> None:
            await asyncio.sleep(0.05)
            reader.pause_reading()
            await asyncio.to_thread(lab_a.b.run, sys.executable, "-c", BLAST, lab_a.a.ip)
            await asyncio.sleep(0.1)
            reader.resume_reading()

        burst = asyncio.get_running_loop().create_task(burst_while_paused())
        results = await aioxdp.multiping(far_hosts(100), count=3, interval=0.05, timeout=1.0)
        await burst
    missing = (1000 - sum(got)) + sum(r.sent - r.received for r in results)
    assert missing > 0, "1000 datagrams fit 256 fill slots?"
    assert all(r.kernel_drops == results[0].kernel_drops for r in results)
    assert results[0].kernel_drops.get("rx_dropped") == missing, (missing, results[0].kernel_drops)


async def test_hosts_that_cannot_be_probed_are_reported_each(
    lab_a: Lab, reflected: Reflector
) -> None:
    unrouted = "198.19.250.1"  # outside the /17
    silent = str(lab_a.subnet[77])  # on the link, nobody answers ARP
    hosts = [*far_hosts(3), unrouted, silent]
    results = await aioxdp.multiping(hosts, count=2, interval=0.01, timeout=0.5)
    assert [r.host for r in results] == hosts
    assert [r.received for r in results[:3]] == [2, 2, 2]
    assert results[3].sent == 0
    assert "no route" in (results[3].error or "")
    assert results[4].sent == 0
    assert "no ARP reply" in (results[4].error or "")
    # alone, such a host is an error, as before
    with pytest.raises(aioxdp.XDPError, match="no route"):
        await aioxdp.multiping([unrouted], count=1)


ONLINK = ipaddress.IPv4Network("198.19.128.0/20")


async def test_four_thousand_on_link_hosts_resolved_by_our_own_arp(
    lab_a: Lab, reflected: Reflector
) -> None:
    """4000 next hops the kernel does not know, on the link: our ARP asks for
    them, 256 at a time, each on its own clock (b's kernel answers as a proxy
    for the /20, its driver answers the echoes)."""
    lab_a.a.run("ip", "addr", "add", f"{ONLINK.network_address + 1}/20", "dev", lab_a.a.ifname)
    b = lab_a.b
    b.run("ip", "route", "add", str(ONLINK), "dev", "lo")
    for key, value in (
        ("net.ipv4.conf.all.forwarding", "1"),
        (f"net.ipv4.conf.{b.ifname}.proxy_arp", "1"),
        (f"net.ipv4.neigh.{b.ifname}.proxy_delay", "0"),
    ):
        b.run("sysctl", "-qw", f"{key}={value}")
    hosts = [str(ONLINK.network_address + 2 + i) for i in range(4000)]
    results = await aioxdp.multiping(hosts, count=1, interval=0.001, timeout=2.0)
    failed = [r for r in results if r.received != 1]
    assert not failed, f"{len(failed)} hosts failed, first {failed[:2]}"
    assert reflected.counters()["icmp"] == 4000
    # our ARP, not the kernel's: a's neighbour table learnt none of them
    neighbours = lab_a.a.run("ip", "neigh", "show", "to", str(ONLINK)).stdout
    assert neighbours.count("lladdr") == 0, neighbours[:300]


async def test_a_host_named_twice_is_probed_and_answered_as_two_targets(
    lab_a: Lab, reflected: Reflector
) -> None:
    """Targets that share an address share a source in every reply: each
    reply goes to the target whose probe (sequence and stamp) it answers."""
    hosts = far_hosts(3)
    hosts = [hosts[0], hosts[1], hosts[0], hosts[2], hosts[0]]
    results = await aioxdp.multiping(hosts, count=4, interval=0.002, timeout=2.0)
    assert [r.host for r in results] == hosts
    assert [(r.sent, r.received, r.duplicates, r.foreign) for r in results] == [(4, 4, 0, 0)] * 5
    assert [[x.seq for x in r.replies] for r in results] == [[1, 2, 3, 4]] * 5
    assert reflected.counters()["icmp"] == 20


async def test_a_flood_over_many_targets_keeps_each_window(
    lab_a: Lab, reflected: Reflector
) -> None:
    hosts = far_hosts(300)
    results = await aioxdp.multiping(hosts, count=20, interval=0, timeout=2.0, window=2)
    assert [(r.sent, r.received) for r in results] == [(20, 20)] * 300
    assert reflected.counters()["icmp"] == 6000
    assert results[0].malformed == {}
    assert results[0].kernel_drops == {}


async def test_routes_to_thousands_share_one_path_per_next_hop(
    lab_a: Lab, reflected: Reflector
) -> None:
    """3000 hosts behind b are one path (one template, one ARP); b itself is
    on-link, its own path; an address no route holds is named alone."""
    from aioxdp.route import NoRouteError, route_set

    hosts = [*far_hosts(3000), lab_a.b.ip, "198.18.99.1"]
    routes, failed = await route_set(hosts)
    assert len(routes) == 3001
    assert [(p.next_hop, p.destination) for p in routes.paths] == [
        (lab_a.b.ip, hosts[0]),
        (lab_a.b.ip, lab_a.b.ip),
    ]
    assert [routes.destination(i) for i in range(3001)] == hosts[:3001]
    assert set(failed) == {3001}
    assert isinstance(failed[3001], NoRouteError)
    assert "198.18.99.1" in str(failed[3001])
    # what the kernel says for a sample, field by field
    got = lab_a.a.run("ip", "-o", "route", "get", hosts[1234]).stdout
    assert f"via {lab_a.b.ip} dev {lab_a.a.ifname} src {lab_a.a.ip}" in got
    assert routes[1234].next_hop == lab_a.b.ip
    assert routes[1234].source == lab_a.a.ip
