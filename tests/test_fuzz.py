"""Bad input from the wire: 100 000 mutated frames through the BPF forwarder
(BPF_PROG_TEST_RUN, against a reference model) and at a running aioxdp that
pings and serves UDP echo, which must keep serving and account for every
frame it was handed."""

from __future__ import annotations

import asyncio
import os
import struct
import sys
from pathlib import Path

import corpus as cp
import pytest
from conftest import link_stat
from test_udp_tcp import Echo, udp_client

import aioxdp
from aioxdp import Action, Rule
from aioxdp.bpf import BPFObject, XDPVerdict
from aioxdp.forwarder import Forwarder
from aioxdp.testing import Lab

A_MAC, B_MAC, A_IP, B_IP = "02:a0:00:00:00:0a", "02:a0:00:00:00:0b", "198.18.0.1", "198.18.0.2"
IDENT, PORT = 0x5151, 7000
# fewer under AddressSanitizer (make asan), where every frame costs several times more
N = int(os.environ.get("AIOXDP_FUZZ_FRAMES", "100000"))


def test_forwarder_verdicts_on_100k_mutated_frames_match_the_model() -> None:
    frames = cp.corpus(
        N, 2, cp.templates(B_MAC, A_MAC, B_IP, A_IP, IDENT, PORT)
    )  # the seed of the lab run
    with BPFObject.packaged("forwarder") as obj:
        obj.load()
        fw = Forwarder(obj)
        for rule in (
            Rule("icmp", icmp_type=0, icmp_id=IDENT, action=Action.DROP),
            Rule("udp", dst_port=PORT, action=Action.DROP),
            Rule("tcp", dst_port=443, action=Action.DROP),
            Rule("arp", arp_op=2, action=Action.DROP),
        ):
            fw.add(rule)
        prog = obj.program()
        expected_reasons: dict[str, int] = {}
        mismatches = []
        for i, frame in enumerate(frames):
            kind, fields = cp.key_of(frame)
            match = False
            if kind == "ok":
                assert fields is not None
                proto, _src, _dst, _sport, dport, icmp_type, ident = fields
                match = (proto == 1 and icmp_type == 0 and ident == IDENT) or (
                    proto in (17, 6) and dport == (PORT if proto == 17 else 443)
                )
            elif kind == "arp":
                assert fields is not None
                match = fields[0] == 2
            reason = (
                "dropped"
                if match
                else {"ok": "unmatched", "arp": "unmatched", "fragment": "fragments"}.get(
                    kind, kind
                )
            )
            expected_reasons[reason] = expected_reasons.get(reason, 0) + 1
            verdict, out = prog.test_run(frame)
            if verdict is not (XDPVerdict.DROP if match else XDPVerdict.PASS) or out != frame:
                mismatches.append((i, kind, verdict, frame.hex()))
        assert not mismatches[:5], f"{len(mismatches)} frames got another verdict than the model's"
        got = fw.counters
        assert got.total == N
        for reason, count in expected_reasons.items():
            assert getattr(got, reason) == count, reason
    assert expected_reasons["dropped"] > N // 10, "the corpus hardly exercised the rules"
    assert expected_reasons["malformed"] > N // 10, "the corpus hardly exercised bad headers"


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
                bases = cp.templates(lab.b.mac, lab.a.mac, lab.b.ip, lab.a.ip, pinger._ident, PORT)
                frames = cp.corpus(N, 2, bases)
                path = tmp_path / "corpus.bin"
                path.write_bytes(b"".join(struct.pack("!H", len(f)) + f for f in frames))
                before = nic.forwarder.counters
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
            assert udp.frames == udp.received + sum(udp.malformed.values())
            ping_faults = (
                sum(result.malformed.values()) + result.duplicates + result.late + result.foreign
            )
            assert ping_endpoint.frames == result.received + ping_faults
            assert sum(udp.malformed.values()) > 100, udp.malformed
            assert sum(result.malformed.values()) > 100, result.malformed
            assert after.malformed - before.malformed > N // 10
            assert echo.errors == []
        assert nic.final_counts, "no socket was checked"
        for counts in nic.final_counts.values():
            assert counts.leaked == 0
