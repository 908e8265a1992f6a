"""The Internet checksum (RFC 1071), the readable reference.

The hot path uses the C version in ``aioxdp/_native``; tests compare the
two on random buffers.
"""

from __future__ import annotations

import struct


def ones_sum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """16-bit one's complement sum of ``data`` (odd length padded with a zero byte)."""
    data = bytes(data)
    if len(data) % 2:
        data += b"\x00"
    total: int = initial + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def internet_checksum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The value to put in a checksum field (computed with that field zero)."""
    return ~ones_sum(data, initial) & 0xFFFF


def pseudo_header_sum(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """Sum of the pseudo-header that UDP, TCP and ICMPv6 checksums cover: IPv4's
    (RFC 768) for 4-byte addresses, IPv6's (RFC 8200 8.1) for 16-byte ones."""
    if len(src) != len(dst) or len(src) not in (4, 16):
        raise ValueError(
            f"src, dst: two IPv4 (4-byte) or two IPv6 (16-byte) addresses, got {len(src)} and {len(dst)}"
        )
    if len(src) == 16:
        return ones_sum(src + dst + struct.pack("!IxxxB", length, proto))
    return ones_sum(src + dst + struct.pack("!BBH", 0, proto, length))


def verifies(data: bytes | bytearray | memoryview, initial: int = 0) -> bool:
    """True when ``data`` (checksum field included) sums to all ones."""
    return ones_sum(data, initial) == 0xFFFF


def transport_checksum(
    segment: bytes | bytearray | memoryview, src: bytes, dst: bytes, proto: int
) -> int:
    """A UDP, TCP or ICMPv6 checksum (computed with the field zero), over the
    pseudo-header of the addresses' family."""
    return internet_checksum(segment, pseudo_header_sum(src, dst, proto, len(segment)))


def transport_verifies(
    segment: bytes | bytearray | memoryview, src: bytes, dst: bytes, proto: int
) -> bool:
    """True when a UDP or TCP segment's checksum holds."""
    return ones_sum(segment, pseudo_header_sum(src, dst, proto, len(segment))) == 0xFFFF
