"""Bad input from the wire: 100 000 mutated frames through the BPF forwarder
(BPF_PROG_TEST_RUN, under random rule sets, against an oracle written from
the specifications) and at a running aioxdp that
pings and serves UDP echo, which must keep serving and account for every
frame it was handed."""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import os
import random
import struct
import sys
from pathlib import Path

import corpus as cp
import forwarder_spec as spec
import pytest
from conftest import link_stat
from test_udp_tcp import Echo, udp_client

import aioxdp
from aioxdp import Action, Rule
from aioxdp.bpf import BPFObject
from aioxdp.errors import MapError
from aioxdp.forwarder import Forwarder
from aioxdp.testing import Lab

A_MAC, B_MAC, A_IP, B_IP = "02:a0:00:00:00:0a", "02:a0:00:00:00:0b", "198.18.0.1", "198.18.0.2"
IDENT, PORT = 0x5151, 7000
# fewer under AddressSanitizer (make asan), where every frame costs several times more
N = int(os.environ.get("AIOXDP_FUZZ_FRAMES", "100000"))


def random_rule(rng: random.Random) -> Rule:
    """A rule over the corpus's values, so that many frames match some rule."""
    action = rng.choice(list(Action))
    vlan = rng.choice([None] * 6 + [7, rng.randrange(1, 255)])

    proto = rng.choice(["icmp", "udp", "tcp", "arp", "udp", 47, "icmpv6", "udp", "tcp"])
    family = {"icmp": 4, "arp": 4, "icmpv6": 6}.get(str(proto), rng.choice([4, 6]))

    def prefix() -> str | None:
        if rng.random() < 0.5:
            return None
        if family == 6:
            address = rng.choice(["2001:2::a", "2001:2::b", f"2001:2::{rng.randrange(256):x}"])
            length = rng.choice([48, 64, 120, 127, 128])
        else:
            address = rng.choice([A_IP, B_IP, f"198.18.{rng.randrange(4)}.{rng.randrange(256)}"])
            length = rng.choice([8, 15, 16, 24, 30, 32])
        return str(ipaddress.ip_network(f"{address}/{length}", strict=False))

    kwargs: dict[str, object] = {"src": prefix(), "dst": prefix(), "action": action, "vlan": vlan}
    if rng.random() < 0.2:
        kwargs["family"] = family
    if proto in ("udp", "tcp"):
        ports = [53, 80, 443, PORT, PORT + 1, 40000, 40001, 40002, 40003]
        if rng.random() < 0.6:
            kwargs["dst_port"] = rng.choice(ports)
        if rng.random() < 0.3:
            kwargs["src_port"] = rng.choice(ports)
    elif proto == "icmp" and rng.random() < 0.7:
        kwargs["icmp_type"] = rng.choice([0, 8, 3, 11])
        if kwargs["icmp_type"] in (0, 8) and rng.random() < 0.6:
            kwargs["icmp_id"] = rng.choice([IDENT, 0x0800, 1])
    elif proto == "icmpv6" and rng.random() < 0.7:
        kwargs["icmp_type"] = rng.choice([128, 129, 1, 135, 143])
        if kwargs["icmp_type"] in (128, 129, 1) and rng.random() < 0.6:
            kwargs["icmp_id"] = rng.choice([IDENT, 0x8000, 1])
    elif proto == "arp" and rng.random() < 0.6:
        kwargs["arp_op"] = rng.choice([1, 2])
    return Rule(proto, **kwargs)  # type: ignore[arg-type]


