"""Packets as protocols see them, and the protocol class they surface to.

A :class:`PacketBatch` wraps the descriptors of one RX drain; a
:class:`Packet` is made only when a protocol iterates the batch. A packet's
frame is the application's until the protocol returns from
``packets_received``; to hold it longer, call :meth:`Packet.keep` and later
:meth:`Packet.release`. Once a frame goes back, ``packet.data`` and
``packet.payload`` (and the views a batch gave out) are released
memoryviews: reading them raises ``ValueError`` instead of showing a later
packet's bytes. Slices a protocol cut from them stay readable but may show
another packet: copy what must outlive the frame (``bytes(view)``).
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Iterator
from typing import Any

from aioxdp.errors import FrameOwnershipError
from aioxdp.protocols.errors import BadFieldError, DecodeError
from aioxdp.protocols.ethernet import ETH_P_IP, ETH_P_IPV6, Ethernet
from aioxdp.protocols.icmp import IPPROTO_ICMP, Icmp
from aioxdp.protocols.icmpv6 import IPPROTO_ICMPV6, Icmpv6
from aioxdp.protocols.ipv4 import IPv4
from aioxdp.protocols.ipv6 import IPv6, upper_layer
from aioxdp.protocols.tcp import IPPROTO_TCP, Tcp
from aioxdp.protocols.udp import IPPROTO_UDP, Udp
from aioxdp.xsk import RxBatch, release_view

__all__ = ["IcmpProtocol", "Packet", "PacketBatch", "PacketProtocol"]


class Packet:
    """One received frame.

    ``data`` is the whole Ethernet frame, a memoryview into the UMEM (valid
    until the frame is released); ``tag`` the forwarder rule's tag and
    ``queue`` the RX queue it came in on.
    """

    __slots__ = (
        "_addr",
        "_batch",
        "_eth",
        "_index",
        "_ip",
        "_kept",
        "_l4",
        "_transport",
        "_views",
        "data",
        "queue",
        "tag",
    )

    def __init__(self, batch: RxBatch, index: int) -> None:
        batch.check("reading a received packet")
        desc = batch.descs[index]
        self._eth: Any = None
        self._ip: Any = None
        self._l4: Any = None
        self._transport: tuple[int, int, int, bool] | None = None
        self._batch: RxBatch | None = batch
        self._index = index
        self._kept = False
        self._addr = int(desc.addr)
        self.data = batch.xsk.view[self._addr : self._addr + desc.len]
        self._views = [self.data]
        self.tag = int(desc.tag)
        self.queue = batch.xsk.queue
        batch.hold(self)

    def _retire(self) -> None:
        # the frame went back (with its batch, or by release()): views go dead
        if not self._kept:
            self._batch = None
            for view in self._views:
                release_view(view)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"<Packet {len(self.data)} bytes queue {self.queue} tag {self.tag}>"

    # Headers decode on first use; a malformed one raises a DecodeError
    # subclass (aioxdp.protocols.errors) naming what was wrong.

    @property
    def eth(self) -> Ethernet:
        if self._eth is None:
            self._eth = Ethernet.parse(self.data)
        return self._eth  # type: ignore[no-any-return]

    @property
    def ip(self) -> IPv4 | IPv6:
        """The IPv4 or IPv6 header (IPv6: the fixed one; :attr:`l4` walks
        the extension headers)."""
        if self._ip is None:
            eth = self.eth
            if eth.ethertype == ETH_P_IP:
                self._ip = IPv4.parse(self.data, eth.header_len)
            elif eth.ethertype == ETH_P_IPV6:
                self._ip = IPv6.parse(self.data, eth.header_len)
            else:
                raise BadFieldError("ip", f"EtherType {eth.ethertype:#06x} is not IPv4 or IPv6")
        return self._ip  # type: ignore[no-any-return]

    def _find_transport(self) -> tuple[int, int, int, bool]:
        """(protocol, start, end, whole) of the transport header: where the
        IPv4 options or the IPv6 extension headers end, the datagram's end,
        and whether it is one whole datagram (no fragment)."""
        if self._transport is None:
            ip, at = self.ip, self.eth.header_len
            if isinstance(ip, IPv6):
                upper = upper_layer(self.data, at)
                if upper.fragment_offset:
                    raise BadFieldError("ipv6", "a later fragment has no transport header")
                self._transport = (upper.proto, upper.offset, upper.end, not upper.fragment)
            else:
                if ip.fragment_offset:
                    raise BadFieldError("ipv4", "a later fragment has no transport header")
                whole = not ip.more_fragments
                self._transport = (ip.proto, at + ip.header_len, at + ip.total_length, whole)
        return self._transport

    @property
    def l4_offset(self) -> int:
        return self._find_transport()[1]

    @property
    def l4(self) -> Icmp | Icmpv6 | Udp | Tcp:
        """The ICMP, ICMPv6, UDP or TCP header (checksums verified, but an
        ICMP one in a first fragment, whose rest is elsewhere)."""
        if self._l4 is None:
            proto, start, end, whole = self._find_transport()
            ip = self.ip
            if proto == IPPROTO_ICMP and isinstance(ip, IPv4):
                self._l4 = Icmp.parse(self.data, start, end, verify=whole)
            elif proto == IPPROTO_ICMPV6 and isinstance(ip, IPv6):
                checked = {"src": ip.src, "dst": ip.dst} if whole else {}
                self._l4 = Icmpv6.parse(self.data, start, end, **checked)
            elif proto == IPPROTO_UDP:
                self._l4 = Udp.parse(self.data, start, end, src=ip.src, dst=ip.dst)
            elif proto == IPPROTO_TCP:
                self._l4 = Tcp.parse(self.data, start, end, src=ip.src, dst=ip.dst)
            else:
                raise BadFieldError("ip", f"protocol {proto} has no decoder here")
        return self._l4  # type: ignore[no-any-return]

    @property
    def payload(self) -> memoryview:
        """What follows the transport header, up to the datagram's end."""

        l4 = self.l4
        _proto, start, end, _whole = self._find_transport()
        start += l4.header_len if isinstance(l4, Tcp) else 8
        payload = self.data[start:end]
        self._views.append(payload)
        return payload

    @property
    def kept(self) -> bool:
        return self._kept

    def keep(self) -> Packet:
        """Keep the frame after ``packets_received`` returns; :meth:`release` it later.

        Only inside the callback that received it, and once: otherwise
        :class:`~aioxdp.errors.FrameOwnershipError`.
        """
        batch = self._batch
        if batch is None or self._kept:
            raise FrameOwnershipError(
                errno.EINVAL,
                "keeping a packet",
                "it is already kept, or its frame went back when its callback returned",
            )
        batch.xsk.keep(batch, self._index)
        self._kept = True
        return self

    def release(self) -> None:
        """Give a kept frame back to the pool (idempotent)."""
        if not self._kept:
            if self._batch is None:
                return  # went back with its batch
            raise FrameOwnershipError(
                errno.EINVAL,
                "releasing a packet",
                "only kept packets are released by hand; the others go with their batch",
            )
        batch = self._batch
        if batch is None:
            return
        self._batch = None
        self._kept = False
        for view in self._views:
            release_view(view)
        if not batch.xsk.closed:
            batch.xsk.release_frame(self._addr)


