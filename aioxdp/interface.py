"""Interface: one NIC, its forwarder, one XSK per RX queue, and endpoints.

``async with Interface("eth0") as nic`` loads the forwarder, attaches it
(native mode first, generic as the fallback; ``nic.mode`` says which),
opens an XDP socket on each RX queue (all of them, or those asked for) and
registers each with the running loop. Endpoints bind a protocol to rules:
packets matching an endpoint's rules are redirected by the forwarder, carry
the rule's tag to userspace and are dispatched to that endpoint's protocol,
a batch at a time.

An endpoint's protocol that raises hurts only itself: the exception goes to
the loop's exception handler, the rest of the batch reaches the other
endpoints, and the endpoint keeps receiving. Only an error of the sockets or
the link (it went down or away) is fatal, and then the whole Interface
closes: every endpoint gets ``connection_lost(exc)``, the program is
detached, and ``nic.error`` says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import socket
import struct
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aioxdp import _netlink, privileges
from aioxdp.bpf import BPFObject, Mode, XDPLink, ifindex_of
from aioxdp.datagram import DatagramTransport, create_datagram_endpoint
from aioxdp.endpoints import Endpoint, PacketTransport
from aioxdp.errors import XDPError
from aioxdp.forwarder import Forwarder, Rule
from aioxdp.packet import PacketBatch, PacketProtocol
from aioxdp.transport import XDPTransport
from aioxdp.umem import FrameCounts, UmemConfig
from aioxdp.xsk import XSK

__all__ = ["Endpoint", "Interface", "PacketTransport", "shared_interface"]

P = TypeVar("P", bound=PacketProtocol)
D = TypeVar("D", bound=asyncio.DatagramProtocol)

log = logging.getLogger(__name__)


WATCH_INTERVAL = 0.25  # seconds between looks at the link and the sockets
SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1


def _link_trouble(ifname: str) -> tuple[int, str] | None:
    """(errno, why) if ``ifname`` is gone or down, else None (one ioctl)."""
    request = struct.pack("16sH14x", ifname.encode(), 0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            reply = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, request)
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENXIO):
                return errno.ENODEV, f"{ifname} was deleted"
            return None
    (flags,) = struct.unpack_from("H", reply, 16)
    if not flags & IFF_UP:
        return errno.ENETDOWN, f"{ifname} went down (ip link set dev {ifname} up brings it back)"
    return None


@dataclass(frozen=True, slots=True)
class LinkInfo:
    queues: int  # RX queues
    mtu: int
    mac: str | None  # the link's address, None for links without one (lo, tun)


async def link_info(ifname: str) -> LinkInfo:
    """RX queues, MTU and MAC of ``ifname``, from netlink (sysfs may show another namespace)."""
    index = ifindex_of(ifname)
    (link,) = await _netlink.query(lambda ipr: ipr.link("get", index=index))
    mac = link.get("IFLA_ADDRESS")
    return LinkInfo(
        int(link.get("IFLA_NUM_RX_QUEUES") or 1),
        int(link.get("IFLA_MTU") or 1500),
        mac if mac and mac != "00:00:00:00:00:00" else None,
    )


async def rx_queue_count(ifname: str) -> int:
    return (await link_info(ifname)).queues


class _Dispatcher(PacketProtocol):
    """Routes each batch to the endpoints whose rule tags the packets carry."""

    def __init__(self, nic: Interface) -> None:
        self._nic = nic

    def packets_received(self, batch: PacketBatch) -> None:
        endpoints = self._nic._by_tag
        rx = batch.rx
        if rx.count == 0:
            return
        self._nic.received += rx.count
        runs = rx.tag_runs()  # sorted and grouped in C
        if len(runs) == 1:  # fast path: one endpoint's packets only
            endpoint = endpoints.get(runs[0][0])
            if endpoint is None:
                self._nic.unclaimed += rx.count
            else:
                endpoint.dispatch(batch)
            return
        for tag, start, stop in runs:
            endpoint = endpoints.get(tag)
            if endpoint is None:
                self._nic.unclaimed += stop - start
            else:
                endpoint.dispatch(PacketBatch(rx, start, stop))

    # Flow control is per endpoint (each has its WriteBuffer); the transport's
    # own pause_writing/resume_writing have nothing to add.
    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self._nic._lost(self._nic._explain(exc))


class Interface:
    """One network interface driven by aioxdp; see the module docstring."""

    def __init__(
        self,
        ifname: str,
        *,
        mode: Mode = "auto",
        queues: Iterable[int] | None = None,
        config: UmemConfig | None = None,
        batch_size: int = 64,
    ) -> None:
        if mode not in ("auto", "native", "generic"):
            raise ValueError(f"mode: must be 'auto', 'native' or 'generic', got {mode!r}")
        self.ifname = ifname
        self.requested_mode = mode
        self.mode: str | None = None
        self.mtu = 1500
        self.mac: str | None = None
        self._queues = None if queues is None else sorted(set(queues))
        self._config = config or UmemConfig()
        self.frame_size = self._config.frame_size  # bytes of one UMEM frame: the largest frame
        self.batch_size = batch_size  # most frames one receive hands over
        self._obj: BPFObject | None = None
        self._link: XDPLink | None = None
        self.forwarder: Forwarder
        self._xsks: dict[int, XSK] = {}
        self._transports: dict[int, XDPTransport] = {}
        self._endpoints: list[Endpoint] = []
        self._by_tag: dict[int, Endpoint] = {}
        self._loop: asyncio.AbstractEventLoop
        self.received = 0  # frames drained from the XSKs
        self.unclaimed = (
            0  # of those, frames no endpoint claimed (untagged, or its endpoint closed)
        )
        self.final_counts: dict[int, FrameCounts] = {}
        self.tx_size = self._config.tx_size
        self._lost_exc: Exception | None = None
        self._watch: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        state = "open" if self._link is not None else "closed"
        if self._lost_exc is not None:
            state = f"closed by {self._lost_exc!r}"
        return f"<Interface {self.ifname} {self.mode or self.requested_mode} {state}>"

    @property
    def error(self) -> Exception | None:
        """The socket or link error that closed this Interface, if one did."""
        return self._lost_exc

    def _not_open(self, doing: str) -> XDPError:
        if self._lost_exc is not None:
            return XDPError(
                errno.EBADF, doing, f"{self.ifname} was closed by an error: {self._lost_exc}"
            )
        return XDPError(errno.EBADF, doing, f"{self.ifname} is not open")

    async def __aenter__(self) -> Interface:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this Interface was opened on."""
        return self._loop

    @property
    def queues(self) -> list[int]:
        return sorted(self._xsks)

    async def open(self) -> Interface:
        """Load, attach and open the sockets (called by ``async with``).

        While open, ``aioxdp.ping`` and friends on this loop use it too.
        """
        return await self._open(register=True)

    async def _open(self, *, register: bool) -> Interface:
        self._loop = asyncio.get_running_loop()
        doing = f"opening {self.ifname} for AF_XDP"
        privileges.require(doing, need_raw=True)
        info = await link_info(self.ifname)
        if _link_trouble(self.ifname) is not None:
            # down from the start: refuse now rather than let the watchdog close it
            raise XDPError(
                errno.ENETDOWN, doing, f"{self.ifname} is down (ip link set dev {self.ifname} up)"
            )
        available, self.mtu, self.mac = info.queues, info.mtu, info.mac
        queues = self._queues if self._queues is not None else list(range(available))
        bad = [q for q in queues if not 0 <= q < available]
        if bad:
            raise ValueError(f"queues: {self.ifname} has RX queues 0..{available - 1}, not {bad}")
        try:
            self._obj = BPFObject.packaged("forwarder")
            self._obj.load()
            self.forwarder = Forwarder(self._obj)
            self.forwarder.set_local_mac(self.mac)  # rules see only traffic for this host
            self._link = self._obj.program("aioxdp_forwarder").attach(
                self.ifname, mode=self.requested_mode
            )
            self.mode = self._link.mode
            xskmap = self._obj.map("aioxdp_fw_xsks")
            dispatcher = _Dispatcher(self)
            for q in queues:
                xsk = XSK(self.ifname, q, config=self._config, batch_size=self.batch_size)
                self._xsks[q] = xsk
                xskmap.update(q, xsk.fd.to_bytes(4, "little"))
                self._transports[q] = XDPTransport(
                    self._loop, xsk, dispatcher, extra={"mode": self.mode, "umem": self._config}
                )
        except BaseException:
            self._teardown()
            raise
        log.info("%s: forwarder in %s mode, XSKs on queues %s", self.ifname, self.mode, queues)
        self._watch = self._loop.call_later(WATCH_INTERVAL, self._watchdog)
        if register:
            _register(self)
        return self

    def _watchdog(self) -> None:
        """Close everything, naming the cause, when the interface goes down or away.

        An XSK reports neither through poll(); its SO_ERROR and the link's
        flags do, so look every WATCH_INTERVAL seconds.
        """
        self._watch = None
        if self._link is None:
            return
        cause = _link_trouble(self.ifname)
        if cause is None:
            for xsk in self._xsks.values():
                err = 0 if xsk.closed else xsk.socket_error()
                if err:
                    cause = (err, f"the AF_XDP socket reports: {os.strerror(err)}")
                    break
        if cause is None:
            self._watch = self._loop.call_later(WATCH_INTERVAL, self._watchdog)
            return
        err, why = cause
        self._lost(XDPError(err, f"using {self.ifname}", why))

    async def create_packet_endpoint(
        self,
        protocol_factory: Callable[[], P],
        *,
        rules: Sequence[Rule],
    ) -> tuple[PacketTransport, P]:
        """Bind a new protocol to ``rules``: matching packets go to it, a batch at a time."""
        if self._link is None:
            raise self._not_open("creating an endpoint")
        rules = list(rules)
        if not rules:
            raise ValueError("rules: an endpoint needs at least one rule")
        protocol = protocol_factory()
        if not isinstance(protocol, PacketProtocol):
            raise TypeError(
                f"protocol_factory: must return a PacketProtocol, got {type(protocol).__name__}"
            )
        transport = PacketTransport(self, protocol, rules, [])
        self.add_endpoint(transport, protocol)
        await asyncio.sleep(
            0
        )  # connection_made has run when we return, as with asyncio's endpoints
        return transport, protocol

    async def create_datagram_endpoint(
        self, protocol_factory: Callable[[], D], *, local_addr: tuple[str, int]
    ) -> tuple[DatagramTransport, D]:
        """A UDP endpoint on ``local_addr`` (asyncio's DatagramTransport/Protocol shapes)."""
        if self._link is None:
            raise self._not_open("creating an endpoint")
        return await create_datagram_endpoint(self, protocol_factory, local_addr=local_addr)

    def add_endpoint(self, endpoint: Endpoint, protocol: asyncio.BaseProtocol) -> None:
        """Install a new endpoint's rules (all or none) and start it (endpoint
        classes call this; users call create_*_endpoint)."""
        endpoint.install()
        self._endpoints.append(endpoint)
        self._loop.call_soon(protocol.connection_made, endpoint)  # type: ignore[arg-type]

    def claim_tag(self, tag: int, endpoint: Endpoint) -> None:
        """Packets carrying ``tag`` go to ``endpoint`` from now on."""
        self._by_tag[tag] = endpoint

    def release_tag(self, tag: int) -> None:
        self._by_tag.pop(tag, None)

    def drop_endpoint(self, endpoint: Endpoint) -> None:
        """A closing endpoint: its rules out of the forwarder, its tags unrouted."""
        installed = set(self.forwarder.rules)
        for rule in endpoint.rules:
            if rule in installed:
                self.forwarder.remove(rule)
        for tag in endpoint.tags:
            self._by_tag.pop(tag, None)
        if endpoint in self._endpoints:
            self._endpoints.remove(endpoint)

    @property
    def tx(self) -> XDPTransport:
        """The transport every endpoint sends through (that of the lowest queue)."""
        if not self._transports:
            raise self._not_open("sending")
        return self._transports[min(self._transports)]

    def socket(self, queue: int) -> XSK:
        """The XDP socket of RX queue ``queue`` (for C loops in benchmarks and tests:
        pause its transport's reading first, so that one reader drains it)."""
        try:
            return self._xsks[queue]
        except KeyError:
            raise self._not_open(f"using queue {queue}") from None

    def transport(self, queue: int) -> XDPTransport:
        """The transport of RX queue ``queue`` (received frames go back out on it)."""
        try:
            return self._transports[queue]
        except KeyError:
            raise self._not_open(f"using queue {queue}") from None

    def _explain(self, exc: Exception) -> Exception:
        """A send or receive error that the link's state explains, explained."""
        if isinstance(exc, OSError) and exc.errno in (errno.ENETDOWN, errno.ENXIO, errno.ENODEV):
            trouble = _link_trouble(self.ifname)
            if trouble is not None:
                err, why = trouble
                explained = XDPError(err, f"using {self.ifname}", why)
                explained.__cause__ = exc
                return explained
        return exc

    def _lost(self, exc: Exception) -> None:
        """A socket or the link failed: close everything, and say why."""
        if self._lost_exc is not None or self._link is None:
            return
        self._lost_exc = exc
        log.warning("%s: %s; closing the interface and its endpoints", self.ifname, exc)
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        for endpoint in list(self._endpoints):
            endpoint.lose(exc)
        for transport in self._transports.values():
            transport.abort()
        # after the connection_lost calls just scheduled
        self._loop.call_soon(self._teardown)

    def frame_counts(self) -> dict[int, FrameCounts]:
        """Per queue: who owns the frames (open sockets only)."""
        return {q: xsk.counts() for q, xsk in self._xsks.items() if not xsk.closed}

    def stats(self) -> dict[str, Any]:
        """The kernel's XDP_STATISTICS per queue, frame counts, and forwarder verdicts."""
        return {
            "ifname": self.ifname,
            "mode": self.mode,
            "queues": {
                q: {"xdp": xsk.statistics(), "frames": xsk.counts()}
                for q, xsk in self._xsks.items()
                if not xsk.closed
            },
            "verdicts": self.forwarder.counters,
            "unclaimed": self.unclaimed,
        }

    async def aclose(self) -> None:
        """Close endpoints, drain queued frames, close sockets, detach."""
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        for endpoint in list(self._endpoints):
            endpoint.close()
        for transport in self._transports.values():
            transport.close()
        # let close() flush and connection_lost run
        for _ in range(100):
            if all(t.closed for t in self._transports.values()):
                break
            await asyncio.sleep(0.001)
        for transport in self._transports.values():
            transport.abort()
        await asyncio.sleep(0)
        self._teardown()

    def _teardown(self) -> None:
        if hasattr(self, "_loop"):
            _unregister(self)
        # program off first, so nothing is redirected to a closing socket
        if self._link is not None:
            self._link.detach()
            self._link = None
        for q, xsk in self._xsks.items():
            if not xsk.closed:
                self.final_counts[q] = xsk.close()
        self._xsks.clear()
        self._transports.clear()
        if self._obj is not None:
            self._obj.close()
            self._obj = None


