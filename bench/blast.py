"""Send one UDP frame over and over, as fast as the peer side can (lab peer side).

python bench/blast.py IFNAME SRC_MAC DST_MAC SRC_IP DST_IP PORT SECONDS [xsk|live [CALLERS]]

xsk (the default): from an XSK, by the C loop (bench/xsk_loops.c). live: by
the kernel itself, BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES and an XDP
program that returns XDP_TX (no socket, no copy to user space), so the
generator outruns any receiver; CALLERS threads (default 4) make those calls,
as each call waits twice for an RCU grace period (it puts its program in the
kernel's XDP dispatcher and takes it out), which one caller alone sits out. Prints "ready", then the frames offered.
"""

from __future__ import annotations

import ctypes
import os
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import native
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from aioxdp.umem import UmemConfig
from aioxdp.xsk import XSK

LIVE_CALLERS = 4


def main() -> None:
    ifname, src_mac, dst_mac, src_ip, dst_ip, port, seconds = sys.argv[1:8]
    frame = bytes(
        Ether(src=src_mac, dst=dst_mac)
        / IP(src=src_ip, dst=dst_ip)
        / UDP(sport=40000, dport=int(port))
        / Raw(b"b" * 18)
    )
    loops = native.load()
    if sys.argv[8:9] == ["live"]:
        callers = int(sys.argv[9]) if len(sys.argv) > 9 else LIVE_CALLERS
        print("ready", flush=True)
        sent = loops.bench_live_blast(
            socket.if_nametoindex(ifname), frame, len(frame), float(seconds), callers
        )
        if not sent:
            err = ctypes.get_errno()
            raise SystemExit(f"BPF_PROG_RUN (live frames) refused: {os.strerror(err)}")
        print(sent, flush=True)
        return
    xsk = XSK(ifname, 0, config=UmemConfig(nframes=8192, tx_size=4096, comp_size=4096))
    print("ready", flush=True)
    sent = loops.bench_blast(native.pointer(xsk), frame, len(frame), 64, float(seconds))
    print(sent, flush=True)
    xsk.close()


if __name__ == "__main__":
    main()
