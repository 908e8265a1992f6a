"""Build glue that pyproject.toml cannot express: the cffi extension, sendto's
fast path (a CPython extension) and the BPF objects, compiled from
``bpf/*.bpf.c`` on every build so they are never stale."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


def _bpf_build():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "_aioxdp_bpf_build", ROOT / "aioxdp" / "_bpf_build.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildExtWithBPF(build_ext):
    """Compile the BPF programs next to the extension module."""

    def run(self) -> None:
        in_source = self.inplace or getattr(self, "editable_mode", False)
        target = ROOT / "aioxdp" / "bpf" if in_source else Path(self.build_lib) / "aioxdp" / "bpf"
        for obj in _bpf_build().compile_tree(ROOT / "bpf", target):
            print(f"compiled BPF program {obj}")
        super().run()


setup(
    cffi_modules=["aioxdp/_ffi_build.py:ffibuilder"],
    cmdclass={"build_ext": BuildExtWithBPF},
    # a UDP endpoint's per-datagram receive loop and sendto, with no Python frame of ours
    ext_modules=[
        Extension(
            "aioxdp._udp_speedups",
            ["aioxdp/_cpython/udp_speedups.c"],
            define_macros=[("Py_LIMITED_API", "0x030B0000")],
            extra_compile_args=["-O2", "-Wall"],
            py_limited_api=True,
        )
    ],
    # the cffi module is built for the stable ABI (py_limited_api in _ffi_build.py)
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
