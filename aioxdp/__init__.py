"""aioxdp: asyncio packet I/O on Linux AF_XDP sockets.

An eBPF forwarder in the NIC driver redirects the packets an application
asked for to an XDP socket whose rings are drained by the event loop; all
other traffic goes to the kernel untouched.
"""

from aioxdp import errors
from aioxdp.errors import XDPError

__version__ = "0.1.0"

__all__ = ["XDPError", "__version__", "errors"]
