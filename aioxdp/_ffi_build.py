"""The one cffi (API mode) build script, assembled from ``aioxdp/_cffi``.

Run by setuptools through ``cffi_modules`` in ``setup.py``; it produces the
extension module ``aioxdp._ffi`` linked against libbpf and libxdp.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _load(name: str):  # type: ignore[no-untyped-def]
    # Loaded by path: at build time the aioxdp package is not importable yet.
    spec = importlib.util.spec_from_file_location(
        f"_aioxdp_cffi_{name}", HERE / "_cffi" / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PARTS = [_load(name) for name in ("libbpf", "libxdp", "native")]

ffibuilder = FFI()
for part in PARTS:
    ffibuilder.cdef(part.TYPES)
for part in PARTS:
    ffibuilder.cdef(part.FUNCTIONS)

ffibuilder.set_source(
    "aioxdp._ffi",
    "".join(part.INCLUDES for part in PARTS),
    sources=[str(Path(s).relative_to(ROOT)) for s in _load("native").SOURCES],
    include_dirs=[str(ROOT / "bpf"), str(HERE / "_native")],
    libraries=["xdp", "bpf"],
    extra_compile_args=["-O2", "-Wall", "-Wno-unused-function"],
    # cffi's module needs only the stable ABI: one wheel for CPython 3.11 and later
    py_limited_api=True,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose="-v" in sys.argv)
