"""IPv4 fragmentation for requests larger than the link's MTU, and the
reassembly of their replies (RFC 791), sans-IO.

A ping of 65 507 bytes crosses a 1 500-byte link as 45 fragments each way:
the kernel fragments iputils' requests and reassembles the replies; aioxdp
sends frames itself, so it does both here. Fragments are rare and large,
so this is Python over the bounds-checked codecs in protocols/, not C.
Reassembly is bounded: at most ``max_bytes`` held over all datagrams, and a
datagram not whole within ``timeout_ns`` is dropped (and counted).
"""

from __future__ import annotations

import collections
import struct
from dataclasses import dataclass, field

from aioxdp.protocols.checksum import internet_checksum
from aioxdp.protocols.errors import DecodeError
from aioxdp.protocols.ipv4 import IPv4

__all__ = ["Reassembler", "fragment"]

ETH_LEN = 14


def fragment(frame: bytes | bytearray, mtu: int) -> list[bytes]:
    """``frame`` (Ethernet, IPv4 without options, then its payload) as
    fragment frames whose IP datagrams fit ``mtu``: one frame if it fits."""
    ip = IPv4.parse(frame, ETH_LEN, verify=False)  # each fragment gets its own checksum
    if ip.total_length <= mtu:
        return [bytes(frame)]
    if ip.dont_fragment:
        raise ValueError(f"frame: {ip.total_length} bytes, DF set, over the MTU {mtu}")
    payload = memoryview(frame)[ETH_LEN + ip.header_len : ETH_LEN + ip.total_length]
    step = (mtu - ip.header_len) // 8 * 8  # every fragment but the last holds 8-byte units
    if step <= 0:
        raise ValueError(f"mtu: {mtu} leaves no room for a fragment's data")
    out = []
    for at in range(0, len(payload), step):
        chunk = payload[at : at + step]
        piece = bytearray(ETH_LEN + ip.header_len + len(chunk))
        piece[:ETH_LEN] = frame[:ETH_LEN]
        IPv4(
            ip.src,
            ip.dst,
            ip.proto,
            total_length=ip.header_len + len(chunk),
            ttl=ip.ttl,
            ident=ip.ident,
            tos=ip.tos,
            more_fragments=at + len(chunk) < len(payload),
            fragment_offset=at // 8,
            options=ip.options,
        ).build_into(piece, ETH_LEN)
        piece[ETH_LEN + ip.header_len :] = chunk
        out.append(bytes(piece))
    return out


@dataclass
class _Partial:
    """The fragments of one datagram so far."""

    first_ns: int
    header: bytes = b""  # the Ethernet and IP header of the first fragment
    pieces: dict[int, bytes] = field(default_factory=dict)  # offset in bytes -> data
    end: int | None = None  # the payload's length, once the last fragment came
    held: int = 0

    def whole(self) -> bytes | None:
        """The payload if every byte of it came, else None."""
        if self.end is None or not self.header:
            return None
        out = bytearray(self.end)
        covered = 0
        for at in sorted(self.pieces):
            if at > covered:
                return None  # a hole
            data = self.pieces[at]
            out[at : at + len(data)] = data
            covered = max(covered, at + len(data))
        return bytes(out) if covered >= self.end else None


class Reassembler:
    """Puts IPv4 fragments back together into whole datagrams.

    ``add(frame, now_ns)`` takes one fragment frame and returns the whole
    datagram's frame (Ethernet header, then an IPv4 header that is no
    fragment, then the payload) when its last missing piece came, else None.
    """

    def __init__(self, *, max_bytes: int = 4 << 20, timeout_ns: int = 30_000_000_000) -> None:
        self.max_bytes = max_bytes
        self.timeout_ns = timeout_ns
        self.held = 0
        self.dropped = 0  # datagrams given up: expired, or pushed out by the bound
        self.malformed = 0  # fragments that could not be read, or overlap inconsistently
        self._partials: collections.OrderedDict[tuple[bytes, bytes, int, int], _Partial] = (
            collections.OrderedDict()
        )

    def add(self, frame: bytes | bytearray | memoryview, now_ns: int) -> bytes | None:
        self._expire(now_ns)
        try:
            ip = IPv4.parse(frame, ETH_LEN)
        except DecodeError:
            self.malformed += 1
            return None
        if not ip.is_fragment:
            self.malformed += 1
            return None
        start = ETH_LEN + ip.header_len
        data = bytes(frame[start : ETH_LEN + ip.total_length])
        at = ip.fragment_offset * 8
        if (ip.more_fragments and len(data) % 8) or at + len(data) > 0xFFFF - ip.header_len:
            self.malformed += 1
            return None
        key = (ip.src, ip.dst, ip.proto, ip.ident)
        partial = self._partials.get(key)
        if partial is None:
            partial = self._partials[key] = _Partial(now_ns)
        if at == 0:
            partial.header = bytes(frame[:start])
        if not ip.more_fragments:
            partial.end = at + len(data)
        if at not in partial.pieces:
            partial.pieces[at] = data
            partial.held += len(data)
            self.held += len(data)
        payload = partial.whole()
        if payload is None:
            self._bound()
            return None
        del self._partials[key]
        self.held -= partial.held
        return self._datagram(partial.header, payload)

    @staticmethod
    def _datagram(header: bytes, payload: bytes) -> bytes:
        """The first fragment's headers, no longer a fragment, and the payload."""
        hlen = len(header) - ETH_LEN
        out = bytearray(header) + payload
        struct.pack_into("!H", out, ETH_LEN + 2, min(hlen + len(payload), 0xFFFF))
        struct.pack_into("!H", out, ETH_LEN + 6, 0)  # no flags, no offset
        struct.pack_into("!H", out, ETH_LEN + 10, 0)
        struct.pack_into("!H", out, ETH_LEN + 10, internet_checksum(out[ETH_LEN : ETH_LEN + hlen]))
        return bytes(out)

    def _expire(self, now_ns: int) -> None:
        while self._partials:
            key, partial = next(iter(self._partials.items()))
            if now_ns - partial.first_ns < self.timeout_ns:
                break
            self._drop(key)

    def _bound(self) -> None:
        while self.held > self.max_bytes and self._partials:
            self._drop(next(iter(self._partials)))

    def _drop(self, key: tuple[bytes, bytes, int, int]) -> None:
        partial = self._partials.pop(key)
        self.held -= partial.held
        self.dropped += 1

    def __len__(self) -> int:
        return len(self._partials)
