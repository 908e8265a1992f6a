"""Load aioxdp's forwarder, attach it to a lab interface, and run a packet through it.

python examples/attach_forwarder.py        (as root)
"""

from aioxdp.bpf import BPFObject, attached_program
from aioxdp.testing import Lab

ECHO_REQUEST = bytes.fromhex(
    "02a000000a0002a000000b0008004500001c0001000040010000c6120002c61200010800f7fe00010000"
)

with Lab() as lab, lab.a.enter(), BPFObject.packaged("forwarder") as obj:
    obj.load()
    prog = obj.program("aioxdp_forwarder")
    with prog.attach(lab.a.ifname) as link:
        prog_id, mode = attached_program(lab.a.ifname)
        print(f"{prog.name} on {lab.a.ifname}: id {prog_id}, {mode} mode, via {link.method}")
    verdict, _ = prog.test_run(ECHO_REQUEST)
    print(f"test_run verdict: {verdict.name}")
