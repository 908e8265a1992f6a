"""Target lists as fping takes them: a CIDR, a range, a file, a list; and
the limit that keeps a sweep from growing by accident.

A sweep bigger than ``MAX_HOSTS`` (a /16) is refused unless the caller
raises the limit (``max_hosts=`` in the API, ``--max-targets`` on the
command line): a typo in a prefix length should not ping a /8.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = [
    "MAX_HOSTS",
    "TooManyTargetsError",
    "address_range",
    "check_target_count",
    "cidr_hosts",
    "read_targets",
]

MAX_HOSTS = 65536


class TooManyTargetsError(ValueError):
    """A target set larger than the limit asked for."""


def check_target_count(n: int, limit: int = MAX_HOSTS) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"max_hosts: must be an int >= 1, got {limit!r}")
    if n > limit:
        raise TooManyTargetsError(
            f"hosts: {n} targets exceed the limit of {limit}; raise it (max_hosts=, "
            "--max-targets) if you mean it"
        )


def cidr_hosts(prefix: str, limit: int = MAX_HOSTS) -> list[str]:
    """The host addresses of an IPv4 prefix, as fping -g makes them: without
    the network and broadcast addresses, except in a /31 or /32."""
    try:
        net = ipaddress.IPv4Network(prefix, strict=False)
    except ValueError as exc:
        raise ValueError(f"-g: not an IPv4 prefix: {prefix!r} ({exc})") from None
    if net.prefixlen >= 31:
        check_target_count(net.num_addresses, limit)
        return [str(a) for a in net]
    check_target_count(net.num_addresses - 2, limit)
    return [str(a) for a in net.hosts()]


def address_range(start: str, end: str, limit: int = MAX_HOSTS) -> list[str]:
    """Every address from ``start`` to ``end``, both included (fping -g start end)."""
    try:
        first, last = int(ipaddress.IPv4Address(start)), int(ipaddress.IPv4Address(end))
    except ValueError as exc:
        raise ValueError(f"-g: not an IPv4 range: {start} {end} ({exc})") from None
    if last < first:
        raise ValueError(f"-g: the range ends ({end}) before it starts ({start})")
    check_target_count(last - first + 1, limit)
    return [str(ipaddress.IPv4Address(a)) for a in range(first, last + 1)]


def _lines(lines: Iterable[str]) -> Iterator[str]:
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if text:
            yield from text.split()


def read_targets(path: str, limit: int = MAX_HOSTS) -> list[str]:
    """Targets from a file (fping -f; ``-`` is stdin): whitespace-separated,
    ``#`` starts a comment."""
    import sys

    if path == "-":
        hosts = list(_lines(sys.stdin))
    else:
        try:
            with Path(path).open() as f:
                hosts = []
                for host in _lines(f):
                    hosts.append(host)
                    if len(hosts) > limit:
                        break
        except OSError as exc:
            raise ValueError(f"-f: cannot read {path}: {exc.strerror}") from None
    check_target_count(len(hosts), limit)
    return hosts
