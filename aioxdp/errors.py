"""The one exception hierarchy of aioxdp.

Every failure that comes from the kernel, libbpf or libxdp is raised as an
:class:`XDPError` subclass carrying the errno, what aioxdp was doing, and a
hint that says what to do about it. ``raise_for_errno`` is the single place
that turns a negative return value into the right exception (the role
``uvloop/errors.pyx`` plays for libuv).
"""

from __future__ import annotations

import errno as _errno
import os

ROOT_HINT = (
    "run as root, or give the process CAP_BPF, CAP_NET_ADMIN and CAP_NET_RAW "
    "(e.g. sudo, or setcap cap_bpf,cap_net_admin,cap_net_raw+ep on the interpreter)"
)


class XDPError(OSError):
    """Base of every aioxdp error.

    ``errno`` is the system error number (0 when none applies), ``doing`` what
    was being attempted and ``hint`` what the user can do about it.
    """

    def __init__(self, errno: int, doing: str, hint: str = "", *, detail: str = "") -> None:
        reason = os.strerror(errno) if errno else ""
        super().__init__(errno, reason or doing)
        self.doing = doing
        self.hint = hint
        self.detail = detail

    def __str__(self) -> str:
        text = self.doing
        if self.errno:
            text += (
                f": {self.strerror} (errno {self.errno}, {_errno.errorcode.get(self.errno, '?')})"
            )
        if self.detail:
            text += f"; {self.detail}"
        if self.hint:
            text += f". Hint: {self.hint}"
        return text


class PrivilegeError(XDPError, PermissionError):
    """The process lacks root or the capabilities BPF and AF_XDP need."""


class InterfaceNotFoundError(XDPError, LookupError):
    """No network interface of that name or index in this namespace."""


class ModeUnsupportedError(XDPError):
    """The interface cannot run XDP in the mode asked for."""


class AlreadyAttachedError(XDPError):
    """Another XDP program holds the interface."""


class BPFLoadError(XDPError):
    """The BPF object could not be opened or loaded."""


class VerifierError(BPFLoadError):
    """The kernel's verifier rejected a program; ``log`` holds its verdict."""

    def __init__(self, errno: int, doing: str, log: str) -> None:
        last = [line for line in log.strip().splitlines() if line.strip()][-3:]
        super().__init__(
            errno,
            doing,
            "read the verifier log in .log (the last lines are shown here); "
            "usually a packet read lacks a bounds check against data_end",
            detail="verifier said: " + " | ".join(last),
        )
        self.log = log


class MapError(XDPError):
    """A BPF map operation failed (full map, wrong key or value size...)."""


class FrameOwnershipError(XDPError):
    """A call on a frame its caller does not own: a packet already released or
    sent, a batch already handed back, an address that is not a frame."""


class LabError(XDPError):
    """The test lab (network namespaces and veth) could not be built or removed."""


def raise_for_errno(
    ret: int,
    doing: str,
    *,
    ifname: str | None = None,
    default: type[XDPError] = XDPError,
) -> int:
    """Return ``ret`` if it is not negative, else raise the matching error.

    libbpf >= 1.0 returns ``-errno`` from every int function; pass the result
    straight in on the line after the call.
    """
    if ret >= 0:
        return ret
    raise error_for_errno(-ret, doing, ifname=ifname, default=default)


def error_for_errno(
    err: int,
    doing: str,
    *,
    ifname: str | None = None,
    default: type[XDPError] = XDPError,
) -> XDPError:
    """Build (not raise) the exception for a positive errno."""
    if err in (_errno.EPERM, _errno.EACCES):
        return PrivilegeError(err, doing, ROOT_HINT)
    if err in (_errno.ENODEV, _errno.ENXIO) and ifname is not None:
        return InterfaceNotFoundError(err, doing, interface_hint(ifname))
    return default(err, doing)


def interface_hint(ifname: str) -> str:
    return (
        f"no interface {ifname!r} in this network namespace; "
        "list them with 'ip link', or enter the right namespace (ip netns exec)"
    )
