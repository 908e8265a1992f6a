"""bench/'s C reference loops build against the current _native sources
(they include them), so a change there cannot silently break the benchmarks."""

from __future__ import annotations

import native  # bench/native.py (conftest puts bench/ on sys.path)


def test_the_c_reference_loops_build_and_load() -> None:
    loops = native.load()
    for name in ("bench_blast", "bench_drain", "bench_echo", "bench_udp_pump"):
        assert callable(getattr(loops, name)), name