class _Shared:
    """One loop's Interface on one ifname, and who uses it.

    ``external``: opened by the application with ``async with Interface``;
    pings borrow it and never close it.
    """

    def __init__(self, opening: asyncio.Future[Interface], *, external: bool = False) -> None:
        self.opening = opening
        self.external = external
        self.users = 0


_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Shared]] = (
    weakref.WeakKeyDictionary()
)


def _register(nic: Interface) -> None:
    """Let pings on this loop use an Interface the application opened."""
    per_loop = _shared.setdefault(nic._loop, {})
    if nic.ifname not in per_loop:
        done: asyncio.Future[Interface] = nic._loop.create_future()
        done.set_result(nic)
        per_loop[nic.ifname] = _Shared(done, external=True)


def _unregister(nic: Interface) -> None:
    """Closed (by its owner, or by an error): the next ping opens a new one."""
    per_loop = _shared.get(nic._loop, {})
    entry = per_loop.get(nic.ifname)
    opening = entry.opening if entry is not None else None
    if (
        opening is not None
        and opening.done()
        and not opening.cancelled()
        and opening.exception() is None
        and opening.result() is nic
    ):
        del per_loop[nic.ifname]


@contextlib.asynccontextmanager
async def shared_interface(ifname: str, *, mode: Mode = "auto") -> AsyncIterator[Interface]:
    """The running loop's Interface on ``ifname``: the application's own if it
    opened one, else one opened on first use and closed when its last user
    leaves. Concurrent pings share its XSKs."""
    loop = asyncio.get_running_loop()
    per_loop = _shared.setdefault(loop, {})
    entry = per_loop.get(ifname)
    if entry is None:
        entry = per_loop[ifname] = _Shared(
            loop.create_task(Interface(ifname, mode=mode)._open(register=False))
        )
    entry.users += 1
    try:
        try:
            nic = await asyncio.shield(entry.opening)
        except BaseException:
            if per_loop.get(ifname) is entry and entry.opening.done():
                del per_loop[ifname]
            raise
        yield nic
    finally:
        entry.users -= 1
        if entry.users == 0 and per_loop.get(ifname) is entry and not entry.external:
            del per_loop[ifname]
            if (
                entry.opening.done()
                and not entry.opening.cancelled()
                and entry.opening.exception() is None
            ):
                await entry.opening.result().aclose()
