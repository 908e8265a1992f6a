"""What the two ping drivers share: arguments, their checks, and routing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aioxdp.echo import (
    DEFAULT_WINDOW,
    HEADERS,
    RX_HEADROOM,
    EchoSession,
    Target,
    echo_template,
    validate_arguments,
)
from aioxdp.results import PingReply, PingResult
from aioxdp.route import ResolvedRoute, Route

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
    ) -> None:
        validate_arguments(count, interval, timeout, size, ttl, window)
        self.hosts = [hosts] if isinstance(hosts, str) else list(hosts)
        if not self.hosts:
            raise ValueError("hosts: give at least one host")
        self.count, self.interval, self.timeout = count, float(interval), float(timeout)
        self.size, self.ttl, self.window = size, ttl, window
        self.interface, self.source = interface, source
        self._on_reply = on_reply
        self.routes: list[ResolvedRoute] = []  # set when the run starts
        self._init_driver()

    def _init_driver(self) -> None:
        """The driver's own state (a subclass's, set up after the arguments)."""

    _session: EchoSession

    async def results(self) -> list[PingResult]:
        """Wait for the run to end; one result per host."""
        raise NotImplementedError

    async def result(self) -> PingResult:
        """Wait for the run to end; the result of the (first) host."""
        return (await self.results())[0]

    def progress(self) -> tuple[int, int]:
        """Probes sent and replies received so far, over every host (cheap)."""
        targets = self._session.targets
        return sum(t.next_probe for t in targets), sum(t.received for t in targets)

    def snapshot(self) -> list[PingResult]:
        """Results so far, without waiting (for Ctrl-C summaries)."""
        return self._session.results()

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
        }

    def _check_frame_fits(self, frame_size: int) -> None:
        """A probe and its reply each fit one UMEM frame: refuse a size that cannot."""
        limit = frame_size - RX_HEADROOM - HEADERS
        if self.size > limit:
            raise ValueError(
                f"size: {self.size} bytes do not fit one {frame_size}-byte UMEM frame "
                f"with their headers: at most {limit}"
            )

    async def _find_routes(self) -> list[Route]:
        """Routes to every host: one interface for all, and room for ``size``."""
        from aioxdp.route import route_to

        routes = [
            await route_to(h, interface=self.interface, source=self.source) for h in self.hosts
        ]
        ifnames = {r.ifname for r in routes}
        if len(ifnames) > 1:
            raise ValueError(
                f"hosts: they are reached through several interfaces {sorted(ifnames)}; ping each group apart"
            )
        route = routes[0]
        limit = route.mtu - 28
        if self.size > limit:
            raise ValueError(
                f"size: {self.size} bytes do not fit {route.ifname} (MTU {route.mtu}): at most {limit}"
            )
        return routes

    def _targets(self, ident: int) -> list[Target]:
        timeout_ns = int(self.timeout * 1e9)
        return [
            Target(h, r, echo_template(r, ident, self.size, self.ttl), self.count, timeout_ns)
            for h, r in zip(self.hosts, self.routes, strict=True)
        ]
