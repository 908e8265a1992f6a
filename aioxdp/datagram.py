"""UDP endpoints: asyncio's DatagramTransport / DatagramProtocol over AF_XDP.

``await nic.create_datagram_endpoint(factory, local_addr=(ip, port))``
installs a forwarder rule for that address and port (removed on close);
the address is IPv4 or IPv6 (``"0.0.0.0"`` or ``"::"``: every address of
that family). Received datagrams are checked in C a batch at a time (IPv4
or IPv6 and UDP lengths and checksums; fragments are counted and dropped,
never delivered in part). An IPv6 sender's address is ``(host, port,
flowinfo, scope_id)``, as asyncio gives it. A protocol with
``datagrams_received(batch)`` takes the whole
:class:`DatagramBatch`; otherwise ``datagram_received(data, addr)`` is
called for each, as asyncio does.

``sendto(data, addr)`` routes like ping does: the next hop's MAC comes from
the neighbour table, or from an ARP request of our own; datagrams to a
destination being resolved wait for it, and a failure goes to
``error_received``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aioxdp import _netlink
from aioxdp._libs import ffi, lib
from aioxdp._udp_speedups import SendQueue, collect, deliver
from aioxdp.endpoints import Endpoint
from aioxdp.errors import XDPError
from aioxdp.forwarder import Rule
from aioxdp.packet import PacketBatch
from aioxdp.protocols.ipv6 import ip6_str
from aioxdp.route import family_of, route_snapshot
from aioxdp.udp_paths import V6_WORD, UdpPaths
from aioxdp.udp_socket import check_local_addr

if TYPE_CHECKING:
    from aioxdp.interface import Interface

__all__ = ["DatagramBatch", "DatagramTransport"]

STATUS_NAMES = {
    lib.AIOXDP_UDP_TRUNCATED: "truncated",
    lib.AIOXDP_UDP_NOT_IP: "not_ip",
    lib.AIOXDP_UDP_BAD_IP: "bad_ip_header",
    lib.AIOXDP_UDP_BAD_IP_CHECKSUM: "bad_ip_checksum",
    lib.AIOXDP_UDP_NOT_UDP: "not_udp",
    lib.AIOXDP_UDP_FRAGMENT: "fragment",
    lib.AIOXDP_UDP_BAD_LENGTH: "bad_udp_length",
    lib.AIOXDP_UDP_BAD_CHECKSUM: "bad_udp_checksum",
}
MAX_PENDING = 1024  # datagrams held per destination while its MAC is resolved
MAX_RESOLVING = 64  # destinations resolved at once; more are dropped, counted
MAX_PEERS = 65536  # sender address tuples kept for reuse; cleared when full
DGRAM_SIZE = ffi.sizeof("struct aioxdp_udp_dgram")
SADDR6_AT = ffi.offsetof("struct aioxdp_udp_dgram", "saddr6")
FLUSH_AT = 256  # datagrams queued by sendto that go to C at once, inside a batch or not


class DatagramBatch:
    """The datagrams of one receive batch, checked in C.

    Iterating yields ``(data, (host, port))`` for each valid datagram (the
    standard asyncio shape; ``data`` is ``bytes``), read by C in one call
    when iteration starts. :meth:`echo` sends every valid datagram back to
    its sender without copying it.
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
        return iter(self._transport._collect(self._batch))

    def views(self) -> Iterator[tuple[memoryview, tuple[str, int]]]:
        """Like iterating, but payloads are memoryviews into the frames.

        They are released (reading raises ``ValueError``) when the batch's
        callback returns.
        """
        rx = self._batch.rx
        for i in range(len(self._batch)):
            d = self._dgrams[i]
            if d.status == lib.AIOXDP_UDP_OK:
                yield rx.view(d.off, d.len), self._transport.sender(d)

    def echo(self) -> int:
        """Send each valid datagram back to where it came from, in place; returns how many."""
        return self._transport._echo(self._batch, self._dgrams)


