"""Netlink queries from async code, on any event loop (asyncio, uvloop, trio).

A query is a few blocking rtnetlink requests (aioxdp._rtnetlink); a dump
of a large table can take a while, so it runs in a fresh thread started
from the loop's own thread (a new thread inherits the caller's network
namespace, which a pooled worker thread might not have), and the loop
awaits a pipe the thread writes to: any event loop, asyncio, uvloop or
trio, waits the same way.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

from aioxdp._rtnetlink import RtNetlink

T = TypeVar("T")


async def query(fn: Callable[[RtNetlink], T]) -> T:
    """Run ``fn(rtnl)`` with a blocking RtNetlink in a fresh thread; await its result."""
    outcome: list[Any] = []
    rfd, wfd = os.pipe()

    def work() -> None:
        try:
            with RtNetlink() as rtnl:
                outcome.append((fn(rtnl), None))
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
