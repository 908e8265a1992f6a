"""Where a UDP endpoint's datagrams go: a path per next hop, a word per destination.

Theory of operation
-------------------
A server answers whoever writes to it, and a resolver picks a new source
port per query, so the cost of a new peer decides the cost of an answer.
Here a new peer costs nothing in the common case:

    (host, port) -> word     path << 48 | daddr << 16 | port, C's whole address
    host -> word, no port    a new port of a known host: one dict lookup
    path                     next hop and source: the Ethernet and IPv4
                             headers but the destination, in a C table
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
    resolve_host,
    route_snapshot,
)

__all__ = ["MAX_DESTINATIONS", "MAX_NEXT_HOPS", "MAX_PATHS", "ROUTES_TTL", "UdpPaths"]

MAX_DESTINATIONS = 65536  # (host, port) words, and host words, each; cleared when full
MAX_NEXT_HOPS = 4096  # next hops whose MAC our own ARP found; cleared when full
MAX_PATHS = 1024  # next hops and sources headers are built from; cleared when full
ROUTES_TTL = 5.0  # seconds a snapshot routes new hosts before a fresh one is read


class _Resolver(Protocol):
    async def resolve_neighbours(self, routes: Sequence[Route]) -> list[ResolvedRoute]: ...


class UdpPaths:
    """The destinations of one UDP endpoint bound to ``local_addr`` on
    ``ifname`` (``0.0.0.0``: each datagram from its route's source)."""

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
        self._dests: dict[tuple[str, int], int] = {}
        self._hosts: dict[str, int] = {}
        self._macs: dict[str, bytes] = {}  # next hop -> MAC, when the snapshot had none
        self.snapshot: RouteSnapshot | None = None

    def __len__(self) -> int:
        """(host, port) words cached (at most MAX_DESTINATIONS)."""
        return len(self._dests)

    @property
    def n_paths(self) -> int:
        return len(self._path_index)

    def word(self, addr: tuple[str, int]) -> int | None:
        """The cached word of ``addr``, or None (the hot path: one dict lookup)."""
        return self._dests.get(addr)

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
            packed = socket.inet_pton(socket.AF_INET, host)
        except OSError:
            return None  # a name: the resolver is asked first
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
        packed = socket.inet_aton(await resolve_host(host))
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
        source = route.source if self.local_addr[0] == "0.0.0.0" else self.local_addr[0]
        path = self._path_index.get((route.next_hop_mac, source))
        if path is None:
            if len(self._path_index) >= MAX_PATHS:
                if self._on_forget is not None:
                    self._on_forget()
                self._path_index.clear()
                self._dests.clear()
                self._hosts.clear()
            path = self._path_index[(route.next_hop_mac, source)] = len(self._path_index)
            header = udp_header(route, self.local_addr[1], port, source=source)
            ffi.memmove(self.table[path].head, header, 34)
            ffi.memmove(ffi.addressof(self.table[path], "sport"), header[34:36], 2)
        daddr = int.from_bytes(socket.inet_aton(route.destination), sys.byteorder)
        if len(self._hosts) >= MAX_DESTINATIONS:
            self._hosts.clear()
        self._hosts[host] = path << 48 | daddr << 16
        return self._remember((host, port), path << 48 | daddr << 16 | port)

    def _remember(self, addr: tuple[str, int], word: int) -> int:
        if len(self._dests) >= MAX_DESTINATIONS:
            self._dests.clear()  # cheap, and bounded: spoofed sources cannot grow it
        self._dests[addr] = word
        return word

    def frame(self, word: int, data: bytes, ip_id: int) -> bytes:
        """The datagram to ``word`` whole, for a queue that waits for frames
        (C builds it in place otherwise)."""
        frame = bytearray(42 + len(data))
        length = lib.aioxdp_udp_build(
            self.table + (word >> 48),
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

    def send_args(
        self, words: Sequence[int], data: Sequence[bytes]
    ) -> tuple[Any, int, Any, bytes, Any, int]:
        """What XSK.send_udp_many takes for these datagrams, but the IP id."""
        dests = array.array("Q", words)
        lens = array.array("I", map(len, data))
        return (
            self.table,
            len(self._path_index),
            ffi.from_buffer("uint64_t[]", dests),
            b"".join(data),
            ffi.from_buffer("uint32_t[]", lens),
            len(words),
        )
