"""XDPTransport: one XDP socket driven by an asyncio event loop.

The loop watches (``loop.add_reader``) an epoll of the transport's own that
watches the XSK's fd, so that a kick of many frames can take the socket off
every wait queue while the kernel, inside that kick, frees what it sent and
delivers what came back (see ``_flush``). Each readiness drains up to
``batch_size`` descriptors per round (a few rounds at most, so other
callbacks run) and hands each batch to the protocol's ``packets_received``,
then gives the frames back; after its flush it reads on if that kick
brought answers (copy mode on veth delivers them inside it). An exception
from the protocol goes to the loop's exception handler and reading goes on
(as with asyncio's own transports); only an error of the socket itself
closes the transport.

With ``busy_poll`` (seconds), a transport that found frames keeps polling
the RX ring once per loop iteration (``call_soon``), the XSK out of our
epoll and so off its wait queue (unless a backlog waits on EPOLLOUT), until
the ring has stayed empty that long; then it waits in epoll again, as NAPI
goes back to interrupts. Under load the receiver then never sleeps, and the
kernel, which otherwise wakes it on the producing CPU for every burst,
spends nothing on it. It costs a loop iteration per poll while idle within
the window: off (0) by default.

Writes copy a frame into the UMEM and queue it; one flush per loop
iteration moves the queue onto the TX ring and wakes the kernel only when
it asks. When no frame or ring slot is free, frames wait in a backlog
(never dropped). Each writer has its own :class:`WriteBuffer` there: the
writer above its high-water mark is paused and resumed below its low one,
as CPython's selector transports do per transport, so one busy writer never
pauses another. Writes after close are counted and dropped, with a warning
from the fifth on, as CPython does.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import select
import warnings
from collections.abc import Callable
from typing import Any

from aioxdp.packet import PacketBatch, PacketProtocol
from aioxdp.xsk import XSK, UdpBatch

__all__ = ["WriteBuffer", "XDPTransport", "report_callback_error"]

log = logging.getLogger(__name__)

QUIET_KICK_AT = 16  # frames a kick sends at least for the XSK to leave the wait queues first
READ_ROUNDS = 8  # batches per readiness before yielding to the loop
RETRY_FIRST, RETRY_MAX = 20e-6, 1e-3  # seconds: a backlog waiting on free frames looks again
BUSY_POLL_MAX = 0.01  # seconds: a longer window is a spinning loop, not a receive mode
WARN_WRITES_AFTER_CLOSE = 5  # asyncio's LOG_THRESHOLD_FOR_CONNLOST_WRITES


def check_busy_poll(busy_poll: object) -> float:
    """``busy_poll`` checked: seconds, 0 (off) to BUSY_POLL_MAX."""
    if isinstance(busy_poll, bool) or not isinstance(busy_poll, (int, float)):
        raise TypeError(f"busy_poll: expected seconds (a number), got {type(busy_poll).__name__}")
    if not 0 <= busy_poll <= BUSY_POLL_MAX:
        raise ValueError(f"busy_poll: must be 0..{BUSY_POLL_MAX} seconds, got {busy_poll!r}")
    return float(busy_poll)


def report_callback_error(
    loop: asyncio.AbstractEventLoop,
    exc: BaseException,
    callback: str,
    transport: Any,
    protocol: Any,
) -> None:
    """Hand an exception of a protocol callback to the loop's exception handler."""
    if isinstance(exc, (SystemExit, KeyboardInterrupt)):
        raise exc
    loop.call_exception_handler(
        {
            "message": f"Exception in callback {type(protocol).__name__}.{callback}()",
            "exception": exc,
            "transport": transport,
            "protocol": protocol,
        }
    )


