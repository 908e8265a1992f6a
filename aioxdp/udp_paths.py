"""Where a UDP endpoint's datagrams go: a path per next hop, a word per destination.

Theory of operation
-------------------
A server answers whoever writes to it, and a resolver picks a new source
port per query, so the cost of a new peer decides the cost of an answer.
Here a new peer costs nothing in the common case:

    (host, port) -> word     path << 48 | daddr << 16 | port, C's whole address
                             (IPv6: bit 63 set, and daddr the index of the
                             address in a table of 16-byte addresses)
    host -> word, no port    a new port of a known host: one dict lookup
    path                     next hop and source: the Ethernet and IPv4 (or
                             IPv6) headers but the destination, in a C table
                             (struct aioxdp_udp_path) every header is built from
    RouteSnapshot            the kernel's routes, links and neighbours read at
                             once; a new host is matched to its prefix in
                             process (the kernel asked once per prefix)

A new host on a known prefix whose next hop's MAC is known gets its word
at once (:meth:`UdpPaths.word_now`); otherwise :meth:`UdpPaths.resolve`
reads the tables afresh (routes, neighbours and its prefix in one thread
hop) and, if no one knows the MAC, asks with ARP. Every table is bounded
and cleared when full, so answering spoofed sources cannot grow memory.
"""

from __future__ import annotations

import array
import errno
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from aioxdp._libs import ffi, lib
from aioxdp.errors import XDPError
from aioxdp.frames import udp_header
from aioxdp.route import (
    NoRouteError,
    ResolvedRoute,
    Route,
    RouteSnapshot,
    family_of,
    pack_address,
    resolve_host,
    route_snapshot,
)
from aioxdp.xsk import UdpBatch

__all__ = [
    "ANY_ADDRESSES",
    "MAX_DESTINATIONS",
    "MAX_NEXT_HOPS",
    "MAX_PATHS",
    "ROUTES_TTL",
    "V6_WORD",
    "UdpPaths",
]

MAX_DESTINATIONS = 65536  # (host, port) words, and host words, each; cleared when full
MAX_ADDRESSES6 = 65536  # IPv6 destinations' 16 bytes, in C's table; cleared when full
V6_WORD = lib.AIOXDP_UDP_V6_WORD  # the bit of a word that says its destination is IPv6
ANY_ADDRESSES = ("0.0.0.0", "::")  # local addresses that mean every one of their family
MAX_NEXT_HOPS = 4096  # next hops whose MAC our own ARP found; cleared when full
MAX_PATHS = 1024  # next hops and sources headers are built from; cleared when full
ROUTES_TTL = 5.0  # seconds a snapshot routes new hosts before a fresh one is read


class _Resolver(Protocol):
    async def resolve_neighbours(self, routes: Sequence[Route]) -> list[ResolvedRoute]: ...


