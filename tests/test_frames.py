"""Frame safety (issue 11, items 1-6): no write past a frame, no view that
outlives its memory, every frame move checked in C, no stalled rings.

Witnesses: the UMEM's bytes before and after a refused call, the kernel's
own UDP sockets and interface counters in the peer namespace, a separate
process for what used to crash, and the C ledger's balance.
"""

from __future__ import annotations

import asyncio
import errno
import random
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import PYTHON, eventually, link_stat, read_line

import aioxdp
from aioxdp import Interface, PacketBatch, PacketProtocol, Rule, UmemConfig
from aioxdp._libs import ffi, lib
from aioxdp.bpf import BPFObject
from aioxdp.errors import FrameOwnershipError
from aioxdp.forwarder import Forwarder
from aioxdp.testing import Lab
from aioxdp.xsk import XSK

PORT = 7300


def assert_balanced(nic: Interface) -> None:
    assert nic.final_counts, "no socket was checked"
    for counts in nic.final_counts.values():
        assert counts.balanced, counts
        assert counts.leaked == 0, counts


def udp_sender(lab: Lab, count: int, *, port: int = PORT, gap: float = 0.0) -> list[str]:
    """Arguments for a process in b that sends ``count`` datagrams to a."""
    code = textwrap.dedent(
        f"""
        import socket, time
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range({count}):
            s.sendto(b"datagram %d" % i, ({lab.a.ip!r}, {port}))
            if {gap}: time.sleep({gap})
        """
    )
    return [PYTHON, "-c", code]


# -- 1, 2: lengths are checked against the real frame before any copy ---------


def test_c_senders_refuse_what_does_not_fit_a_frame_without_writing(lab_a: Lab) -> None:
    config = UmemConfig(nframes=16, frame_size=2048, fill_size=8, comp_size=8, rx_size=8, tx_size=8)
    xsk = XSK(lab_a.a.ifname, config=config)
    try:
        before = bytes(xsk.view)
        pool = xsk.counts().pool
        header = ffi.new("uint8_t[]", 42)
        payload = b"x" * 2100  # fits 9000-MTU, not a 2048-byte frame
        ret = lib.aioxdp_udp_send(xsk.c_handle, header, 1, ffi.from_buffer(payload), len(payload))
        assert ret == -errno.EMSGSIZE
        template = ffi.new("uint8_t[]", 2100)
        sent = lib.aioxdp_echo_send(xsk.c_handle, template, 2100, 1, 4, ffi.NULL)
        assert sent == 0
        assert bytes(xsk.view) == before, "a refused send wrote into the UMEM"
        counts = xsk.counts()
        assert counts.pool == pool, counts
        assert counts.app == counts.txq == 0, counts
    finally:
        xsk.close()


@pytest.mark.parametrize(
    ("path", "port", "lens", "data_len", "err"),
    [
        (1, 7, [10], 10, errno.EINVAL),  # a path past the table
        (0, 0, [10], 10, errno.EINVAL),  # port 0
        (0, 7, [10, 10], 15, errno.EINVAL),  # more bytes named than given
        (0, 7, [10, 2007], 3000, errno.EMSGSIZE),  # the second does not fit a frame
        (0x8000, 7, [10], 10, errno.EINVAL),  # an IPv6 word on an IPv4 path
    ],
)
def test_batched_udp_sends_check_every_datagram_before_taking_a_frame(
    lab_a: Lab, path: int, port: int, lens: list[int], data_len: int, err: int
) -> None:
    config = UmemConfig(nframes=16, frame_size=2048, fill_size=8, comp_size=8, rx_size=8, tx_size=8)
    xsk = XSK(lab_a.a.ifname, config=config)
    try:
        before = bytes(xsk.view)
        pool = xsk.counts().pool
        paths = ffi.new("struct aioxdp_udp_path[]", 1)
        dest = path << 48 | 0x0200A8C0 << 16 | port
        dests = ffi.new("uint64_t[]", [dest] * len(lens))
        sizes = ffi.new("uint32_t[]", lens)
        data = b"y" * data_len
        ret = lib.aioxdp_udp_send_many(
            xsk.c_handle, paths, 1, ffi.NULL, 0, dests, data, len(data), sizes, len(lens), 1
        )
        assert ret == -err
        assert bytes(xsk.view) == before, "a refused send wrote into the UMEM"
        assert xsk.counts().pool == pool
        # and one that fits goes whole: 2006 bytes + 42 of headers = the frame
        ok = lib.aioxdp_udp_send_many(
            xsk.c_handle,
            paths,
            1,
            ffi.NULL,
            0,
            ffi.new("uint64_t[]", [7]),
            b"z" * 2006,
            2006,
            ffi.new("uint32_t[]", [2006]),
            1,
            1,
        )
        assert ok == 1
        assert xsk.counts().pool == pool - 1
    finally:
        xsk.close()