class WriteBuffer:
    """One writer's frames in a transport's backlog, and its flow control.

    ``pause`` runs when more than ``high`` of its frames wait, ``resume``
    when no more than ``low`` do; exceptions from either go to the loop's
    exception handler.
    """

    __slots__ = (
        "_default_high",
        "_loop",
        "_pause",
        "_resume",
        "high",
        "low",
        "owner",
        "paused",
        "size",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        owner: Any,
        pause: Callable[[], None],
        resume: Callable[[], None],
        high: int,
    ) -> None:
        self._loop = loop
        self.owner = owner
        self._pause = pause
        self._resume = resume
        self.high, self.low = high, high // 4
        self._default_high = high
        self.size = 0
        self.paused = False

    def set_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = self._default_high if low is None else 4 * low
        if low is None:
            low = high // 4
        if isinstance(high, bool) or isinstance(low, bool) or not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self.high, self.low = high, low
        self.changed(0)

    def changed(self, delta: int) -> None:
        self.size += delta
        if not self.paused and self.size > self.high:
            self.paused = True
            self._call(self._pause, "pause_writing")
        elif self.paused and self.size <= self.low:
            self.paused = False
            self._call(self._resume, "resume_writing")

    def _call(self, callback: Callable[[], None], name: str) -> None:
        try:
            callback()
        except BaseException as exc:
            report_callback_error(self._loop, exc, name, self.owner, self.owner.get_protocol())


