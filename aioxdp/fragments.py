"""IPv4 and IPv6 fragmentation for requests larger than the link's MTU, and
the reassembly of their replies (RFC 791; RFC 8200 4.5), sans-IO.

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
from aioxdp.protocols.errors import BadFieldError, DecodeError
from aioxdp.protocols.ipv4 import IPv4
from aioxdp.protocols.ipv6 import FRAGMENT, IPv6, upper_layer

__all__ = ["Reassembler", "fragment"]

ETH_LEN = 14
IPV6_LEN = 40
FRAGMENT_HEADER_LEN = 8


def fragment(frame: bytes | bytearray, mtu: int, ident: int = 0) -> list[bytes]:
    """``frame`` (Ethernet, then IPv4 without options or IPv6 without
    extension headers, then its payload) as fragment frames whose IP
    packets fit ``mtu``: one frame if it fits. ``ident`` is an IPv6
    fragment header's identification (IPv4 keeps its header's)."""
    if frame[12:14] == b"\x86\xdd":
        return _fragment6(frame, mtu, ident)
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


def _fragment6(frame: bytes | bytearray, mtu: int, ident: int) -> list[bytes]:
    """RFC 8200 4.5: the fixed header (next header: fragment) in front of
    each piece, then a fragment header naming the payload's protocol."""
    ip = IPv6.parse(frame, ETH_LEN)
    if ip.next_header in (0, 43, 44, 60):
        raise ValueError("frame: aioxdp fragments IPv6 packets without extension headers")
    if IPV6_LEN + ip.payload_length <= mtu:
        return [bytes(frame)]
    payload = memoryview(frame)[ETH_LEN + IPV6_LEN : ETH_LEN + IPV6_LEN + ip.payload_length]
    step = (mtu - IPV6_LEN - FRAGMENT_HEADER_LEN) // 8 * 8
    if step <= 0:
        raise ValueError(f"mtu: {mtu} leaves no room for a fragment's data")
    out = []
    for at in range(0, len(payload), step):
        chunk = payload[at : at + step]
        piece = bytearray(ETH_LEN + IPV6_LEN + FRAGMENT_HEADER_LEN + len(chunk))
        piece[:ETH_LEN] = frame[:ETH_LEN]
        IPv6(
            ip.src,
            ip.dst,
            FRAGMENT,
            payload_length=FRAGMENT_HEADER_LEN + len(chunk),
            hop_limit=ip.hop_limit,
            traffic_class=ip.traffic_class,
            flow_label=ip.flow_label,
        ).build_into(piece, ETH_LEN)
        more = at + len(chunk) < len(payload)
        struct.pack_into(
            "!BBHI", piece, ETH_LEN + IPV6_LEN, ip.next_header, 0, at | more, ident & 0xFFFFFFFF
        )
        piece[ETH_LEN + IPV6_LEN + FRAGMENT_HEADER_LEN :] = chunk
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
    """Puts IPv4 and IPv6 fragments back together into whole datagrams.

    ``add(frame, now_ns)`` takes one fragment frame and returns the whole
    datagram's frame (Ethernet header, then an IPv4 header that is no
    fragment, or IPv6's fixed header naming the payload's protocol, then
    the payload) when its last missing piece came, else None.
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
            found = self._read(frame)
        except DecodeError:
            self.malformed += 1
            return None
        key, header, data, at, more, limit = found
        if (more and len(data) % 8) or at + len(data) > limit:
            self.malformed += 1
            return None
        partial = self._partials.get(key)
        if partial is None:
            partial = self._partials[key] = _Partial(now_ns)
        if at == 0:
            partial.header = header
        if not more:
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
    def _read(
        frame: bytes | bytearray | memoryview,
    ) -> tuple[tuple[bytes, bytes, int, int], bytes, bytes, int, bool, int]:
        """A fragment's key, the headers a whole datagram gets from it (the
        first one's), its data, offset in bytes and M flag, and how far a
        datagram may reach; DecodeError if it is no fragment."""
        if frame[12:14] == b"\x86\xdd":
            ip6 = IPv6.parse(frame, ETH_LEN)
            upper = upper_layer(frame, ETH_LEN)
            if not upper.fragment:
                raise BadFieldError("ipv6", "not a fragment")
            header = bytearray(frame[: ETH_LEN + IPV6_LEN])
            header[ETH_LEN + 6] = upper.proto  # the whole datagram has no fragment header
            key = (ip6.src, ip6.dst, upper.proto, upper.fragment_id)
            data = bytes(frame[upper.offset : upper.end])
            at = upper.fragment_offset * 8
            return key, bytes(header), data, at, upper.more_fragments, 0xFFFF
        ip = IPv4.parse(frame, ETH_LEN)
        if not ip.is_fragment:
            raise BadFieldError("ipv4", "not a fragment")
        start = ETH_LEN + ip.header_len
        data = bytes(frame[start : ETH_LEN + ip.total_length])
        key = (ip.src, ip.dst, ip.proto, ip.ident)
        at = ip.fragment_offset * 8
        return key, bytes(frame[:start]), data, at, ip.more_fragments, 0xFFFF - ip.header_len

    @staticmethod
    def _datagram(header: bytes, payload: bytes) -> bytes:
        """The first fragment's headers, no longer a fragment, and the payload."""
        hlen = len(header) - ETH_LEN
        out = bytearray(header) + payload
        if header[12:14] == b"\x86\xdd":
            struct.pack_into("!H", out, ETH_LEN + 4, min(len(payload), 0xFFFF))
            return bytes(out)
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