class Echo(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.errors: list[Exception] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)


async def test_sendto_is_bounded_by_the_frame_not_only_the_mtu() -> None:
    with Lab(mtu=9000) as lab, lab.a.enter():
        async with Interface(lab.a.ifname, mode="generic") as nic:
            transport, _ = await nic.create_datagram_endpoint(Echo, local_addr=(lab.a.ip, PORT))
            with pytest.raises(
                ValueError, match=r"8972 bytes exceed .*\(4054: MTU 9000, 4096-byte"
            ):
                transport.sendto(b"x" * 8972, (lab.b.ip, PORT))
            transport.sendto(b"x" * 4054, (lab.b.ip, PORT))  # the largest that fits goes
            transport.close()
        assert_balanced(nic)


async def test_ping_size_is_bounded_by_the_frame_of_a_borrowed_interface() -> None:
    small = UmemConfig(frame_size=2048)
    with Lab(mtu=9000) as lab, lab.a.enter():
        async with Interface(lab.a.ifname, config=small) as nic:
            # the reply lands 256 bytes (XDP_PACKET_HEADROOM) into its frame
            with pytest.raises(ValueError, match=r"size: 1751 bytes do not fit one 2048-byte"):
                await aioxdp.ping(lab.b.ip, count=1, size=1751, interval=0)
            result = await aioxdp.ping(lab.b.ip, count=2, size=1750, interval=0.01)
            assert result.received == 2
        assert_balanced(nic)


# -- 3: views never outlive their memory ---------------------------------------


