"""Interfaces shared within one event loop: pings and sockets borrow one.

Per running loop (asyncio or trio; the key is anyio's loop token) and per
kind of interface (the driver's class), at most one interface per link
name is shared: the application's own if it opened one (it is registered
while open and never closed by its borrowers), else one opened by its first
user and closed when its last user leaves. Written with anyio, so the same
code serves both drivers; it imports no driver.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import anyio
import anyio.lowlevel

__all__ = ["Shareable", "register", "shared", "unregister"]


class Shareable(Protocol):
    ifname: str

    async def aclose(self) -> None: ...


N = TypeVar("N", bound=Shareable)


class _Entry:
    """One shared interface: ready once opened (or failed), and its users.

    ``external``: opened by the application; borrowers never close it.
    """

    def __init__(self, nic: Any = None, *, external: bool = False) -> None:
        self.nic = nic
        self.error: BaseException | None = None
        self.ready = anyio.Event()
        self.external = external
        self.users = 0
        if nic is not None:
            self.ready.set()


# loop (its native token) -> (interface class, ifname) -> entry
_tables: weakref.WeakKeyDictionary[Any, dict[tuple[type, str], _Entry]] = (
    weakref.WeakKeyDictionary()
)


def _table() -> dict[tuple[type, str], _Entry]:
    return _tables.setdefault(anyio.lowlevel.current_token().native_token, {})


def register(nic: Shareable) -> None:
    """Let this loop's borrowers use an interface the application opened
    (called by the interface's open, in the loop)."""
    table = _table()
    key = (type(nic), nic.ifname)
    if key not in table:
        table[key] = _Entry(nic, external=True)


def unregister(nic: Shareable) -> None:
    """``nic`` closed (by its owner or by an error): the next user opens a new one.
    Callable from outside the loop's tasks (it searches every loop's table)."""
    key = (type(nic), nic.ifname)
    for table in list(_tables.values()):
        entry = table.get(key)
        if entry is not None and entry.nic is nic:
            del table[key]


@contextlib.asynccontextmanager
async def shared(
    kind: type[N], ifname: str, opener: Callable[[], Awaitable[N]]
) -> AsyncIterator[N]:
    """This loop's ``kind`` interface on ``ifname``, opened by ``opener()`` on
    first use (shielded from its caller's cancellation, so a waiting second
    user never sees it half-open), closed when its last user leaves."""
    table = _table()
    key = (kind, ifname)
    entry = table.get(key)
    opening = entry is None
    if entry is None:
        entry = table[key] = _Entry()
    entry.users += 1
    try:
        if opening:
            try:
                with anyio.CancelScope(shield=True):
                    entry.nic = await opener()
            except BaseException as exc:
                entry.error = exc
                if table.get(key) is entry:
                    del table[key]
                raise
            finally:
                entry.ready.set()
        else:
            await entry.ready.wait()
            if entry.error is not None:
                raise entry.error
        yield entry.nic
    finally:
        entry.users -= 1
        if entry.users == 0 and not entry.external and entry.nic is not None:
            if table.get(key) is entry:
                del table[key]
            with anyio.CancelScope(shield=True):
                await entry.nic.aclose()
