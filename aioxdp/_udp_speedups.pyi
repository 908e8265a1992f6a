"""Stub of the CPython extension aioxdp._udp_speedups (aioxdp/_cpython/udp_speedups.c)."""

from collections.abc import Callable
from typing import Any

class SendQueue:
    closing: bool
    scheduled: bool
    def __init__(
        self,
        cache: dict[tuple[Any, ...], int],
        slow: Callable[[Any, Any], None],
        schedule: Callable[[], None],
        flush: Callable[[], None],
        max_payload: int,
        max_payload6: int,
        flush_at: int,
        v6_bit: int,
    ) -> None: ...
    def sendto(self, data: Any, addr: Any = None) -> None: ...
    def append(self, data: bytes, word: int, /) -> None: ...
    def take(self) -> tuple[list[bytes], list[int], bytes, bytes]: ...
    def __len__(self) -> int: ...

def deliver(
    queue: SendQueue,
    umem: Any,
    meta: Any,
    count: int,
    known: dict[int, tuple[Any, ...]],
    unknown: Callable[[int], tuple[Any, ...]],
    receive: Callable[[bytes, Any], object],
    failed: Callable[[Exception], None],
    /,
) -> int: ...
def collect(
    umem: Any,
    meta: Any,
    count: int,
    known: dict[int, tuple[Any, ...]],
    unknown: Callable[[int], tuple[Any, ...]],
    /,
) -> list[tuple[bytes, Any]]: ...
