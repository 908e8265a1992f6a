"""aioxdp: asyncio packet I/O on Linux AF_XDP sockets.

An eBPF forwarder in the NIC driver redirects the packets an application
asked for to an XDP socket whose rings are drained by the event loop; all
other traffic goes to the kernel untouched.
"""

from aioxdp import errors
from aioxdp.anyio_interface import AnyioInterface
from aioxdp.datagram import DatagramBatch, DatagramTransport
from aioxdp.errors import XDPError
from aioxdp.forwarder import Action, Rule
from aioxdp.interface import Interface, PacketTransport
from aioxdp.packet import Packet, PacketBatch, PacketProtocol
from aioxdp.ping import Pinger, multiping, ping
from aioxdp.results import PingError, PingReply, PingResult
from aioxdp.tcping import PortState, tcp_ping, tcp_scan
from aioxdp.transport import XDPTransport
from aioxdp.udp_socket import UDPSocket
from aioxdp.umem import FrameCounts, UmemConfig

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
