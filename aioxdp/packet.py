"""Packets as protocols see them, and the protocol class they surface to.

A :class:`PacketBatch` wraps the descriptors of one RX drain; a
:class:`Packet` is made only when a protocol iterates the batch. A packet's
frame is the application's until the protocol returns from
``packets_received``; to hold it longer, call :meth:`Packet.keep` and later
:meth:`Packet.release`.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aioxdp._libs import lib
from aioxdp.errors import XDPError

if TYPE_CHECKING:
    from aioxdp.protocols.ethernet import Ethernet
    from aioxdp.protocols.icmp import Icmp
    from aioxdp.protocols.ipv4 import IPv4
    from aioxdp.protocols.tcp import Tcp
    from aioxdp.protocols.udp import Udp
    from aioxdp.xsk import XSK, RxBatch

__all__ = ["Packet", "PacketBatch", "PacketProtocol"]


class Packet:
    """One received frame.

    ``data`` is the whole Ethernet frame, a memoryview into the UMEM (valid
    until the frame is released); ``tag`` the forwarder rule's tag and
    ``queue`` the RX queue it came in on.
    """

    __slots__ = ("_addr", "_desc", "_eth", "_ip", "_l4", "_xsk", "data", "queue", "tag")

    def __init__(self, xsk: XSK, desc: Any) -> None:
        self._eth: Any = None
        self._ip: Any = None
        self._l4: Any = None
        self._xsk: XSK | None = xsk
        self._desc = desc
        self._addr = int(desc.addr)
        self.data = xsk.view[self._addr : self._addr + desc.len]
        self.tag = int(desc.tag)
        self.queue = xsk.queue

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"<Packet {len(self.data)} bytes queue {self.queue} tag {self.tag}>"

    # Headers decode on first use; a malformed one raises a DecodeError
    # subclass (aioxdp.protocols.errors) naming what was wrong.

    @property
    def eth(self) -> Ethernet:
        if self._eth is None:
            from aioxdp.protocols.ethernet import Ethernet

            self._eth = Ethernet.parse(self.data)
        return self._eth  # type: ignore[no-any-return]

    @property
    def ip(self) -> IPv4:
        if self._ip is None:
            from aioxdp.protocols.errors import BadFieldError
            from aioxdp.protocols.ethernet import ETH_P_IP
            from aioxdp.protocols.ipv4 import IPv4

            eth = self.eth
            if eth.ethertype != ETH_P_IP:
                raise BadFieldError("ipv4", f"EtherType {eth.ethertype:#06x} is not IPv4")
            self._ip = IPv4.parse(self.data, eth.header_len)
        return self._ip  # type: ignore[no-any-return]

    @property
    def l4_offset(self) -> int:
        return self.eth.header_len + self.ip.header_len

    @property
    def l4(self) -> Icmp | Udp | Tcp:
        """The ICMP, UDP or TCP header (checksums verified)."""
        if self._l4 is None:
            from aioxdp.protocols.errors import BadFieldError
            from aioxdp.protocols.icmp import IPPROTO_ICMP, Icmp
            from aioxdp.protocols.tcp import IPPROTO_TCP, Tcp
            from aioxdp.protocols.udp import IPPROTO_UDP, Udp

            ip = self.ip
            if ip.fragment_offset:
                raise BadFieldError("ipv4", "a later fragment has no transport header")
            start = self.eth.header_len + ip.header_len
            end = self.eth.header_len + ip.total_length
            if ip.proto == IPPROTO_ICMP:
                self._l4 = Icmp.parse(self.data, start, end, verify=not ip.more_fragments)
            elif ip.proto == IPPROTO_UDP:
                self._l4 = Udp.parse(self.data, start, end, src=ip.src, dst=ip.dst)
            elif ip.proto == IPPROTO_TCP:
                self._l4 = Tcp.parse(self.data, start, end, src=ip.src, dst=ip.dst)
            else:
                raise BadFieldError("ipv4", f"protocol {ip.proto} has no decoder here")
        return self._l4  # type: ignore[no-any-return]

    @property
    def payload(self) -> memoryview:
        """What follows the transport header, up to the IP total length."""
        from aioxdp.protocols.tcp import Tcp

        l4 = self.l4
        start = self.l4_offset + (l4.header_len if isinstance(l4, Tcp) else 8)
        return self.data[start : self.eth.header_len + self.ip.total_length]

    def keep(self) -> Packet:
        """Keep the frame after ``packets_received`` returns; :meth:`release` it later."""
        if self._desc is None:
            raise XDPError(errno.EINVAL, "keeping a packet", "it is already kept or released")
        self._desc.flags |= lib.AIOXDP_DESC_KEEP
        self._desc = None  # the descriptor array is reused by the next drain
        return self

    def release(self) -> None:
        """Give a kept frame back to the pool (idempotent)."""
        if self._xsk is None:
            return
        if self._desc is not None:
            raise XDPError(
                errno.EINVAL, "releasing a packet", "only kept packets are released by hand"
            )
        xsk, self._xsk = self._xsk, None
        self.data.release()
        xsk.release_frame(self._addr)


class PacketBatch:
    """The packets of one RX drain (or the part of it for one endpoint)."""

    __slots__ = ("_rx", "_start", "_stop")

    def __init__(self, rx: RxBatch, start: int = 0, stop: int | None = None) -> None:
        self._rx = rx
        self._start = start
        self._stop = rx.count if stop is None else stop

    def __len__(self) -> int:
        return self._stop - self._start

    def __iter__(self) -> Iterator[Packet]:
        xsk, descs = self._rx.xsk, self._rx.descs
        for i in range(self._start, self._stop):
            yield Packet(xsk, descs[i])

    def frames(self) -> Iterator[memoryview]:
        """Just the frame bytes, without making Packet objects."""
        view, descs = self._rx.xsk.view, self._rx.descs
        for i in range(self._start, self._stop):
            d = descs[i]
            yield view[d.addr : d.addr + d.len]

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
