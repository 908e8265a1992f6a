"""aioxdp: asyncio packet I/O on Linux AF_XDP sockets.

An eBPF forwarder in the NIC driver redirects the packets an application
asked for to an XDP socket whose rings are drained by the event loop; all
other traffic goes to the kernel untouched.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# eager: the submodule aioxdp.ping would otherwise shadow the function
from aioxdp.ping import Pinger, multiping, ping
from aioxdp.results import PingError, PingReply, PingResult, PingResults

if TYPE_CHECKING:
    from aioxdp import errors
    from aioxdp.anyio_interface import AnyioInterface
    from aioxdp.datagram import DatagramBatch, DatagramTransport
    from aioxdp.errors import XDPError
    from aioxdp.forwarder import Action, Rule
    from aioxdp.interface import Interface, PacketTransport
    from aioxdp.packet import Packet, PacketBatch, PacketProtocol
    from aioxdp.tcping import PortState, tcp_ping, tcp_scan
    from aioxdp.transport import XDPTransport
    from aioxdp.udp_socket import UDPSocket
    from aioxdp.umem import FrameCounts, UmemConfig

# public name -> the module that defines it: imported on first use, so a
# script that pings imports neither the UDP nor the anyio layers (PEP 562)
_HOME = {
    "Action": "aioxdp.forwarder",
    "AnyioInterface": "aioxdp.anyio_interface",
    "DatagramBatch": "aioxdp.datagram",
    "DatagramTransport": "aioxdp.datagram",
    "FrameCounts": "aioxdp.umem",
    "Interface": "aioxdp.interface",
    "Packet": "aioxdp.packet",
    "PacketBatch": "aioxdp.packet",
    "PacketProtocol": "aioxdp.packet",
    "PacketTransport": "aioxdp.interface",
    "PortState": "aioxdp.tcping",
    "Rule": "aioxdp.forwarder",
    "UDPSocket": "aioxdp.udp_socket",
    "UmemConfig": "aioxdp.umem",
    "XDPError": "aioxdp.errors",
    "XDPTransport": "aioxdp.transport",
    "tcp_ping": "aioxdp.tcping",
    "tcp_scan": "aioxdp.tcping",
}


def __getattr__(name: str) -> Any:
    if name == "errors":
        return importlib.import_module("aioxdp.errors")
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'aioxdp' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once: later reads do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__version__ = "0.1.0"

__all__ = [
    "Action",
    "AnyioInterface",
    "DatagramBatch",
    "DatagramTransport",
    "FrameCounts",
    "Interface",
    "Packet",
    "PacketBatch",
    "PacketProtocol",
    "PacketTransport",
    "PingError",
    "PingReply",
    "PingResult",
    "PingResults",
    "Pinger",
    "PortState",
    "Rule",
    "UDPSocket",
    "UmemConfig",
    "XDPError",
    "XDPTransport",
    "__version__",
    "errors",
    "multiping",
    "ping",
    "tcp_ping",
    "tcp_scan",
]
