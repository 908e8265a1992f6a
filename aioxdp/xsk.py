"""The XDP socket: one RX queue of one interface, its UMEM and four rings.

No event loop here: :class:`XSK` is the loop-agnostic core that the
asyncio transport and the anyio driver both drive. Every ring operation is
one call into C over a whole batch.
"""

from __future__ import annotations

import errno
import time
import warnings
from dataclasses import dataclass
from typing import Any

from aioxdp import privileges
from aioxdp._libs import ffi, lib
from aioxdp.errors import XDPError, error_for_errno
from aioxdp.umem import FrameCounts, UmemConfig

__all__ = ["XSK", "RxBatch", "XDPStatistics"]

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


class RxBatch:
    """Descriptors drained from the RX ring in one go.

    ``descs`` is a C array of ``struct aioxdp_desc``; ``count`` entries are
    valid. Frames stay the application's until :meth:`XSK.release` hands
    them back (frames marked kept are skipped then).
    """

    __slots__ = ("count", "descs", "xsk")

    def __init__(self, xsk: XSK, descs: Any, count: int) -> None:
        self.xsk = xsk
        self.descs = descs
        self.count = count

    def __len__(self) -> int:
        return self.count

    def frame(self, i: int) -> memoryview:
        d = self.descs[i]
        return self.xsk.view[d.addr : d.addr + d.len]


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
        batch_size: int = 64,
    ) -> None:
        if not isinstance(queue, int) or not 0 <= queue < lib.AIOXDP_FW_MAX_QUEUES:
            raise ValueError(f"queue: must be 0..{lib.AIOXDP_FW_MAX_QUEUES - 1}, got {queue!r}")
        if not 1 <= batch_size <= 4096:
            raise ValueError(f"batch_size: must be 1..4096, got {batch_size!r}")
        self.ifname = ifname
        self.queue = queue
        self.config = config or UmemConfig()
        self.batch_size = batch_size
        self._ptr: Any = None
        doing = f"opening an AF_XDP socket on {ifname} queue {queue}"
        privileges.require(doing, need_raw=True)
        out = ffi.new("struct aioxdp_xsk **")
        flags = XDP_USE_NEED_WAKEUP if need_wakeup else 0
        c_config = self.config.to_c(flags)
        for _ in range(BUSY_RETRIES):
            ret = lib.aioxdp_xsk_open(out, ifname.encode(), queue, c_config)
            if ret != -errno.EBUSY:
                break
            # a socket closed a moment ago releases its queue asynchronously
            time.sleep(BUSY_WAIT)
        if ret < 0:
            raise _open_error(-ret, doing, ifname)
        self._ptr = ffi.gc(out[0], lib.aioxdp_xsk_close)
        self.fd: int = lib.aioxdp_xsk_fd(self._ptr)
        area = lib.aioxdp_xsk_area(self._ptr)
        self.view = memoryview(ffi.buffer(area, self.config.nframes * self.config.frame_size))
        self._descs = ffi.new("struct aioxdp_desc[]", batch_size)
        self.zero_copy = bool(lib.aioxdp_xsk_options(self._ptr) & lib.XDP_OPTIONS_ZEROCOPY)

    # -- receive ------------------------------------------------------------

    def receive(self) -> RxBatch:
        """Drain up to ``batch_size`` packets and top up the fill ring."""
        n = lib.aioxdp_xsk_rx(self._handle(), self._descs, self.batch_size)
        lib.aioxdp_xsk_refill(self._ptr)
        return RxBatch(self, self._descs, n)

    def release(self, batch: RxBatch) -> int:
        """Return a batch's frames to the pool (skipping kept ones); refill."""
        n = lib.aioxdp_xsk_release(self._handle(), batch.descs, batch.count)
        lib.aioxdp_xsk_refill(self._ptr)
        return int(n)

    def release_frame(self, addr: int) -> None:
        """Return one kept frame to the pool."""
        lib.aioxdp_xsk_release_one(self._handle(), addr)
        lib.aioxdp_xsk_refill(self._ptr)

    # -- send -----------------------------------------------------------------

    def send(self, frame: bytes | bytearray | memoryview) -> bool:
        """Copy ``frame`` into a free UMEM frame and queue it; False if no frame is free."""
        ret = lib.aioxdp_xsk_send_copy(self._handle(), ffi.from_buffer(frame), len(frame))
        if ret == 0:
            return True
        if ret == -errno.ENOBUFS:
            return False
        raise ValueError(
            f"frame: {len(frame)} bytes do not fit a {self.config.frame_size}-byte UMEM frame"
        )

    def send_batch(self, batch: RxBatch, start: int = 0, count: int | None = None) -> int:
        """Queue received frames (possibly rewritten in place) for TX, without copying."""
        count = batch.count - start if count is None else count
        return int(lib.aioxdp_xsk_send_descs(self._handle(), batch.descs + start, count))

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
        self.view.release()
        ffi.release(self._ptr)
        self._ptr = None
        return counts

    def __del__(self) -> None:
        if getattr(self, "_ptr", None) is not None:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=1)

    def __repr__(self) -> str:
        state = "closed" if self._ptr is None else f"fd={self.fd}"
        return f"<XSK {self.ifname} queue {self.queue} {state}>"


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
