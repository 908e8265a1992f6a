"""Check, before touching the kernel, that this process may load BPF and open
AF_XDP sockets, so the user gets one clear message instead of an errno from
deep inside libbpf."""

from __future__ import annotations

import errno
from pathlib import Path

from aioxdp.errors import ROOT_HINT, PrivilegeError

CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
CAP_SYS_ADMIN = 21
CAP_BPF = 39


def effective_capabilities() -> int:
    """The CapEff bit set of this thread, from /proc."""
    for line in Path("/proc/thread-self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def missing_capabilities(*, need_raw: bool = False) -> list[str]:
    caps = effective_capabilities()

    def has(bit: int) -> bool:
        return bool(caps >> bit & 1)

    missing = []
    if not (has(CAP_BPF) or has(CAP_SYS_ADMIN)):
        missing.append("CAP_BPF")
    if not has(CAP_NET_ADMIN):
        missing.append("CAP_NET_ADMIN")
    if need_raw and not has(CAP_NET_RAW):
        missing.append("CAP_NET_RAW")
    return missing


def require(doing: str, *, need_raw: bool = False) -> None:
    """Raise :class:`PrivilegeError` naming the missing capabilities."""
    missing = missing_capabilities(need_raw=need_raw)
    if missing:
        raise PrivilegeError(errno.EPERM, doing, ROOT_HINT, detail="missing " + ", ".join(missing))
