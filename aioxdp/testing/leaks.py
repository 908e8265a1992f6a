"""A leak check for tests: what a test opened, it must have closed cleanly.

After the test: every AF_XDP socket it opened is closed with no frame out of
the pool (none held by the application, none in a batch), and every lab it
made is gone (no namespace, no lease, so no XDP program on a lab link). The
report says which sockets were checked, so a check that saw nothing is seen.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from aioxdp.testing.lab import LEASE_DIR, open_labs
from aioxdp.umem import FrameCounts
from aioxdp.xsk import XSK, socket_observers

__all__ = ["LeakReport", "LeakTracker"]


@dataclass
class LeakReport:
    checked: list[str] = field(default_factory=list)  # "ifname queue N" of each socket
    problems: list[str] = field(default_factory=list)


class LeakTracker:
    """Watches sockets opened between start() and finish()."""

    def __init__(self) -> None:
        self._opened: list[XSK] = []
        self._closed: dict[int, FrameCounts] = {}
        self._labs_before: set[int] = set()

    def _observe(self, event: str, xsk: XSK, counts: FrameCounts | None) -> None:
        if event == "open":
            self._opened.append(xsk)
        elif counts is not None:
            self._closed[id(xsk)] = counts

    def start(self) -> None:
        self._labs_before = {lab.index for lab in open_labs()}
        socket_observers.append(self._observe)

    def finish(self) -> LeakReport:
        socket_observers.remove(self._observe)
        report = LeakReport()
        for xsk in self._opened:
            name = f"{xsk.ifname} queue {xsk.queue}"
            report.checked.append(name)
            counts = self._closed.get(id(xsk))
            if counts is None:
                report.problems.append(f"AF_XDP socket on {name} was left open")
            elif not counts.balanced:
                report.problems.append(f"{name}: the frame ledger does not balance: {counts}")
            elif counts.leaked:
                report.problems.append(f"{name}: {counts.leaked} frames out of the pool: {counts}")
        # labs: those this test made are gone, with their namespaces and leases
        still = {lab.index for lab in open_labs()} - self._labs_before
        for index in sorted(still):
            report.problems.append(f"lab {index} was left open")
        mine = str(os.getpid())
        allowed = {str(i) for i in self._labs_before}
        if LEASE_DIR.is_dir():
            for lease in LEASE_DIR.iterdir():
                if lease.name.isdigit() and lease.name not in allowed:
                    owner = lease.read_text().split()[:1]
                    if owner == [mine]:
                        report.problems.append(f"lease {lease} of lab {lease.name} was left")
        return report
