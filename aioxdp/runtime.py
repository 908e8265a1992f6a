"""Which async library runs the current task: asyncio (uvloop too) or trio.

aioxdp picks its driver by it. Asked of the libraries themselves (anyio no
longer carries sniffio, and aioxdp does not require trio).
"""

from __future__ import annotations

import asyncio
import sys

__all__ = ["running_library"]


def running_library() -> str:
    """``"asyncio"``, ``"trio"``, or ``"none"`` outside any event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return "asyncio"
    trio = sys.modules.get("trio")  # imported by whoever runs trio
    if trio is not None:
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            pass
        else:
            return "trio"
    return "none"
