"""What aioxdp says about the machine it runs on: --version and doctor's
version checks (the wheel-only install itself is proven by .ci/fresh-root)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import aioxdp._ffi

from aioxdp._libs import LinkedLibrary
from aioxdp.doctor import check_kernel, check_libraries


def test_version_names_the_libraries_the_loader_resolved() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "aioxdp", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines()[0] == f"aioxdp {aioxdp.__version__}"
    # The witness: the dynamic loader's own resolution of the extension's libraries.
    ldd = subprocess.run(["ldd", aioxdp._ffi.__file__], capture_output=True, text=True).stdout
    for name in ("libbpf", "libxdp"):
        resolved = re.search(rf"^\s*{name}\S*\s+=>\s+(\S+)", ldd, re.M)
        assert resolved, ldd
        real = os.path.realpath(resolved.group(1))
        version = re.search(r"\.so\.([\d.]+)$", real)
        assert version
        origin = "vendored in the wheel" if "aioxdp.libs" in real else "system"
        assert f"{name} {version.group(1)} ({origin}: {real})" in out.splitlines(), out


def _linked(libbpf: tuple[int, ...], libxdp: tuple[int, ...]) -> dict[str, LinkedLibrary]:
    return {
        "libbpf": LinkedLibrary("libbpf", libbpf, "/usr/lib/libbpf.so.0", vendored=False),
        "libxdp": LinkedLibrary("libxdp", libxdp, "/usr/lib/libxdp.so.1", vendored=False),
    }


def test_doctor_names_the_library_versions_it_needs() -> None:
    old = check_libraries(_linked((0, 8, 1), (1, 1, 0)))
    assert old.status == "fail"
    assert "libbpf 0.8.1 is older than 1.0" in old.detail
    assert "libxdp 1.1.0 is older than 1.2" in old.detail
    assert "wheel" in old.fix
    assert check_libraries(_linked((1, 0, 0), (1, 2, 0))).status == "ok"
    missing = check_libraries({"libbpf": _linked((1, 1), (1, 3))["libbpf"]})
    assert missing.status == "fail"
    assert "libxdp is not loaded (aioxdp needs 1.2 or later)" in missing.detail


def test_doctor_names_the_kernel_version_it_needs() -> None:
    assert check_kernel("5.3.18-150300").status == "fail"
    assert "5.9" in check_kernel("5.3.18-150300").fix
    assert check_kernel("5.4.0-42-generic").status == "warn"
    assert check_kernel("6.1.0-18-amd64").status == "ok"
    assert check_kernel("weird").status == "warn"
