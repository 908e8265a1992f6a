"""A UDP socket in anyio's shape, on either driver's interface.

``await nic.create_udp_socket((ip, port))`` (IPv4 or IPv6) on an asyncio
:class:`aioxdp.Interface` or a trio/anyio
:class:`aioxdp.anyio_interface.AnyioInterface` gives a :class:`UDPSocket`
with the methods of ``anyio.abc.UDPSocket``: ``await sock.receive()``
returns ``(data, (host, port))``, ``await sock.send((data, (host, port)))``
sends, ``async for`` iterates, ``await sock.aclose()`` closes. The same code
then runs on asyncio, uvloop and trio. (asyncio applications that want
callbacks use ``create_datagram_endpoint``.)

Received datagrams are checked in C (lengths and checksums; fragments
dropped) and copied into a bounded queue: a full queue drops and counts,
as a kernel socket's receive buffer does. Sending goes where
aioxdp.udp_paths says, as a DatagramTransport's does: a word per (host,
port), a path per next hop, new hosts routed in process from a snapshot of
the kernel's tables (read again when it is older than ROUTES_TTL), the
next hop's MAC from the kernel or our own ARP or neighbour solicitation;
C builds each header.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import time
from collections.abc import Sequence
from typing import Any, Protocol

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from aioxdp._libs import ffi, lib
from aioxdp.errors import XDPError
from aioxdp.forwarder import Rule
from aioxdp.protocols.ipv6 import ip6_str
from aioxdp.route import ResolvedRoute, Route
from aioxdp.udp_paths import ROUTES_TTL, UdpPaths
from aioxdp.xsk import RxBatch, UdpBatch

__all__ = ["UDPSocket", "UdpCapable", "check_local_addr"]

SEND_WAIT = 1.0  # seconds a send waits for a free frame before giving up


class _Claim(Protocol):
    def close(self) -> None: ...


class _Sender(Protocol):
    def send_udp_many(self, batch: UdpBatch, ip_id: int) -> int: ...


class UdpCapable(Protocol):
    """What a UDPSocket needs of an interface (both drivers' have it)."""

    ifname: str
    batch_size: int

    @property
    def mtu(self) -> int: ...

    @property
    def frame_size(self) -> int: ...

    @property
    def tx(self) -> _Sender: ...

    def flush(self) -> None: ...

    def claim(
        self,
        rules: Sequence[Rule],
        handler: Any,
        *,
        on_lost: Any = None,
    ) -> _Claim: ...

    async def resolve_neighbours(self, routes: Sequence[Route]) -> list[ResolvedRoute]: ...


def check_local_addr(local_addr: object, *, allow_any: bool = False) -> tuple[str, int]:
    """``local_addr`` as (IPv4 or IPv6 address, port), or the ValueError that
    names it; 0.0.0.0 or :: (every address) only where ``allow_any``."""
    if not isinstance(local_addr, tuple) or len(local_addr) != 2:
        raise ValueError(f"local_addr: expected (ip, port), got {local_addr!r}")
    ip, port = local_addr
    try:
        ip = str(ipaddress.ip_address(ip))
    except ValueError:
        raise ValueError(f"local_addr: not an IPv4 or IPv6 address: {ip!r}") from None
    if ip in ("0.0.0.0", "::") and not allow_any:
        raise ValueError(f"local_addr: name one address of this host ({ip} is not supported)")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"local_addr: port must be 1..65535, got {port!r}")
    return ip, port


