"""One NIC under anyio (trio): the same Attachment as the asyncio Interface.

The asyncio :class:`aioxdp.Interface` registers each XDP socket with the
loop's reader callbacks; trio has none, so here one background task per
socket waits with ``anyio.wait_readable`` (or, with ``busy_poll``, looks
at the ring again every scheduler pass while frames keep coming) and
hands each batch's tag runs to the handlers that claimed their rules.
Everything else (forwarder, link, sockets, tag table, health checks,
teardown order) is the :class:`aioxdp.attachment.Attachment` that both
drivers own.

Handlers are plain callables ``handler(rx, start, stop)`` run in the
reader task: they must not block and must not keep ``rx`` past their
return (copy what they need). A handler that raises hurts only its claim:
the exception is logged and counted, and the rest of the batch reaches the
other claims. A socket or link error closes the whole interface, calls
every claim's ``on_lost``, and ``nic.error`` says why.

Background tasks run outside the caller's task group (trio's system
nursery, or an asyncio task), so an interface shared by several pings
outlives whichever of them opened it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any

import anyio
import anyio.lowlevel

from aioxdp import registry
from aioxdp.attachment import Attachment, AttachmentOwner
from aioxdp.bpf import Mode
from aioxdp.forwarder import Rule
from aioxdp.neighbour import resolve_neighbours
from aioxdp.route import ResolvedRoute, Route
from aioxdp.runtime import running_library
from aioxdp.transport import check_busy_poll
from aioxdp.udp_socket import UDPSocket
from aioxdp.umem import UmemConfig
from aioxdp.xsk import XSK, RxBatch

__all__ = ["AnyioInterface", "Claim", "Handler", "shared_anyio_interface"]

log = logging.getLogger(__name__)

Handler = Callable[[RxBatch, int, int], None]
WATCH_INTERVAL = 0.25  # seconds between looks at the link and the sockets
MAX_BATCHES_PER_WAKEUP = 16  # then yield, so one busy socket cannot starve the others


class Claim:
    """Rules installed for one handler; :meth:`close` takes them out."""

    def __init__(
        self,
        nic: AnyioInterface,
        rules: Sequence[Rule],
        handler: Handler,
        on_lost: Callable[[Exception], None] | None,
    ) -> None:
        self.rules = list(rules)
        self.handler = handler
        self.on_lost = on_lost
        self.tags: list[int] = []
        self.frames = 0  # frames dispatched to the handler
        self.callback_errors = 0  # exceptions of the handler (logged)
        self.closed = False
        self._nic = nic

    def deliver(self, rx: RxBatch, start: int, stop: int) -> None:
        self.frames += stop - start
        try:
            self.handler(rx, start, stop)
        except Exception:  # this claim's bug: logged, counted, nobody else hurt
            self.callback_errors += 1
            log.exception("%s: handler %r of %s raised", self._nic.ifname, self.handler, self.rules)

    def count_taken(self, n: int) -> None:
        """``n`` frames of this claim's tags its handler took off the ring in
        C (a flood's replies): counted as dispatched."""
        self.frames += n
        self._nic.count_taken(n)

    def lose(self, exc: Exception) -> None:
        self.closed = True
        if self.on_lost is not None:
            try:
                self.on_lost(exc)
            except Exception:
                log.exception("%s: on_lost of %s raised", self._nic.ifname, self.rules)

    def close(self) -> None:
        """Rules out of the forwarder, tags unrouted. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self._nic.drop_claim(self)

    def __repr__(self) -> str:
        return f"<Claim {self.rules} on {self._nic.ifname}{' closed' if self.closed else ''}>"


class AnyioInterface(AttachmentOwner[Claim]):
    """An Interface for anyio (trio); see the module docstring.

    ``async with AnyioInterface("eth0") as nic``; or borrow this loop's
    shared one with :func:`shared_anyio_interface`.
    """

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
        self._claims: list[Claim] = []
        self._scope: anyio.CancelScope | None = None
        self._served: anyio.Event | None = None
        self._task: Any = None  # the asyncio task, when serving on asyncio

    @property
    def busy_poll(self) -> float:
        """Seconds a socket that found frames is looked at again every
        scheduler pass, before the reader waits for it again (0: off), as
        :attr:`aioxdp.Interface.busy_poll`."""
        return self._busy_poll

    @busy_poll.setter
    def busy_poll(self, seconds: float) -> None:
        self._busy_poll = check_busy_poll(seconds)

    async def __aenter__(self) -> AnyioInterface:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def open(self) -> AnyioInterface:
        """Attach and start reading; while open, trio pings of this run use it too."""
        await self._open()
        registry.register(self)
        return self

    async def _open(self) -> AnyioInterface:
        await self._attach()
        self._scope = anyio.CancelScope()
        self._served = anyio.Event()
        self._spawn(self._serve)
        return self

    def _spawn(self, serve: Callable[[], Awaitable[None]]) -> None:
        """Run ``serve`` beside every task of the run, owned by none of them."""
        if running_library() == "trio":
            import trio

            trio.lowlevel.spawn_system_task(serve, name=f"aioxdp {self.ifname}")
        else:
            self._task = asyncio.get_running_loop().create_task(serve())  # type: ignore[arg-type]

    async def _serve(self) -> None:
        attachment = self._attachment
        assert attachment is not None
        assert self._scope is not None
        assert self._served is not None
        try:
            with self._scope:
                async with anyio.create_task_group() as tg:
                    for xsk in attachment.sockets.values():
                        tg.start_soon(self._read, attachment, xsk)
                    tg.start_soon(self._watch, attachment)
        except Exception as exc:  # a bug of ours: say so, and close rather than hang
            log.exception("%s: the reader failed", self.ifname)
            self.lose(exc)
        finally:
            # the run ending cancels us too: nothing may stay attached
            attachment.close()
            registry.unregister(self)
            self._served.set()

    async def _read(self, attachment: Attachment[Claim], xsk: XSK) -> None:
        polled_until = 0.0  # busy_poll: until then, look again without waiting
        while True:
            if self._busy_poll and anyio.current_time() < polled_until:
                await anyio.lowlevel.checkpoint()  # the other tasks run; no sleep
            else:
                await anyio.wait_readable(xsk.fd)
            frames = 0
            for _ in range(MAX_BATCHES_PER_WAKEUP):
                try:
                    rx = xsk.receive()
                except OSError as exc:  # the socket failed: fatal for the whole interface
                    self.lose(attachment.explain(exc))
                    return
                frames += rx.count
                try:
                    for claim, start, stop in attachment.runs(rx):
                        claim.deliver(rx, start, stop)
                finally:
                    xsk.release(rx)
                if rx.count < xsk.batch_size:
                    break
            xsk.complete()
            if frames:
                polled_until = anyio.current_time() + self._busy_poll

    async def _watch(self, attachment: Attachment[Claim]) -> None:
        while True:
            await anyio.sleep(WATCH_INTERVAL)
            trouble = attachment.trouble()
            if trouble is not None:
                self.lose(trouble)
                return

    def lose(self, exc: Exception) -> None:
        """A socket or the link failed: every claim hears, the interface closes."""
        if self._lost_exc is not None or not self._is_open:
            return
        self._lost_exc = exc
        log.warning("%s: %s; closing the interface and its claims", self.ifname, exc)
        for claim in list(self._claims):
            claim.lose(exc)
        self._claims.clear()
        if self._scope is not None:
            self._scope.cancel()  # the serving task tears down when its readers are out

    async def aclose(self) -> None:
        """Stop reading, then detach and close the sockets. Idempotent."""
        for claim in list(self._claims):
            claim.close()
        if self._scope is not None:
            self._scope.cancel()
        if self._served is not None:
            with anyio.CancelScope(shield=True):
                await self._served.wait()
        if self._attachment is not None:
            self._attachment.close()
        registry.unregister(self)

    # -- claims and sending -----------------------------------------------------

    def claim(
        self,
        rules: Sequence[Rule],
        handler: Handler,
        *,
        on_lost: Callable[[Exception], None] | None = None,
    ) -> Claim:
        """Install ``rules`` (all or none): their packets go to ``handler``."""
        if not self._is_open or self._attachment is None:
            raise self._not_open("claiming packets")
        rules = list(rules)
        if not rules:
            raise ValueError("rules: a claim needs at least one rule")
        if not callable(handler):
            raise TypeError(f"handler: must be callable, got {type(handler).__name__}")
        claim = Claim(self, rules, handler, on_lost)
        forwarder = self._attachment.forwarder
        try:
            for rule in rules:
                tag = forwarder.add(rule)
                claim.tags.append(tag)
                self._attachment.claim_tag(tag, claim)
        except BaseException:
            for rule, tag in zip(rules, claim.tags, strict=False):
                forwarder.remove(rule)
                self._attachment.release_tag(tag)
            raise
        self._claims.append(claim)
        return claim

    def drop_claim(self, claim: Claim) -> None:
        if claim in self._claims:
            self._claims.remove(claim)
        if not self._is_open or self._attachment is None:
            return
        installed = set(self._attachment.forwarder.rules)
        for rule in claim.rules:
            if rule in installed:
                self._attachment.forwarder.remove(rule)
        for tag in claim.tags:
            self._attachment.release_tag(tag)

    @property
    def tx(self) -> XSK:
        """The socket every claim sends through (that of the lowest queue);
        call :meth:`flush` after queueing."""
        if not self._is_open or self._attachment is None:
            raise self._not_open("sending")
        sockets = self._attachment.sockets
        return sockets[min(sockets)]

    def flush(self) -> None:
        """Hand queued frames to the kernel; a failure closes the interface."""
        try:
            self.tx.flush()
        except OSError as exc:
            assert self._attachment is not None
            explained = self._attachment.explain(exc)
            self.lose(explained)
            raise explained from exc

    def echo_flood(self, xsk: XSK, lookup: Any, probes: Any, counts: Any, flood: Any) -> int:
        """A one-target flood's replies waiting on ``xsk``'s ring, each
        answered by the next probes through :attr:`tx`, in C (see
        XSK.echo_flood); returns the replies taken."""
        tx = self.tx
        if tx.closed or xsk.closed:
            return 0
        taken = xsk.echo_flood(tx, lookup, probes, counts, flood)
        if flood.sent:
            self.flush()
        return taken

    async def send(self, frame: bytes | bytearray | memoryview, *, timeout: float = 1.0) -> None:
        """Copy ``frame`` into a free UMEM frame and send it, waiting (up to
        ``timeout``) for a frame to come back from the kernel if none is free."""
        with anyio.fail_after(timeout):
            while True:
                tx = self.tx
                if tx.send(frame):
                    self.flush()
                    return
                self.flush()
                tx.complete()
                await anyio.sleep(0.0005)

    async def resolve_neighbours(self, routes: Sequence[Route]) -> list[ResolvedRoute]:
        """Each route with its next hop's MAC: the kernel's, else our own ARP."""
        return await resolve_neighbours(routes, self)

    async def create_udp_socket(
        self, local_addr: tuple[str, int], *, max_queued: int = 1024
    ) -> UDPSocket:
        """A UDP socket in anyio's shape (``receive``/``send``) on ``local_addr``."""
        if not self._is_open:
            raise self._not_open("creating a UDP socket")
        return UDPSocket(self, local_addr, max_queued=max_queued)


@contextlib.asynccontextmanager
async def shared_anyio_interface(
    ifname: str, *, mode: Mode = "auto"
) -> AsyncIterator[AnyioInterface]:
    """This run's AnyioInterface on ``ifname``: the application's own if it
    opened one, else one opened on first use and closed when its last user
    leaves. Concurrent trio pings share its sockets."""
    async with registry.shared(
        AnyioInterface, ifname, AnyioInterface(ifname, mode=mode)._open
    ) as nic:
        yield nic
