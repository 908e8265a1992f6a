"""Netlink queries from async code, on any event loop.

pyroute2's async socket relies on the loop supporting AF_NETLINK datagram
endpoints, which uvloop does not; its sync socket cannot run inside a
running loop. So sync queries run in a fresh thread started from the
loop's thread: a new thread inherits the caller's network namespace
(which a pooled executor thread might not have).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from pyroute2 import IPRoute

T = TypeVar("T")


async def query(fn: Callable[[IPRoute], T]) -> T:
    """Run ``fn(ipr)`` with a sync IPRoute in a fresh thread; await its result."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, exc: BaseException | None) -> None:
        if future.done():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def work() -> None:
        try:
            with IPRoute() as ipr:
                result = fn(ipr)
        except BaseException as exc:
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=work, name="aioxdp-netlink", daemon=True).start()
    return await future
