"""The XDP socket: one RX queue of one interface, its UMEM and four rings.

No event loop here: :class:`XSK` is the loop-agnostic core that the
asyncio transport and the anyio driver both drive. Every ring operation is
one call into C over a whole batch.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from aioxdp import privileges
from aioxdp._libs import ffi, lib
from aioxdp.errors import FrameOwnershipError, XDPError, error_for_errno
from aioxdp.umem import FrameCounts, UmemConfig

__all__ = ["XSK", "RxBatch", "SocketObserver", "XDPStatistics", "release_view", "socket_observers"]

XDP_USE_NEED_WAKEUP = lib.XDP_USE_NEED_WAKEUP
BUSY_RETRIES, BUSY_WAIT = 50, 0.01  # up to half a second for a just-closed socket's queue


@dataclass(frozen=True, slots=True)
class XDPStatistics:
    """The kernel's XDP_STATISTICS for one socket."""

    rx_dropped: int  # dropped for reasons other than a full ring
    rx_invalid_descs: int
    tx_invalid_descs: int
    rx_ring_full: int  # dropped: our RX ring was full
    rx_fill_ring_empty_descs: int  # the fill ring was empty when a packet came
    tx_ring_empty_descs: int


# Told of every socket opened and closed in this process: ("open", xsk, None)
# and ("close", xsk, final counts). aioxdp.testing's leak check listens here.
SocketObserver = Callable[[str, "XSK", "FrameCounts | None"], None]
socket_observers: list[SocketObserver] = []


def _tell(event: str, xsk: XSK, counts: FrameCounts | None) -> None:
    for observer in list(socket_observers):
        observer(event, xsk, counts)


_OWNER_NAMES = {
    lib.AIOXDP_OWN_POOL: "free in the pool",
    lib.AIOXDP_OWN_FILL: "lent to the kernel for receiving",
    lib.AIOXDP_OWN_RX: "in a batch being delivered",
    lib.AIOXDP_OWN_APP: "held by the application",
    lib.AIOXDP_OWN_TXQ: "queued for sending",
    lib.AIOXDP_OWN_TX: "being sent by the kernel",
}


