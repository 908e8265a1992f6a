"""UDP endpoints: asyncio's DatagramTransport / DatagramProtocol over AF_XDP.

``await nic.create_datagram_endpoint(factory, local_addr=(ip, port))``
installs a forwarder rule for that address and port (removed on close).
Received datagrams are checked in C a batch at a time (IPv4 and UDP
lengths and checksums; fragments are counted and dropped, never delivered
in part). A protocol with ``datagrams_received(batch)`` takes the whole
:class:`DatagramBatch`; otherwise ``datagram_received(data, addr)`` is
called for each, as asyncio does.

``sendto(data, addr)`` routes like ping does: the next hop's MAC comes from
the neighbour table, or from an ARP request of our own; datagrams to a
destination being resolved wait for it, and a failure goes to
``error_received``.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import socket
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aioxdp import _netlink
from aioxdp._libs import ffi, lib
from aioxdp.endpoints import Endpoint
from aioxdp.errors import XDPError
from aioxdp.forwarder import Rule
from aioxdp.frames import udp_header
from aioxdp.neighbour import resolve_neighbours
from aioxdp.packet import PacketBatch
from aioxdp.protocols.ipv4 import IPv4
from aioxdp.protocols.udp import IPPROTO_UDP, Udp
from aioxdp.route import ResolvedRoute, route_to
from aioxdp.udp_socket import check_local_addr

if TYPE_CHECKING:
    from aioxdp.interface import Interface

__all__ = ["DatagramBatch", "DatagramTransport"]

STATUS_NAMES = {
    lib.AIOXDP_UDP_TRUNCATED: "truncated",
    lib.AIOXDP_UDP_NOT_IPV4: "not_ipv4",
    lib.AIOXDP_UDP_BAD_IP: "bad_ip_header",
    lib.AIOXDP_UDP_BAD_IP_CHECKSUM: "bad_ip_checksum",
    lib.AIOXDP_UDP_NOT_UDP: "not_udp",
    lib.AIOXDP_UDP_FRAGMENT: "fragment",
    lib.AIOXDP_UDP_BAD_LENGTH: "bad_udp_length",
    lib.AIOXDP_UDP_BAD_CHECKSUM: "bad_udp_checksum",
}
MAX_PENDING = 1024  # datagrams held per destination while its MAC is resolved
MAX_RESOLVING = 64  # destinations resolved at once; more are dropped, counted
MAX_HEADERS = 4096  # (host, port) headers cached, least recently used evicted
MAX_ROUTES = 4096  # hosts whose route and next hop are cached, likewise


class DatagramBatch:
    """The datagrams of one receive batch, checked in C.

    Iterating yields ``(data, (host, port))`` for each valid datagram (the
    standard asyncio shape; ``data`` is ``bytes``). :meth:`echo` sends every
    valid datagram back to its sender without copying it.
    """

    __slots__ = ("_batch", "_dgrams", "_transport", "valid")

    def __init__(
        self, transport: DatagramTransport, batch: PacketBatch, dgrams: Any, valid: int
    ) -> None:
        self._transport = transport
        self._batch = batch
        self._dgrams = dgrams
        self.valid = valid

    def __len__(self) -> int:
        return self.valid

    def __iter__(self) -> Iterator[tuple[bytes, tuple[str, int]]]:
        rx = self._batch.rx
        rx.check("reading received datagrams")
        view = rx.xsk.view
        ok = lib.AIOXDP_UDP_OK
        peer = self._transport.peer_address
        for i in range(len(self._batch)):
            d = self._dgrams[i]
            if d.status == ok:
                yield view[d.off : d.off + d.len].tobytes(), peer(d.saddr, d.sport)

    def views(self) -> Iterator[tuple[memoryview, tuple[str, int]]]:
        """Like iterating, but payloads are memoryviews into the frames.

        They are released (reading raises ``ValueError``) when the batch's
        callback returns.
        """
        rx = self._batch.rx
        for i in range(len(self._batch)):
            d = self._dgrams[i]
            if d.status == lib.AIOXDP_UDP_OK:
                yield rx.view(d.off, d.len), self._transport.peer_address(d.saddr, d.sport)

    def echo(self) -> int:
        """Send each valid datagram back to where it came from, in place; returns how many."""
        return self._transport._echo(self._batch, self._dgrams)


async def local_ipv4_addresses() -> list[str]:
    """Every IPv4 address of this host (network namespace), from netlink."""
    replies = await _netlink.query(lambda rtnl: rtnl.addresses(socket.AF_INET))
    return sorted({str(reply["IFA_ADDRESS"]) for reply in replies if "IFA_ADDRESS" in reply})


def _ntoa(addr: int) -> str:
    return socket.inet_ntoa(addr.to_bytes(4, "little"))


class DatagramTransport(Endpoint, asyncio.DatagramTransport):
    """The transport of a UDP endpoint on an aioxdp Interface."""

    def __init__(
        self,
        nic: Interface,
        protocol: asyncio.DatagramProtocol,
        local_addr: tuple[str, int],
        addresses: list[str],
    ) -> None:
        port = local_addr[1]
        # one rule per address of this host: never another host's traffic
        rules = [Rule("udp", dst=address, dst_port=port) for address in addresses]
        asyncio.DatagramTransport.__init__(
            self,
            extra={
                "sockname": local_addr,
                "peername": None,
                "ifname": nic.ifname,
                "mode": nic.mode,
            },
        )
        Endpoint.__init__(self, nic, protocol, rules, [])
        self.local_addr = local_addr
        self._dgrams = ffi.new("struct aioxdp_udp_dgram[]", nic.batch_size)  # one per frame
        # one unfragmented datagram in one UMEM frame with its headers
        self._max_payload = min(nic.mtu, nic.frame_size - 14) - 28
        self._tx = nic.tx  # the Interface's sending transport, fixed while it is open
        self._take_protocol(protocol)
        # bounded, so that answering spoofed sources cannot grow memory; a new
        # port of a known host needs no lookup, only a header built from its route
        self._headers: collections.OrderedDict[tuple[str, int], Any] = collections.OrderedDict()
        self._routes: collections.OrderedDict[str, ResolvedRoute] = collections.OrderedDict()
        self._pending: dict[str, list[tuple[bytes, int]]] = {}
        self._resolving: dict[str, asyncio.Task[None]] = {}
        self._ip_id = 0
        # (host, port) tuples of recent peers, made once: a reply's sendto
        # finds its header by the very tuple datagram_received was given
        self._peers: dict[int, tuple[str, int]] = {}
        self.malformed: dict[str, int] = {}
        self.dropped_unresolved = 0

    @property
    def cached_destinations(self) -> int:
        """(host, port) pairs whose headers are cached (at most MAX_HEADERS)."""
        return len(self._headers)

    @property
    def resolving(self) -> int:
        """Destinations whose next hop is being resolved now (at most MAX_RESOLVING)."""
        return len(self._resolving)

    def peer_address(self, saddr: int, sport: int) -> tuple[str, int]:
        """The ``(host, port)`` of a sender (``saddr`` as C read it), from a
        bounded cache of recent peers."""
        key = saddr << 16 | sport
        addr = self._peers.get(key)
        if addr is None:
            if len(self._peers) >= MAX_HEADERS:
                self._peers.clear()  # cheap, and bounded: spoofed sources cannot grow it
            addr = self._peers[key] = (_ntoa(saddr), sport)
        return addr

    def __repr__(self) -> str:
        state = "closing" if self._closing else "open"
        return f"<DatagramTransport {self.local_addr[0]}:{self.local_addr[1]} on {self._nic.ifname} {state}>"

    # -- receive ----------------------------------------------------------------

    def _deliver(self, batch: PacketBatch) -> None:
        n = len(batch)
        valid = batch.rx.parse_udp(batch.start, n, self._dgrams)
        if valid != n:
            for i in range(n):
                status = self._dgrams[i].status
                if status != lib.AIOXDP_UDP_OK:
                    name = STATUS_NAMES.get(status, "malformed")
                    self.malformed[name] = self.malformed.get(name, 0) + 1
        if not valid:
            return
        self.received += valid
        dgrams = DatagramBatch(self, batch, self._dgrams, valid)
        if self._batched:
            self._protocol.datagrams_received(dgrams)
            return
        receive = self._protocol.datagram_received
        for data, addr in dgrams:
            try:
                receive(data, addr)
            except Exception as exc:  # one datagram's failure, as asyncio's own transports
                self._callback_failed(exc, "datagram_received")

    def _take_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        # a protocol with datagrams_received takes whole batches
        self._batched = hasattr(protocol, "datagrams_received")
        self._callback_name = "datagrams_received" if self._batched else "datagram_received"

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Datagrams from now on go to ``protocol``, batched if it takes batches."""
        if not isinstance(protocol, asyncio.BaseProtocol):
            raise TypeError(f"protocol: expected a DatagramProtocol, got {type(protocol).__name__}")
        self._protocol = protocol
        self._take_protocol(protocol)

    # -- send -------------------------------------------------------------------

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        """Send ``data`` to ``addr`` (host, port); routed and resolved as ping is.

        After close the datagram is counted and dropped, as asyncio does."""
        # the common case first: bytes to a (host, port) whose header is cached
        # (so checked when it was made), port an int (53.0 == 53 as a key)
        if type(data) is bytes and type(addr) is tuple and not self._closing:
            try:
                header = self._headers.get(addr)
            except TypeError:  # unhashable: the checks below say what is wrong
                header = None
            if header is not None and type(addr[1]) is int and len(data) <= self._max_payload:
                self._headers.move_to_end(addr)
                self._send(header, data)
                return
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expected bytes-like, got {type(data).__name__}")
        if addr is None or not isinstance(addr, tuple) or len(addr) != 2:
            raise ValueError(f"addr: expected (host, port), got {addr!r}")
        host, port = addr
        if not isinstance(host, str) or not host:
            raise TypeError(f"addr: host must be an address or name (str), got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"addr: port must be 1..65535, got {port!r}")
        if self._closing:
            self._dropped_write()
            return
        limit = self._max_payload
        if len(data) > limit:
            raise ValueError(
                f"data: {len(data)} bytes exceed what one unfragmented datagram carries here "
                f"({limit}: MTU {self._nic.mtu}, {self._nic.frame_size}-byte frames)"
            )
        key = (host, port)
        header = self._headers.get(key)
        if header is None:
            route = self._routes.get(host)
            if route is None:
                self._queue_unresolved(bytes(data), host, port)
                return
            self._routes.move_to_end(host)
            header = self._cache_header(route, host, port)
        else:
            self._headers.move_to_end(key)
        self._send(header, data)

    def _cache_header(self, route: ResolvedRoute, host: str, port: int) -> Any:
        header = self._headers[(host, port)] = self._header(route, port)
        if len(self._headers) > MAX_HEADERS:
            self._headers.popitem(last=False)
        return header

    def _send(self, header: Any, data: bytes | bytearray | memoryview) -> None:
        self._ip_id = (self._ip_id + 1) & 0xFFFF
        tx = self._tx
        if not tx.send_udp(header, self._ip_id, data):
            # no frame free: it waits in our share of the backlog
            tx.write_for(self._write_buffer, self._frame(bytes(ffi.buffer(header, 42)), data))

    def _echo(self, batch: PacketBatch, dgrams: Any) -> int:
        return self._nic.transport(batch.rx.xsk.queue).echo_udp(batch, dgrams)

    def _frame(self, header: bytes, data: bytes | bytearray | memoryview) -> bytes:
        """The datagram whole, for the backlog (the C path builds it in place)."""
        frame = bytearray(header) + data
        ip = IPv4.parse(frame, 14, verify=False)
        IPv4(ip.src, ip.dst, IPPROTO_UDP, 28 + len(data), ip.ttl, self._ip_id).build_into(frame, 14)
        sport, dport = struct.unpack_from("!HH", header, 34)
        Udp(sport, dport).build_into(frame, 34, data, ip.src, ip.dst)
        return bytes(frame)

    def _queue_unresolved(self, data: bytes, host: str, port: int) -> None:
        if host not in self._resolving and len(self._resolving) >= MAX_RESOLVING:
            # a flood of new destinations (spoofed sources): no ARP storm
            self.dropped_unresolved += 1
            return
        pending = self._pending.setdefault(host, [])
        if len(pending) >= MAX_PENDING:
            self.dropped_unresolved += 1
            return
        pending.append((data, port))
        if host not in self._resolving:
            self._resolving[host] = self._nic.loop.create_task(self._resolve(host))

    async def _resolve(self, host: str) -> None:
        try:
            found = await route_to(host, interface=self._nic.ifname)
            (route,) = await resolve_neighbours([found], self._nic)
        except (XDPError, ValueError) as exc:
            lost = self._pending.pop(host, [])
            self.dropped_unresolved += len(lost)
            try:
                self._protocol.error_received(exc)
            except Exception as callback_exc:
                self._callback_failed(callback_exc, "error_received")
            return
        finally:
            self._resolving.pop(host, None)
        self._routes[host] = route
        if len(self._routes) > MAX_ROUTES:
            self._routes.popitem(last=False)
        for data, port in self._pending.pop(host, []):
            if self._closing:
                return
            header = self._headers.get((host, port))
            if header is None:
                header = self._cache_header(route, host, port)
            self._send(header, data)

    def _header(self, route: ResolvedRoute, port: int) -> Any:
        """Ethernet, IPv4 and UDP headers to (route, port), for C to complete per datagram."""
        source = None if self.local_addr[0] == "0.0.0.0" else self.local_addr[0]
        return ffi.new("uint8_t[]", udp_header(route, self.local_addr[1], port, source=source))

    def _shutdown(self, exc: Exception | None) -> None:
        for task in self._resolving.values():
            task.cancel()
        super()._shutdown(exc)


async def create_datagram_endpoint(
    nic: Interface, protocol_factory: Any, *, local_addr: tuple[str, int]
) -> tuple[DatagramTransport, Any]:
    """See :meth:`aioxdp.Interface.create_datagram_endpoint`."""
    ip, port = check_local_addr(local_addr, allow_any=True)
    if ip == "0.0.0.0":
        addresses = await local_ipv4_addresses()
        if not addresses:
            raise XDPError(
                errno.EADDRNOTAVAIL,
                f"binding UDP port {port} on every address",
                "this host has no IPv4 address (ip addr add ...)",
            )
    else:
        addresses = [ip]
    protocol = protocol_factory()
    transport = DatagramTransport(nic, protocol, (ip, port), addresses)
    nic.add_endpoint(transport, protocol)
    await asyncio.sleep(0)  # connection_made has run when we return, as with asyncio's endpoints
    return transport, protocol
