"""cdef for aioxdp's own C: read from the headers themselves.

``bpf/forwarder.h`` (shared with the BPF program) and
``aioxdp/_native/aioxdp_native.h`` are the only declarations; this module
turns them into cdef text, so the Python side can never drift from C:
preprocessor lines go, ``#define NAME value`` becomes ``#define NAME ...``
(cffi takes the value from the compiler), array lengths named by constants
become ``[...]``, and the libbpf log hook becomes an ``extern "Python+C"``.
"""

from __future__ import annotations

import re
from pathlib import Path

NATIVE_DIR = Path(__file__).resolve().parent.parent / "_native"
BPF_DIR = Path(__file__).resolve().parent.parent.parent / "bpf"
SOURCES = sorted(str(p) for p in NATIVE_DIR.glob("*.c"))
HEADERS = [BPF_DIR / "forwarder.h", NATIVE_DIR / "aioxdp_native.h"]

INCLUDES = """
#include "aioxdp_native.h"
"""

# What the headers use from <linux/if_xdp.h>, which cffi does not read.
KERNEL_TYPES = """
struct xdp_statistics {
    __u64 rx_dropped;
    __u64 rx_invalid_descs;
    __u64 tx_invalid_descs;
    __u64 rx_ring_full;
    __u64 rx_fill_ring_empty_descs;
    __u64 tx_ring_empty_descs;
};
#define XDP_OPTIONS_ZEROCOPY ...
"""

_CALLBACK = "void aioxdp_on_libbpf_log(int level, const char *line);"


def cdef_from_header(text: str) -> str:
    """The declarations of a C header, as cffi's cdef accepts them."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("#include", "#ifndef", "#endif", "#if ", "#else")):
            continue
        define = re.match(r"#define\s+(\w+)(\s+\S.*)?$", stripped)
        if define:
            if define.group(2):  # a value, not an include guard
                out.append(f"#define {define.group(1)} ...")
            continue
        if stripped == _CALLBACK:
            out.append('extern "Python+C" ' + _CALLBACK)
            continue
        out.append(re.sub(r"\[([A-Z_][A-Z0-9_]*)\]", "[...]", line))
    return "\n".join(out)


TYPES = KERNEL_TYPES + "\n".join(cdef_from_header(h.read_text()) for h in HEADERS)
FUNCTIONS = ""
