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
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

from aioxdp import registry
from aioxdp.attachment import Attachment, AttachmentOwner
from aioxdp.bpf import Mode
from aioxdp.endpoints import Endpoint, PacketTransport
from aioxdp.forwarder import Rule
from aioxdp.neighbour import resolve_neighbours
from aioxdp.packet import PacketBatch, PacketProtocol
from aioxdp.route import ResolvedRoute, Route
from aioxdp.transport import XDPTransport, check_busy_poll
from aioxdp.umem import UmemConfig
from aioxdp.xsk import XSK, RxBatch

if TYPE_CHECKING:  # the UDP layers load on first use: a ping imports neither
    from aioxdp.datagram import DatagramTransport
    from aioxdp.udp_socket import UDPSocket

__all__ = ["Endpoint", "Interface", "PacketTransport", "shared_interface"]

P = TypeVar("P", bound=PacketProtocol)
D = TypeVar("D", bound=asyncio.DatagramProtocol)

log = logging.getLogger(__name__)


Handler = Callable[[RxBatch, int, int], None]
WATCH_INTERVAL = 0.25  # seconds between looks at the link and the sockets


class _Dispatcher(PacketProtocol):
    """Routes each batch to the endpoints whose rule tags the packets carry."""

    def __init__(self, nic: Interface, attachment: Attachment[Endpoint]) -> None:
        self._nic = nic
        self._attachment = attachment

    def packets_received(self, batch: PacketBatch) -> None:
        rx = batch.rx
        runs = self._attachment.runs(rx)  # sorted and grouped in C
        if len(runs) == 1 and runs[0][1] == 0 and runs[0][2] == rx.count:
            runs[0][0].dispatch(batch)  # fast path: one endpoint's packets only
            return
        for endpoint, start, stop in runs:
            endpoint.dispatch(PacketBatch(rx, start, stop))

    # Flow control is per endpoint (each has its WriteBuffer); the transport's
    # own pause_writing/resume_writing have nothing to add.
    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self._nic.lose(self._attachment.explain(exc))


class _HandlerProtocol(PacketProtocol):
    """A claim's handler as a packet protocol: each batch as (rx, start, stop)."""

    def __init__(self, handler: Handler, on_lost: Callable[[Exception], None] | None) -> None:
        self._handler = handler
        self._on_lost = on_lost

    def packets_received(self, batch: PacketBatch) -> None:
        self._handler(batch.rx, batch.start, batch.start + len(batch))

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self._on_lost is not None:
            self._on_lost(exc)


