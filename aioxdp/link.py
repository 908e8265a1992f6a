"""The link an Interface drives: is it up, and its queues, MTU and MAC."""

from __future__ import annotations

import errno
import fcntl
import socket
import struct
from dataclasses import dataclass

from aioxdp import _netlink
from aioxdp.bpf import ifindex_of

__all__ = ["LinkInfo", "link_info", "link_trouble", "rx_queue_count"]

SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1


def link_trouble(ifname: str) -> tuple[int, str] | None:
    """(errno, why) if ``ifname`` is gone or down, else None (one ioctl)."""
    request = struct.pack("16sH14x", ifname.encode(), 0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            reply = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, request)
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENXIO):
                return errno.ENODEV, f"{ifname} was deleted"
            return None
    (flags,) = struct.unpack_from("H", reply, 16)
    if not flags & IFF_UP:
        return errno.ENETDOWN, f"{ifname} went down (ip link set dev {ifname} up brings it back)"
    return None


@dataclass(frozen=True, slots=True)
class LinkInfo:
    queues: int  # RX queues
    mtu: int
    mac: str | None  # the link's address, None for links without one (lo, tun)


async def link_info(ifname: str) -> LinkInfo:
    """RX queues, MTU and MAC of ``ifname``, from netlink (sysfs may show another namespace)."""
    index = ifindex_of(ifname)
    link = await _netlink.query(lambda rtnl: rtnl.link(index))
    mac = link.get("IFLA_ADDRESS")
    return LinkInfo(
        int(link.get("IFLA_NUM_RX_QUEUES") or 1),
        int(link.get("IFLA_MTU") or 1500),
        mac if mac and mac != "00:00:00:00:00:00" else None,
    )


async def rx_queue_count(ifname: str) -> int:
    return (await link_info(ifname)).queues
