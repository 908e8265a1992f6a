"""The BPF build needs nothing but what `make` installs: no glibc header.

clang -target bpf does not define __x86_64__, so any glibc header it reads
asks for the 32-bit stubs of libc6-dev-i386 (issue 10). The witness is
dpkg's own record of which package owns each header that clang reads.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import TESTS

from aioxdp._bpf_build import headers

ROOT = TESTS.parent
SOURCES = sorted(ROOT.joinpath("bpf").glob("*.bpf.c")) + sorted(
    TESTS.joinpath("bpf").glob("*.bpf.c")
)


def owner(path: Path) -> str:
    """The Debian package that installed ``path``, or "" for our own files."""
    proc = subprocess.run(["dpkg-query", "-S", str(path)], capture_output=True, text=True)
    return proc.stdout.split(":", 1)[0] if proc.returncode == 0 else ""


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_bpf_sources_read_no_glibc_header(source: Path) -> None:
    read = headers(source)
    assert any(p.name == "bpf_helpers.h" for p in read), read  # the listing is real
    from_libc = [str(p) for p in read if owner(p).startswith("libc6-dev")]
    assert from_libc == [], f"{source.name} reads glibc headers: {from_libc}"