class PacketBatch:
    """The packets of one RX drain (or the part of it for one endpoint)."""

    __slots__ = ("_rx", "_start", "_stop")

    def __init__(self, rx: RxBatch, start: int = 0, stop: int | None = None) -> None:
        stop = rx.count if stop is None else stop
        rx.check_range(start, stop - start, "taking part of a batch")
        self._rx = rx
        self._start = start
        self._stop = stop

    def __len__(self) -> int:
        return self._stop - self._start

    @property
    def live(self) -> bool:
        """False once the batch's frames went back (its callback returned)."""
        return self._rx.live

    @property
    def rx(self) -> RxBatch:
        """The socket's whole receive batch these packets are part of (the C
        checks of protocol cores run on it: ``rx.parse_udp(start, len(batch), ...)``)."""
        return self._rx

    @property
    def start(self) -> int:
        """Index of the first of these packets in :attr:`rx`."""
        return self._start

    def __iter__(self) -> Iterator[Packet]:
        rx = self._rx
        for i in range(self._start, self._stop):
            yield Packet(rx, i)

    def frames(self) -> Iterator[memoryview]:
        """Just the frame bytes, without making Packet objects."""
        rx = self._rx
        for i in range(self._start, self._stop):
            yield rx.frame(i)

    def send_back(self) -> int:
        """Transmit these frames (rewritten in place by the caller) without a copy."""
        return self._rx.xsk.send_batch(self._rx, self._start, len(self))


class PacketProtocol(asyncio.BaseProtocol):
    """Base class of protocols that receive raw packets from aioxdp.

    Override :meth:`packet_received` for one packet at a time, or
    :meth:`packets_received` to take a whole batch at once (the fast path:
    no per-packet Python unless you iterate).
    """

    def packets_received(self, batch: PacketBatch) -> None:
        for packet in batch:
            self.packet_received(packet)

    def packet_received(self, packet: Packet) -> None:
        """Called for each packet unless :meth:`packets_received` is overridden."""


class IcmpProtocol(PacketProtocol):
    """Receives ICMP packets decoded: override :meth:`icmp_received` (and
    :meth:`icmpv6_received` for ICMPv6).

    Malformed packets are counted in ``malformed`` by reason and skipped.
    """

    def __init__(self) -> None:
        self.malformed: dict[str, int] = {}

    def packet_received(self, packet: Packet) -> None:
        try:
            eth, ip, icmp = packet.eth, packet.ip, packet.l4
        except DecodeError as exc:
            self.malformed[exc.reason] = self.malformed.get(exc.reason, 0) + 1
            return
        if isinstance(icmp, Icmpv6) and isinstance(ip, IPv6):
            self.icmpv6_received(packet, eth, ip, icmp)
            return
        if not isinstance(icmp, Icmp) or not isinstance(ip, IPv4):
            self.malformed["not_icmp"] = self.malformed.get("not_icmp", 0) + 1
            return
        self.icmp_received(packet, eth, ip, icmp)

    def icmp_received(self, packet: Packet, eth: Ethernet, ip: IPv4, icmp: Icmp) -> None:
        """Called for each well-formed ICMP packet."""

    def icmpv6_received(self, packet: Packet, eth: Ethernet, ip: IPv6, icmp: Icmpv6) -> None:
        """Called for each well-formed ICMPv6 packet."""