class UdpPaths:
    """The destinations of one UDP endpoint bound to ``local_addr`` on
    ``ifname`` (``0.0.0.0`` or ``::``: each datagram from its route's
    source). Its destinations are of its local address's family."""

    def __init__(
        self,
        ifname: str,
        local_addr: tuple[str, int],
        *,
        on_stale: Callable[[], None] | None = None,
        on_forget: Callable[[], None] | None = None,
    ) -> None:
        self.ifname = ifname
        self.local_addr = local_addr
        self._on_stale = on_stale  # told when the snapshot has aged: read a fresh one
        # told just before every word is forgotten (the path table is full):
        # words queued elsewhere name paths, so they must go to C first
        self._on_forget = on_forget
        self.table = ffi.new("struct aioxdp_udp_path[]", MAX_PATHS)  # what C reads
        self._path_index: dict[tuple[bytes, str], int] = {}
        self._dests: dict[tuple[Any, ...], int] = {}
        # the cached words by address: sendto's fast path looks them up in C
        # (aioxdp._udp_speedups); cleared, never replaced, so it may hold on
        self.words: dict[tuple[Any, ...], int] = self._dests
        self._hosts: dict[str, int] = {}
        self._macs: dict[str, bytes] = {}  # next hop -> MAC, when the snapshot had none
        self.snapshot: RouteSnapshot | None = None
        self.family = family_of(local_addr[0])
        # IPv6 destinations: 16 bytes each in C's table, by index (made on first use)
        self._addrs6: Any = ffi.NULL
        self._addrs6_index: dict[bytes, int] = {}

    def __len__(self) -> int:
        """(host, port) words cached (at most MAX_DESTINATIONS)."""
        return len(self._dests)

    @property
    def n_paths(self) -> int:
        return len(self._path_index)

    def word_now(self, host: str, port: int) -> int | None:
        """The word of (host, port) without waiting: a known host's, or one
        from the snapshot when it knows the host's prefix and next hop's
        MAC; else None (:meth:`resolve` it)."""
        known = self._hosts.get(host)
        if known is not None:
            return self._remember((host, port), known | port)
        snapshot = self.snapshot
        if snapshot is None:
            return None
        if snapshot.age(time.monotonic_ns()) > ROUTES_TTL and self._on_stale is not None:
            self._on_stale()  # an old snapshot still routes meanwhile: tables rarely change
        try:
            packed = socket.inet_pton(socket.AF_INET6 if self.family == 6 else socket.AF_INET, host)
        except OSError:
            return None  # a name, or the other family: resolve() says which
        route = snapshot.route(host, packed)
        if not isinstance(route, Route):
            return None  # a prefix not asked yet, or an error resolve() reports
        mac = route.next_hop_mac or self._macs.get(route.next_hop)
        return self._word(route.resolved(mac), host, port) if mac else None

    async def refresh(self, *destinations: bytes) -> RouteSnapshot:
        """Read the tables afresh (and the prefixes of ``destinations``), in one thread hop."""
        self.snapshot = await route_snapshot(
            interface=self.ifname, destinations=destinations, previous=self.snapshot
        )
        return self.snapshot

    async def resolve(self, host: str, port: int, nic: _Resolver) -> int:
        """The word of (host, port): the tables read afresh when the snapshot
        knew no route or no MAC for the host (a new client the kernel has just
        learnt by its ARP), the next hop asked with our ARP if no one knew it.
        Raises NoRouteError, HostNameError or UnresolvedNeighbourError."""
        known = self.word_now(host, port)
        if known is not None:
            return known
        address = await resolve_host(host, self.family)
        packed = pack_address(address, 16 if self.family == 6 else 4)
        snapshot = self.snapshot
        route = None if snapshot is None else snapshot.route(host, packed)
        if not isinstance(route, Route) or not (route.next_hop_mac or route.next_hop in self._macs):
            route = (await self.refresh(packed)).route(host, packed)
        if isinstance(route, NoRouteError):
            raise route
        if route is None:  # cannot happen: the fresh read asked for its prefix
            raise XDPError(errno.EHOSTUNREACH, f"routing to {host}", "no answer for its prefix")
        mac = route.next_hop_mac or self._macs.get(route.next_hop)
        if mac:
            return self._word(route.resolved(mac), host, port)
        (resolved,) = await nic.resolve_neighbours([route])
        if len(self._macs) >= MAX_NEXT_HOPS:
            self._macs.clear()
        self._macs[resolved.next_hop] = resolved.next_hop_mac
        return self._word(resolved, host, port)

    def _word(self, route: ResolvedRoute, host: str, port: int) -> int:
        source = route.source if self.local_addr[0] in ANY_ADDRESSES else self.local_addr[0]
        key = (route.next_hop_mac, source)
        packed = socket.inet_pton(socket.AF_INET6, route.destination) if self.family == 6 else b""
        # a word names a path and (IPv6) an address slot: when either table is
        # full, both go at once, before this word takes its entries
        full_paths = key not in self._path_index and len(self._path_index) >= MAX_PATHS
        full_addrs = packed not in self._addrs6_index and (
            len(self._addrs6_index) >= MAX_ADDRESSES6
        )
        if full_paths or (packed and full_addrs):
            self._forget()
        path = self._path_index.get(key)
        if path is None:
            path = self._path_index[key] = len(self._path_index)
            header = udp_header(route, self.local_addr[1], port, source=source)
            head = len(header) - 8  # Ethernet and IP: the UDP header is C's
            entry = self.table[path]
            ffi.memmove(entry.head, header, head)
            ffi.memmove(ffi.addressof(entry, "sport"), header[head : head + 2], 2)
            entry.v6 = 1 if self.family == 6 else 0
        if packed:
            word = V6_WORD | path << 48 | self._address6(packed) << 16
        else:
            daddr = int.from_bytes(socket.inet_aton(route.destination), sys.byteorder)
            word = path << 48 | daddr << 16
        if len(self._hosts) >= MAX_DESTINATIONS:
            self._hosts.clear()
        self._hosts[host] = word
        return self._remember((host, port), word | port)

    def _forget(self) -> None:
        """Every word names a path or an address slot: all go at once, queued
        words to C first."""
        if self._on_forget is not None:
            self._on_forget()
        self._path_index.clear()
        self._addrs6_index.clear()
        self._dests.clear()
        self._hosts.clear()

    def _address6(self, packed: bytes) -> int:
        """The slot of an IPv6 destination in C's address table (room made by _word)."""
        at = self._addrs6_index.get(packed)
        if at is None:
            if self._addrs6 == ffi.NULL:
                self._addrs6 = ffi.new("uint8_t[]", 16 * MAX_ADDRESSES6)
            at = self._addrs6_index[packed] = len(self._addrs6_index)
            ffi.memmove(self._addrs6 + 16 * at, packed, 16)
        return at

    def remember(self, addr: tuple[Any, ...], word: int) -> int:
        """Cache ``word`` under another spelling of its address (an IPv6
        peer's (host, port, flowinfo, scope_id), as datagram_received gives it)."""
        return self._remember(addr, word)

    def _remember(self, addr: tuple[Any, ...], word: int) -> int:
        if len(self._dests) >= MAX_DESTINATIONS:
            self._dests.clear()  # cheap, and bounded: spoofed sources cannot grow it
        self._dests[addr] = word
        return word

    def frame(self, word: int, data: bytes, ip_id: int) -> bytes:
        """The datagram to ``word`` whole, for a queue that waits for frames
        (C builds it in place otherwise)."""
        frame = bytearray((62 if word & V6_WORD else 42) + len(data))
        length = lib.aioxdp_udp_build(
            self.table + (word >> 48 & lib.AIOXDP_UDP_PATH_MASK),
            self._addrs6,
            len(self._addrs6_index),
            word,
            ip_id & 0xFFFF,
            data,
            len(data),
            ffi.from_buffer(frame),
            len(frame),
        )
        if length < 0:  # checked against the MTU and frame size before it was queued
            raise XDPError(-length, f"building a {len(data)}-byte datagram", "it does not fit")
        return bytes(frame)

    def batch(self, words: Sequence[int], data: Sequence[bytes]) -> UdpBatch:
        """These datagrams (``data[k]`` to ``words[k]``) as C sends them."""
        dests = array.array("Q", words)
        lens = array.array("I", map(len, data))
        return self.batch_in(
            ffi.from_buffer("uint64_t[]", dests), ffi.from_buffer("uint32_t[]", lens), data
        )

    def batch_in(self, dests: Any, lens: Any, data: Sequence[bytes]) -> UdpBatch:
        """The same, the words and lengths already in C arrays (``uint64_t[]``
        and ``uint32_t[]``, as a SendQueue hands them over)."""
        return UdpBatch(
            self.table,
            len(self._path_index),
            self._addrs6,
            len(self._addrs6_index),
            dests,
            b"".join(data),
            lens,
            len(data),
        )