class UDPSocket:
    """A bound UDP socket on an aioxdp interface; see the module docstring."""

    def __init__(
        self, nic: UdpCapable, local_addr: tuple[str, int], *, max_queued: int = 1024
    ) -> None:
        ip, port = check_local_addr(local_addr)
        if isinstance(max_queued, bool) or not isinstance(max_queued, int) or max_queued < 1:
            raise ValueError(f"max_queued: need an int >= 1, got {max_queued!r}")
        self._nic = nic
        self.local_address = (ip, port)
        self._dgrams = ffi.new("struct aioxdp_udp_dgram[]", nic.batch_size)
        self._inbox: MemoryObjectSendStream[tuple[bytes, tuple[str, int]]]
        self._outbox: MemoryObjectReceiveStream[tuple[bytes, tuple[str, int]]]
        self._inbox, self._outbox = anyio.create_memory_object_stream[
            tuple[bytes, tuple[str, int]]
        ](max_queued)
        self._paths = UdpPaths(nic.ifname, (ip, port))
        self._ip_id = 0
        self._lost: Exception | None = None
        self._closed = False
        self.received = 0  # valid datagrams queued for receive()
        self.dropped = 0  # valid datagrams dropped because the queue was full
        self.malformed = 0  # frames that were no valid datagram
        self.sent = 0
        self._claim = nic.claim(
            [Rule("udp", dst=ip, dst_port=port)], self._take, on_lost=self._on_lost
        )

    def __repr__(self) -> str:
        ip, port = self.local_address
        return f"<UDPSocket {ip}:{port} on {self._nic.ifname}{' closed' if self._closed else ''}>"

    # -- receive ----------------------------------------------------------------

    def _take(self, rx: RxBatch, start: int, stop: int) -> None:
        n = stop - start
        valid = rx.parse_udp(start, n, self._dgrams)
        self.malformed += n - valid
        if not valid:
            return
        view = rx.xsk.view
        for i in range(n):
            d = self._dgrams[i]
            if d.status != lib.AIOXDP_UDP_OK:
                continue
            # (host, port) for either family, as anyio gives it
            host = (
                ip6_str(bytes(d.saddr6))
                if d.v6
                else socket.inet_ntoa(d.saddr.to_bytes(4, "little"))
            )
            item = (view[d.off : d.off + d.len].tobytes(), (host, d.sport))
            try:
                self._inbox.send_nowait(item)
                self.received += 1
            except anyio.WouldBlock:
                self.dropped += 1

    def _on_lost(self, exc: Exception) -> None:
        self._lost = exc
        self._inbox.close()

    async def receive(self) -> tuple[bytes, tuple[str, int]]:
        """The next datagram and its sender."""
        try:
            return await self._outbox.receive()
        except anyio.EndOfStream:
            if self._lost is not None:
                raise anyio.BrokenResourceError(f"{self._nic.ifname}: {self._lost}") from self._lost
            raise anyio.ClosedResourceError from None

    def __aiter__(self) -> UDPSocket:
        return self

    async def __anext__(self) -> tuple[bytes, tuple[str, int]]:
        try:
            return await self.receive()
        except anyio.ClosedResourceError:
            raise StopAsyncIteration from None

    # -- send -------------------------------------------------------------------

    async def send(self, item: tuple[bytes | bytearray | memoryview, tuple[str, int]]) -> None:
        """Send ``(data, (host, port))``, as anyio's UDPSocket.send."""
        if not isinstance(item, tuple) or len(item) != 2:
            raise TypeError(f"item: expected (data, (host, port)), got {item!r}")
        data, addr = item
        if not isinstance(addr, tuple) or len(addr) != 2:
            raise TypeError(f"item: expected (data, (host, port)), got {item!r}")
        await self.sendto(data, addr[0], addr[1])

    async def sendto(self, data: bytes | bytearray | memoryview, host: str, port: int) -> None:
        """Send ``data`` to ``host``:``port`` (one unfragmented datagram)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expected bytes-like, got {type(data).__name__}")
        if not isinstance(host, str) or not host:
            raise TypeError(f"host: must be an address or name (str), got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"port: must be 1..65535, got {port!r}")
        if self._closed:
            raise anyio.ClosedResourceError
        if self._lost is not None:
            raise anyio.BrokenResourceError(f"{self._nic.ifname}: {self._lost}") from self._lost
        headers = 48 if self._paths.family == 6 else 28  # IP and UDP
        limit = min(self._nic.mtu, self._nic.frame_size - 14) - headers
        if len(data) > limit:
            raise ValueError(
                f"data: {len(data)} bytes exceed what one unfragmented datagram carries here "
                f"({limit}: MTU {self._nic.mtu}, {self._nic.frame_size}-byte frames)"
            )
        word = await self._word(host, port)
        self._ip_id = (self._ip_id + 1) & 0xFFFF
        deadline = time.monotonic() + SEND_WAIT
        payload = bytes(data)
        while not self._nic.tx.send_udp_many(self._paths.batch([word], [payload]), self._ip_id):
            self._nic.flush()  # frames come back as the kernel completes sends
            if time.monotonic() > deadline:
                raise XDPError(
                    errno.ENOBUFS,
                    f"sending to {host}:{port}",
                    f"no UMEM frame free for {SEND_WAIT}s",
                )
            await anyio.sleep(0.0005)
            word = await self._word(host, port)  # (a full path table may have been cleared)
        self._nic.flush()
        self.sent += 1

    async def _word(self, host: str, port: int) -> int:
        """Where (host, port) is, for C: cached, or routed in process, or asked."""
        paths = self._paths
        word = paths.words.get((host, port))
        if word is not None:
            return word
        snapshot = paths.snapshot
        if snapshot is None or snapshot.age(time.monotonic_ns()) > ROUTES_TTL:
            await paths.refresh()
        word = paths.word_now(host, port)
        if word is None:
            word = await paths.resolve(host, port, self._nic)
        return word

    # -- close ------------------------------------------------------------------

    async def aclose(self) -> None:
        """Take the rule out; a waiting receive() raises ClosedResourceError."""
        if self._closed:
            return
        self._closed = True
        self._claim.close()
        self._inbox.close()
        await anyio.lowlevel.checkpoint()

    async def __aenter__(self) -> UDPSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
