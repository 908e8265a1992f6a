"""ICMP and ICMPv6 echo, sans-IO: the session that owns every probe and its fate, the
request template, echo ids, and the checks of a run's arguments. No clock
and no socket here: time comes in as ``now_ns``, frames go out through any
``tx`` with ``send_echoes`` (an XSK, or a transport that flushes them).

Theory of operation
-------------------
:class:`EchoSession` owns, per target host, the probes sent and what
became of each one:

    probe state     set when                          counts as
    sent            C stamped it into a frame         in flight
    answered        a valid reply came within timeout received, rtt kept
    late            a reply came after its timeout    late (not received)
    expired         its timeout passed with no reply  lost

A probe leaves "in flight" exactly once (answered, late or expired); a
second reply to it is a duplicate. Sequence numbers are ``probe + 1``
modulo 65536, so a reply's probe is the latest one sent with that number
(the in-flight window is far below 65536). Replies are matched by echo id
(the forwarder only redirects ours), source address and sequence. One
session can hold IPv4 and IPv6 targets: each path's template is of its
family, and C keys targets by address either way.

Pacing: with ``interval > 0`` probe *n* goes out at ``start + n*interval``;
with ``interval == 0`` (flood) up to ``window`` probes are in flight. Both
are bounded: ``count`` probes, and a deadline of
``count*interval + timeout`` (plus slack) after the start.

Stamping requests and checking replies run in C over whole batches
(``_native/echo.c``, ``_native/parse.c``).
"""

from __future__ import annotations

import array
import collections
import contextlib
import errno
import math
import mmap
import random
import socket
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from aioxdp._libs import ffi, lib
from aioxdp.errors import XDPError
from aioxdp.fragments import Reassembler, fragment
from aioxdp.frames import IPV4_HEADERS, IPV6_HEADERS, ip_frame
from aioxdp.protocols.checksum import internet_checksum, transport_checksum
from aioxdp.protocols.icmp import ECHO_REQUEST, IPPROTO_ICMP, Icmp
from aioxdp.protocols.icmpv6 import ECHO_REQUEST as ECHO6_REQUEST
from aioxdp.protocols.icmpv6 import IPPROTO_ICMPV6, Icmpv6
from aioxdp.protocols.ipv6 import ip6_str
from aioxdp.results import PingError, PingReply, PingResult, PingResults, icmp_error_kind
from aioxdp.route import ResolvedRoute, RouteSet, family_of
from aioxdp.xsk import RxBatch

__all__ = ["EchoSession", "echo_template", "pick_ident", "validate_arguments"]

MAX_COUNT = 2_000_000  # 26 bytes of state per probe
DEFAULT_WINDOW = 256
MAX_SIZE = 65507  # what one IPv4 datagram holds after its headers
# replies a one-target flood takes in C per call (flood_from_ring): about
# 1 ms of round trips, then the loop runs its other callbacks
FLOOD_TAKES = 256
DEFAULT_MAX_IN_FLIGHT = 1024  # probes in flight over all targets: within the default rings
HEADERS = 14 + 20 + 8  # Ethernet, IPv4, ICMP
HEADERS6 = 14 + 40 + 8  # Ethernet, IPv6, ICMPv6
# struct aioxdp_echo_target, word by word (uint32 each, in this order)
TARGET_WORDS = {
    name: i
    for i, name in enumerate(
        ["next_probe", "done", "sweep", "nrec", "matched", "duplicates", "late", "foreign", "pipe"]
    )
}
RX_HEADROOM = 256  # XDP_PACKET_HEADROOM: where the kernel puts a received frame in its UMEM frame
STATUS_NAMES = {
    lib.AIOXDP_ECHO_TRUNCATED: "truncated",
    lib.AIOXDP_ECHO_NOT_IP: "not_ip",
    lib.AIOXDP_ECHO_BAD_IP: "bad_ip_header",
    lib.AIOXDP_ECHO_BAD_IP_CHECKSUM: "bad_ip_checksum",
    lib.AIOXDP_ECHO_NOT_ICMP: "not_icmp",
    lib.AIOXDP_ECHO_FRAGMENT: "fragment",
    lib.AIOXDP_ECHO_BAD_ICMP_CHECKSUM: "bad_icmp_checksum",
    lib.AIOXDP_ECHO_NOT_REPLY: "not_echo_reply",
}


