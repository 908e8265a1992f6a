"""XDPTransport: one XDP socket driven by an asyncio event loop.

The XSK's fd is registered with ``loop.add_reader``; each readiness drains
up to ``batch_size`` descriptors per round (a few rounds at most, so other
callbacks run) and hands each batch to the protocol's ``packets_received``,
then gives the frames back. Writes copy a frame into the UMEM and queue it;
one flush per loop iteration moves the queue onto the TX ring and wakes the
kernel only when it asks. When no frame or ring slot is free, frames wait
in a backlog (never dropped), the protocol is paused above the high-water
mark and resumed below the low one, as CPython's selector transports do.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import warnings
from typing import Any

from aioxdp.errors import XDPError
from aioxdp.packet import PacketBatch, PacketProtocol
from aioxdp.xsk import XSK

__all__ = ["XDPTransport"]

log = logging.getLogger(__name__)

READ_ROUNDS = 8  # batches per readiness before yielding to the loop


class XDPTransport(asyncio.Transport):
    """A transport of raw Ethernet frames over one XSK (one RX queue)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        xsk: XSK,
        protocol: PacketProtocol,
        *,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            extra={"ifname": xsk.ifname, "queue": xsk.queue, "xsk": xsk, **(extra or {})}
        )
        self._loop = loop
        self._xsk = xsk
        self._protocol = protocol
        self._backlog: collections.deque[bytes] = collections.deque()
        self._closing = False
        self._closed = False
        self._paused_reading = False
        self._protocol_paused = False
        self._flush_scheduled = False
        self._writer_registered = False
        self._waiting = 0  # frames queued in C that the TX ring has not taken yet
        self._high_water = xsk.config.tx_size
        self._low_water = xsk.config.tx_size // 4
        self.dropped_on_abort = 0
        loop.call_soon(self._begin)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("closing" if self._closing else "open")
        return (
            f"<XDPTransport {self._xsk.ifname} queue {self._xsk.queue} fd={self._xsk.fd} {state}>"
        )

    # -- reading ------------------------------------------------------------

    def _begin(self) -> None:
        if self._xsk.closed:
            return  # the Interface failed to open and closed the socket: stay silent
        self._protocol.connection_made(self)
        self._start_reading()

    def _start_reading(self) -> None:
        if not self._closing and not self._paused_reading:
            self._loop.add_reader(self._xsk.fd, self._read_ready)

    def _read_ready(self) -> None:
        xsk = self._xsk
        for _ in range(READ_ROUNDS):
            rx = xsk.receive()
            if not rx.count:
                break
            try:
                self._protocol.packets_received(PacketBatch(rx))
            except Exception as exc:
                xsk.release(rx)
                self._fatal_error(exc, "Fatal error: protocol.packets_received() call failed.")
                return
            xsk.release(rx)
            if rx.count < xsk.batch_size or self._closing:
                break
        # protocols may have queued frames from C (send_back, echo) without us
        if self._waiting or self._backlog or xsk.tx_pending():
            self._flush()

    def is_reading(self) -> bool:
        return not self._paused_reading and not self._closing

    def pause_reading(self) -> None:
        if self._closing or self._paused_reading:
            return
        self._paused_reading = True
        self._loop.remove_reader(self._xsk.fd)

    def resume_reading(self) -> None:
        if self._closing or not self._paused_reading:
            return
        self._paused_reading = False
        self._loop.add_reader(self._xsk.fd, self._read_ready)

    # -- writing ------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue one Ethernet frame for sending."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expected a bytes-like frame, got {type(data).__name__}")
        if self._closing:
            raise XDPError(errno.EPIPE, "writing to a closing XDPTransport", "it was closed")
        if not 14 <= len(data) <= self._xsk.config.frame_size:
            raise ValueError(
                f"data: a frame is 14..{self._xsk.config.frame_size} bytes, got {len(data)}"
            )
        if self._backlog or not self._xsk.send(data):
            self._backlog.append(bytes(data))
        else:
            self._waiting += 1
        self._schedule_flush()
        self._maybe_pause_protocol()

    def writelines(self, list_of_data: Any) -> None:
        """Write each item as its own frame."""
        for data in list_of_data:
            self.write(data)

    def note_queued(self, n: int) -> None:
        """``n`` frames were queued on the XSK directly (by C batch code): flush them."""
        if n:
            self._waiting += n
            self._schedule_flush()
            self._maybe_pause_protocol()

    def send_back(self, batch: PacketBatch) -> None:
        """Transmit a received batch, rewritten in place, without copying it."""
        try:
            self._waiting += batch.send_back()
        finally:
            self._schedule_flush()  # whatever was queued goes, even if some were refused

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._closed:
            return
        xsk = self._xsk
        try:
            self._waiting = xsk.flush()
            # frames freed by completions take the backlog, a batch per flush
            while self._backlog:
                moved = 0
                while self._backlog and xsk.send(self._backlog[0]):
                    self._backlog.popleft()
                    moved += 1
                self._waiting = xsk.flush()
                if not moved:
                    break
        except XDPError as exc:
            self._fatal_error(exc, "Fatal error on XDP transport while sending")
            return
        if self._waiting or self._backlog:
            # EPOLLOUT on an XSK means TX ring room; polling also drives copy-mode TX
            if not self._writer_registered:
                self._loop.add_writer(xsk.fd, self._flush)
                self._writer_registered = True
        elif self._writer_registered:
            self._loop.remove_writer(xsk.fd)
            self._writer_registered = False
        self._maybe_resume_protocol()
        if self._closing and not self._waiting and not self._backlog:
            self._call_connection_lost(None)

    def get_write_buffer_size(self) -> int:
        return self._waiting + len(self._backlog)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = self._xsk.config.tx_size if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water, self._low_water = high, low
        self._maybe_pause_protocol()

    def _maybe_pause_protocol(self) -> None:
        if self.get_write_buffer_size() <= self._high_water or self._protocol_paused:
            return
        self._protocol_paused = True
        try:
            self._protocol.pause_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler(
                {
                    "message": "protocol.pause_writing() failed",
                    "exception": exc,
                    "transport": self,
                    "protocol": self._protocol,
                }
            )

    def _maybe_resume_protocol(self) -> None:
        if self._protocol_paused and self.get_write_buffer_size() <= self._low_water:
            self._protocol_paused = False
            try:
                self._protocol.resume_writing()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._loop.call_exception_handler(
                    {
                        "message": "protocol.resume_writing() failed",
                        "exception": exc,
                        "transport": self,
                        "protocol": self._protocol,
                    }
                )

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("XDP frames have no end of stream")

    # -- closing ------------------------------------------------------------

    def is_closing(self) -> bool:
        return self._closing

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        if not isinstance(protocol, PacketProtocol):
            raise TypeError(f"protocol: expected a PacketProtocol, got {type(protocol).__name__}")
        self._protocol = protocol

    def close(self) -> None:
        """Stop reading; send what is queued, then close."""
        if self._closing:
            return
        self._closing = True
        self._stop_io(writer=False)
        if not self._waiting and not self._backlog:
            self._loop.call_soon(self._call_connection_lost, None)
        else:
            self._schedule_flush()

    def abort(self) -> None:
        """Close at once, dropping queued frames (counted in dropped_on_abort)."""
        self._force_close(None)

    def _fatal_error(self, exc: Exception, message: str) -> None:
        if not isinstance(exc, OSError):
            self._loop.call_exception_handler(
                {
                    "message": message,
                    "exception": exc,
                    "transport": self,
                    "protocol": self._protocol,
                }
            )
        else:
            log.debug("%r: %s", self, message, exc_info=True)
        self._force_close(exc)

    def _force_close(self, exc: Exception | None) -> None:
        if self._closed:
            return
        self.dropped_on_abort += len(self._backlog)
        self._backlog.clear()
        self._closing = True
        self._stop_io(writer=True)
        self._loop.call_soon(self._call_connection_lost, exc)

    def _stop_io(self, *, writer: bool) -> None:
        if not self._paused_reading:
            self._loop.remove_reader(self._xsk.fd)
        if writer and self._writer_registered:
            self._loop.remove_writer(self._xsk.fd)
            self._writer_registered = False

    def _call_connection_lost(self, exc: Exception | None) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer_registered:
            self._loop.remove_writer(self._xsk.fd)
            self._writer_registered = False
        try:
            self._protocol.connection_lost(exc)
        finally:
            if not self._xsk.closed:
                self._xsk.complete()

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if not getattr(self, "_closed", True):
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