def test_kept_packet_read_after_close_shows_its_bytes_and_never_crashes(lab_a: Lab) -> None:
    code = textwrap.dedent(
        f"""
        import asyncio, sys
        from aioxdp import Interface, PacketProtocol, Rule
        from aioxdp.testing.netns import entered

        kept = []
        class Keep(PacketProtocol):
            def packet_received(self, packet):
                kept.append(packet.keep())

        async def main():
            nic = Interface({lab_a.a.ifname!r})
            await nic.__aenter__()
            await nic.create_packet_endpoint(Keep, rules=[Rule("udp", dst_port={PORT})])
            print("up", flush=True)
            while not kept:
                await asyncio.sleep(0.01)
            await nic.__aexit__(None, None, None)
            data = kept[0].data
            print(bytes(data[42:]).decode(), len(data), flush=True)
            kept[0].release()
            try:
                kept[0].data[0]
            except ValueError as exc:
                print("released:", exc, flush=True)

        with entered({lab_a.a.netns!r}):
            asyncio.run(main())
        """
    )
    proc = subprocess.Popen(
        [PYTHON, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert read_line(proc) == "up"
        lab_a.b.run(*udp_sender(lab_a, 1))
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, f"exit {proc.returncode}: {err}"
    lines = out.splitlines()
    assert lines[0] == "datagram 0 52"
    assert lines[1].startswith("released: operation forbidden on released memoryview")


class Hoard(PacketProtocol):
    """Holds on to packets it did not keep, and tries every misuse on them."""

    def __init__(self) -> None:
        self.stale: list[aioxdp.Packet] = []
        self.batches: list[PacketBatch] = []
        self.errors: dict[str, Exception] = {}
        self.views: list[memoryview] = []

    def packets_received(self, batch: PacketBatch) -> None:
        self.batches.append(batch)
        packets = list(batch)
        again = list(batch)  # the same frames, iterated twice
        self.stale.extend(packets)
        self.views.extend(batch.frames())
        first = packets[0].keep()
        self._try("keep twice", again[0].keep)
        self._try("send_back a kept packet", batch.send_back)
        self._try("release an unkept packet", again[0].release)
        first.release()
        self._try("release twice by address", lambda: first.release())

    def _try(self, name: str, call: Any) -> None:
        try:
            call()
        except Exception as exc:
            self.errors.setdefault(name, exc)


async def test_misuse_raises_named_errors_and_leaves_the_ledger_balanced(lab_a: Lab) -> None:
    async with Interface(lab_a.a.ifname) as nic:
        transport, hoard = await nic.create_packet_endpoint(
            Hoard, rules=[Rule("udp", dst_port=PORT)]
        )
        await asyncio.to_thread(lab_a.b.run, *udp_sender(lab_a, 40, gap=0.001))
        assert await eventually(lambda: len(hoard.stale) >= 40), (
            f"the protocol saw {len(hoard.stale)} of 40 datagrams"
        )
        for name in ("keep twice", "send_back a kept packet", "release an unkept packet"):
            assert isinstance(hoard.errors.get(name), FrameOwnershipError), (name, hoard.errors)
        assert "release twice by address" not in hoard.errors  # release() is idempotent
        # after the callbacks returned: the frames are gone, loudly
        stale = hoard.stale[-1]
        with pytest.raises(ValueError, match="released memoryview"):
            stale.data[0]
        with pytest.raises(ValueError, match="released memoryview"):
            hoard.views[-1][0]
        with pytest.raises(FrameOwnershipError, match="keeping a packet"):
            stale.keep()
        with pytest.raises(FrameOwnershipError, match="handed back"):
            list(hoard.batches[-1])
        with pytest.raises(FrameOwnershipError, match="handed back"):
            hoard.batches[-1].send_back()
        counts = nic.frame_counts()[0]
        assert counts.balanced, counts
        assert counts.app == counts.rx == 0, counts
        assert counts.refused >= 3, counts
        transport.close()
    assert_balanced(nic)


def test_xsk_refuses_foreign_addresses_and_ranges(lab_a: Lab) -> None:
    config = UmemConfig(nframes=16, frame_size=2048, fill_size=8, comp_size=8, rx_size=8, tx_size=8)
    xsk = XSK(lab_a.a.ifname, config=config)
    try:
        with pytest.raises(FrameOwnershipError, match=r"0x1000000 is not a frame of this UMEM"):
            xsk.release_frame(0x1000000)
        with pytest.raises(FrameOwnershipError, match=r"frame 0x0 is lent to the kernel"):
            xsk.release_frame(0)  # in the fill ring: not the caller's
        with pytest.raises(FrameOwnershipError, match=r"is free in the pool"):
            xsk.release_frame(15 * 2048)
        with pytest.raises(TypeError):
            xsk.release_frame(-1)
        batch = xsk.receive()  # nothing was sent: empty
        with pytest.raises(ValueError, match="is not a range of this batch"):
            xsk.send_batch(batch, 0, 5)
        counts = xsk.counts()
        assert counts.balanced, counts
        assert counts.pool + counts.fill == 16, counts
        assert counts.refused == 3, counts
    finally:
        xsk.close()


def test_descriptor_from_the_kernel_naming_a_frame_not_lent_is_dropped(lab_a: Lab) -> None:
    # The RX path validates what the ring says; a hand-made descriptor stands
    # in for a buggy driver: releasing a frame still in the fill ring is refused.
    xsk = XSK(lab_a.a.ifname)
    try:
        descs = ffi.new("struct aioxdp_desc[]", 1)
        descs[0].addr = 0  # frame 0: lent to the kernel for RX
        descs[0].len = 60
        assert lib.aioxdp_xsk_release(xsk.c_handle, descs, 1) < 0
        assert lib.aioxdp_xsk_send_descs(xsk.c_handle, descs, 1) < 0
        descs[0].addr = 1 << 40
        assert lib.aioxdp_xsk_keep(xsk.c_handle, descs) < 0
        counts = xsk.counts()
        assert counts.balanced, counts
        assert counts.txq == 0, counts
        assert counts.refused == 3, counts
    finally:
        xsk.close()


# -- 5, 6: liveness ---------------------------------------------------------


class SendBack(PacketProtocol):
    """Swaps addresses and sends every frame back without a copy."""

    def __init__(self) -> None:
        self.seen = 0

    def packets_received(self, batch: PacketBatch) -> None:
        for frame in batch.frames():
            self.seen += 1
            mac = bytes(frame[0:6])
            frame[0:6] = frame[6:12]
            frame[6:12] = mac
            ip = bytes(frame[26:30])
            frame[26:30] = frame[30:34]
            frame[30:34] = ip
            port = bytes(frame[34:36])
            frame[34:36] = frame[36:38]
            frame[36:38] = port
        batch.send_back()


async def test_zero_copy_echo_never_stalls_the_receive_ring(lab_a: Lab) -> None:
    tiny = UmemConfig(nframes=64, fill_size=16, comp_size=16, rx_size=16, tx_size=16)
    async with Interface(lab_a.a.ifname, config=tiny) as nic:
        transport, _echo = await nic.create_packet_endpoint(
            SendBack, rules=[Rule("udp", dst_port=PORT)]
        )
        # a burst far past the pool: most of it is dropped, which is fine
        sent_before = link_stat(lab_a.b, "tx_packets")
        seen_before = nic.forwarder.counters.total
        await asyncio.to_thread(lab_a.b.run, *udp_sender(lab_a, 2000))
        sent = link_stat(lab_a.b, "tx_packets") - sent_before  # what b's kernel put on the wire
        assert sent >= 2000, f"b's veth sent {sent} frames of a 2000-datagram burst"
        assert await eventually(lambda: nic.forwarder.counters.total - seen_before >= sent), (
            f"a's forwarder saw {nic.forwarder.counters.total - seen_before} "
            f"of the {sent} frames b sent"
        )
        # then paced datagrams, each answered if the fill ring was refilled
        receiver = lab_a.b.popen(
            PYTHON,
            "-c",
            textwrap.dedent(
                f"""
                import socket
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("0.0.0.0", {PORT}))
                s.settimeout(1.0)
                got = 0
                for i in range(20):
                    s.sendto(b"paced %d" % i, ({lab_a.a.ip!r}, {PORT}))
                    try:
                        s.recv(2048); got += 1
                    except TimeoutError:
                        pass
                print(got)
                """
            ),
            stdout=subprocess.PIPE,
            text=True,
        )
        out, _ = await asyncio.to_thread(receiver.communicate, timeout=60)
        stats = nic.stats()
        assert int(out) == 20, f"answered {out.strip()} of 20 after the burst; {stats}"
        transport.close()
    assert_balanced(nic)


async def test_descriptors_left_on_the_tx_ring_are_sent_without_another_write(lab_a: Lab) -> None:
    # A completion ring of 8 lets copy mode send 8 frames per kick; 4096 frames
    # take more kick rounds than one flush makes, so some stay on the TX ring.
    config = UmemConfig(nframes=8192, fill_size=16, comp_size=8, rx_size=16, tx_size=4096)
    frame = (
        bytes.fromhex(lab_a.b.mac.replace(":", ""))
        + bytes.fromhex(lab_a.a.mac.replace(":", ""))
        + b"\x88\xb5"
        + b"\x00" * 46
    )  # IEEE local experimental EtherType: the peer drops it
    async with Interface(lab_a.a.ifname, config=config) as nic:
        transport, _ = await nic.create_packet_endpoint(
            PacketProtocol, rules=[Rule("udp", dst_port=PORT)]
        )
        before = link_stat(lab_a.b, "rx_packets")
        transport.writelines([frame] * 4096)
        assert await eventually(
            lambda: link_stat(lab_a.b, "rx_packets") - before >= 4096, interval=0.01
        ), f"b's veth received {link_stat(lab_a.b, 'rx_packets') - before} of 4096 frames"
        assert link_stat(lab_a.b, "rx_packets") - before == 4096
        assert transport.get_write_buffer_size() == 0
        transport.close()
    assert_balanced(nic)


@pytest.fixture
async def udp_echo_nic(lab_a: Lab) -> AsyncIterator[Interface]:
    async with Interface(lab_a.a.ifname) as nic:
        yield nic
    assert_balanced(nic)


class EchoTwice(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.errors: list[Exception] = []
        self.echoed = 0

    def datagrams_received(self, batch: Any) -> None:
        self.echoed += batch.echo()
        try:
            batch.echo()
        except Exception as exc:
            self.errors.append(exc)


async def test_echo_twice_is_refused_and_answers_once(udp_echo_nic: Interface, lab_a: Lab) -> None:
    transport, proto = await udp_echo_nic.create_datagram_endpoint(
        EchoTwice, local_addr=(lab_a.a.ip, PORT)
    )
    out = await asyncio.to_thread(
        lab_a.b.run,
        PYTHON,
        "-c",
        textwrap.dedent(
            f"""
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(0.5)
            s.sendto(b"once", ({lab_a.a.ip!r}, {PORT}))
            got = []
            try:
                while True: got.append(s.recv(100))
            except TimeoutError:
                pass
            print(got)
            """
        ),
    )
    assert out.stdout.strip() == "[b'once']"
    assert proto.echoed == 1
    assert proto.errors
    assert isinstance(proto.errors[0], FrameOwnershipError)
    transport.close()


def test_python_side_refuses_a_stale_receive(lab_a: Lab) -> None:
    xsk = XSK(lab_a.a.ifname)
    try:
        batch = xsk.receive()
        assert xsk.release(batch) == 0
        with pytest.raises(FrameOwnershipError, match="releasing a batch"):
            xsk.release(batch)
    finally:
        xsk.close()
    with pytest.raises(aioxdp.errors.XDPError, match="it is closed"):
        xsk.receive()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def test_a_frame_shorter_than_an_ethernet_header_is_refused(lab_a: Lab) -> None:
    # the kernel consumes an empty TX descriptor without ever completing it
    xsk = XSK(lab_a.a.ifname)
    try:
        pool = xsk.counts().pool
        for short in (b"", b"x" * 13):
            with pytest.raises(ValueError, match=r"a frame is 14\.\.4096 bytes"):
                xsk.send(short)
        assert xsk.counts().pool == pool
        assert xsk.send(b"\xff" * 14)
        xsk.flush()
        for _ in range(100):
            if xsk.counts().tx == 0:
                break
            xsk.complete()
        counts = xsk.counts()
        assert counts.tx == counts.txq == 0, counts
        assert xsk.statistics().tx_invalid_descs == 0
    finally:
        xsk.close()


def test_parsers_never_read_outside_a_frame(lab_a: Lab) -> None:
    config = UmemConfig(nframes=16, frame_size=2048, fill_size=8, comp_size=8, rx_size=8, tx_size=8)
    xsk = XSK(lab_a.a.ifname, config=config)
    try:
        descs = ffi.new("struct aioxdp_desc[]", 3)
        for i, (addr, length) in enumerate([(16 * 2048, 60), (2000, 100), (1 << 40, 60)]):
            descs[i].addr, descs[i].len = addr, length  # past the UMEM, across a frame end
        dgrams = ffi.new("struct aioxdp_udp_dgram[]", 3)
        assert lib.aioxdp_udp_parse(xsk.c_handle, descs, 3, dgrams) == 0
        assert [d.status for d in dgrams] == [lib.AIOXDP_UDP_TRUNCATED] * 3
        replies = ffi.new("struct aioxdp_echo_reply[]", 3)
        assert lib.aioxdp_echo_parse(xsk.c_handle, descs, 3, 1, replies) == 0
        assert [r.status for r in replies] == [lib.AIOXDP_ECHO_TRUNCATED] * 3
    finally:
        xsk.close()


def test_sort_by_tag_is_stable_and_groups_runs() -> None:
    rng = random.Random(11)
    n = 4096
    tags = [rng.choice([3, 1, 7, 2, 9]) for _ in range(n)]
    descs = ffi.new("struct aioxdp_desc[]", n)
    for i, tag in enumerate(tags):
        descs[i].tag, descs[i].addr = tag, i
    scratch = ffi.new("struct aioxdp_desc[]", n)
    ends = ffi.new("uint32_t[]", n)
    runs = lib.aioxdp_sort_by_tag(descs, n, scratch, ends)
    # the witness: Python's sort, stable by definition
    expected = sorted(range(n), key=lambda i: tags[i])
    assert [int(descs[i].addr) for i in range(n)] == expected
    assert runs == 5
    counts = [tags.count(t) for t in sorted(set(tags))]
    assert [int(ends[i]) for i in range(runs)] == [sum(counts[: k + 1]) for k in range(5)]


def test_the_tag_in_front_of_a_frame_is_read_once_and_cleared(lab_a: Lab) -> None:
    # A frame's metadata bytes survive in the UMEM; left there, they could
    # dispatch a later packet that arrived untagged into the same frame.
    with BPFObject.packaged("forwarder") as obj:
        obj.load()
        forwarder = Forwarder(obj)
        forwarder.set_local_mac(lab_a.a.mac)
        tag = forwarder.add(Rule("udp", dst_port=PORT))
        link = obj.program("aioxdp_forwarder").attach(lab_a.a.ifname)
        xsk = XSK(lab_a.a.ifname)
        try:
            obj.map("aioxdp_fw_xsks").update(0, xsk.fd.to_bytes(4, "little"))
            lab_a.b.run(*udp_sender(lab_a, 1))
            for _ in range(200):
                batch = xsk.receive()
                if batch.count:
                    break
                time.sleep(0.005)
            assert batch.count == 1
            desc = batch.descs[0]
            assert desc.tag == tag
            meta = bytes(xsk.view[desc.addr - 8 : desc.addr])
            assert int.from_bytes(meta[4:], "little") != lib.AIOXDP_META_MAGIC, meta.hex()
            xsk.release(batch)
        finally:
            xsk.close()
            link.detach()