class RxBatch:
    """Descriptors drained from the RX ring in one go.

    ``descs`` is a C array of ``struct aioxdp_desc``; ``count`` entries are
    valid. The batch is live until :meth:`XSK.release` hands its frames back;
    after that every use of it, and every view it gave out, fails loudly.
    """

    __slots__ = ("_holders", "_live", "_views", "count", "descs", "xsk")

    def __init__(self, xsk: XSK, descs: Any, count: int) -> None:
        self.xsk = xsk
        self.descs = descs
        self.count = count
        self._live = True
        self._views: list[memoryview] = []  # views given out, released with the batch
        self._holders: list[Any] = []  # objects with _retire(), told when the batch goes

    def __len__(self) -> int:
        return self.count

    @property
    def live(self) -> bool:
        return self._live

    def check(self, doing: str) -> None:
        if not self._live:
            raise FrameOwnershipError(
                errno.EINVAL,
                doing,
                "its batch was already handed back to the kernel once its callback returned; "
                "keep() a packet inside the callback to hold it longer",
            )

    def check_range(self, start: int, count: int, doing: str) -> None:
        self.check(doing)
        if not (
            isinstance(start, int)
            and isinstance(count, int)
            and 0 <= start <= start + count <= self.count
        ):
            raise ValueError(
                f"start, count: ({start!r}, {count!r}) is not a range of this batch of {self.count}"
            )

    def view(self, addr: int, length: int) -> memoryview:
        """A view of UMEM bytes of this batch, released when the batch is."""
        self.check("reading a received frame")
        view = self.xsk.view[addr : addr + length]
        self._views.append(view)
        return view

    def frame(self, i: int) -> memoryview:
        d = self.descs[i]
        return self.view(d.addr, d.len)

    def tag_runs(self) -> list[tuple[int, int, int]]:
        """Group the batch by forwarder tag, in C; returns ``(tag, start, stop)`` runs.

        Reorders the descriptors, so only before any packet is looked at.
        """
        self.check("sorting a batch")
        if self._holders or self._views:
            raise RuntimeError("tag_runs: the batch was already read; sort it first")
        xsk = self.xsk
        n = lib.aioxdp_sort_by_tag(self.descs, self.count, xsk._sort_scratch, xsk._run_ends)
        runs, start = [], 0
        for i in range(n):
            stop = xsk._run_ends[i]
            runs.append((int(self.descs[start].tag), start, stop))
            start = stop
        return runs

    # -- the C checks of a range of this batch (protocol cores call these) ----

    def parse_udp(self, start: int, count: int, out: Any) -> int:
        """Check UDP datagrams ``start .. start+count`` into ``out`` (struct
        aioxdp_udp_dgram[]); returns how many are valid."""
        self.check_range(start, count, "reading received datagrams")
        return int(lib.aioxdp_udp_parse(self.xsk._handle(), self.descs + start, count, out))

    def echo_udp(self, start: int, count: int, dgrams: Any) -> int:
        """Turn the valid datagrams of a range, checked by :meth:`parse_udp`,
        into their answers in place and queue them; returns how many."""
        self.check_range(start, count, "echoing received datagrams")
        n = lib.aioxdp_udp_echo(self.xsk._handle(), self.descs + start, dgrams, count)
        if n < 0:
            raise FrameOwnershipError(
                -n,
                "echoing received datagrams",
                "a batch is echoed once, and not after its packets were kept or sent back",
            )
        return int(n)

    def parse_echo_replies(self, start: int, count: int, ident: int, out: Any) -> int:
        """Check ICMP echo replies of a range for echo id ``ident`` into ``out``
        (struct aioxdp_echo_reply[]); returns how many are valid."""
        self.check_range(start, count, "reading echo replies")
        return int(lib.aioxdp_echo_parse(self.xsk._handle(), self.descs + start, count, ident, out))

    def hold(self, holder: Any) -> None:
        """Call ``holder._retire()`` when the batch is released."""
        self._holders.append(holder)

    def _retire(self) -> None:
        self._live = False
        for holder in self._holders:
            holder._retire()
        for view in self._views:
            release_view(view)
        self._holders.clear()
        self._views.clear()


def release_view(view: memoryview) -> None:
    # BufferError: someone exported a buffer from it (memoryview(view), numpy):
    # it stays readable, and the UMEM stays mapped until it goes (see XSK.close)
    with contextlib.suppress(BufferError):
        view.release()


class UdpBatch(NamedTuple):
    """UDP datagrams for C to build and send (aioxdp_udp_send_many): the
    k-th is the next ``lens[k]`` bytes of ``data``, to ``dests[k]``, a word
    naming one of the ``n_paths`` headers in ``paths`` (struct
    aioxdp_udp_path) and, for IPv6, one of the ``n_addrs6`` 16-byte
    addresses in ``addrs6``. Made by UdpPaths.batch."""

    paths: Any
    n_paths: int
    addrs6: Any
    n_addrs6: int
    dests: Any
    data: bytes
    lens: Any
    n: int


