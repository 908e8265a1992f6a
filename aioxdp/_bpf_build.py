"""Compile ``bpf/*.bpf.c`` into BPF object files with clang.

Used by ``setup.py`` at build time (every ``pip install`` recompiles, so a
changed program is never stale) and by tests that build throwaway programs.
Standard library only: ``setup.py`` loads this file before aioxdp exists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

CFLAGS = ("-O2", "-g", "-Wall", "-Werror", "-target", "bpf")


class BPFBuildError(RuntimeError):
    """clang is missing or rejected a BPF source file."""


def _multiarch_include() -> list[str]:
    # <linux/types.h> pulls <asm/types.h>, which Debian keeps under the
    # multiarch directory that clang -target bpf does not search by itself.
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    path = Path("/usr/include") / arch
    return [f"-I{path}"] if arch and path.is_dir() else []


def clang() -> str:
    found = os.environ.get("CLANG") or shutil.which("clang")
    if not found:
        raise BPFBuildError(
            "clang is needed to compile the BPF programs: apt-get install clang llvm"
        )
    return found


def _clang_command(source: Path, include: list[Path] | None) -> list[str]:
    includes = [f"-I{p}" for p in (include or [source.parent])]
    return [clang(), *CFLAGS, *includes, *_multiarch_include(), str(source)]


def compile_program(source: Path, output: Path, *, include: list[Path] | None = None) -> Path:
    """Compile one ``*.bpf.c`` file into ``output``; returns ``output``."""
    output.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*_clang_command(source, include), "-c", "-o", str(output)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BPFBuildError(f"compiling {source} failed:\n{proc.stderr.strip()}")
    return output


def headers(source: Path, *, include: list[Path] | None = None) -> list[Path]:
    """Every header that compiling ``source`` reads (clang -M), resolved."""
    proc = subprocess.run([*_clang_command(source, include), "-M"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BPFBuildError(f"listing the headers of {source} failed:\n{proc.stderr.strip()}")
    # "target.o: a.c b.h \\\n c.h": split on blanks and line continuations
    words = proc.stdout.replace("\\\n", " ").split()[1:]
    return [Path(w).resolve() for w in words if not w.endswith(".c")]


def object_name(source: Path) -> str:
    """``forwarder.bpf.c`` -> ``forwarder.o``."""
    name = source.name
    if not name.endswith(".bpf.c"):
        raise ValueError(f"{source}: BPF sources are named *.bpf.c")
    return name[: -len(".bpf.c")] + ".o"


def compile_tree(source_dir: Path, output_dir: Path) -> list[Path]:
    """Compile every ``*.bpf.c`` under ``source_dir`` into ``output_dir``."""
    return [
        compile_program(src, output_dir / object_name(src))
        for src in sorted(source_dir.glob("*.bpf.c"))
    ]
