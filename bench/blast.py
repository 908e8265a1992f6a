"""Send one UDP frame over and over from an XSK, as fast as the C loop can (lab peer side).

python bench/blast.py IFNAME SRC_MAC DST_MAC SRC_IP DST_IP PORT SECONDS
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import native
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from aioxdp.umem import UmemConfig
from aioxdp.xsk import XSK


def main() -> None:
    ifname, src_mac, dst_mac, src_ip, dst_ip, port, seconds = sys.argv[1:8]
    frame = bytes(
        Ether(src=src_mac, dst=dst_mac)
        / IP(src=src_ip, dst=dst_ip)
        / UDP(sport=40000, dport=int(port))
        / Raw(b"b" * 18)
    )
    loops = native.load()
    xsk = XSK(ifname, 0, config=UmemConfig(nframes=8192, tx_size=4096, comp_size=4096))
    print("ready", flush=True)
    sent = loops.bench_blast(native.pointer(xsk), frame, len(frame), 64, float(seconds))
    print(sent, flush=True)
    xsk.close()


if __name__ == "__main__":
    main()
