"""A lab: two hosts in network namespaces of our own, joined by a veth pair.

Theory of operation
-------------------
Every lab leases one /24 of 198.18.0.0/15 (the range set aside for
benchmarking network devices), so labs of parallel test processes never
share addresses. ``Lab(ipv6=True)`` adds the lease's /64 of 2001:2::/48
(the IPv6 benchmarking range, RFC 5180), duplicate address detection and
router solicitations off, and the link-local addresses the kernel makes;
otherwise IPv6 is off, so captures and counters hold no router
solicitations, DAD or MLD. A lease is a file ``/run/aioxdp/labs/<n>`` holding the
owner's pid and process start time; the namespaces are named
``aioxdp-l<n>-a`` and ``aioxdp-l<n>-b``. Leases are taken under an flock.

Both veth ends are created inside the lab's namespaces and nothing is
routed out of them: traffic cannot leave the lab. Closing the lab, or a
SIGTERM of its process, removes both namespaces (which destroys the veth
and detaches any XDP program on it) and the lease. A process killed with
SIGKILL cannot clean up; the next lab to start in any process finds the
lease of a dead owner and removes what it left.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import errno
import fcntl
import ipaddress
import logging
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from pyroute2 import IPRoute, netns

from aioxdp.errors import LabError
from aioxdp.testing.netns import NETNS_RUN_DIR, entered

__all__ = ["LAB_NETWORK", "LAB_NETWORK6", "Host", "Lab", "open_labs", "remove_stale_labs"]

log = logging.getLogger(__name__)

LAB_NETWORK = ipaddress.ip_network("198.18.0.0/15")
LAB_NETWORK6 = ipaddress.IPv6Network("2001:2::/48")
IFA_F_NODAD = 0x02  # <linux/if_addr.h>: no duplicate address detection for it
LEASE_DIR = Path("/run/aioxdp/labs")
MAX_LABS = 512  # /24s in the /15
_NS_PATTERN = re.compile(r"^aioxdp-l(\d+)-[a-z]$")


@dataclass
class Host:
    """One end of the lab: a namespace with one veth interface."""

    name: str
    netns: str
    ifname: str
    ip: str
    mac: str
    prefixlen: int
    ifindex: int = 0
    peer: Host | None = field(default=None, repr=False)
    ip6: str | None = None  # in 2001:2::/48, with Lab(ipv6=True)

    @property
    def network(self) -> str:
        return str(ipaddress.ip_interface(f"{self.ip}/{self.prefixlen}").network)

    def enter(self) -> contextlib.AbstractContextManager[None]:
        """Move the calling thread into this host's namespace for a ``with`` body."""
        return entered(self.netns)

    def command(self, *args: str) -> list[str]:
        """The argv that runs ``args`` inside this host (for Popen and friends)."""
        return ["ip", "netns", "exec", self.netns, *args]

    def run(
        self, *args: str, check: bool = True, timeout: float = 60.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in this host; output captured as text.

        Raises ``subprocess.CalledProcessError`` (with the output) when
        ``check`` and the command fails.
        """
        proc = subprocess.run(
            self.command(*args), capture_output=True, text=True, timeout=timeout, input=input
        )
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(
                proc.returncode, proc.args, proc.stdout, proc.stderr
            )
        return proc

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a command in this host and return at once."""
        return subprocess.Popen(self.command(*args), **kwargs)

    def sysctl(self, key: str, value: str) -> None:
        with self.enter():  # /proc/sys/net follows the calling thread's namespace
            Path("/proc/sys", key.replace(".", "/")).write_text(value)


class Lab:
    """Two hosts, ``a`` and ``b``, joined by a veth pair, in namespaces of our own.

    ``queues`` sets the number of RX/TX queues of each veth end and ``mtu``
    its MTU. Use as a context manager; :meth:`close` is idempotent.
    """

    def __init__(self, *, queues: int = 1, mtu: int = 1500, ipv6: bool = False) -> None:
        if not 1 <= queues <= 64:
            raise ValueError(f"queues: must be 1..64, got {queues}")
        if not 68 <= mtu <= 9000:
            raise ValueError(f"mtu: must be 68..9000, got {mtu}")
        if ipv6 and mtu < 1280:
            raise ValueError(f"mtu: IPv6 needs at least 1280, got {mtu}")
        self.queues = queues
        self.mtu = mtu
        self.ipv6 = ipv6
        self.index = -1
        self.a: Host
        self.b: Host
        self._made: list[str] = []
        self._closed = False
        self._owner = os.getpid()

    # -- lifecycle --------------------------------------------------------

    def __enter__(self) -> Lab:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> Lab:
        _require_root()
        self.index = _lease()
        _open_labs.add(self)
        _install_cleanup_handlers()
        try:
            _outside_event_loop(self._build)
        except BaseException:
            self.close()
            raise
        log.info(
            "lab %d: %s (%s) <-> %s (%s)",
            self.index,
            self.a.netns,
            self.a.ip,
            self.b.netns,
            self.b.ip,
        )
        return self

    def close(self) -> None:
        """Remove the namespaces (and with them the veth) and the lease."""
        if self._closed or self.index < 0:
            return
        if os.getpid() != self._owner:
            # A forked child (pyroute2 forks helpers) inherits our atexit
            # handler and this object; the lab belongs to the parent.
            return
        self._closed = True
        _remove_lab(self.index, self._made)
        _open_labs.discard(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Lab {self.index} {state} {getattr(self, 'a', None)} {getattr(self, 'b', None)}>"

    @property
    def hosts(self) -> Sequence[Host]:
        return (self.a, self.b)

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return subnet_of(self.index)

    @property
    def subnet6(self) -> ipaddress.IPv6Network:
        """This lab's /64 of 2001:2::/48 (its addresses only with ipv6=True)."""
        return subnet6_of(self.index)

    # -- building ---------------------------------------------------------

    def _build(self) -> None:
        net = self.subnet
        names = {h: f"aioxdp-l{self.index}-{h}" for h in "ab"}
        self.a = Host("a", names["a"], "veth-a", str(net[1]), _mac(self.index, 0xA), net.prefixlen)
        self.b = Host("b", names["b"], "veth-b", str(net[2]), _mac(self.index, 0xB), net.prefixlen)
        self.a.peer, self.b.peer = self.b, self.a
        if self.ipv6:
            net6 = self.subnet6
            self.a.ip6, self.b.ip6 = str(net6[1]), str(net6[2])
        for host in self.hosts:
            try:
                netns.create(host.netns)
            except OSError as exc:
                raise LabError(exc.errno or errno.EIO, f"creating namespace {host.netns}") from exc
            self._made.append(host.netns)

        with IPRoute(netns=self.a.netns) as ipr:
            ipr.link(
                "add",
                ifname=self.a.ifname,
                kind="veth",
                peer={
                    "ifname": self.b.ifname,
                    "num_rx_queues": self.queues,
                    "num_tx_queues": self.queues,
                },
                num_rx_queues=self.queues,
                num_tx_queues=self.queues,
            )
            (idx,) = ipr.link_lookup(ifname=self.b.ifname)
            fd = os.open(os.path.join(NETNS_RUN_DIR, self.b.netns), os.O_RDONLY | os.O_CLOEXEC)
            try:
                ipr.link("set", index=idx, net_ns_fd=fd)
            finally:
                os.close(fd)
        for host in self.hosts:
            self._configure(host)
        for host in self.hosts:
            _wait_operstate_up(host)

    def _configure(self, host: Host) -> None:
        if host.ip6 is None:
            # IPv6 off: no router solicitations or DAD in captures and counters.
            host.sysctl("net.ipv6.conf.all.disable_ipv6", "1")
            host.sysctl("net.ipv6.conf.default.disable_ipv6", "1")
        else:
            # on, quietly: no DAD (tests need not wait), no router solicitations
            for scope in ("all", "default", host.ifname):
                host.sysctl(f"net.ipv6.conf.{scope}.accept_dad", "0")
                host.sysctl(f"net.ipv6.conf.{scope}.dad_transmits", "0")
                host.sysctl(f"net.ipv6.conf.{scope}.router_solicitations", "0")
                host.sysctl(f"net.ipv6.conf.{scope}.accept_ra", "0")
                host.sysctl(f"net.ipv6.conf.{scope}.disable_ipv6", "0")
        with IPRoute(netns=host.netns) as ipr:
            (lo,) = ipr.link_lookup(ifname="lo")
            ipr.link("set", index=lo, state="up")
            (idx,) = ipr.link_lookup(ifname=host.ifname)
            host.ifindex = idx
            ipr.link("set", index=idx, address=host.mac, mtu=self.mtu)
            ipr.addr("add", index=idx, address=host.ip, prefixlen=host.prefixlen)
            if host.ip6 is not None:
                ipr.addr("add", index=idx, address=host.ip6, prefixlen=64, flags=IFA_F_NODAD)
            ipr.link("set", index=idx, state="up")
        # veth would leave TCP/UDP checksums for a NIC to finish (CHECKSUM_PARTIAL),
        # and XDP sees frames before that: make the kernel finish them, as a real NIC's peer would
        try:
            _set_tx_checksum_offload(host.netns, host.ifname, enabled=False)
        except OSError as exc:
            raise LabError(
                exc.errno or errno.EIO, f"turning off TX checksum offload on {host.ifname}"
            ) from exc


def _wait_operstate_up(host: Host, timeout: float = 5.0) -> None:
    # Until the kernel's link watch marks the carrier up, the veth's qdisc
    # drops every frame; a lab is ready only once both ends are UP.
    deadline = time.monotonic() + timeout
    with IPRoute(netns=host.netns) as ipr:
        while True:
            (link,) = ipr.get_links(host.ifindex)
            state = link.get_attr("IFLA_OPERSTATE")
            if state == "UP":
                return
            if time.monotonic() >= deadline:
                raise LabError(
                    errno.ETIMEDOUT,
                    f"waiting for {host.ifname} to come up",
                    detail=f"operstate {state}",
                )
            time.sleep(0.005)


# <linux/sockios.h>, <linux/ethtool.h>: the legacy ioctl that `ethtool -K tx`
# maps to, so that a lab needs no ethtool binary (a wheel-only machine has none).
SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17


def _set_tx_checksum_offload(netns_name: str, ifname: str, *, enabled: bool) -> None:
    with entered(netns_name):
        # a socket stays in the namespace it was made in
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        value = ctypes.create_string_buffer(struct.pack("=II", ETHTOOL_STXCSUM, int(enabled)))
        ifreq = struct.pack("16sP16x", ifname.encode(), ctypes.addressof(value))
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)


def _outside_event_loop(fn: Callable[[], None]) -> None:
    """Run ``fn`` here, or in a helper thread when this thread runs an event loop.

    pyroute2's sync API drives an event loop of its own, which cannot run
    inside a running one; a Lab may well be made inside an async test.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        fn()
        return
    failure: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            failure.append(exc)

    helper = threading.Thread(target=run, name="aioxdp-lab")
    helper.start()
    helper.join()
    if failure:
        raise failure[0]


def subnet_of(index: int) -> ipaddress.IPv4Network:
    """The /24 of lab ``index`` inside 198.18.0.0/15."""
    if not 0 <= index < MAX_LABS:
        raise ValueError(f"index: must be 0..{MAX_LABS - 1}, got {index}")
    base = int(LAB_NETWORK.network_address) + index * 256
    return ipaddress.IPv4Network(f"{ipaddress.IPv4Address(base)}/24")


def subnet6_of(index: int) -> ipaddress.IPv6Network:
    """The /64 of lab ``index`` inside 2001:2::/48."""
    if not 0 <= index < MAX_LABS:
        raise ValueError(f"index: must be 0..{MAX_LABS - 1}, got {index}")
    return ipaddress.IPv6Network(f"2001:2:0:{index:x}::/64")


def _mac(index: int, host: int) -> str:
    # Locally administered, unicast; the lab index and host are readable in it.
    return f"02:a0:{index >> 8:02x}:{index & 0xFF:02x}:00:{host:02x}"


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabError(
            errno.EPERM,
            "building a lab (network namespaces and veth)",
            "run as root: namespaces, veth and XDP all need it",
        )


# -- leases and stale labs ------------------------------------------------

_open_labs: weakref.WeakSet[Lab] = weakref.WeakSet()


def open_labs() -> list[Lab]:
    """The labs this process has open."""
    return list(_open_labs)


_cleanup_lock = threading.Lock()
_cleanup_installed = False


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat: tells a live pid from a reused one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _owner_alive(lease: Path) -> bool:
    try:
        pid_text, start = lease.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return False  # unreadable or half-written by a process that died
    return _start_time(pid) == start


@contextlib.contextmanager
def _lease_lock() -> Iterator[None]:
    LEASE_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(LEASE_DIR / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _lease() -> int:
    """Remove stale labs, then take the first free index."""
    me = f"{os.getpid()} {_start_time(os.getpid())}\n"
    with _lease_lock():
        _remove_stale_locked()
        for index in range(MAX_LABS):
            try:
                fd = os.open(LEASE_DIR / str(index), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as f:
                f.write(me)
            return index
    raise LabError(errno.EAGAIN, "leasing a lab subnet", f"all {MAX_LABS} lab subnets are in use")


def remove_stale_labs() -> list[str]:
    """Remove namespaces and leases of labs whose owning process is dead.

    Returns the namespaces removed. Runs automatically when a lab starts.
    """
    with _lease_lock():
        return _remove_stale_locked()


def _remove_stale_locked() -> list[str]:
    live: set[int] = set()
    dead: set[int] = set()
    for lease in LEASE_DIR.iterdir():
        if lease.name.isdigit():
            (live if _owner_alive(lease) else dead).add(int(lease.name))
    # A namespace without a live lease is stale: the lease is taken before
    # any namespace is made and removed only after all of them are gone.
    orphans = [n for n in _lab_namespaces() if _index_of(n) not in live]
    removed: list[str] = []
    for index in sorted(dead | {_index_of(n) for n in orphans}):
        log.warning("removing stale lab %d left by a dead process", index)
        mine = [n for n in orphans if _index_of(n) == index]
        _remove_lab(index, mine)
        removed += mine
    return removed


def _index_of(namespace: str) -> int:
    match = _NS_PATTERN.match(namespace)
    assert match is not None
    return int(match.group(1))


def _lab_namespaces() -> list[str]:
    try:
        names = os.listdir(NETNS_RUN_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if _NS_PATTERN.match(n))


def _remove_lab(index: int, namespaces: list[str]) -> None:
    errors = []
    for name in namespaces:
        if not os.path.exists(os.path.join(NETNS_RUN_DIR, name)):
            continue
        try:
            netns.remove(name)
        except OSError as exc:
            errors.append(f"{name}: {exc}")
    with contextlib.suppress(FileNotFoundError):
        (LEASE_DIR / str(index)).unlink()
    if errors:
        raise LabError(errno.EBUSY, f"removing lab {index}", detail="; ".join(errors))


def _close_open_labs() -> None:
    for lab in list(_open_labs):
        try:
            lab.close()
        except LabError as exc:
            log.error("could not remove lab %d: %s", lab.index, exc)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _close_open_labs()
    # Die of the same signal, as if we had not caught it.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_cleanup_handlers() -> None:
    """Remove open labs at interpreter exit and on SIGTERM.

    The SIGTERM handler can only be set from the main thread, and only
    replaces the default action (an application's own handler wins).
    """
    global _cleanup_installed
    with _cleanup_lock:
        if _cleanup_installed:
            return
        atexit.register(_close_open_labs)
        is_main = threading.current_thread() is threading.main_thread()
        if is_main and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
        _cleanup_installed = True