async def local_addresses(family: int = 4) -> list[str]:
    """Every IPv4 (or IPv6) address of this host (network namespace), from
    netlink; loopback's ::1 is not on any NIC, so it is left out."""
    af = socket.AF_INET6 if family == 6 else socket.AF_INET
    replies = await _netlink.query(lambda rtnl: rtnl.addresses(af))
    found = {str(reply["IFA_ADDRESS"]) for reply in replies if "IFA_ADDRESS" in reply}
    return sorted(found - {"::1"})


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
        # the same, as bytes: an IPv6 sender's address read without a cffi struct
        self._dgram_bytes = memoryview(ffi.buffer(self._dgrams)).cast("B")
        # the valid datagrams of a batch, three words each, read without cffi structs
        self._meta = ffi.new("uint64_t[]", 3 * nic.batch_size)
        self._meta_words = memoryview(ffi.buffer(self._meta)).cast("Q")
        # one unfragmented datagram in one UMEM frame with its headers
        self._max_payload = min(nic.mtu, nic.frame_size - 14) - 28
        self._max_payload6 = min(nic.mtu, nic.frame_size - 14) - 48
        self._tx = nic.tx  # the Interface's sending transport, fixed while it is open
        self._take_protocol(protocol)
        # where datagrams go (aioxdp.udp_paths): a word per (host, port), a
        # path per next hop, new hosts routed in process
        self._paths = UdpPaths(
            nic.ifname, local_addr, on_stale=self._refresh_soon, on_forget=self._flush_out
        )
        self._refreshing: asyncio.Task[None] | None = None
        self._pending: dict[str, list[tuple[bytes, int]]] = {}
        self._resolving: dict[str, asyncio.Task[None]] = {}
        self._ip_id = 0
        # datagrams sendto queued, sent by one C call at the end of the batch
        # being delivered (or of this loop turn, or every FLUSH_AT); its
        # sendto is this instance's: a builtin that takes a cached address
        # and hands the rest to the class's sendto below (aioxdp._udp_speedups)
        self._out = SendQueue(
            cache=self._paths.words,
            slow=self._sendto_checked,
            schedule=self._schedule_flush,
            flush=self._flush_out,
            max_payload=self._max_payload,
            max_payload6=self._max_payload6,
            flush_at=FLUSH_AT,
            v6_bit=V6_WORD,
        )
        self.sendto = self._out.sendto  # type: ignore[method-assign]
        # (host, port) tuples of recent peers, made once: a reply's sendto
        # finds its destination by the very tuple datagram_received was given
        self._peers: dict[int, tuple[str, int]] = {}
        self._peers6: dict[tuple[bytes, int], tuple[str, int, int, int]] = {}
        self.malformed: dict[str, int] = {}
        self.dropped_unresolved = 0

    @property
    def cached_destinations(self) -> int:
        """(host, port) pairs whose destination is cached (at most MAX_DESTINATIONS)."""
        return len(self._paths)

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
            if len(self._peers) >= MAX_PEERS:
                self._peers.clear()  # cheap, and bounded: spoofed sources cannot grow it
            addr = self._peers[key] = (_ntoa(saddr), sport)
        return addr

    def sender(self, d: Any) -> tuple[Any, ...]:
        """Who sent a checked datagram (struct aioxdp_udp_dgram): ``(host,
        port)``, or an IPv6 sender's ``(host, port, flowinfo, scope_id)``."""
        if not d.v6:
            return self.peer_address(d.saddr, d.sport)
        return self._sender6(bytes(d.saddr6), d.sport)

    def _sender6(self, saddr6: bytes, sport: int) -> tuple[str, int, int, int]:
        key = (saddr6, sport)
        addr = self._peers6.get(key)
        if addr is None:
            if len(self._peers6) >= MAX_PEERS:
                self._peers6.clear()  # cheap, and bounded: spoofed sources cannot grow it
            addr = self._peers6[key] = (ip6_str(saddr6), sport, 0, 0)
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
        # what the protocol sends while it has the batch goes to C in one
        # call when it is done
        out = self._out
        scheduled, out.scheduled = out.scheduled, True
        try:
            if self._batched:
                self._protocol.datagrams_received(DatagramBatch(self, batch, self._dgrams, valid))
            else:
                self._each(batch, n, valid)
        finally:
            out.scheduled = scheduled
            if len(out):
                self._flush_out()

    def _each(self, batch: PacketBatch, n: int, valid: int) -> None:
        """datagram_received per datagram, the one Python call each makes:
        payload bounds and sender come from three words C wrote, and the
        loop is C's (aioxdp._udp_speedups.deliver)."""
        rx = batch.rx
        rx.check("reading received datagrams")
        lib.aioxdp_udp_flatten(self._dgrams, n, self._meta)
        deliver(
            self._out,
            rx.xsk.umem,
            self._meta_words,
            valid,
            self._peers,
            self._unknown_sender,
            self._protocol.datagram_received,
            self._receive_failed,
        )

    def _collect(self, batch: PacketBatch) -> list[tuple[bytes, tuple[str, int]]]:
        """The batch's valid datagrams as (data, sender), read by C
        (aioxdp._udp_speedups.collect) from the words flatten writes."""
        rx = batch.rx
        rx.check("reading received datagrams")
        valid = lib.aioxdp_udp_flatten(self._dgrams, len(batch), self._meta)
        return collect(rx.xsk.umem, self._meta_words, valid, self._peers, self._unknown_sender)

    def _unknown_sender(self, key: int) -> tuple[Any, ...]:
        """The sender of a datagram by its word (see _each), not in _peers."""
        if key & V6_WORD:  # IPv6: its datagram's index in the batch, and port
            at = DGRAM_SIZE * (key >> 16 & 0xFFFFFFFF) + SADDR6_AT
            return self._sender6(self._dgram_bytes[at : at + 16].tobytes(), key & 0xFFFF)
        return self.peer_address(key >> 16, key & 0xFFFF)

    def _receive_failed(self, exc: Exception) -> None:
        # one datagram's failure, as asyncio's own transports
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

        Datagrams sent while a batch is delivered go when it is done, in one
        call into C; others at the end of this loop turn (or every FLUSH_AT).
        After close the datagram is counted and dropped, as asyncio does.

        An open transport's own ``sendto`` is a builtin (aioxdp._udp_speedups)
        that queues bytes to a cached address and calls this for the rest."""
        self._out.sendto(data, addr)

    def _sendto_checked(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        """sendto for what the fast path did not take: checked, routed, queued."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expected bytes-like, got {type(data).__name__}")
        ipv6 = self._paths.family == 6
        if (
            addr is None
            or not isinstance(addr, tuple)
            or len(addr) not in ((2, 4) if ipv6 else (2,))
        ):
            shape = "(host, port) or (host, port, flowinfo, scope_id)" if ipv6 else "(host, port)"
            raise ValueError(f"addr: expected {shape}, got {addr!r}")
        host, port = addr[0], addr[1]
        if any(isinstance(v, bool) or not isinstance(v, int) for v in addr[2:]):
            raise TypeError(f"addr: flowinfo and scope_id must be ints, got {addr!r}")
        if not isinstance(host, str) or not host:
            raise TypeError(f"addr: host must be an address or name (str), got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"addr: port must be 1..65535, got {port!r}")
        if self._closing:
            self._dropped_write()
            return
        limit = self._max_payload6 if ipv6 else self._max_payload
        if len(data) > limit:
            raise ValueError(
                f"data: {len(data)} bytes exceed what one unfragmented datagram carries here "
                f"({limit}: MTU {self._nic.mtu}, {self._nic.frame_size}-byte frames)"
            )
        if host in self._resolving:
            # its next hop is being asked: wait with the datagrams before it,
            # without a route lookup each (a burst to a new peer is thousands)
            self._queue_unresolved(bytes(data), host, port)
            return
        dest = self._paths.word_now(host, port)
        if dest is None:
            self._queue_unresolved(bytes(data), host, port)
            return
        if len(addr) == 4:  # a reply to an IPv6 sender finds its word by this tuple next time
            self._paths.remember(addr, dest)
        self._queue(dest, bytes(data))

    def _refresh_soon(self) -> None:
        """The route snapshot aged: read a fresh one in the background."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = self._nic.loop.create_task(self._refresh())

    async def _refresh(self) -> None:
        with contextlib.suppress(XDPError, OSError):  # the old one routes on meanwhile
            await self._paths.refresh()

    def _queue(self, dest: int, data: bytes) -> None:
        self._out.append(data, dest)

    def _schedule_flush(self) -> None:
        self._nic.loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._out.scheduled = False
        self._flush_out()

    def _flush_out(self) -> None:
        """Hand every queued datagram to C in one call; those without a free
        frame wait, built whole, in this endpoint's share of the backlog."""
        if not len(self._out):
            return
        data, dests, words, lens = self._out.take()
        n = len(data)
        first_id = self._ip_id + 1
        self._ip_id = (self._ip_id + n) & 0xFFFF
        paths = self._paths
        sent = 0
        if not self._write_buffer.size:  # else ours wait already: these go behind them
            batch = paths.batch_in(
                ffi.from_buffer("uint64_t[]", words), ffi.from_buffer("uint32_t[]", lens), data
            )
            sent = self._tx.send_udp_many(batch, first_id)
        for k in range(sent, n):  # no frame free (or the interface closing): they wait
            self._tx.write_for(self._write_buffer, paths.frame(dests[k], data[k], first_id + k))

    def _echo(self, batch: PacketBatch, dgrams: Any) -> int:
        return self._nic.transport(batch.rx.xsk.queue).echo_udp(batch, dgrams)

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
        pending = self._pending.get(host)
        if not pending:  # (queued before this task was made: cannot happen)
            self._resolving.pop(host, None)
            return
        try:
            # with the first datagram's port: the host's word serves every other
            await self._paths.resolve(host, pending[0][1], self._nic)
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
        for data, port in self._pending.pop(host, []):
            if self._closing:
                return
            dest = self._paths.word_now(host, port)
            if dest is not None:  # (a known host now: None cannot happen)
                self._queue(dest, data)

    def _shutdown(self, exc: Exception | None) -> None:
        for task in self._resolving.values():
            task.cancel()
        if self._refreshing is not None:
            self._refreshing.cancel()
        self._out.closing = True  # sendto from now on: counted and dropped
        super()._shutdown(exc)


async def create_datagram_endpoint(
    nic: Interface, protocol_factory: Any, *, local_addr: tuple[str, int]
) -> tuple[DatagramTransport, Any]:
    """See :meth:`aioxdp.Interface.create_datagram_endpoint`."""
    ip, port = check_local_addr(local_addr, allow_any=True)
    if ip in ("0.0.0.0", "::"):
        family = family_of(ip)
        addresses = await local_addresses(family)
        if not addresses:
            raise XDPError(
                errno.EADDRNOTAVAIL,
                f"binding UDP port {port} on every address",
                f"this host has no IPv{family} address (ip addr add ...)",
            )
    else:
        addresses = [ip]
    snapshot = await route_snapshot(interface=nic.ifname)
    protocol = protocol_factory()
    transport = DatagramTransport(nic, protocol, (ip, port), addresses)
    transport._paths.snapshot = snapshot  # its own module: the first peers are routed at once
    nic.add_endpoint(transport, protocol)
    await asyncio.sleep(0)  # connection_made has run when we return, as with asyncio's endpoints
    return transport, protocol
