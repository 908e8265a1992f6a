"""The compiled cffi module, loaded once, with libbpf's log routed to Python.

libbpf would otherwise print warnings straight to stderr; here every line
goes to the ``aioxdp.libbpf`` logger and the most recent ones are kept so an
error can quote what libbpf said just before it failed.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

try:
    from aioxdp._ffi import ffi, lib
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "aioxdp's C extension is not built; install with 'pip install -e .' "
        "(or 'make test') on a machine with clang, libbpf-dev and libxdp-dev"
    ) from exc

__all__ = ["ffi", "lib", "libbpf_log", "recent_libbpf_lines"]

log = logging.getLogger("aioxdp.libbpf")
_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}
_recent: collections.deque[str] = collections.deque(maxlen=64)


@ffi.def_extern()  # type: ignore[untyped-decorator]
def aioxdp_on_libbpf_log(level: int, line: Any) -> None:
    text = ffi.string(line).decode("utf-8", "replace").rstrip("\n")
    _recent.append(text)
    log.log(_LEVELS.get(level, logging.DEBUG), "%s", text)


def recent_libbpf_lines(clear: bool = True) -> list[str]:
    """The libbpf log lines since the last call (for error messages)."""
    lines = list(_recent)
    if clear:
        _recent.clear()
    return lines


def libbpf_log() -> logging.Logger:
    return log


lib.aioxdp_capture_libbpf_log()
