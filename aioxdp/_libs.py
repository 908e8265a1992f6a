"""The compiled cffi module, loaded once, with libbpf's log routed to Python.

libbpf would otherwise print warnings straight to stderr; here every line
goes to the ``aioxdp.libbpf`` logger and the most recent ones are kept so an
error can quote what libbpf said just before it failed.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import re
from pathlib import Path
from typing import Any

try:
    from aioxdp._ffi import ffi, lib
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "aioxdp's C extension is not built; install with 'pip install -e .' "
        "(or 'make test') on a machine with clang, libbpf-dev and libxdp-dev"
    ) from exc

__all__ = [
    "MIN_LIBBPF",
    "MIN_LIBXDP",
    "LinkedLibrary",
    "ffi",
    "lib",
    "libbpf_log",
    "linked_libraries",
    "recent_libbpf_lines",
]

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


# -- which libbpf and libxdp this process runs --------------------------------

# Oldest releases aioxdp works with: libbpf 1.0 (the 1.x API, bpf_link_create
# for XDP), libxdp 1.2 (the XSK API moved there from libbpf).
MIN_LIBBPF = (1, 0)
MIN_LIBXDP = (1, 2)
# auditwheel copies the shared libraries a wheel links into "<package>.libs/"
# beside the package, renamed "libxdp-<hash>.so.<version>".
_VENDORED_DIR = "aioxdp.libs"
_SO_VERSION = re.compile(r"\.so\.(\d+(?:\.\d+)*)$")


@dataclasses.dataclass(frozen=True, slots=True)
class LinkedLibrary:
    """A shared library mapped into this process for aioxdp's C extension."""

    name: str  # "libbpf" | "libxdp"
    version: tuple[int, ...]  # from the file name (libbpf's API agrees on major.minor)
    path: str  # the file actually mapped, symlinks resolved
    vendored: bool  # shipped inside aioxdp's wheel, not the system's

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version)) if self.version else "unknown"

    def describe(self) -> str:
        origin = "vendored in the wheel" if self.vendored else "system"
        return f"{self.name} {self.version_text} ({origin}: {self.path})"


def linked_libraries(maps: str | None = None) -> dict[str, LinkedLibrary]:
    """libbpf and libxdp as this process has them mapped (``/proc/self/maps``)."""
    if maps is None:
        maps = Path("/proc/self/maps").read_text()
    found: dict[str, LinkedLibrary] = {}
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].startswith("/"):
            continue
        path = os.path.realpath(fields[5])
        base = os.path.basename(path)
        for name in ("libbpf", "libxdp"):
            if name in found or not (base.startswith(name + ".") or base.startswith(name + "-")):
                continue
            match = _SO_VERSION.search(base)
            version = tuple(int(x) for x in match.group(1).split(".")) if match else ()
            if name == "libbpf" and len(version) < 2:
                version = (lib.libbpf_major_version(), lib.libbpf_minor_version())
            vendored = os.path.basename(os.path.dirname(path)) == _VENDORED_DIR
            found[name] = LinkedLibrary(name, version, path, vendored)
    return found