class XDPTransport(asyncio.Transport):
    """A transport of raw Ethernet frames over one XSK (one RX queue)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        xsk: XSK,
        protocol: PacketProtocol,
        *,
        extra: dict[str, Any] | None = None,
        busy_poll: float = 0.0,
    ) -> None:
        busy_poll = check_busy_poll(busy_poll)
        super().__init__(
            extra={"ifname": xsk.ifname, "queue": xsk.queue, "xsk": xsk, **(extra or {})}
        )
        self._loop = loop
        self._xsk = xsk
        self._protocol = protocol
        # frames waiting for a free frame or ring slot, with whose share they are in
        self._backlog: collections.deque[tuple[bytes, WriteBuffer | None]] = collections.deque()
        self._closing = False
        self._closed = False
        self._paused_reading = False
        self._delivering = False  # inside _read_ready: its end flushes what was queued
        self._protocol_paused = False
        self._flush_scheduled = False
        self._writer_registered = False
        self._retry: asyncio.TimerHandle | None = None  # a backlog waiting on completions
        self._retry_delay = 0.0
        self._waiting = 0  # frames queued in C that the TX ring has not taken yet
        self._high_water = xsk.config.tx_size
        self._low_water = xsk.config.tx_size // 4
        self.dropped_on_abort = 0
        self.dropped_after_close = 0
        # The loop watches an epoll of our own that watches the XSK, not the
        # XSK itself: a kick that sends many frames takes the XSK out of it
        # first, so the kernel, which in copy mode frees each frame's skb and
        # delivers the answers inside that kick, finds nobody on the socket's
        # wait queue to call for each (perf: 0.4 us a frame of a flood). Put
        # back after, a level-triggered socket loses no readiness.
        self._readiness = select.epoll()
        self._readable = self._readiness.fileno()
        self._watching = False  # the XSK is in self._readiness
        self._watch(True)
        self._busy_poll = busy_poll
        self._poll: asyncio.Handle | None = None  # polling the ring (busy_poll): the next look
        self._last_frames = 0.0  # loop time a poll last found frames
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
            self._loop.add_reader(self._readable, self._read_ready)

    def _read_ready(self) -> None:
        if self._closing or self._paused_reading:
            return
        xsk = self._xsk
        frames = rounds = 0
        while True:
            self._delivering = True  # what protocols send meanwhile goes in one flush, below
            try:
                while rounds < READ_ROUNDS:
                    rounds += 1
                    try:
                        rx = xsk.receive()
                    except OSError as exc:
                        self._fatal_error(exc, "Fatal error: receiving from the XDP socket failed.")
                        return
                    if not rx.count:
                        break
                    frames += rx.count
                    try:
                        self._protocol.packets_received(PacketBatch(rx))
                    except Exception as exc:  # the protocol's bug: report it, keep reading
                        report_callback_error(
                            self._loop, exc, "packets_received", self, self._protocol
                        )
                    finally:
                        xsk.release(rx)
                    if rx.count < xsk.batch_size or self._closing:
                        break
            finally:
                self._delivering = False
            # protocols may have queued frames from C (send_back, echo) without us
            if not (self._waiting or self._backlog or xsk.tx_pending()):
                break
            self._flush()
            # in copy mode the kick may have brought the answers already (veth
            # runs the peer inside it): read them now, not a loop turn later
            if rounds >= READ_ROUNDS or self._closing or self._paused_reading:
                break
            if xsk.closed or not xsk.rx_ready():
                break
        if self._busy_poll:
            self._poll_again(frames)

    def _poll_again(self, frames: int) -> None:
        """busy_poll: look at the ring again next loop iteration, the XSK out
        of our epoll, unless it has found nothing for busy_poll seconds."""
        if self._closing or self._paused_reading or self._xsk.closed or self._poll is not None:
            return  # (a poll is due already: one chain of polls at a time)
        now = self._loop.time()
        if frames:
            self._last_frames = now
        elif now - self._last_frames >= self._busy_poll:
            # idle: wait in epoll again (frames that came meanwhile make it ready at once)
            self._watch(True)
            return
        self._watch(False)
        self._poll = self._loop.call_soon(self._poll_ring)

    def _poll_ring(self) -> None:
        self._poll = None
        self._read_ready()

    @property
    def busy_poll(self) -> float:
        """Seconds a transport that found frames keeps polling the ring (0: off)."""
        return self._busy_poll

    @busy_poll.setter
    def busy_poll(self, seconds: float) -> None:
        self._busy_poll = check_busy_poll(seconds)
        if not self._busy_poll and self._poll is not None:
            self._stop_polling()
            if not self._closing and not self._paused_reading:
                self._watch(True)  # waiting in epoll again

    def _stop_polling(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None

    def _watch(self, on: bool) -> None:
        """Put the XSK in our epoll, or take it out (a socket closed
        meanwhile has left it already: its fd may name another file now)."""
        if on == self._watching or self._readiness.closed:
            return
        if on and not self._xsk.closed:
            self._readiness.register(self._xsk.fd, select.EPOLLIN)
            self._watching = True
        elif not on:
            if not self._xsk.closed:
                self._readiness.unregister(self._xsk.fd)
            self._watching = False

    def _quiet_for(self, frames: int) -> bool:
        """Take the XSK out of our epoll before kicks that send ``frames``,
        if they are many; True if it was (the caller puts it back). The
        loop's own EPOLLOUT entry, when there is one, stays: it waits."""
        if frames < QUIET_KICK_AT or not self._watching or self._writer_registered:
            return False
        self._watch(False)
        return True

    def is_reading(self) -> bool:
        return not self._paused_reading and not self._closing

    def pause_reading(self) -> None:
        if self._closing or self._paused_reading:
            return
        self._paused_reading = True
        self._loop.remove_reader(self._readable)
        self._stop_polling()
        self._watch(False)  # nobody on the socket's wait queue for it now

    def resume_reading(self) -> None:
        if self._closing or not self._paused_reading:
            return
        self._paused_reading = False
        self._watch(True)
        self._loop.add_reader(self._readable, self._read_ready)

    # -- writing ------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue one Ethernet frame for sending."""
        self.write_for(None, data)

    def send(self, frame: bytes | bytearray | memoryview) -> bool:
        """Queue one frame, as ``write`` does; True (like XSK.send, for code
        that sends through either: a frame with no free UMEM frame waits here)."""
        self.write(frame)
        return True

    def write_for(self, buffer: WriteBuffer | None, data: bytes | bytearray | memoryview) -> None:
        """Queue one frame; if it must wait, it waits in ``buffer``'s share of
        the backlog (None: the transport's own protocol's)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expected a bytes-like frame, got {type(data).__name__}")
        if not 14 <= len(data) <= self._xsk.config.frame_size:
            raise ValueError(
                f"data: a frame is 14..{self._xsk.config.frame_size} bytes, got {len(data)}"
            )
        if self._closing:
            self.dropped_after_close += 1
            if self.dropped_after_close >= WARN_WRITES_AFTER_CLOSE:
                log.warning("%r: frame written after close, dropped", self)
            return
        if self._backlog or not self._xsk.send(data):
            self._backlog.append((bytes(data), buffer))
            if buffer is not None:
                buffer.changed(1)
        else:
            self._waiting += 1
        self._schedule_flush()
        self._maybe_pause_protocol()

    def drop(self, buffer: WriteBuffer) -> int:
        """Drop the frames waiting in ``buffer``'s share (its writer aborts)."""
        kept = collections.deque(entry for entry in self._backlog if entry[1] is not buffer)
        dropped = len(self._backlog) - len(kept)
        self._backlog = kept
        self.dropped_on_abort += dropped
        buffer.changed(-dropped)
        self._maybe_resume_protocol()
        return dropped

    def writelines(self, list_of_data: Any) -> None:
        """Write each item as its own frame."""
        for data in list_of_data:
            self.write(data)

    # Frames built in C straight into the UMEM: each call does its accounting.

    def send_udp_many(self, batch: UdpBatch, ip_id: int) -> int:
        """UDP datagrams built in C a batch at a time (see XSK.send_udp_many);
        how many went."""
        if self._closing:
            return 0
        sent = self._xsk.send_udp_many(batch, ip_id)
        self._queued(sent)
        return sent

    def send_echoes(self, template: Any, length: int, seq: int, count: int, stamps: Any) -> int:
        """Echo requests stamped from ``template`` (see XSK.send_echoes); how many went."""
        if self._closing:
            return 0
        quiet = self._quiet_for(count)  # C kicks once per request (copy mode)
        try:
            n = self._xsk.send_echoes(template, length, seq, count, stamps)
        finally:
            if quiet:
                self._watch(True)
        self._queued_now(n)
        return n

    def send_echo_each(
        self,
        bases: Any,
        n_bases: int,
        length: int,
        base_of: Any,
        daddrs: Any,
        probes: Any,
        first: int,
        count: int,
        window: int,
    ) -> int:
        """The next probe of several targets (see XSK.send_echo_each); how many went."""
        if self._closing:
            return 0
        quiet = self._quiet_for(count)  # C kicks once per request (copy mode)
        try:
            n = self._xsk.send_echo_each(
                bases, n_bases, length, base_of, daddrs, probes, first, count, window
            )
        finally:
            if quiet:
                self._watch(True)
        self._queued_now(n)
        return n

    def echo_flood(self, xsk: XSK, lookup: Any, probes: Any, counts: Any, flood: Any) -> int:
        """A one-target flood's replies waiting on ``xsk``'s ring, each
        answered by the next probes through this transport, in C (see
        XSK.echo_flood); returns the replies taken."""
        if self._closing or self._xsk.closed or xsk.closed:
            return 0
        quiet = self._quiet_for(int(flood.max_taken))  # C kicks once per probe (copy mode)
        try:
            taken = xsk.echo_flood(self._xsk, lookup, probes, counts, flood)
        finally:
            if quiet:
                self._watch(True)
        self._queued_now(int(flood.sent))
        return taken

    def echo_udp(self, batch: PacketBatch, dgrams: Any) -> int:
        """Answer the batch's valid datagrams in place (see RxBatch.echo_udp)."""
        n = batch.rx.echo_udp(batch.start, len(batch), dgrams)
        self._queued(n)
        return n

    def _queued(self, n: int) -> None:
        if n:
            self._waiting += n
            self._schedule_flush()
            self._maybe_pause_protocol()

    def _queued_now(self, n: int) -> None:
        """Frames C stamped with their send time: they go now, not at the end
        of the loop turn, so the stamp is as close to the wire as ping's
        (sent while a batch is delivered, they go in the flush that ends it)."""
        if n:
            self._waiting += n
            if self._delivering:
                self._maybe_pause_protocol()
                return
            self._flush()
            self._maybe_pause_protocol()

    def send_back(self, batch: PacketBatch) -> None:
        """Transmit a received batch, rewritten in place, without copying it."""
        try:
            self._waiting += batch.send_back()
        finally:
            self._schedule_flush()  # whatever was queued goes, even if some were refused

    def _schedule_flush(self) -> None:
        # while a batch is delivered, the end of _read_ready flushes (an
        # answer to one datagram went out, then a second flush a turn later)
        if not self._flush_scheduled and not self._delivering:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._closed:
            return
        xsk = self._xsk
        moved_any = False
        quiet = self._quiet_for(self._waiting)
        try:
            self._waiting = xsk.flush()
            # frames freed by completions take the backlog, a batch per flush
            while self._backlog:
                moved = 0
                while self._backlog and xsk.send(self._backlog[0][0]):
                    buffer = self._backlog.popleft()[1]
                    if buffer is not None:
                        buffer.changed(-1)
                    moved += 1
                self._waiting = xsk.flush()
                if not moved:
                    break
                moved_any = True
        except OSError as exc:
            self._fatal_error(exc, "Fatal error on XDP transport while sending")
            return
        finally:
            if quiet:
                self._watch(True)
        if self._waiting:
            # frames wait for TX ring room: EPOLLOUT says when there is some
            # (and polling drives copy-mode TX)
            self._wait_for_completions(None)
            if not self._writer_registered:
                self._loop.add_writer(xsk.fd, self._flush)
                self._writer_registered = True
        else:
            if self._writer_registered:
                self._loop.remove_writer(xsk.fd)
                self._writer_registered = False
            # a backlog with the TX ring empty waits for free frames, which
            # only completions (or released packets) give back: EPOLLOUT would
            # fire at once, every turn, so look again after a growing pause
            self._wait_for_completions(moved_any if self._backlog else None)
        self._maybe_resume_protocol()
        if self._closing and not self._waiting and not self._backlog:
            self._call_connection_lost(None)

    def _wait_for_completions(self, progressed: bool | None) -> None:
        """None: nothing to wait for. Else look at the backlog again after a
        pause: 20 us, doubling while nothing moves, at most 1 ms."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if progressed is None:
            self._retry_delay = 0.0
            return
        if progressed or not self._retry_delay:
            self._retry_delay = RETRY_FIRST
        else:
            self._retry_delay = min(self._retry_delay * 2, RETRY_MAX)
        self._retry = self._loop.call_later(self._retry_delay, self._retry_flush)

    def _retry_flush(self) -> None:
        self._retry = None
        if not self._closed and not self._xsk.closed:
            self._xsk.complete()
            self._flush()

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

    @property
    def closed(self) -> bool:
        """True once connection_lost was called."""
        return self._closed

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
        buffers = collections.Counter(entry[1] for entry in self._backlog if entry[1] is not None)
        self._backlog.clear()
        for buffer, count in buffers.items():
            buffer.changed(-count)
        self._closing = True
        self._stop_io(writer=True)
        self._loop.call_soon(self._call_connection_lost, exc)

    def _stop_io(self, *, writer: bool) -> None:
        self._stop_polling()
        if not self._paused_reading:
            self._loop.remove_reader(self._readable)
        if writer:
            self._wait_for_completions(None)
            if self._writer_registered:
                self._loop.remove_writer(self._xsk.fd)
                self._writer_registered = False

    def _call_connection_lost(self, exc: Exception | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._wait_for_completions(None)
        if self._writer_registered:
            self._loop.remove_writer(self._xsk.fd)
            self._writer_registered = False
        self._watching = False
        self._readiness.close()  # (the loop stopped watching it in _stop_io)
        try:
            self._protocol.connection_lost(exc)
        finally:
            if not self._xsk.closed:
                self._xsk.complete()

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if not getattr(self, "_closed", True):
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
