"""The shared interface of the running library's driver.

Code that runs on either driver (tcping, UDP sockets in tests) asks here:
under trio it gets this run's AnyioInterface, on asyncio and uvloop this
loop's Interface (aioxdp.runtime says which library runs).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aioxdp.anyio_interface import shared_anyio_interface
from aioxdp.bpf import Mode
from aioxdp.interface import shared_interface
from aioxdp.runtime import running_library

__all__ = ["running_driver", "shared_nic"]


def running_driver() -> str:
    """ "anyio" under trio, "asyncio" on asyncio and uvloop."""
    return "anyio" if running_library() == "trio" else "asyncio"


@contextlib.asynccontextmanager
async def shared_nic(ifname: str, *, mode: Mode = "auto") -> AsyncIterator[Any]:
    """This loop's shared interface on ``ifname`` for the running driver."""
    opener = shared_anyio_interface if running_driver() == "anyio" else shared_interface
    async with opener(ifname, mode=mode) as nic:
        yield nic
