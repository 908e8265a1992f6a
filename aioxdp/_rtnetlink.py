"""A small synchronous rtnetlink client: the route, link, neighbour and
address queries aioxdp makes, and nothing more.

pyroute2 does all of this and much else, but importing it takes 150 ms or
more, which every ``aioxdp ping`` would pay before its first probe. The
messages are the kernel's (<linux/rtnetlink.h>), decoded into plain dicts:
header fields by their names in the kernel's structs (``dst_len``,
``type``, ``index``, ``state``, ``ifindex``), attributes by their
constants' names (``RTA_OIF``, ``IFLA_MTU``, ...); addresses as text, link
addresses as ``aa:bb:...``. Attributes aioxdp does not read are skipped.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Callable
from types import TracebackType
from typing import Any

__all__ = ["NetlinkError", "RtNetlink"]

NETLINK_ROUTE = 0
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE, RTM_GETNEIGH = 18, 22, 26, 30
RECEIVE_SIZE = 1 << 18  # above the largest dump part the kernel sends (32 KiB)

_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr
_ATTR = struct.Struct("=HH")  # struct rtattr
_RTMSG = struct.Struct("=BBBBBBBBI")
_IFINFOMSG = struct.Struct("=BxHiII")
_NDMSG = struct.Struct("=BxxxiHBB")
_IFADDRMSG = struct.Struct("=BBBBI")
_OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")

Decoder = Callable[[bytes], Any]


class NetlinkError(OSError):
    """The kernel refused a request (errno as in ``ip``'s 'RTNETLINK answers')."""


def _address(b: bytes) -> str:
    if len(b) == 4:
        return socket.inet_ntop(socket.AF_INET, b)
    if len(b) == 16:
        return socket.inet_ntop(socket.AF_INET6, b)
    return b.hex()


def _u32(b: bytes) -> int:
    return int.from_bytes(b[:4], "little") if len(b) >= 4 else 0


def _text(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode(errors="replace")


def _lladdr(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _operstate(b: bytes) -> str:
    return _OPERSTATES[b[0]] if b and b[0] < len(_OPERSTATES) else "UNKNOWN"


_ROUTE_ATTRS: dict[int, tuple[str, Decoder]] = {
    1: ("RTA_DST", _address),
    4: ("RTA_OIF", _u32),
    5: ("RTA_GATEWAY", _address),
    7: ("RTA_PREFSRC", _address),
    15: ("RTA_TABLE", _u32),
}
_LINK_ATTRS: dict[int, tuple[str, Decoder]] = {
    1: ("IFLA_ADDRESS", _lladdr),
    3: ("IFLA_IFNAME", _text),
    4: ("IFLA_MTU", _u32),
    16: ("IFLA_OPERSTATE", _operstate),
    31: ("IFLA_NUM_TX_QUEUES", _u32),
    32: ("IFLA_NUM_RX_QUEUES", _u32),
}
_NEIGH_ATTRS: dict[int, tuple[str, Decoder]] = {
    1: ("NDA_DST", _address),
    2: ("NDA_LLADDR", _lladdr),
}
_ADDR_ATTRS: dict[int, tuple[str, Decoder]] = {
    1: ("IFA_ADDRESS", _address),
    2: ("IFA_LOCAL", _address),
    3: ("IFA_LABEL", _text),
}


def _attribute(kind: int, value: bytes) -> bytes:
    length = _ATTR.size + len(value)
    return _ATTR.pack(length, kind) + value + bytes(-length % 4)


def _decode(
    payload: bytes,
    head: struct.Struct,
    names: tuple[str, ...],
    attrs: dict[int, tuple[str, Decoder]],
) -> dict[str, Any]:
    """One message: its header's fields, then the attributes aioxdp reads."""
    if len(payload) < head.size:
        raise NetlinkError(errno.EBADMSG, f"a {len(payload)}-byte netlink message is truncated")
    msg: dict[str, Any] = dict(zip(names, head.unpack_from(payload), strict=False))
    at = (head.size + 3) & ~3
    while at + _ATTR.size <= len(payload):
        length, kind = _ATTR.unpack_from(payload, at)
        if length < _ATTR.size or at + length > len(payload):
            break  # a malformed attribute ends the message; what came before stands
        known = attrs.get(kind & 0x3FFF)  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
        if known is not None:
            msg[known[0]] = known[1](payload[at + _ATTR.size : at + length])
        at += (length + 3) & ~3
    return msg


_ROUTE = (
    _RTMSG,
    ("family", "dst_len", "src_len", "tos", "table", "proto", "scope", "type", "flags"),
    _ROUTE_ATTRS,
)
_LINK = (_IFINFOMSG, ("family", "ifi_type", "index", "flags", "change"), _LINK_ATTRS)
_NEIGH = (_NDMSG, ("family", "ifindex", "state", "flags", "ndm_type"), _NEIGH_ATTRS)
_ADDR = (_IFADDRMSG, ("family", "prefixlen", "flags", "scope", "index"), _ADDR_ATTRS)


class RtNetlink:
    """One NETLINK_ROUTE socket in the caller's network namespace; blocking."""

    def __init__(self) -> None:
        self._sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE
        )
        self._sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> RtNetlink:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _request(self, kind: int, body: bytes, *, dump: bool) -> list[bytes]:
        """Send one request; the payloads of the answer's messages."""
        self._seq += 1
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else NLM_F_ACK)
        self._sock.send(_HEADER.pack(_HEADER.size + len(body), kind, flags, self._seq, 0) + body)
        payloads: list[bytes] = []
        while True:
            data = self._sock.recv(RECEIVE_SIZE)
            at = 0
            while at + _HEADER.size <= len(data):
                length, mtype, _flags, seq, _pid = _HEADER.unpack_from(data, at)
                if length < _HEADER.size or at + length > len(data):
                    raise NetlinkError(errno.EBADMSG, "a malformed netlink answer")
                payload = data[at + _HEADER.size : at + length]
                at += (length + 3) & ~3
                if seq != self._seq:
                    continue  # an answer to an earlier request that was cut short
                if mtype == NLMSG_DONE:
                    return payloads
                if mtype == NLMSG_ERROR:
                    code = -int.from_bytes(payload[:4], "little", signed=True)
                    if code:
                        raise NetlinkError(code, os.strerror(code))
                    return payloads  # the ACK that ends a plain request
                payloads.append(payload)

    def routes(self, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        """Every route of ``family``, in every table."""
        return [
            _decode(p, *_ROUTE)
            for p in self._request(RTM_GETROUTE, _RTMSG.pack(family, *[0] * 8), dump=True)
        ]

    def route_to(self, destination: str, oif: int | None = None) -> dict[str, Any]:
        """The kernel's answer to ``ip route get DESTINATION [oif OIF]``."""
        family = socket.AF_INET6 if ":" in destination else socket.AF_INET
        packed = socket.inet_pton(family, destination)
        body = _RTMSG.pack(family, 8 * len(packed), 0, 0, 0, 0, 0, 0, 0) + _attribute(1, packed)
        if oif is not None:
            body += _attribute(4, oif.to_bytes(4, "little"))
        (answer,) = self._request(RTM_GETROUTE, body, dump=False)
        return _decode(answer, *_ROUTE)

    def links(self) -> list[dict[str, Any]]:
        return [
            _decode(p, *_LINK)
            for p in self._request(RTM_GETLINK, _IFINFOMSG.pack(0, 0, 0, 0, 0), dump=True)
        ]

    def link(self, index: int) -> dict[str, Any]:
        (answer,) = self._request(RTM_GETLINK, _IFINFOMSG.pack(0, 0, index, 0, 0), dump=False)
        return _decode(answer, *_LINK)

    def neighbours(self, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        return [
            _decode(p, *_NEIGH)
            for p in self._request(RTM_GETNEIGH, _NDMSG.pack(family, 0, 0, 0, 0), dump=True)
        ]

    def addresses(self, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        return [
            _decode(p, *_ADDR)
            for p in self._request(RTM_GETADDR, _IFADDRMSG.pack(family, 0, 0, 0, 0), dump=True)
        ]
