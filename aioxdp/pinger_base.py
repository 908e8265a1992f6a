"""What the two ping drivers share: arguments, their checks, and routing."""

from __future__ import annotations

import array
import math
from collections.abc import Callable, Sequence
from typing import Any

from aioxdp.echo import (
    DEFAULT_WINDOW,
    HEADERS,
    HEADERS6,
    RX_HEADROOM,
    EchoSession,
    pick_ident,
    validate_arguments,
)
from aioxdp.errors import XDPError
from aioxdp.forwarder import ICMP6_ECHO_REPLY, ICMP6_ERRORS, ICMP_ERRORS_QUOTING_ECHO, Rule
from aioxdp.neighbour import resolve_each
from aioxdp.protocols.icmp import ECHO_REPLY
from aioxdp.results import PingError, PingReply, PingResult, PingResults
from aioxdp.route import ResolvedRoute, Route, RouteSet, family_of, route_set
from aioxdp.targets import MAX_HOSTS, check_target_count

DROP_COUNTERS = ("rx_dropped", "rx_ring_full", "rx_fill_ring_empty_descs")

__all__ = ["PingerBase"]


class PingerBase:
    """What both ping drivers share: arguments, their checks, and routing."""

    def __init__(
        self,
        hosts: str | Sequence[str],
        *,
        count: int = 4,
        interval: float = 1.0,
        timeout: float = 1.0,
        size: int = 56,
        ttl: int = 64,
        interface: str | None = None,
        source: str | None = None,
        window: int = DEFAULT_WINDOW,
        on_reply: Callable[[PingReply], None] | None = None,
        spacing: float = 0.0,
        max_in_flight: int | None = None,
        on_timeout: Callable[[str, int], None] | None = None,
        max_hosts: int = MAX_HOSTS,
        on_error: Callable[[PingError], None] | None = None,
        family: int | None = None,
    ) -> None:
        validate_arguments(count, interval, timeout, size, ttl, window)
        if family not in (None, 4, 6):
            raise ValueError(f"family: 4, 6 or None (either), got {family!r}")
        if not isinstance(spacing, (int, float)) or not math.isfinite(spacing) or spacing < 0:
            raise ValueError(f"spacing: must be a finite number of seconds >= 0, got {spacing!r}")
        if max_in_flight is not None and (
            isinstance(max_in_flight, bool)
            or not isinstance(max_in_flight, int)
            or max_in_flight < 1
        ):
            raise ValueError(f"max_in_flight: must be an int >= 1 or None, got {max_in_flight!r}")
        for name, value in (
            ("on_reply", on_reply),
            ("on_timeout", on_timeout),
            ("on_error", on_error),
        ):
            if value is not None and not callable(value):
                raise TypeError(f"{name}: must be callable or None, got {type(value).__name__}")
        self.hosts = [hosts] if isinstance(hosts, str) else list(hosts)
        if not self.hosts:
            raise ValueError("hosts: give at least one host")
        check_target_count(len(self.hosts), max_hosts)
        self.count, self.interval, self.timeout = count, float(interval), float(timeout)
        self.size, self.ttl, self.window = size, ttl, window
        self.interface, self.source = interface, source
        self._on_reply = on_reply
        self.spacing = float(spacing)  # fping -i: seconds between any two probes
        self.max_in_flight = max_in_flight  # None: what the socket's rings can take back
        self._on_timeout = on_timeout  # told (host, seq) of each probe given up
        self._on_error = on_error  # told each ICMP error that answered a probe
        self.max_hosts = max_hosts
        self.family = family  # names resolve to this family only (ping -4/-6)
        # set when the run starts, for the hosts probed (a RouteSet: no object per host)
        self.routes: Sequence[ResolvedRoute] = ()
        self.failed: dict[int, Exception] = {}  # host index -> why it is not probed
        self._probed: Sequence[int] = range(0)  # host indices of the targets, in order
        self._found = RouteSet(b"", array.array("I"), [])  # their routes, next hops unresolved
        self._drops_before: dict[str, int] = {}
        self._nic_stats: Callable[[], dict[str, Any]] | None = None
        self._init_driver()

    def _init_driver(self) -> None:
        """The driver's own state (a subclass's, set up after the arguments)."""

    _session: EchoSession

    async def results(self) -> PingResults:
        """Wait for the run to end; one result per host, in host order."""
        raise NotImplementedError

    async def result(self) -> PingResult:
        """Wait for the run to end; the result of the (first) host."""
        return (await self.results())[0]

    def progress(self) -> tuple[int, int, int]:
        """Probes sent, replies received and ICMP errors so far, over every host."""
        session = self._session
        return session.sent, session.received(), session.errors()

    def snapshot(self) -> PingResults:
        """Results so far, without waiting (for Ctrl-C summaries): probes
        still in flight are neither sent nor lost yet, as iputils counts them."""
        return self._merged(settled=True)

    def _merged(self, *, settled: bool = False) -> PingResults:
        """One result per host, in host order: the probed ones from the session,
        the others with the error that kept them from being probed."""
        probed = self._session.results(kernel_drops=self._kernel_drops(), settled=settled)
        if not self.failed:
            return probed
        row_of = dict(zip(self._probed, range(len(self._probed)), strict=True))

        def make(i: int) -> PingResult:
            row = row_of.get(i)
            if row is None:
                host = self.hosts[i]
                return PingResult(host, host, 0, 0, [], error=str(self.failed[i]))
            return probed[row]

        return PingResults(len(self.hosts), make)

    def _kernel_drops(self) -> dict[str, int]:
        """The kernel's drops on the interface's sockets since the run began
        (XDP_STATISTICS; on a shared interface, other users' too)."""
        if self._nic_stats is None:
            return {}
        try:
            now = self._drop_counts(self._nic_stats())
        except XDPError:  # the interface closed: nothing more to read
            return {}
        return {
            k: v - self._drops_before.get(k, 0)
            for k, v in now.items()
            if v - self._drops_before.get(k, 0)
        }

    @staticmethod
    def _drop_counts(stats: dict[str, Any]) -> dict[str, int]:
        out = dict.fromkeys(DROP_COUNTERS, 0)
        for queue in stats["queues"].values():
            for name in DROP_COUNTERS:
                out[name] += getattr(queue["xdp"], name)
        return out

    async def _prepare(self, nic: Any) -> EchoSession:
        """Next hops resolved (unanswered ones reported per host), an echo id
        no one uses, and the session, its probes in flight within what the
        socket's rings can take back."""
        found = self._found
        for path in found.paths:
            self._check_frame_fits(nic.frame_size, path.mtu, family_of(path.destination))
        paths: list[Route] = []
        silent: dict[int, Exception] = {}  # path -> why its next hop is unknown
        for k, r in enumerate(await resolve_each(found.paths, nic)):
            paths.append(r if isinstance(r, ResolvedRoute) else found.paths[k])
            if not isinstance(r, ResolvedRoute):
                silent[k] = r
        found = found.with_paths(paths)
        if silent:  # every host behind a next hop that did not answer ARP
            keep = []
            for row, (i, k) in enumerate(zip(self._probed, found.path_of, strict=True)):
                if k in silent:
                    self.failed[i] = silent[k]
                else:
                    keep.append(row)
            self._raise_if_nothing_left()
            self._probed = [self._probed[row] for row in keep]
            found = found.select(keep)
        routes = self.routes = found  # type: ignore[assignment]  # every path resolved above
        hosts = self.hosts if len(self._probed) == len(self.hosts) else self._targets()
        ident = pick_ident(r.icmp_id for r in nic.forwarder.rules if r.icmp_id is not None)
        config = nic.config
        limit = min(config.fill_size, config.rx_size, config.nframes - config.tx_size)
        limit -= nic.batch_size  # room for a batch being delivered
        session = EchoSession(
            hosts,
            routes,
            ident,
            count=self.count,
            size=self.size,
            ttl=self.ttl,
            interval=self.interval,
            timeout=self.timeout,
            window=self.window,
            spacing=self.spacing,
            max_in_flight=min(limit, self.max_in_flight or limit),
            mtu=routes.paths[0].mtu,
        )
        if self._on_reply is not None:
            session.listeners.append(self._on_reply)
        if self._on_timeout is not None:
            session.timeout_listeners.append(self._on_timeout)
        if self._on_error is not None:
            session.error_listeners.append(self._on_error)
        self._nic_stats = nic.stats
        self._drops_before = self._drop_counts(nic.stats())
        return session

    def _echo_rules(self, ident: int) -> list[Rule]:
        """The forwarder rules of a run: its echo replies, and the ICMP errors
        that quote its requests (matched by the echo id they quote); with
        requests over the MTU, the ICMP fragments from each target too (a
        fragment shows no echo id: the reassembled reply is checked)."""
        routes = self.routes
        families = {family_of(path.destination) for path in getattr(routes, "paths", ())} or {4}
        rules = []
        if 4 in families:
            rules += [Rule("icmp", icmp_type=ECHO_REPLY, icmp_id=ident)] + [
                Rule("icmp", icmp_type=kind, icmp_id=ident) for kind in ICMP_ERRORS_QUOTING_ECHO
            ]
        if 6 in families:
            rules += [Rule("icmpv6", icmp_type=ICMP6_ECHO_REPLY, icmp_id=ident)] + [
                Rule("icmpv6", icmp_type=kind, icmp_id=ident) for kind in ICMP6_ERRORS
            ]
        if isinstance(routes, RouteSet) and routes and self.size + 48 > routes.paths[0].mtu:
            # replies over the MTU (IP and ICMP headers: 28 bytes, or 48 for IPv6)
            mtu = routes.paths[0].mtu
            for address in sorted({routes.destination(i) for i in range(len(routes))}):
                ipv6 = family_of(address) == 6
                if self.size + (48 if ipv6 else 28) > mtu:
                    proto = "icmpv6" if ipv6 else "icmp"
                    rules.append(Rule(proto, src=address, fragments=True))
        return rules

    def _raise_if_nothing_left(self) -> None:
        """One host that cannot be probed is an error; of several, only all."""
        if self.failed and len(self.failed) == len(self.hosts):
            raise self.failed[min(self.failed)]

    def _options(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "interval": self.interval,
            "timeout": self.timeout,
            "size": self.size,
            "ttl": self.ttl,
            "interface": self.interface,
            "source": self.source,
            "window": self.window,
            "on_reply": self._on_reply,
            "spacing": self.spacing,
            "max_in_flight": self.max_in_flight,
            "on_timeout": self._on_timeout,
            "max_hosts": self.max_hosts,
            "on_error": self._on_error,
            "family": self.family,
        }

    def _check_frame_fits(self, frame_size: int, mtu: int, family: int = 4) -> None:
        """A probe and its reply each fit one UMEM frame, or go as fragments
        that each fit one: refuse a size (or a link) for which they cannot."""
        headers = HEADERS6 if family == 6 else HEADERS
        limit = frame_size - RX_HEADROOM - headers
        if self.size + headers - 14 > mtu:
            limit = frame_size - RX_HEADROOM - 14  # a fragment: Ethernet and the MTU
            if mtu <= limit:
                return
            raise ValueError(
                f"size: {self.size} bytes go as IPv{family} fragments of up to {mtu} bytes "
                f"(the MTU), which do not fit one {frame_size}-byte UMEM frame: give a smaller "
                "size or MTU"
            )
        if self.size > limit:
            raise ValueError(
                f"size: {self.size} bytes do not fit one {frame_size}-byte UMEM frame "
                f"with their headers: at most {limit}"
            )

    async def _find_routes(self) -> RouteSet:
        """Routes to every host (one netlink dump for all, one path per next
        hop): one interface for all, and room for ``size``. A host without a
        route is reported in its result (or raised, if no host has one)."""
        found, failed = await route_set(
            self.hosts, interface=self.interface, source=self.source, family=self.family
        )
        self.failed.update(failed)
        n = len(self.hosts)
        self._probed = range(n) if not failed else [i for i in range(n) if i not in failed]
        self._raise_if_nothing_left()
        ifnames = {r.ifname for r in found.paths}
        if len(ifnames) > 1:
            raise ValueError(
                f"hosts: they are reached through several interfaces {sorted(ifnames)}; ping each group apart"
            )
        self._found = found
        return found

    def _targets(self) -> list[str]:
        """The hosts probed, in order (when some are not)."""
        return [self.hosts[i] for i in self._probed]
