"""Build and load bench/xsk_loops.c (the C reference loops) with the system compiler."""

from __future__ import annotations

import ctypes
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

from aioxdp._libs import ffi
from aioxdp.xsk import XSK

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "_build" / "xsk_loops.so"


def load() -> ctypes.CDLL:
    source = BENCH / "xsk_loops.c"
    deps = [source, *(ROOT / "aioxdp" / "_native").glob("*"), *(ROOT / "bpf").glob("*.h")]
    if not OUT.exists() or OUT.stat().st_mtime < max(p.stat().st_mtime for p in deps):
        OUT.parent.mkdir(exist_ok=True)
        subprocess.run(
            [
                sysconfig.get_config_var("CC").split()[0] or "cc",
                "-O2",
                "-shared",
                "-fPIC",
                f"-I{ROOT / 'bpf'}",
                f"-I{ROOT / 'aioxdp' / '_native'}",
                str(source),
                "-o",
                str(OUT),
                "-lxdp",
                "-lbpf",
            ],
            check=True,
        )
    lib = ctypes.CDLL(str(OUT), use_errno=True)
    lib.bench_blast.restype = ctypes.c_uint64
    lib.bench_blast.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_uint32,
        ctypes.c_uint32,
        ctypes.c_double,
    ]
    lib.bench_live_blast.restype = ctypes.c_uint64
    lib.bench_live_blast.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint32,
        ctypes.c_double,
        ctypes.c_uint32,
    ]
    lib.bench_drain.restype = ctypes.c_uint64
    lib.bench_drain.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_double, ctypes.c_int]
    lib.bench_echo.restype = ctypes.c_uint64
    lib.bench_echo.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_uint32,
        ctypes.c_uint16,
        ctypes.c_uint32,
        ctypes.c_uint32,
        ctypes.c_double,
    ]
    lib.bench_udp_pump.restype = ctypes.c_uint64
    lib.bench_udp_pump.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_uint32,
        ctypes.c_uint32,
        ctypes.c_double,
    ]
    lib.bench_paced_echo.restype = ctypes.c_uint32
    lib.bench_paced_echo.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_uint32,
        ctypes.c_uint16,
        ctypes.c_uint32,
        ctypes.c_int64,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_double),
    ]
    return lib


def pointer(xsk: XSK) -> Any:
    """The C struct behind an XSK, for the ctypes loops."""
    return int(ffi.cast("uintptr_t", xsk.c_handle))