class XSK:
    """An AF_XDP socket bound to ``ifname`` queue ``queue``, with its own UMEM.

    ``need_wakeup`` (default on) makes the kernel say when it needs a
    syscall, so a busy socket makes none.
    """

    def __init__(
        self,
        ifname: str,
        queue: int = 0,
        *,
        config: UmemConfig | None = None,
        need_wakeup: bool = True,
        batch_size: int | None = None,
    ) -> None:
        if not isinstance(queue, int) or not 0 <= queue < lib.AIOXDP_FW_MAX_QUEUES:
            raise ValueError(f"queue: must be 0..{lib.AIOXDP_FW_MAX_QUEUES - 1}, got {queue!r}")
        self.config = UmemConfig.chosen(config)
        self.batch_size = self.config.receive_batch(batch_size)
        self.ifname = ifname
        self.queue = queue
        self._ptr: Any = None
        self._current: RxBatch | None = None
        doing = f"opening an AF_XDP socket on {ifname} queue {queue}"
        privileges.require(doing, need_raw=True)
        out = ffi.new("struct aioxdp_xsk **")
        flags = XDP_USE_NEED_WAKEUP if need_wakeup else 0
        c_config = self.config.to_c(flags)
        size = self.config.nframes * self.config.frame_size
        # The UMEM is a Python mmap: it refuses to unmap while a view into it
        # exists, so a packet kept past close() can never touch freed memory.
        # Not populated here: registering it pins (and so faults in) every
        # page, as huge pages where the kernel has them to give: then a
        # batch's frames, 4 KiB apart, share a few TLB entries (C builds a
        # datagram's frame ~18% faster).
        self._area = mmap.mmap(
            -1,
            size,
            flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
            prot=mmap.PROT_READ | mmap.PROT_WRITE,
        )
        with contextlib.suppress(OSError):  # a kernel without transparent huge pages
            self._area.madvise(mmap.MADV_HUGEPAGE)
        self._area_ptr = ffi.from_buffer(self._area)
        for _ in range(BUSY_RETRIES):
            ret = lib.aioxdp_xsk_open(out, ifname.encode(), queue, c_config, self._area_ptr, size)
            if ret != -errno.EBUSY:
                break
            # a socket closed a moment ago releases its queue asynchronously
            time.sleep(BUSY_WAIT)
        if ret < 0:
            self._free_area()
            raise _open_error(-ret, doing, ifname)
        self._ptr = ffi.gc(out[0], lib.aioxdp_xsk_close)
        self.fd: int = lib.aioxdp_xsk_fd(self._ptr)
        self.view = memoryview(self._area)
        # the UMEM's mapping itself: a slice of it is bytes in one step (a
        # datagram's payload handed to datagram_received), with no view between
        self.umem: mmap.mmap = self._area
        self._descs = ffi.new("struct aioxdp_desc[]", self.batch_size)
        self._sort_scratch = ffi.new("struct aioxdp_desc[]", self.batch_size)
        self._run_ends = ffi.new("uint32_t[]", self.batch_size)
        self.zero_copy = bool(lib.aioxdp_xsk_options(self._ptr) & lib.XDP_OPTIONS_ZEROCOPY)
        _tell("open", self, None)

    # -- receive ------------------------------------------------------------

    def receive(self) -> RxBatch:
        """Drain up to ``batch_size`` packets and top up the fill ring.

        The batch must be handed back with :meth:`release` before the next
        receive (its descriptor array is reused).
        """
        handle = self._handle()
        if self._current is not None and self._current.live and self._current.count:
            raise FrameOwnershipError(
                errno.EBUSY,
                f"receiving on {self.ifname} queue {self.queue}",
                "the previous batch was not released",
            )
        n = lib.aioxdp_xsk_rx(handle, self._descs, self.batch_size)
        lib.aioxdp_xsk_refill(handle)
        self._current = RxBatch(self, self._descs, n)
        return self._current

    def release(self, batch: RxBatch) -> int:
        """Return a batch's frames to the pool (skipping kept and sent ones); refill.

        Returns how many frames went back to the pool.
        """
        handle = self._handle()
        if batch.xsk is not self:
            raise ValueError("batch: it was received on another socket")
        batch.check("releasing a batch")
        batch._retire()
        ret = lib.aioxdp_xsk_release(handle, batch.descs, batch.count)
        lib.aioxdp_xsk_refill(handle)
        if ret < 0:
            raise self._refused(ret, "releasing a batch")
        return int(ret)

    def keep(self, batch: RxBatch, index: int) -> int:
        """Take frame ``index`` of a live batch out of it; returns its address."""
        handle = self._handle()
        batch.check_range(index, 1, "keeping a packet")
        ret = lib.aioxdp_xsk_keep(handle, batch.descs + index)
        if ret < 0:
            raise self._refused(ret, "keeping a packet", int(batch.descs[index].addr))
        return int(batch.descs[index].addr)

    def release_frame(self, addr: int) -> None:
        """Return one kept (or allocated) frame to the pool."""
        handle = self._handle()
        if not isinstance(addr, int) or addr < 0:
            raise TypeError(f"addr: expected a UMEM offset (int >= 0), got {addr!r}")
        ret = lib.aioxdp_xsk_release_one(handle, addr)
        if ret < 0:
            raise self._refused(ret, "releasing a frame", addr)
        lib.aioxdp_xsk_refill(handle)

    def owner(self, addr: int) -> str:
        """Who owns the frame at ``addr``, in words (for messages and tests)."""
        ret = lib.aioxdp_xsk_owner(self._handle(), addr)
        return _OWNER_NAMES.get(ret, "not a frame of this UMEM")

    def _refused(self, ret: int, doing: str, addr: int | None = None) -> FrameOwnershipError:
        if ret == -errno.EFAULT or addr is None:
            detail = "" if addr is None else f"{addr:#x} is not a frame of this UMEM"
            return FrameOwnershipError(-ret, doing, "the frame is not the caller's", detail=detail)
        return FrameOwnershipError(
            -ret,
            doing,
            "each frame has one owner: a packet is released or sent once, by whoever holds it",
            detail=f"frame {addr:#x} is {self.owner(addr)}",
        )

    # -- send -----------------------------------------------------------------

    def send(self, frame: bytes | bytearray | memoryview) -> bool:
        """Copy ``frame`` into a free UMEM frame and queue it; False if no frame is free."""
        ret = lib.aioxdp_xsk_send_copy(self._handle(), ffi.from_buffer(frame), len(frame))
        if ret == 0:
            return True
        if ret == -errno.ENOBUFS:
            return False
        raise ValueError(
            f"frame: a frame is {lib.AIOXDP_MIN_FRAME}..{self.config.frame_size} bytes "
            f"(an Ethernet header, within one UMEM frame), got {len(frame)}"
        )

    def send_udp_many(self, batch: UdpBatch, ip_id: int) -> int:
        """Build the batch's datagrams in free frames and queue them (IP ids
        from ``ip_id``); returns how many went (fewer when frames ran out)."""
        ret = lib.aioxdp_udp_send_many(
            self._handle(),
            batch.paths,
            batch.n_paths,
            batch.addrs6,
            batch.n_addrs6,
            batch.dests,
            batch.data,
            len(batch.data),
            batch.lens,
            batch.n,
            ip_id & 0xFFFF,
        )
        if ret < 0:
            raise XDPError(
                -ret, f"sending {batch.n} datagrams", "a datagram is too large or misaddressed"
            )
        return int(ret)

    def send_echoes(self, template: Any, length: int, seq: int, count: int, stamps: Any) -> int:
        """Stamp ``count`` echo requests from ``template`` (sequence numbers from
        ``seq``, send times into ``stamps``) and queue them; returns how many
        frames there were for."""
        return int(lib.aioxdp_echo_send(self._handle(), template, length, seq, count, stamps))

    def echo_flood(self, tx: XSK, lookup: Any, probes: Any, counts: Any, flood: Any) -> int:
        """Take the replies of a one-target flood waiting at the head of this
        socket's RX ring and send its next probes through ``tx``, in C (see
        aioxdp_echo_flood; ``flood`` says what to send, and gets what it did);
        returns the replies taken."""
        return int(
            lib.aioxdp_echo_flood(self._handle(), tx._handle(), lookup, probes, counts, flood)
        )

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
        """Stamp and queue the next probe of targets ``first``..``first+count-1``
        of an echo session, each from its path's template in ``bases`` with its
        own destination; returns how many went (see aioxdp_echo_send_each)."""
        return int(
            lib.aioxdp_echo_send_each(
                self._handle(),
                bases,
                n_bases,
                length,
                base_of,
                daddrs,
                probes,
                first,
                count,
                window,
            )
        )

    def send_batch(self, batch: RxBatch, start: int = 0, count: int | None = None) -> int:
        """Queue received frames (possibly rewritten in place) for TX, without copying."""
        handle = self._handle()
        if batch.xsk is not self:
            raise ValueError("batch: it was received on another socket")
        count = batch.count - start if count is None else count
        batch.check_range(start, count, "sending received frames back")
        ret = lib.aioxdp_xsk_send_descs(handle, batch.descs + start, count)
        if ret < 0:
            raise self._refused(
                ret, "sending received frames back", _first_refused(batch, start, count)
            )
        return int(ret)

    def flush(self) -> int:
        """Move queued frames to the TX ring and wake the kernel if it asks.

        Returns how many frames still wait (0: all handed to the kernel).
        """
        ret = lib.aioxdp_xsk_flush(self._handle())
        if ret < 0:
            raise error_for_errno(
                -ret, f"sending on {self.ifname} queue {self.queue}", ifname=self.ifname
            )
        return int(ret)

    def tx_pending(self) -> int:
        """Frames queued here or on the TX ring that the kernel has not taken yet."""
        return int(lib.aioxdp_xsk_tx_pending(self._handle()))

    def rx_ready(self) -> int:
        """Descriptors waiting on the RX ring (a look: nothing is taken)."""
        return int(lib.aioxdp_xsk_rx_ready(self._handle()))

    def complete(self) -> int:
        """Reclaim frames the kernel has finished sending."""
        return int(lib.aioxdp_xsk_complete(self._handle()))

    # -- state ----------------------------------------------------------------

    def counts(self) -> FrameCounts:
        out = ffi.new("struct aioxdp_xsk_counts *")
        lib.aioxdp_xsk_counts(self._handle(), out)
        return FrameCounts.from_c(out)

    def socket_error(self) -> int:
        """The socket's pending error (SO_ERROR), 0 if none; ENETDOWN once the device is gone."""
        return int(lib.aioxdp_xsk_error(self._handle()))

    def statistics(self) -> XDPStatistics:
        out = ffi.new("struct xdp_statistics *")
        ret = lib.aioxdp_xsk_statistics(self._handle(), out)
        if ret < 0:
            raise error_for_errno(-ret, "reading XDP_STATISTICS")
        return XDPStatistics(**{name: int(getattr(out, name)) for name in XDPStatistics.__slots__})

    @property
    def closed(self) -> bool:
        return self._ptr is None

    @property
    def c_handle(self) -> Any:
        """The C struct behind this socket (``struct aioxdp_xsk *``), for C loops
        such as bench/'s; valid until close."""
        return self._handle()

    def _handle(self) -> Any:
        if self._ptr is None:
            raise XDPError(errno.EBADF, f"using the AF_XDP socket on {self.ifname}", "it is closed")
        return self._ptr

    def close(self) -> FrameCounts:
        """Close the socket and free the UMEM; returns the final frame counts."""
        if self._ptr is None:
            raise XDPError(
                errno.EBADF, f"closing the AF_XDP socket on {self.ifname}", "it is closed"
            )
        counts = self.counts()
        if self._current is not None and self._current.live:
            self._current._retire()
        ffi.release(self._ptr)  # the socket and the kernel's hold on the UMEM go
        self._ptr = None
        self.view.release()
        self._free_area()
        _tell("close", self, counts)
        return counts

    def _free_area(self) -> None:
        ffi.release(self._area_ptr)
        # BufferError: a view into the UMEM is still alive (a kept packet, a
        # slice of one): the mapping goes when the last of them does
        with contextlib.suppress(BufferError):
            self._area.close()

    def __del__(self) -> None:
        if getattr(self, "_ptr", None) is not None:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=1)

    def __repr__(self) -> str:
        state = "closed" if self._ptr is None else f"fd={self.fd}"
        return f"<XSK {self.ifname} queue {self.queue} {state}>"


def _first_refused(batch: RxBatch, start: int, count: int) -> int | None:
    # the descriptors the C call refused are those it did not mark as sent
    for i in range(start, start + count):
        d = batch.descs[i]
        if batch.xsk.owner(int(d.addr)) != _OWNER_NAMES[lib.AIOXDP_OWN_TXQ]:
            return int(d.addr)
    return int(batch.descs[start].addr) if count else None


def _open_error(err: int, doing: str, ifname: str) -> XDPError:
    if err == errno.ENOENT or err == errno.ENODEV:
        err = errno.ENODEV
    exc = error_for_errno(err, doing, ifname=ifname)
    if err == errno.EINVAL and not exc.hint:
        exc.hint = "the queue may not exist on this interface (ethtool -l shows its queues)"
    if err == errno.EBUSY and not exc.hint:
        exc.hint = "another AF_XDP socket is bound to this queue"
    if err == errno.ENOMEM:
        exc.hint = (
            "the UMEM could not be allocated or pinned; lower nframes or raise RLIMIT_MEMLOCK"
        )
    return exc
