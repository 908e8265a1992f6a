"""Per-thread network namespace switching.

``setns(2)`` on a network namespace changes only the calling thread, so a
test can drive an asyncio loop inside a lab host while other threads stay
where they were. Threads started from inside inherit the namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator

from aioxdp.errors import LabError

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise LabError(
            err, "switching network namespace (setns)", "this needs root or CAP_SYS_ADMIN"
        )


def current_netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the body of the ``with`` in network namespace ``name`` (this thread only).

    The previous namespace is restored on exit, also when the body raises.
    """
    try:
        target = os.open(os.path.join(NETNS_RUN_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise LabError(
            2, f"entering network namespace {name!r}", "it does not exist (was the lab closed?)"
        ) from None
    previous = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(previous)
    finally:
        os.close(target)
        os.close(previous)
