"""A stateful property test of frame ownership over a real XSK in the lab.

Hypothesis drives random sequences of receive, keep, release, send_back,
write, flush, close and misuse against one socket, with frames injected from
the peer namespace. After every step the C ledger balances and agrees with
a model of who holds what; every misuse raises a named error and changes
nothing.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from aioxdp import Packet, PacketBatch, Rule, UmemConfig
from aioxdp.bpf import BPFObject
from aioxdp.errors import FrameOwnershipError, XDPError
from aioxdp.forwarder import Forwarder
from aioxdp.testing import Lab
from aioxdp.testing.netns import entered
from aioxdp.xsk import XSK, RxBatch

PORT = 7500
CONFIG = UmemConfig(nframes=64, fill_size=16, comp_size=16, rx_size=16, tx_size=16)


@pytest.fixture(scope="module")
def wired() -> Iterator[dict[str, Any]]:
    """A lab with the forwarder on a's veth redirecting UDP to PORT, and a raw
    socket in b that injects frames."""
    with Lab() as lab, lab.a.enter(), BPFObject.packaged("forwarder") as obj:
        obj.load()
        forwarder = Forwarder(obj)
        forwarder.set_local_mac(lab.a.mac)
        forwarder.add(Rule("udp", dst_port=PORT))
        link = obj.program("aioxdp_forwarder").attach(lab.a.ifname)
        with entered(lab.b.netns):
            raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        raw.bind((lab.b.ifname, 0))
        frame = bytes(
            Ether(src=lab.b.mac, dst=lab.a.mac)
            / IP(src=lab.b.ip, dst=lab.a.ip)
            / UDP(sport=5000, dport=PORT)
            / Raw(b"state machine")
        )
        try:
            yield {"lab": lab, "obj": obj, "raw": raw, "frame": frame}
        finally:
            raw.close()
            link.detach()


class FrameOwnership(RuleBasedStateMachine):
    wired: dict[str, Any]

    @initialize()
    def open_socket(self) -> None:
        lab, obj = self.wired["lab"], self.wired["obj"]
        self.xsk = XSK(lab.a.ifname, config=CONFIG, batch_size=8)
        obj.map("aioxdp_fw_xsks").update(0, self.xsk.fd.to_bytes(4, "little"))
        self.batch: RxBatch | None = None
        self.packets: list[Packet] = []
        self.sent_back = False
        self.kept: list[Packet] = []  # kept and not yet released
        self.stale: list[Packet] = []  # packets of batches already released
        self.closed = False
        self.in_flight = 0  # injected, not yet received (some may be dropped)

    def teardown(self) -> None:
        if not self.closed:
            self.close()

    # -- the peer ------------------------------------------------------------

    @rule(n=st.integers(1, 6))
    def inject(self, n: int) -> None:
        for _ in range(n):
            self.wired["raw"].send(self.wired["frame"])
        self.in_flight += n

    # -- receiving -------------------------------------------------------------

    @precondition(lambda self: not self.closed and self.batch is None)
    @rule(n=st.integers(0, 6))
    def receive(self, n: int) -> None:
        self.inject(n)
        batch = self.xsk.receive()
        for _ in range(50):  # the peer's frames cross veth in a softirq: wait a little
            if batch.count or not self.in_flight:
                break
            time.sleep(0.001)
            batch = self.xsk.receive()
        self.in_flight = max(0, self.in_flight - batch.count)
        if not batch.count:
            self.in_flight = 0  # dropped (fill ring short): not coming
        if batch.count:
            self.batch = batch
            self.packets = list(PacketBatch(batch))
            self.sent_back = False
            self.left: set[int] = set()  # indexes whose frame was kept (left the batch)

    @precondition(lambda self: not self.closed and self.batch is not None)
    @rule()
    def receive_before_release_is_refused(self) -> None:
        with pytest.raises(FrameOwnershipError, match="previous batch was not released"):
            self.xsk.receive()

    @precondition(lambda self: not self.closed and self.batch is not None)
    @rule(data=st.data(), twin=st.booleans())
    def keep(self, data: st.DataObject, twin: bool) -> None:
        index = data.draw(st.integers(0, len(self.packets) - 1))
        assert self.batch is not None
        # twin: the same frame through a second Packet, as iterating the batch again gives
        packet = Packet(self.batch, index) if twin else self.packets[index]
        if index in self.left or self.sent_back:
            with pytest.raises(FrameOwnershipError):
                packet.keep()
        else:
            self.kept.append(packet.keep())
            self.left.add(index)
            self.packets[index] = packet

    @precondition(lambda self: not self.closed and self.batch is not None)
    @rule()
    def send_back(self) -> None:
        assert self.batch is not None
        if self.sent_back or self.left:
            # refused; the frames still the batch's went out all the same
            with pytest.raises(FrameOwnershipError):
                PacketBatch(self.batch).send_back()
        else:
            assert PacketBatch(self.batch).send_back() == self.batch.count
        self.sent_back = True

    @precondition(lambda self: not self.closed and self.batch is not None)
    @rule()
    def release_batch(self) -> None:
        assert self.batch is not None
        self.xsk.release(self.batch)
        self.stale.extend(p for i, p in enumerate(self.packets) if i not in self.left)
        self.batch, self.packets = None, []
        for packet in self.stale[-3:]:
            with pytest.raises(ValueError, match="released memoryview"):
                packet.data[0]

    @precondition(lambda self: not self.closed and bool(self.kept))
    @rule(data=st.data())
    def release_kept(self, data: st.DataObject) -> None:
        packet = data.draw(st.sampled_from(self.kept))
        packet.release()
        self.kept.remove(packet)
        packet.release()  # idempotent

    @precondition(lambda self: not self.closed and bool(self.stale))
    @rule(data=st.data())
    def stale_packet_is_refused(self, data: st.DataObject) -> None:
        packet = data.draw(st.sampled_from(self.stale))
        with pytest.raises(FrameOwnershipError):
            packet.keep()

    # -- sending ------------------------------------------------------------------

    @precondition(lambda self: not self.closed)
    @rule(n=st.integers(1, 8))
    def write(self, n: int) -> None:
        for _ in range(n):
            self.xsk.send(self.wired["frame"][:60])

    @precondition(lambda self: not self.closed)
    @rule()
    def flush(self) -> None:
        self.xsk.flush()

    # -- misuse ---------------------------------------------------------------

    @precondition(lambda self: not self.closed)
    @rule(addr=st.integers(0, 1 << 40))
    def release_any_address(self, addr: int) -> None:
        kept_frames = {p._addr // CONFIG.frame_size for p in self.kept}
        if addr // CONFIG.frame_size in kept_frames:
            return  # that one would be a legitimate release
        with pytest.raises(FrameOwnershipError):
            self.xsk.release_frame(addr)

    @precondition(lambda self: not self.closed and self.batch is not None)
    @rule(start=st.integers(-2, 10), count=st.integers(-2, 10))
    def send_range_past_the_batch(self, start: int, count: int) -> None:
        assert self.batch is not None
        if 0 <= start <= start + count <= self.batch.count:
            return
        with pytest.raises(ValueError, match="is not a range of this batch"):
            self.xsk.send_batch(self.batch, start, count)

    @precondition(lambda self: not self.closed)
    @rule()
    def close(self) -> None:
        if self.batch is not None:
            self.xsk.release(self.batch)
        for packet in self.kept:
            packet.release()
        counts = self.xsk.close()
        self.closed = True
        assert counts.balanced, counts
        assert counts.rx == counts.app == 0, counts
        with pytest.raises(XDPError, match="it is closed"):
            self.xsk.receive()

    # -- after every step -------------------------------------------------------

    @invariant()
    def ledger_balances_and_agrees_with_the_model(self) -> None:
        if self.closed:
            return
        counts = self.xsk.counts()
        assert counts.balanced, counts
        assert counts.app == len(self.kept), (counts, len(self.kept))
        if self.batch is None or self.sent_back:
            assert counts.rx == 0, counts
        else:
            assert counts.rx == self.batch.count - len(self.left), counts
        assert counts.kernel_invalid == 0, counts


def test_frame_ownership_state_machine(wired: dict[str, Any]) -> None:
    FrameOwnership.wired = wired
    FrameOwnership.TestCase.settings = settings(
        max_examples=100,
        stateful_step_count=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    FrameOwnership.TestCase().runTest()


def test_rx_ready_counts_what_waits_on_the_ring_and_takes_nothing(
    wired: dict[str, Any],
) -> None:
    lab, obj = wired["lab"], wired["obj"]
    xsk = XSK(lab.a.ifname, config=CONFIG, batch_size=8)
    try:
        obj.map("aioxdp_fw_xsks").update(0, xsk.fd.to_bytes(4, "little"))
        assert xsk.rx_ready() == 0
        for _ in range(5):
            wired["raw"].send(wired["frame"])
        deadline = time.monotonic() + 5
        while xsk.rx_ready() < 5 and time.monotonic() < deadline:
            time.sleep(0.001)  # the peer's frames cross veth in a softirq
        assert xsk.rx_ready() == 5
        assert xsk.rx_ready() == 5  # looking took nothing
        batch = xsk.receive()
        assert batch.count == 5
        assert xsk.rx_ready() == 0
        xsk.release(batch)
    finally:
        xsk.close()
    with pytest.raises(XDPError):
        xsk.rx_ready()
