"""UMEM geometry and frame ownership.

The UMEM is one mmap'd area cut into equal frames. The C core
(``_native/xsk_core.c``) keeps the free frames on a stack and counts, for
every frame, which party owns it; :class:`FrameCounts` is that ledger as
Python sees it. A frame is in exactly one place at a time, so
``pool + fill + rx + app + txq + tx == nframes`` always holds; tests check
it at every close. C checks each frame's owner at every move and refuses a
move by a party that does not own the frame (``refused`` counts those).
"""

from __future__ import annotations

from dataclasses import dataclass

from aioxdp._libs import ffi

__all__ = ["FrameCounts", "UmemConfig"]


def _power_of_two(value: int, name: str, low: int, high: int) -> None:
    if not isinstance(value, int) or value < low or value > high or value & (value - 1):
        raise ValueError(f"{name}: must be a power of two in {low}..{high}, got {value!r}")


DEFAULT_BATCH = 256  # most frames one receive hands over, rings allowing


@dataclass(frozen=True, slots=True)
class UmemConfig:
    """Sizes of the UMEM and of the four rings (all powers of two)."""

    nframes: int = 4096  # frames in the UMEM
    frame_size: int = 4096  # bytes per frame (2048 or 4096)
    fill_size: int = 2048  # fill ring: frames lent to the kernel for RX
    comp_size: int = 2048  # completion ring: frames the kernel is done sending
    rx_size: int = 2048
    tx_size: int = 2048

    def __post_init__(self) -> None:
        _power_of_two(self.nframes, "nframes", 16, 1 << 20)
        _power_of_two(self.frame_size, "frame_size", 2048, 4096)
        for name in ("fill_size", "comp_size", "rx_size", "tx_size"):
            _power_of_two(getattr(self, name), name, 8, 1 << 16)

    @property
    def batch_size(self) -> int:
        """The receive batch when none is named: 256 frames, or a quarter of
        the smaller of the fill and RX rings (a batch being delivered holds
        its frames out of the fill ring: small rings need room beside it)."""
        return min(DEFAULT_BATCH, self.fill_size // 4, self.rx_size // 4)

    def receive_batch(self, batch_size: object) -> int:
        """``batch_size`` checked (1..4096 frames), or :attr:`batch_size` for None."""
        if batch_size is None:
            return self.batch_size
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, int)
            or not 1 <= batch_size <= 4096
        ):
            raise ValueError(f"batch_size: must be 1..4096, got {batch_size!r}")
        return batch_size

    @staticmethod
    def chosen(config: object) -> UmemConfig:
        """``config``, or the default sizes for None; anything else is refused by name."""
        if config is None:
            return UmemConfig()
        if not isinstance(config, UmemConfig):
            raise TypeError(f"config: expected a UmemConfig, got {type(config).__name__}")
        return config

    def to_c(self, bind_flags: int) -> object:
        cfg = ffi.new("struct aioxdp_xsk_config *")
        for name in ("nframes", "frame_size", "fill_size", "comp_size", "rx_size", "tx_size"):
            setattr(cfg, name, getattr(self, name))
        cfg.bind_flags = bind_flags
        return cfg


@dataclass(frozen=True, slots=True)
class FrameCounts:
    """Who owns the frames of one UMEM, and what the rings have carried."""

    nframes: int
    pool: int  # free
    fill: int  # lent to the kernel for RX (fill ring, or received but not drained)
    rx: int  # drained from RX, in the batch being delivered
    app: int  # held by the application (kept, or allocated for TX)
    txq: int  # queued for TX, waiting for room on the TX ring
    tx: int  # on the TX ring or being sent, until completed
    rx_packets: int
    rx_batches: int
    rx_wakeups: int
    tx_packets: int
    tx_completed: int
    tx_wakeups: int
    tx_ring_full: int  # flushes that found the TX ring full
    tx_no_frame: int  # sends refused because the pool was empty
    refused: int  # calls on a frame that the caller did not own
    kernel_invalid: int  # RX or completion descriptors naming no frame we lent

    @property
    def balanced(self) -> bool:
        return self.pool + self.fill + self.rx + self.app + self.txq + self.tx == self.nframes

    @property
    def leaked(self) -> int:
        """Frames nobody accounts for, or that the application still holds."""
        return self.nframes - self.pool - self.fill - self.txq - self.tx

    @property
    def unsent(self) -> int:
        """Frames still queued or on the TX ring (at close: discarded with the socket)."""
        return self.txq + self.tx

    @classmethod
    def from_c(cls, c: object) -> FrameCounts:
        return cls(**{name: int(getattr(c, name)) for name in cls.__slots__})
