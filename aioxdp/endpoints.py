"""Endpoints: what binds a protocol to forwarder rules on an Interface.

An endpoint owns its rules and their tags, its share of the TX backlog (a
WriteBuffer: its own flow control), and the reporting of its protocol's
exceptions to the loop's exception handler, so that one endpoint's bug
hurts only itself. :class:`PacketTransport` delivers raw frames a batch at
a time; aioxdp.datagram's DatagramTransport is the UDP one.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from aioxdp.errors import XDPError
from aioxdp.forwarder import Rule
from aioxdp.packet import PacketBatch, PacketProtocol
from aioxdp.transport import WARN_WRITES_AFTER_CLOSE, WriteBuffer, report_callback_error

if TYPE_CHECKING:
    from aioxdp.interface import Interface

__all__ = ["Endpoint", "PacketTransport"]

log = logging.getLogger(__name__)


class Endpoint:
    """What every endpoint shares: its rules and tags in the forwarder, its
    share of the TX backlog with its own flow control, reporting its
    protocol's exceptions, and closing. Subclasses deliver."""

    _protocol: Any

    def __init__(
        self, nic: Interface, protocol: Any, rules: Sequence[Rule], tags: list[int]
    ) -> None:
        self._nic = nic
        self._protocol = protocol
        self._rules = list(rules)
        self._tags = tags
        self._retired_tags: list[int] = []
        self._closing = False
        self._write_buffer = WriteBuffer(
            nic.loop,
            self,
            lambda: self._protocol.pause_writing(),
            lambda: self._protocol.resume_writing(),
            high=nic.tx_size,
        )
        self.received = 0  # packets (or valid datagrams) handed to the protocol
        self.frames = 0  # every frame dispatched here, good or bad
        self.callback_errors = 0  # exceptions of its protocol, sent to the loop's handler
        self._callback_name = "packets_received"  # what dispatch names when the protocol raises
        self.dropped_after_close = 0  # writes after close, dropped as asyncio does

    # -- called by the Interface --------------------------------------------

    def install(self) -> None:
        """Put this endpoint's rules in the forwarder, all or none, and route
        their tags here."""
        forwarder = self._nic.forwarder
        installed: list[tuple[Rule, int]] = []
        try:
            for rule in self._rules:
                tag = forwarder.add(rule)
                installed.append((rule, tag))
                self._nic.claim_tag(tag, self)
        except BaseException:
            for rule, tag in installed:
                forwarder.remove(rule)
                self._nic.release_tag(tag)
            raise
        self._tags.extend(tag for _rule, tag in installed)

    @property
    def tags(self) -> list[int]:
        """Every tag that routes packets here: its rules', and removed rules'
        (packets already redirected still arrive)."""
        return self._tags + self._retired_tags

    def count_taken(self, n: int) -> None:
        """``n`` frames of this endpoint's tags its protocol took off the ring
        in C (a flood's replies): counted as dispatched and delivered."""
        self.frames += n
        self.received += n
        self._nic.count_taken(n)

    def dispatch(self, batch: PacketBatch) -> None:
        """Hand the protocol a batch for this endpoint; its exceptions are reported, not raised."""
        self.frames += len(batch)
        try:
            self._deliver(batch)
        except Exception as exc:
            self._callback_failed(exc, self._callback_name)

    def _callback_failed(self, exc: BaseException, callback: str) -> None:
        """The protocol raised: the loop's handler hears of it; we go on."""
        self.callback_errors += 1
        report_callback_error(self._nic.loop, exc, callback, self, self._protocol)

    def _deliver(self, batch: PacketBatch) -> None:
        raise NotImplementedError

    def _dropped_write(self) -> None:
        self.dropped_after_close += 1
        if self.dropped_after_close >= WARN_WRITES_AFTER_CLOSE:
            log.warning("%r: written after close, dropped", self)

    @property
    def rules(self) -> list[Rule]:
        return list(self._rules)

    def add_rule(self, rule: Rule) -> None:
        """Also take the packets ``rule`` names, from now on."""
        if self._closing:
            raise XDPError(errno.EPIPE, "adding a rule to a closed endpoint", "it was closed")
        tag = self._nic.forwarder.add(rule)
        self._rules.append(rule)
        self._tags.append(tag)
        self._nic.claim_tag(tag, self)

    def remove_rule(self, rule: Rule) -> None:
        """Stop taking the packets of ``rule``; those already redirected still arrive here."""
        if rule not in self._rules:
            raise KeyError(f"rule: {rule} is not one of this endpoint's rules")
        self._nic.forwarder.remove(rule)
        index = self._rules.index(rule)
        del self._rules[index]
        # its tag stays routed to us until we close: tags are never reused
        self._retired_tags.append(self._tags.pop(index))

    def send_back(self, batch: PacketBatch) -> None:
        """Send received frames back out after rewriting them in place (no copy)."""
        self._nic.transport(batch.rx.xsk.queue).send_back(batch)

    def get_write_buffer_size(self) -> int:
        """Frames of this endpoint waiting for a free frame or TX ring slot."""
        return self._write_buffer.size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._write_buffer.low, self._write_buffer.high)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Water marks in frames of this endpoint (default: the TX ring's size, a quarter)."""
        self._write_buffer.set_limits(high, low)

    def is_closing(self) -> bool:
        return self._closing

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[no-any-return]

    def close(self) -> None:
        """Remove this endpoint's rules; its queued frames still go; connection_lost(None) follows."""
        self._shutdown(None)

    def abort(self) -> None:
        """Like close, but this endpoint's frames waiting in the backlog are dropped."""
        if not self._closing and self._nic.queues:
            self._nic.tx.drop(self._write_buffer)
        self._shutdown(None)

    def lose(self, exc: Exception) -> None:
        """The Interface failed under us: close with ``exc`` as the cause."""
        self._shutdown(exc)

    def _shutdown(self, exc: Exception | None) -> None:
        if self._closing:
            return
        self._closing = True
        self._nic.drop_endpoint(self)
        self._nic.loop.call_soon(self._protocol.connection_lost, exc)


class PacketTransport(Endpoint, asyncio.Transport):
    """A packet endpoint's transport: frames in as batches, frames out."""

    def __init__(
        self, nic: Interface, protocol: PacketProtocol, rules: Sequence[Rule], tags: list[int]
    ) -> None:
        asyncio.Transport.__init__(
            self, extra={"ifname": nic.ifname, "mode": nic.mode, "rules": tuple(rules)}
        )
        Endpoint.__init__(self, nic, protocol, rules, tags)

    def __repr__(self) -> str:
        state = "closing" if self._closing else "open"
        return f"<PacketTransport {self._nic.ifname} {len(self._rules)} rules {state}>"

    def _deliver(self, batch: PacketBatch) -> None:
        self.received += len(batch)
        self._protocol.packets_received(batch)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send one Ethernet frame. After close it is counted and dropped, as asyncio does."""
        if self._closing:
            self._dropped_write()
            return
        self._nic.tx.write_for(self._write_buffer, data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        """Write each item as its own frame (not joined, as stream transports do)."""
        for data in list_of_data:
            self.write(data)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        if not isinstance(protocol, PacketProtocol):
            raise TypeError(f"protocol: expected a PacketProtocol, got {type(protocol).__name__}")
        self._protocol = protocol
