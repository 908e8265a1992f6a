"""Netlink queries from async code, on any event loop (asyncio, uvloop, trio).

pyroute2's async socket needs AF_NETLINK datagram endpoints, which uvloop
lacks, and its sync socket cannot run inside a running asyncio loop. So a
sync query runs in a fresh thread started from the loop's own thread (a new
thread inherits the caller's network namespace, which a pooled worker
thread might not have), and the loop awaits a pipe the thread writes to.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from pyroute2 import IPRoute

T = TypeVar("T")


async def query(fn: Callable[[IPRoute], T]) -> T:
    """Run ``fn(ipr)`` with a sync IPRoute in a fresh thread; await its result."""
    outcome: list[Any] = []
    rfd, wfd = os.pipe()

    def work() -> None:
        try:
            with IPRoute() as ipr:
                outcome.append((fn(ipr), None))
        except BaseException as exc:
            outcome.append((None, exc))
        finally:
            # the thread owns the write end; a cancelled waiter closed the read end
            with contextlib.suppress(OSError):
                os.write(wfd, b"!")
            os.close(wfd)

    try:
        threading.Thread(target=work, name="aioxdp-netlink", daemon=True).start()
        await anyio.wait_readable(rfd)
    finally:
        os.close(rfd)
    result, exc = outcome[0]
    if exc is not None:
        raise exc
    return result  # type: ignore[no-any-return]