class EchoSession:
    """The sans-IO state of one ping run over one or more targets.

    Probes leave in rounds: round ``r`` (every target's probe ``r``) is due
    at ``start + r * interval``, targets in order, at most one probe every
    ``spacing`` seconds over all targets (fping's ``-p`` and ``-i``). With
    ``interval=0`` (a flood) a target sends while it has fewer than
    ``window`` probes in flight. Never more than ``max_in_flight`` probes
    are in flight in all: the replies must fit what the socket can take
    back (its fill and RX rings), or the kernel drops them. Every call is
    O(probes sent or replies received), never O(targets), so a run over
    65 000 hosts costs what its packets cost.

    The state of every target's probes lives in session-wide arrays (a
    slice of ``count`` per target) that C reads and updates a batch at a
    time: no Python object per target, so a run's memory grows by a few
    hundred bytes per host.
    """

    def __init__(
        self,
        hosts: Sequence[str],
        routes: Sequence[ResolvedRoute] | RouteSet,
        ident: int,
        *,
        count: int,
        size: int,
        ttl: int,
        interval: float,
        timeout: float,
        window: int,
        spacing: float = 0.0,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        mtu: int = 1500,
    ) -> None:
        n = len(hosts)
        if not n:
            raise ValueError("hosts: a session needs at least one")
        if len(routes) != n:
            raise ValueError(f"routes: one per host ({n}), got {len(routes)}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight: must be >= 1, got {max_in_flight!r}")
        self.hosts = hosts  # (not copied: a run over 65 000 hosts holds no second list)
        self.routes = routes if isinstance(routes, RouteSet) else RouteSet.of(routes)
        self._paths: list[ResolvedRoute] = []
        for path in self.routes.paths:
            if not isinstance(path, ResolvedRoute):
                raise ValueError(f"routes: the next hop {path.next_hop} is not resolved")
            self._paths.append(path)
        self.n_targets = n
        self.count = count
        self.ident = ident
        self.interval_ns = int(interval * 1e9)
        self.timeout_ns = int(timeout * 1e9)
        self.spacing_ns = int(spacing * 1e9)
        self.window = window
        self.max_in_flight = max_in_flight
        self.start_ns = 0
        self.end_ns = 0
        self.sent = 0  # probes sent, all targets
        self.left_flight = 0  # of those, answered, errored or expired
        self.first_sent_ns = 0  # C's stamps of the first and the latest probe
        self.last_sent_ns = 0
        self._round = 0  # the cursor: target ``_next`` sends its probe ``_round`` next
        self._next = 0
        # (deadline, first, stop) per send: probes first..stop-1 (round * targets + index)
        self._expiring: collections.deque[tuple[int, int, int]] = collections.deque()
        self.deadline_ns = 0
        self._budget_ns = self._budget()
        self.listeners: list[Callable[[PingReply], None]] = []
        # told each ICMP error that answered a probe
        self.error_listeners: list[Callable[[PingError], None]] = []
        self.listener_errors: list[Exception] = []  # raised by listeners, not yet reported
        # told (host, sequence number) of each probe given up at its timeout
        self.timeout_listeners: list[Callable[[str, int], None]] = []
        self.error: str | None = None
        self._results = ffi.new("struct aioxdp_echo_reply[]", 64)  # grown to the batch
        # requests larger than the MTU go as fragments, and their replies
        # come back as fragments that are put together here
        self.mtu = mtu
        self.size = size
        families = {family_of(path.destination) for path in self._paths}
        headers = max(IPV6_HEADERS if family == 6 else IPV4_HEADERS for family in families)
        self._reassembler = Reassembler() if headers - 14 + 8 + size > mtu else None
        self._frames(size, ttl)
        self._probe_arrays()

    def _frames(self, size: int, ttl: int) -> None:
        """One request template per path (next hop and source), of its
        family; C writes each target's destination, the IP id and the
        checksums per probe. Templates of both families are padded to one
        stride: C reads each one's length from its IP header."""
        bases = [echo_template(r, self.ident, size, ttl) for r in self._paths]
        self.frame_len = max(len(b) for b in bases)
        self._bases = [b.ljust(self.frame_len, b"\x00") for b in bases]
        self._bases_c = ffi.from_buffer("uint8_t[]", b"".join(self._bases))
        self._base_of = self.routes.path_of
        self._base_of_c = ffi.from_buffer("uint32_t[]", self._base_of)
        # the lookup keys of the destinations: IPv4 addresses as a frame holds
        # them; with IPv6 targets, C folds each 16-byte address (and checks
        # all 16 bytes of a reply's source against ``addrs``)
        width = self.routes.width
        if width == 4:
            self._daddrs = array.array("I", self.routes.destinations)
            self._addrs_c = ffi.NULL
        else:
            self._daddrs = array.array("I", bytes(4 * self.n_targets))
            self._addrs_c = ffi.from_buffer("uint8_t[]", self.routes.destinations)
            lib.aioxdp_echo_keys(
                self._addrs_c, self.n_targets, ffi.from_buffer("uint32_t[]", self._daddrs)
            )
        self._daddrs_c = ffi.from_buffer("uint32_t[]", self._daddrs)
        if self.n_targets == 1 and self._reassembler is None:
            # one target: its own frame, so a flood sends a window per call
            frame = bytearray(bases[self._base_of[0]])
            address = self.routes.destinations[:width]
            if family_of(self._paths[self._base_of[0]].destination) == 6:
                frame[IPV6_HEADERS - 16 : IPV6_HEADERS] = address
            else:
                frame[IPV4_HEADERS - 4 : IPV4_HEADERS] = address[-4:]  # (IPv4 mapped: its last 4)
            self._frame = bytes(frame)
            self._frame_c = ffi.from_buffer("uint8_t[]", self._frame)
            self.frame_len = len(frame)
        # a one-target flood takes its replies and sends its next probes in C
        # (flood_from_ring); its template is the frame above
        self._flood: Any = None
        one_flood = self.n_targets == 1 and not (self.interval_ns or self.spacing_ns)
        if one_flood and self._reassembler is None:
            self._flood = ffi.new("struct aioxdp_echo_flood *")
            self._flood.tmpl = self._frame_c
            self._flood.len = self.frame_len
            self._flood.window = min(self.window, self.max_in_flight)
            self._flood.max_taken = FLOOD_TAKES
            self._flood.ident = self.ident

    def _probe_arrays(self) -> None:
        n, count = self.n_targets, self.count
        total = n * count
        self._state, self._state_c = _zeroed("B", total)
        self._sent_ns, self._stamps = _zeroed("q", total)
        self._rtts, self._rtts_c = _zeroed("d", total)
        self._seqs, self._seqs_c = _zeroed("I", total)
        self._ttls, self._ttls_c = _zeroed("B", total)
        self._sizes, self._sizes_c = _zeroed("I", total)
        probes = self._probes = ffi.new("struct aioxdp_echo_probes *")
        probes.state = self._state_c
        probes.sent_ns = self._stamps
        probes.rtts = self._rtts_c
        probes.seqs = self._seqs_c
        probes.ttls = self._ttls_c
        probes.sizes = self._sizes_c
        # 36 bytes per target: ffi.new zeroes them
        probes.targets = self._targets = ffi.new("struct aioxdp_echo_target[]", n)
        probes.addrs = self._addrs_c
        probes.n_targets = n
        probes.count = count
        probes.timeout_ns = self.timeout_ns
        self._counts = ffi.new("struct aioxdp_echo_counts *")
        # ICMP errors, by target index (few targets meet any): kind -> count
        self._errors: dict[int, dict[str, int]] = {}
        slots = 1 << max(1, (2 * n - 1).bit_length())
        self._keys = array.array("I", bytes(4 * slots))
        self._index = array.array("i", bytes(4 * slots))
        self._next_same = array.array("i", bytes(4 * n))
        lookup = self._lookup = ffi.new("struct aioxdp_echo_lookup *")
        lookup.keys = ffi.from_buffer("uint32_t[]", self._keys)
        lookup.index = ffi.from_buffer("int32_t[]", self._index)
        lookup.next_same = ffi.from_buffer("int32_t[]", self._next_same)
        lookup.mask = slots - 1
        lookup.n_targets = n
        self._lookup_views = (lookup.keys, lookup.index, lookup.next_same)
        if lib.aioxdp_echo_lookup_build(lookup, self._daddrs_c):
            raise AssertionError("echo lookup: table too small")  # sized above: cannot happen

    def _budget(self) -> int:
        """How long the run may last at most, even if every probe is lost."""
        total = self.count * self.n_targets
        # at worst every probe times out: a window of probes (or all that may
        # be in flight) per timeout
        slots = self.max_in_flight
        if not self.interval_ns:
            slots = min(self.window * self.n_targets, slots)
        sending = max(
            self.count * self.interval_ns,
            total * self.spacing_ns,
            -(-total // slots) * self.timeout_ns,
        )
        return sending + self.timeout_ns + 2_000_000_000

    @property
    def in_flight(self) -> int:
        return self.sent - self.left_flight

    def received(self) -> int:
        """Replies answered in time, over every target (O(targets): for progress)."""
        targets = self._targets
        return sum(int(targets[i].nrec) for i in range(self.n_targets))

    def errors(self) -> int:
        """Probes answered by an ICMP error, over every target."""
        return int(self._counts.errors)

    def start(self, now_ns: int) -> None:
        self.start_ns = now_ns
        self.deadline_ns = now_ns + self._budget_ns

    def finished(self, now_ns: int) -> bool:
        if now_ns >= self.deadline_ns:
            return True
        return self._round >= self.count and self.in_flight == 0

    def flood_waits(self, now_ns: int) -> bool:
        """A one-target flood that just refilled its window: True while only
        a reply or its oldest probe's timeout can move it on (its window is
        full, or all are sent and some are in flight), so its driver, asleep
        until that timeout, need not wake for this reply."""
        if self.interval_ns or self.spacing_ns or self.n_targets != 1:
            return False
        if self.finished(now_ns) or not self.in_flight:
            return False
        target = self._targets[0]
        return self._round >= self.count or target.next_probe - target.done >= self.window

    def flood_from_ring(self, tx: Any, xsk: Any, tag: int) -> int:
        """A one-target flood with no reply listener: the replies waiting at
        the head of ``xsk``'s RX ring (the forwarder's ``tag``) are taken and
        each answered by the next probes through ``tx``, in C, until anything
        else comes next (nothing, another rule's frame, an ICMP error, a
        fault: the receive path's). In copy mode a probe's answer is back
        inside its kick, so a one-probe flood goes on without a Python step
        per reply. Returns the replies taken (0 if this is no such flood).
        ``tx`` is the transport that sends (XDPTransport.echo_flood).

        The probes sent here share one timeout entry, from the last one's
        stamp: a probe lost in a window of several is given up at most one
        call (``FLOOD_TAKES`` replies) late."""
        flood = self._flood
        if flood is None or self.listeners:
            return 0
        flood.tag = tag
        flood.deadline_ns = self.deadline_ns
        flood.sent = flood.freed = 0  # (a closing transport does not call C)
        first = self._round
        taken = int(tx.echo_flood(xsk, self._lookup, self._probes, self._counts, flood))
        sent = int(flood.sent)
        if sent:
            if not self.sent:
                self.first_sent_ns = self._sent_ns[0]
            self.sent += sent
            self._round += sent
            self.last_sent_ns = int(flood.last_sent_ns)
            self._expiring.append((self.last_sent_ns + self.timeout_ns, first, first + sent))
        self.left_flight += int(flood.freed)
        return taken

    def send(self, tx: Any, now_ns: int) -> int:
        """Stamp and queue the probes due now through ``tx`` (an XSK, or a
        transport that flushes them); returns how many."""
        room = self.max_in_flight - self.in_flight
        if self.spacing_ns:
            room = min(room, (now_ns - self.start_ns) // self.spacing_ns + 1 - self.sent)
        n_targets, count = self.n_targets, self.count
        first = self._round * n_targets + self._next
        queued = 0
        latest = now_ns
        while room > 0 and self._round < count:
            if self.interval_ns and self.start_ns + self._round * self.interval_ns > now_ns:
                break
            if n_targets == 1:
                # one target: as many of its probes as are due, in one call
                target = self._targets[0]
                if self.interval_ns:
                    due = (now_ns - self.start_ns) // self.interval_ns + 1 - self._round
                else:
                    due = self.window - (target.next_probe - target.done)
                n = min(room, due, count - self._round)
                if self.interval_ns:
                    # paced probes late together go one per kick, as ping's do:
                    # in copy mode a frame's round trip happens inside the kick,
                    # so a second frame stamped before it would carry the first's
                    n = min(n, 1)
                if n <= 0:
                    break
                start = target.next_probe
                if self._reassembler is not None:  # (it counts what it sends)
                    sent = self._send_split(tx, [(0, start + k) for k in range(n)])
                else:
                    sent = tx.send_echoes(
                        self._frame_c,
                        self.frame_len,
                        (start + 1) & 0xFFFF,
                        n,
                        self._stamps + start,
                    )
                    target.next_probe += sent
                if not sent:
                    break  # no free frame: the next call goes on
                latest = max(latest, self._sent_ns[start + sent - 1])  # C's own stamp
                self._round += sent
            else:
                # this round's next targets, in one call; a flood's stop at
                # the first whose window is full (the others wait their turn)
                n = min(room, n_targets - self._next)
                if self._reassembler is not None:
                    sent = self._send_split(
                        tx, [(i, self._round) for i in range(self._next, self._next + n)]
                    )
                else:
                    sent = tx.send_echo_each(
                        self._bases_c,
                        len(self._bases),
                        self.frame_len,
                        self._base_of_c,
                        self._daddrs_c,
                        self._probes,
                        self._next,
                        n,
                        0 if self.interval_ns else self.window,
                    )
                if not sent:
                    break
                last = self._next + sent - 1
                latest = max(latest, self._sent_ns[last * count + self._round])
                self._next += sent
                if self._next == n_targets:
                    self._next = 0
                    self._round += 1
            queued += sent
            room -= sent
            if sent < n:
                break
        if queued:
            if not self.sent:
                self.first_sent_ns = self._sent_ns[0]  # target 0's probe 0 goes first
            self.sent += queued
            self.last_sent_ns = latest
            # due when the last of them is: C stamped them after now_ns
            self._expiring.append((latest + self.timeout_ns, first, first + queued))
        return queued

    def _send_split(self, tx: Any, probes: list[tuple[int, int]]) -> int:
        """Requests over the MTU, as IPv4 or IPv6 fragments: probe ``probe`` of
        target ``i`` for each pair, in order; stops at a flood's full window."""
        count, width = self.count, self.routes.width
        sent = 0
        for i, probe in probes:
            p = self._targets[i]
            if not self.interval_ns and p.next_probe - p.done >= self.window:
                break
            base = self._bases[self._base_of[i]]
            address = self.routes.destinations[width * i : width * i + width]
            seq = (probe + 1) & 0xFFFF
            ipv6 = base[12:14] == b"\x86\xdd"
            at = IPV6_HEADERS if ipv6 else IPV4_HEADERS  # the ICMP header
            frame = bytearray(base[: at + 8 + self.size])  # (templates are padded)
            if ipv6:
                frame[at - 16 : at] = address
            else:
                frame[at - 4 : at] = address[-4:]
                struct.pack_into("!H", frame, 18, seq)  # the IP id follows the sequence, as in C
            struct.pack_into("!H", frame, at + 2, 0)  # the checksum, computed below
            struct.pack_into("!H", frame, at + 6, seq)  # the echo sequence
            now = int(lib.aioxdp_now_ns())
            if self.size >= lib.AIOXDP_ECHO_STAMP_LEN:
                struct.pack_into("=q", frame, at + 8, now)
            message = memoryview(frame)[at:]
            if ipv6:  # over the pseudo-header of the addresses in the frame
                checksum = transport_checksum(
                    message, bytes(frame[22:38]), bytes(frame[38:54]), IPPROTO_ICMPV6
                )
            else:
                checksum = internet_checksum(message)
            struct.pack_into("!H", frame, at + 2, checksum)
            del message
            # an IPv6 fragment's id: this run's echo id and the sequence
            for piece in fragment(frame, self.mtu, ident=self.ident << 16 | seq):
                tx.send(piece)
            self._sent_ns[i * count + probe] = now
            p.next_probe += 1
            sent += 1
        return sent

    def sweep(self, now_ns: int) -> None:
        """Expire probes whose timeout has passed (only targets that sent then)."""
        expiring = self._expiring
        while expiring and expiring[0][0] <= now_ns:
            _, first, stop = expiring.popleft()
            if self.timeout_listeners:
                n = self.n_targets
                swept = (
                    range(n) if stop - first >= n else sorted({g % n for g in range(first, stop)})
                )
                for i in swept:
                    self.left_flight += self._sweep_telling(i, now_ns)
            else:
                self.left_flight += lib.aioxdp_echo_sweep_each(self._probes, first, stop, now_ns)

    def _sweep_telling(self, i: int, now_ns: int) -> int:
        """Sweep target ``i``, telling the timeout listeners of each probe given up."""
        target = self._targets[i]
        before = target.sweep
        expired = int(lib.aioxdp_echo_sweep(self._probes, i, now_ns))
        if expired:
            at = i * self.count
            for probe in range(before, target.sweep):
                if self._state[at + probe] == lib.AIOXDP_PROBE_EXPIRED:
                    for listener in self.timeout_listeners:
                        try:
                            listener(self.hosts[i], probe + 1)
                        except Exception as exc:  # reported after the next batch
                            self.listener_errors.append(exc)
        return expired

    def next_wakeup(self, now_ns: int) -> int:
        """When the driver must call again even if nothing arrives."""
        wake = self.deadline_ns
        if self._round < self.count and self.in_flight < self.max_in_flight:
            at = None
            if self.interval_ns:
                at = self.start_ns + self._round * self.interval_ns
            if self.spacing_ns:
                after = self.start_ns + self.sent * self.spacing_ns
                at = after if at is None else max(at, after)
            if at is not None:  # (a flood is woken by replies, or the oldest timeout)
                wake = min(wake, at)
        if self._expiring:
            wake = min(wake, self._expiring[0][0])
        return max(wake, now_ns)

    def take(self, rx: RxBatch, start: int, count: int) -> bool:
        """Check ``count`` received frames from ``start`` in C and account them:
        the one call a driver makes per batch. True if a probe left flight
        (a flood can send more). Every count is settled before any listener
        runs; a listener that raises keeps nobody else from being told, and
        its exception waits in ``listener_errors`` for the driver to report."""
        if len(self._results) < count:
            self._results = ffi.new("struct aioxdp_echo_reply[]", count)
        results = self._results
        rx.parse_echo_replies(start, count, self.ident, results)
        errors_before = self._counts.errors
        fragments_before = self._counts.faults[lib.AIOXDP_ECHO_FRAGMENT]
        freed = int(
            lib.aioxdp_echo_account(results, count, self._lookup, self._probes, self._counts)
        )
        wholes: list[Any] = []
        if (
            self._reassembler is not None
            and self._counts.faults[lib.AIOXDP_ECHO_FRAGMENT] != fragments_before
        ):
            freed += self._reassemble(rx, start, results, count, wholes)
        self.left_flight += freed
        events = self._take_errors(results, count) if self._counts.errors != errors_before else []
        if self.listeners:
            ok = lib.AIOXDP_ECHO_OK
            for i in range(count):
                r = results[i]
                if r.target >= 0 and r.status == ok:
                    self._tell(self.listeners, self._reply(r))
            for whole in wholes:
                self._tell(self.listeners, self._reply(whole[0]))
        for event in events:
            self._tell(self.error_listeners, event)
        return freed > 0

    def _reassemble(
        self, rx: RxBatch, start: int, results: Any, count: int, answered: list[Any]
    ) -> int:
        """Feed the batch's fragments to the reassembler; check and account
        each whole reply in C, as one received frame (the answered ones go
        to ``answered``). Returns probes freed."""
        fragment_status = lib.AIOXDP_ECHO_FRAGMENT
        reassembler = self._reassembler
        assert reassembler is not None  # only a session that fragments reassembles
        freed = 0
        for i in range(count):
            if results[i].status != fragment_status:
                continue
            self._counts.faults[fragment_status] -= 1  # not a fault: a piece of a reply
            datagram = reassembler.add(rx.frame(start + i), int(lib.aioxdp_now_ns()))
            if datagram is None:
                continue
            whole = ffi.new("struct aioxdp_echo_reply[1]")
            whole[0].status = lib.aioxdp_echo_check(
                ffi.from_buffer(datagram), len(datagram), self.ident, whole
            )
            whole[0].recv_ns = lib.aioxdp_now_ns()
            freed += lib.aioxdp_echo_account(whole, 1, self._lookup, self._probes, self._counts)
            if whole[0].target >= 0 and whole[0].status == lib.AIOXDP_ECHO_OK:
                answered.append(whole)
        return freed

    def _reply(self, r: Any) -> PingReply:
        return PingReply(
            r.seq,
            (r.recv_ns - r.sent_ns) / 1e9,
            r.ttl,
            r.size,
            self.routes.destination(r.target),
        )

    def _tell(self, listeners: list[Callable[[Any], None]], event: Any) -> None:
        for listener in listeners:
            try:
                listener(event)
            except Exception as exc:  # the user's: reported by the driver, after the batch
                self.listener_errors.append(exc)

    def reraise(self) -> None:
        """Raise the first exception a listener raised since the last call (the
        driver calls this after a batch, so its loop reports it); forget the rest."""
        if self.listener_errors:
            first = self.listener_errors[0]
            self.listener_errors.clear()
            raise first

    def _take_errors(self, results: Any, count: int) -> list[PingError]:
        """Record the batch's ICMP errors that C matched to a probe; the
        events to tell, if anyone listens."""
        error = lib.AIOXDP_ECHO_ERROR
        events = []
        for i in range(count):
            r = results[i]
            if r.status != error or r.target < 0:
                continue
            family = 6 if r.v6 else 4
            kind = icmp_error_kind(r.icmp_type, r.icmp_code, family)[0]
            tally = self._errors.setdefault(r.target, {})
            tally[kind] = tally.get(kind, 0) + 1
            if self.error_listeners:
                sender = (
                    ip6_str(bytes(r.sender6))
                    if r.v6
                    else socket.inet_ntoa(int(r.sender).to_bytes(4, "little"))
                )
                events.append(
                    PingError(
                        r.seq,
                        kind,
                        r.icmp_type,
                        r.icmp_code,
                        sender,
                        self.routes.destination(r.target),
                        r.info,
                        family,
                    )
                )
        return events

    def malformed(self) -> dict[str, int]:
        counts = self._counts.faults
        out = {name: int(counts[status]) for status, name in STATUS_NAMES.items() if counts[status]}
        if counts[lib.AIOXDP_ECHO_FOREIGN]:
            out["foreign_id"] = int(counts[lib.AIOXDP_ECHO_FOREIGN])
        if self._counts.unknown:
            out["unknown_source"] = int(self._counts.unknown)
        if self._reassembler is not None:
            if self._reassembler.malformed:
                out["bad_fragment"] = self._reassembler.malformed
            if self._reassembler.dropped:
                out["incomplete_datagram"] = self._reassembler.dropped
        return out

    def results(
        self, *, kernel_drops: dict[str, int] | None = None, settled: bool = False
    ) -> PingResults:
        """One result per target, each made when it is read; ``kernel_drops``
        (the interface's) and the malformed counts (the run's) are one dict
        each, shared by every result. ``settled``: count as sent only the
        probes that left flight (a run interrupted now: those still in flight
        are neither received nor lost). A run still going is read at once (a
        snapshot: its figures would move under a lazy view); an ended one
        lazily, from the arrays that counted it."""
        # a run still going (a snapshot) has lasted until now
        end_ns = self.end_ns or time.monotonic_ns()
        malformed = self.malformed()
        elapsed = (end_ns - self.start_ns) / 1e9 if self.start_ns else 0.0
        span = (self.last_sent_ns - self.first_sent_ns) / 1e9
        drops = kernel_drops or {}
        error = self.error
        hosts, errors, count = self.hosts, self._errors, self.count
        rtts, seqs, ttls, sizes = self._rtts, self._seqs, self._ttls, self._sizes
        destination = self.routes.destination
        # the targets' counters as words (struct aioxdp_echo_target, uint32
        # each: asserted in tests), read without a cffi struct per host
        words = memoryview(ffi.buffer(self._targets)).cast("I")
        width = len(TARGET_WORDS)
        sent_w = TARGET_WORDS["done" if settled else "next_probe"]
        nrec_w, dup_w, late_w = (
            TARGET_WORDS["nrec"],
            TARGET_WORDS["duplicates"],
            TARGET_WORDS["late"],
        )
        foreign_w, pipe_w = TARGET_WORDS["foreign"], TARGET_WORDS["pipe"]

        def make(i: int) -> PingResult:
            w = width * i
            nrec = words[w + nrec_w]
            at = i * count
            stop = at + nrec
            tally = errors.get(i)
            # positional, in field order (asserted in tests): one per host read
            return PingResult(
                hosts[i],
                destination(i),
                words[w + sent_w],
                nrec,
                rtts[at:stop].tolist(),
                words[w + dup_w],
                words[w + late_w],
                words[w + foreign_w],
                malformed,
                elapsed,
                None,
                error,
                dict(tally) if tally else {},
                span,
                words[w + pipe_w],
                drops,
                tuple(seqs[at:stop]),
                tuple(ttls[at:stop]),
                tuple(sizes[at:stop]),
            )

        view = PingResults(self.n_targets, make)
        return view if self.end_ns else PingResults(self.n_targets, list(view).__getitem__)


_C_TYPES = {"B": "uint8_t[]", "q": "int64_t[]", "d": "double[]", "I": "uint32_t[]"}


def _zeroed(code: str, n: int) -> tuple[Any, Any]:
    """``n`` zeroed items of array type ``code`` in anonymous memory (pages
    the kernel gives only when first written, so a run sized for two million
    probes costs what it sends): a typed view for Python and a C array.

    The C array is taken from the mmap, never from the view: CPython 3.11
    crashes when the cycle collector clears a memoryview that something
    (here, cffi) still holds a buffer of."""
    size = n * array.array(code).itemsize
    area = mmap.mmap(-1, max(size, 1))
    view = memoryview(area)[:size].cast(code)  # type: ignore[call-overload]
    return view, ffi.from_buffer(_C_TYPES[code], area)


def echo_template(route: ResolvedRoute, ident: int, size: int, ttl: int) -> bytes:
    """An echo request to ``route`` (ICMP, or ICMPv6 to an IPv6 host, with
    ``ttl`` as its hop limit); C writes the IP id, sequence, stamp and checksums."""
    ipv6 = family_of(route.destination) == 6
    frame, at = ip_frame(route, IPPROTO_ICMPV6 if ipv6 else IPPROTO_ICMP, 8 + size, ttl=ttl)
    pattern = bytes(range(256)) * (size // 256 + 1)
    stamp = lib.AIOXDP_ECHO_STAMP_LEN if size >= lib.AIOXDP_ECHO_STAMP_LEN else 0  # else none
    payload = bytes(stamp) + pattern[: size - stamp]
    if ipv6:
        Icmpv6.echo(ECHO6_REQUEST, ident, 0).build_into(
            frame, at, payload, route.source, route.destination
        )
    else:
        Icmp.echo(ECHO_REQUEST, ident, 0).build_into(frame, at, payload)
    return bytes(frame)


def _idents_in_use() -> set[int]:
    """Echo ids the kernel's pings may be using right now.

    Ping sockets (ICMP datagram) show theirs as the local port in
    /proc/net/icmp; iputils on a raw socket uses its pid, in network order.
    """
    used = set()
    for table in ("icmp", "icmp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/thread-self/net/{table}").read_text().splitlines()[1:]:
                local = line.split()[1]
                used.add(int(local.split(":")[1], 16))
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if (proc / "comm").read_text().strip() in ("ping", "ping4", "ping6"):
                    pid = int(proc.name) & 0xFFFF
                    used |= {pid, int.from_bytes(pid.to_bytes(2, "little"), "big")}
    return used


def pick_ident(taken: Iterable[int] = ()) -> int:
    """A random echo id that no kernel ping socket nor rule of ours uses."""
    avoid = _idents_in_use() | set(taken)
    for _ in range(1000):
        ident = random.randrange(1, 0x10000)
        if ident not in avoid:
            return ident
    raise XDPError(errno.EADDRINUSE, "choosing an ICMP echo id", "every id tried is in use")


def validate_arguments(
    count: int, interval: float, timeout: float, size: int, ttl: int, window: int
) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise ValueError(f"count: must be an integer 1..{MAX_COUNT}, got {count!r}")
    if not isinstance(interval, (int, float)) or not math.isfinite(interval) or interval < 0:
        raise ValueError(
            f"interval: must be a finite number of seconds >= 0 (0 floods), got {interval!r}"
        )
    if not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout: must be a finite number of seconds > 0, got {timeout!r}")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
        raise ValueError(
            f"size: must be an integer 0..{MAX_SIZE} (below {lib.AIOXDP_ECHO_STAMP_LEN} the "
            f"requests carry no send time), got {size!r}"
        )
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= 255:
        raise ValueError(f"ttl: must be 1..255, got {ttl!r}")
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 4096:
        raise ValueError(f"window: must be 1..4096, got {window!r}")
