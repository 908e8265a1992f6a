"""``aioxdp doctor``: can this machine run aioxdp, and if not, what to do.

Each check says ok, warn (works, with a caveat) or fail, with the fix.
Nothing is changed on the machine; the interface check attaches aioxdp's
forwarder (which passes every packet while it has no rules) for a moment
in each mode, and only when an interface is named.
"""

from __future__ import annotations

import errno
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from aioxdp import privileges
from aioxdp._libs import MIN_LIBBPF, MIN_LIBXDP, LinkedLibrary, linked_libraries
from aioxdp.errors import XDPError

AF_XDP = 44


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # "ok" | "warn" | "fail"
    detail: str
    fix: str = ""

    def line(self) -> str:
        tag = {"ok": "[ ok ]", "warn": "[warn]", "fail": "[FAIL]"}[self.status]
        return f"{tag} {self.name}: {self.detail}" + (
            f"\n       fix: {self.fix}" if self.fix else ""
        )


def check_kernel(release: str | None = None) -> Check:
    release = release or os.uname().release
    numbers = [int(x) for x in re.findall(r"\d+", release)[:2]]
    if len(numbers) < 2:
        return Check(
            "kernel", "warn", f"cannot read a version from {release!r}", "Linux 5.9+ is needed"
        )
    major, minor = numbers
    if (major, minor) >= (5, 9):
        return Check("kernel", "ok", f"{release}: XDP links (5.9+), AF_XDP with need_wakeup (5.4+)")
    if (major, minor) >= (5, 4):
        return Check(
            "kernel",
            "warn",
            f"{release}: no XDP links; aioxdp falls back to netlink attach, "
            "which outlives a crashed process",
            "upgrade to Linux 5.9 or later",
        )
    return Check(
        "kernel",
        "fail",
        f"{release} is too old for AF_XDP with need_wakeup",
        "upgrade to Linux 5.9 or later",
    )


def _privileges() -> Check:
    missing = privileges.missing_capabilities(need_raw=True)
    if not missing:
        return Check(
            "privileges",
            "ok",
            "CAP_BPF (or CAP_SYS_ADMIN), CAP_NET_ADMIN and CAP_NET_RAW are effective",
        )
    return Check(
        "privileges",
        "fail",
        "missing " + ", ".join(missing),
        "run as root, or: setcap cap_bpf,cap_net_admin,cap_net_raw+ep on the Python interpreter",
    )


def _jit() -> Check:
    path = Path("/proc/sys/net/core/bpf_jit_enable")
    try:
        value = path.read_text().strip()
    except OSError:
        # the sysctl exists only in the initial network namespace
        return Check(
            "BPF JIT",
            "warn",
            "cannot be read from this network namespace",
            "check from the host: nsenter -t 1 -n sysctl net.core.bpf_jit_enable",
        )
    if value in ("1", "2"):
        return Check("BPF JIT", "ok", "enabled")
    return Check(
        "BPF JIT",
        "warn",
        "disabled: BPF programs run in the interpreter, several times slower",
        "sysctl -w net.core.bpf_jit_enable=1",
    )


def _bpffs() -> Check:
    mounts = Path("/proc/self/mounts").read_text()
    if any(line.split()[2] == "bpf" for line in mounts.splitlines() if len(line.split()) > 2):
        return Check("bpffs", "ok", "mounted")
    return Check(
        "bpffs",
        "warn",
        "not mounted; aioxdp does not need it (it attaches with bpf_link and pins nothing), "
        "but libxdp's multiprog dispatcher does",
        "mount -t bpf bpf /sys/fs/bpf",
    )


def check_libraries(linked: dict[str, LinkedLibrary] | None = None) -> Check:
    """libbpf and libxdp as mapped into this process, against the oldest that work."""
    if linked is None:
        linked = linked_libraries()
    problems = []
    for name, oldest in (("libbpf", MIN_LIBBPF), ("libxdp", MIN_LIBXDP)):
        found = linked.get(name)
        needed = ".".join(map(str, oldest))
        if found is None:
            problems.append(f"{name} is not loaded (aioxdp needs {needed} or later)")
        elif found.version and found.version[: len(oldest)] < oldest:
            problems.append(
                f"{name} {found.version_text} is older than {needed}, which aioxdp needs"
            )
    detail = "; ".join(library.describe() for library in linked.values())
    if problems:
        return Check(
            "libraries",
            "fail",
            "; ".join(problems) + (f" (found: {detail})" if detail else ""),
            f"install aioxdp's wheel (it carries both), or libbpf {MIN_LIBBPF[0]}.{MIN_LIBBPF[1]}+ "
            f"and libxdp {MIN_LIBXDP[0]}.{MIN_LIBXDP[1]}+ and rebuild",
        )
    return Check("libraries", "ok", detail)


def _af_xdp() -> Check:
    try:
        sock = socket.socket(AF_XDP, socket.SOCK_RAW, 0)
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES):
            return Check(
                "AF_XDP",
                "fail",
                "creating an AF_XDP socket was refused",
                "needs CAP_NET_RAW (run as root)",
            )
        return Check(
            "AF_XDP",
            "fail",
            f"no AF_XDP sockets: {exc.strerror}",
            "a kernel built with CONFIG_XDP_SOCKETS=y",
        )
    sock.close()
    return Check("AF_XDP", "ok", "sockets can be created")


def _bpf_load() -> Check:
    from aioxdp.bpf import BPFObject

    try:
        with BPFObject.packaged("forwarder") as obj:
            obj.load()
    except XDPError as exc:
        return Check("BPF load", "fail", f"aioxdp's forwarder does not load: {exc.doing}", exc.hint)
    return Check("BPF load", "ok", "the forwarder loads and passes the verifier")


def _interface(ifname: str) -> Check:
    from aioxdp.bpf import BPFObject, ifindex_of

    try:
        ifindex_of(ifname)
    except XDPError as exc:
        return Check(f"XDP on {ifname}", "fail", "no such interface", exc.hint)
    modes = []
    problems = []
    try:
        with BPFObject.packaged("forwarder") as obj:
            obj.load()
            for mode in ("native", "generic"):
                try:
                    with obj.program().attach(ifname, mode=mode):
                        modes.append(mode)
                except XDPError as exc:
                    problems.append(f"{mode}: {exc.strerror or exc.doing}")
    except XDPError as exc:
        return Check(f"XDP on {ifname}", "fail", exc.doing, exc.hint)
    if "native" in modes:
        return Check(f"XDP on {ifname}", "ok", f"modes: {', '.join(modes)} (native will be used)")
    if modes:
        return Check(
            f"XDP on {ifname}",
            "warn",
            f"generic mode only ({'; '.join(problems)}): works, slower",
            "a driver with native XDP support gives more speed",
        )
    return Check(
        f"XDP on {ifname}",
        "fail",
        "; ".join(problems) or "no mode attaches",
        f"check 'ip link show {ifname}' for another XDP program",
    )


def run_checks(ifname: str | None = None) -> list[Check]:
    checks = [check_kernel(), _privileges(), _jit(), _bpffs(), check_libraries(), _af_xdp()]
    if checks[1].status == "ok":
        checks.append(_bpf_load())
        if ifname is not None:
            checks.append(_interface(ifname))
    return checks