class Interface(AttachmentOwner[Endpoint]):
    """One network interface driven by aioxdp on asyncio; see the module docstring."""

    def __init__(
        self,
        ifname: str,
        *,
        mode: Mode = "auto",
        queues: Iterable[int] | None = None,
        config: UmemConfig | None = None,
        batch_size: int | None = None,
        busy_poll: float = 0.0,
    ) -> None:
        super().__init__(ifname, mode=mode, queues=queues, config=config, batch_size=batch_size)
        self._busy_poll = check_busy_poll(busy_poll)
        self._transports: dict[int, XDPTransport] = {}
        self._endpoints: list[Endpoint] = []
        self._loop: asyncio.AbstractEventLoop
        self._watch: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> Interface:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def busy_poll(self) -> float:
        """Seconds a socket that found frames keeps polling its RX ring, once
        per loop iteration, before it waits in epoll again (0, the default:
        it waits at once). Under load a polling receiver never sleeps, so
        the kernel spends nothing waking it; idle, each poll costs a loop
        iteration. Settable while open."""
        return self._busy_poll

    @busy_poll.setter
    def busy_poll(self, seconds: float) -> None:
        self._busy_poll = check_busy_poll(seconds)
        for transport in self._transports.values():
            transport.busy_poll = self._busy_poll

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this Interface was opened on."""
        return self._loop

    async def open(self) -> Interface:
        """Load, attach and open the sockets (called by ``async with``).

        While open, ``aioxdp.ping`` and friends on this loop use it too.
        """
        await self._open()
        registry.register(self)
        return self

    async def _open(self) -> Interface:
        self._loop = asyncio.get_running_loop()
        attachment = await self._attach()
        try:
            dispatcher = _Dispatcher(self, attachment)
            for q, xsk in attachment.sockets.items():
                self._transports[q] = XDPTransport(
                    self._loop,
                    xsk,
                    dispatcher,
                    extra={"mode": attachment.mode, "umem": self._config},
                    busy_poll=self._busy_poll,
                )
        except BaseException:
            self._teardown()
            raise
        self._watch = self._loop.call_later(WATCH_INTERVAL, self._watchdog)
        return self

    def _watchdog(self) -> None:
        """Close everything, naming the cause, when the link goes down or away
        or a socket reports an error (the attachment looks)."""
        self._watch = None
        if self._attachment is None or self._attachment.closed:
            return
        trouble = self._attachment.trouble()
        if trouble is None:
            self._watch = self._loop.call_later(WATCH_INTERVAL, self._watchdog)
        else:
            self.lose(trouble)

    async def create_packet_endpoint(
        self,
        protocol_factory: Callable[[], P],
        *,
        rules: Sequence[Rule],
    ) -> tuple[PacketTransport, P]:
        """Bind a new protocol to ``rules``: matching packets go to it, a batch at a time."""
        if not self._is_open:
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
        # connection_made has run when we return, as with asyncio's endpoints
        await asyncio.sleep(0)
        return transport, protocol

    async def create_datagram_endpoint(
        self, protocol_factory: Callable[[], D], *, local_addr: tuple[str, int]
    ) -> tuple[DatagramTransport, D]:
        """A UDP endpoint on ``local_addr`` (asyncio's DatagramTransport/Protocol shapes)."""
        if not self._is_open:
            raise self._not_open("creating an endpoint")
        from aioxdp.datagram import create_datagram_endpoint

        return await create_datagram_endpoint(self, protocol_factory, local_addr=local_addr)

    def claim(
        self,
        rules: Sequence[Rule],
        handler: Handler,
        *,
        on_lost: Callable[[Exception], None] | None = None,
    ) -> PacketTransport:
        """Install ``rules`` (all or none): their packets go to
        ``handler(rx, start, stop)``, as on an AnyioInterface (the endpoint of
        code that runs on both drivers). Close the returned transport to
        take them out."""
        if not self._is_open:
            raise self._not_open("claiming packets")
        rules = list(rules)
        if not rules:
            raise ValueError("rules: a claim needs at least one rule")
        if not callable(handler):
            raise TypeError(f"handler: must be callable, got {type(handler).__name__}")
        protocol = _HandlerProtocol(handler, on_lost)
        transport = PacketTransport(self, protocol, rules, [])
        self.add_endpoint(transport, protocol)
        return transport

    async def create_udp_socket(
        self, local_addr: tuple[str, int], *, max_queued: int = 1024
    ) -> UDPSocket:
        """A UDP socket in anyio's shape (``receive``/``send``) on ``local_addr``:
        the same code then runs on trio's AnyioInterface."""
        if not self._is_open:
            raise self._not_open("creating a UDP socket")
        from aioxdp.udp_socket import UDPSocket

        return UDPSocket(self, local_addr, max_queued=max_queued)

    async def resolve_neighbours(self, routes: Sequence[Route]) -> list[ResolvedRoute]:
        """Each route with its next hop's MAC: the kernel's, else our own ARP."""
        return await resolve_neighbours(routes, self)

    def flush(self) -> None:
        """Nothing to do: the transport flushes once per loop iteration by itself."""

    async def send(self, frame: bytes | bytearray | memoryview) -> None:
        """Send one whole frame (copied now, or queued in the TX backlog)."""
        self.tx.write(frame)

    def add_endpoint(self, endpoint: Endpoint, protocol: asyncio.BaseProtocol) -> None:
        """Install a new endpoint's rules (all or none) and start it (endpoint
        classes call this; users call create_*_endpoint)."""
        endpoint.install()
        self._endpoints.append(endpoint)
        self._loop.call_soon(protocol.connection_made, endpoint)  # type: ignore[arg-type]

    def claim_tag(self, tag: int, endpoint: Endpoint) -> None:
        """Packets carrying ``tag`` go to ``endpoint`` from now on."""
        if self._attachment is None or self._attachment.closed:
            raise self._not_open("claiming a rule's packets")
        self._attachment.claim_tag(tag, endpoint)

    def release_tag(self, tag: int) -> None:
        if self._attachment is not None:
            self._attachment.release_tag(tag)

    def drop_endpoint(self, endpoint: Endpoint) -> None:
        """A closing endpoint: its rules out of the forwarder, its tags unrouted."""
        if self._is_open:
            installed = set(self.forwarder.rules)
            for rule in endpoint.rules:
                if rule in installed:
                    self.forwarder.remove(rule)
        for tag in endpoint.tags:
            self.release_tag(tag)
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
        if self._attachment is None or queue not in self._attachment.sockets:
            raise self._not_open(f"using queue {queue}")
        return self._attachment.sockets[queue]

    def transport(self, queue: int) -> XDPTransport:
        """The transport of RX queue ``queue`` (received frames go back out on it)."""
        try:
            return self._transports[queue]
        except KeyError:
            raise self._not_open(f"using queue {queue}") from None

    def lose(self, exc: Exception) -> None:
        """A socket or the link failed: close everything, and say why (``error``)."""
        if self._lost_exc is not None or not self._is_open:
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

    async def aclose(self) -> None:
        """Close endpoints, drain queued frames, close sockets, detach. Idempotent."""
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
        registry.unregister(self)
        self._transports.clear()
        if self._attachment is not None:
            self._attachment.close()


@contextlib.asynccontextmanager
async def shared_interface(ifname: str, *, mode: Mode = "auto") -> AsyncIterator[Interface]:
    """This loop's Interface on ``ifname``: the application's own if it
    opened one, else one opened on first use and closed when its last user
    leaves. Concurrent pings share its XSKs."""
    async with registry.shared(Interface, ifname, Interface(ifname, mode=mode)._open) as nic:
        yield nic