def test_forwarder_decides_100k_mutated_frames_as_the_specification_says() -> None:
    """Random rule sets (actions, priorities by specificity, prefixes, ports,
    ICMP types and ids, ARP, VLANs), each over its share of the corpus; the
    oracle (forwarder_spec) predicts each verdict, each counter and each
    rule's hits."""
    sets = 50
    frames = cp.corpus(N, 2, cp.templates(B_MAC, A_MAC, B_IP, A_IP, IDENT, PORT))
    rng = random.Random(5)
    local = bytes.fromhex(A_MAC.replace(":", ""))
    expected: collections.Counter[str] = collections.Counter()
    winners_by_kind: collections.Counter[str] = collections.Counter()
    with BPFObject.packaged("forwarder") as obj:
        obj.load()
        fw = Forwarder(obj)
        fw.set_local_mac(A_MAC)
        prog = obj.program()
        for chunk in range(sets):
            fw.clear()
            installed: list[Rule] = []
            for _ in range(rng.randrange(1, 14)):
                rule = random_rule(rng)
                try:
                    fw.add(rule)
                except (ValueError, MapError):
                    continue  # the same packets as a rule already there, or no mask left
                installed.append(rule)
            if installed and rng.random() < 0.3:  # a removed rule takes nothing any more
                fw.remove(installed.pop(rng.randrange(len(installed))))
            hits: collections.Counter[Rule] = collections.Counter()
            mismatches = []
            for frame in frames[chunk * N // sets : (chunk + 1) * N // sets]:
                want = spec.decide(spec.describe(frame, local), installed)
                verdict, out = prog.test_run(frame)
                if verdict is not want.verdict or out != frame:
                    mismatches.append((want, verdict, frame.hex()))
                expected[want.counter] += 1
                if want.rule is not None:
                    hits[want.rule] += 1
                    winners_by_kind[want.counter] += 1
            assert not mismatches[:3], (len(mismatches), installed)
            assert {r: fw.hits(r) for r in installed} == {r: hits[r] for r in installed}, installed
        got = fw.counters
    assert got.total == N
    for name in ("passed", "dropped", "unmatched", "not_ip", "malformed", "fragments"):
        assert getattr(got, name) == expected[name], name
    for name in ("no_socket", "not_local", "vlan", "redirected", "no_meta"):
        assert getattr(got, name) == expected[name], name
    # the corpus and the rules exercised every outcome
    for name in ("passed", "dropped", "no_socket", "unmatched", "not_ip", "malformed"):
        assert expected[name] > N // 100, (name, expected)
    for name in ("fragments", "not_local", "vlan"):
        assert expected[name] > N // 1000, (name, expected)


SENDER = """
import socket, struct, sys, time
path, ifname = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
off = sent = 0
while off < len(data):
    (n,) = struct.unpack_from("!H", data, off)
    for attempt in range(1000):  # a busy receiver: the veth backlog is full for a moment
        try:
            s.send(data[off + 2 : off + 2 + n]); break
        except OSError as exc:
            if exc.errno != 105: raise  # ENOBUFS
            time.sleep(0.001)
    off += 2 + n; sent += 1
    if sent % 200 == 0:
        time.sleep(0.001)
print(sent)
"""


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_a_running_ping_and_udp_echo_survive_100k_mutated_frames(tmp_path: Path) -> None:
    with Lab() as lab, lab.a.enter():
        # The corpus carries forged ARP from b's MAC; the kernel of a would let
        # them rewrite its entry for b (that is ARP, not aioxdp). Pin it.
        lab.a.run(
            "ip",
            "neigh",
            "replace",
            lab.b.ip,
            "lladdr",
            lab.b.mac,
            "nud",
            "permanent",
            "dev",
            lab.a.ifname,
        )
        async with aioxdp.Interface(lab.a.ifname) as nic:
            udp, echo = await nic.create_datagram_endpoint(Echo, local_addr=(lab.a.ip, PORT))
            # quiet now: what b's kernel transmits from here on, a's forwarder must see
            sent_before = link_stat(lab.b, "tx_packets")
            seen_before = nic.forwarder.counters.total
            async with aioxdp.Pinger(lab.b.ip, count=3000, interval=0.002, timeout=1.0) as pinger:
                bases = cp.templates(lab.b.mac, lab.a.mac, lab.b.ip, lab.a.ip, pinger.ident, PORT)
                frames = cp.corpus(N, 2, bases)
                path = tmp_path / "corpus.bin"
                path.write_bytes(b"".join(struct.pack("!H", len(f)) + f for f in frames))
                before = nic.forwarder.counters
                rules = nic.forwarder.rules  # in installation order: the oracle's input
                sender = asyncio.create_subprocess_exec(
                    *lab.b.command(sys.executable, "-c", SENDER, str(path), lab.b.ifname),
                    stdout=asyncio.subprocess.PIPE,
                )
                proc = await sender
                good = await asyncio.to_thread(udp_client, lab.b, lab.a.ip, PORT, 1000)
                out, _ = await proc.communicate()
                result = await pinger.result()
                after = nic.forwarder.counters
                sent_by_b = link_stat(lab.b, "tx_packets") - sent_before
                for _ in range(100):  # the last frames may still be crossing the veth
                    if after.total - seen_before >= sent_by_b:
                        break
                    await asyncio.sleep(0.01)
                    after = nic.forwarder.counters
                ping_endpoint = next(e for e in nic._endpoints if e is not udp)
            # every valid probe in the mix was answered
            assert int(out) == N
            # the witness for the forwarder's totals: b's kernel's own count of what it sent
            assert after.total - seen_before == sent_by_b
            assert sent_by_b >= N + 3000 + 1000
            assert good == 1000
            assert (result.sent, result.received) == (3000, 3000)
            # every frame the forwarder redirected reached us, or the kernel says why not
            stats = nic.stats()["queues"][0]["xdp"]
            assert after.redirected == nic.received + stats.rx_dropped + stats.rx_ring_full
            assert nic.unclaimed == 0
            assert stats.rx_dropped + stats.rx_ring_full == 0, "the oracle's counts assume none"
            # The oracle's witness for each endpoint: which corpus frames the
            # forwarder hands to which rule, and which of the UDP ones are valid.
            local = bytes.fromhex(lab.a.mac.replace(":", ""))
            taken: dict[int, list[bytes]] = {}
            for frame in frames:
                rule = spec.decide(spec.describe(frame, local), rules).rule
                if rule is not None and rule.action is Action.REDIRECT:
                    taken.setdefault(rule.proto_number, []).append(frame)
            assert set(taken) == {1, 17}
            assert udp.frames == len(taken[17]) + 1000
            assert udp.received == sum(map(spec.udp_is_valid, taken[17])) + 1000
            assert udp.frames == udp.received + sum(udp.malformed.values())
            ping_faults = (
                sum(result.malformed.values()) + result.duplicates + result.late + result.foreign
            )
            assert ping_endpoint.frames == len(taken[1]) + 3000
            assert ping_endpoint.frames == result.received + ping_faults
            assert sum(udp.malformed.values()) > 100, udp.malformed
            assert sum(result.malformed.values()) > 100, result.malformed
            assert after.malformed - before.malformed > N // 10
            assert echo.errors == []
        assert nic.final_counts, "no socket was checked"
        for counts in nic.final_counts.values():
            assert counts.leaked == 0
