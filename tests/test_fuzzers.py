"""Coverage-guided fuzzers, seeded with valid frames: atheris over the Python
codecs, and libFuzzer with AddressSanitizer over the C frame checks that the
receive path runs on every frame (aioxdp/_native/parse.c)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import corpus as cp
import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from aioxdp._libs import lib

atheris = pytest.importorskip("atheris")  # x86_64 only; the runtime of both fuzzers comes with it

ROOT = Path(__file__).resolve().parent.parent
FUZZ = Path(__file__).resolve().parent / "fuzz"
A_MAC, B_MAC, A_IP, B_IP, IDENT, PORT = (
    "02:a0:00:00:00:0a",
    "02:a0:00:00:00:0b",
    "198.18.0.1",
    "198.18.0.2",
    0x5151,  # the harness's echo id
    7000,
)


def seed_frames() -> list[bytes]:
    short_reply = Ether(src=B_MAC, dst=A_MAC) / IP(src=B_IP, dst=A_IP) / ICMP(type=0, id=IDENT)
    request = IP(src=A_IP, dst="198.19.0.9") / ICMP(type=8, id=IDENT, seq=1) / Raw(b"s" * 8)
    error = Ether(src=B_MAC, dst=A_MAC) / IP(src=B_IP, dst=A_IP) / ICMP(type=3, code=1)
    ether = Ether(src=B_MAC, dst=A_MAC)
    request6 = IPv6(src="2001:2::a", dst="2001:2::9") / ICMPv6EchoRequest(id=IDENT, seq=1)
    ip6 = IPv6(src="2001:2::b", dst="2001:2::a")
    return [
        *cp.templates(B_MAC, A_MAC, B_IP, A_IP, IDENT, PORT),
        bytes(short_reply / Raw(b"abcd")),  # an echo reply too short for a time stamp
        bytes(error / Raw(bytes(request))),  # an ICMP error quoting our request
        bytes(ether / ip6 / ICMPv6TimeExceeded() / request6),  # and an ICMPv6 one
        bytes(ether / ip6 / ICMPv6EchoReply(id=IDENT, seq=2, data=b"r" * 16)),
        bytes(ether / ip6 / IPv6ExtHdrHopByHop() / UDP(sport=9, dport=PORT) / Raw(b"u" * 12)),
    ]


def write_seeds(folder: Path, frames: list[bytes], prefixes: list[bytes]) -> Path:
    folder.mkdir()
    for i, frame in enumerate(frames):
        for j, prefix in enumerate(prefixes):
            (folder / f"seed-{i}-{j}").write_bytes(prefix + frame)
    return folder


def test_atheris_reaches_every_codec_and_finds_no_exception_but_decode_error(
    tmp_path: Path,
) -> None:
    seeds = write_seeds(tmp_path / "corpus", seed_frames(), [b""])
    proc = subprocess.run(
        [sys.executable, str(FUZZ / "codecs.py"), "-runs=100000", "-seed=1", str(seeds)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Done 100000 runs" in proc.stderr
    # unseeded, no input ever parsed as ARP
    reached = set(re.findall(r"^parsed (.+)$", proc.stdout, re.M))
    assert reached == {
        *("ethernet", "arp", "ipv4", "icmp", "udp", "tcp", "tcp options"),
        *("ipv6", "ipv6 extension walk", "icmpv6", "neighbour discovery"),
    }


def build_native_fuzzer(out: Path) -> Path:
    """clang with ASan and libFuzzer's coverage; runtime: atheris's asan_with_fuzzer.so."""
    runtime = Path(atheris.path())
    flags = [
        "-g",
        "-O1",
        "-fno-omit-frame-pointer",
        "-fsanitize=address",
        "-fsanitize-coverage=inline-8bit-counters,pc-table,trace-cmp",
        "-Wall",
        "-Wextra",
        "-Werror",
        f"-I{ROOT / 'aioxdp' / '_native'}",
        f"-I{ROOT / 'bpf'}",
    ]
    objects = []
    for source in (FUZZ / "native_parsers.c", ROOT / "aioxdp" / "_native" / "parse.c"):
        obj = out / (source.stem + ".o")
        subprocess.run(["clang", *flags, "-c", str(source), "-o", str(obj)], check=True)
        objects.append(str(obj))
    binary = out / "native_parsers"
    subprocess.run(
        [
            "clang",
            "-o",
            str(binary),
            *objects,
            str(runtime / "asan_with_fuzzer.so"),
            f"-Wl,-rpath,{runtime}",
        ],
        check=True,
    )
    return binary


def test_libfuzzer_with_asan_over_the_c_frame_checks(tmp_path: Path) -> None:
    fuzzer = build_native_fuzzer(tmp_path)
    # prefix byte: 0 leaves checksums as mutated, 3 makes them right (see the harness)
    seeds = write_seeds(tmp_path / "corpus", seed_frames(), [b"\x00", b"\x03"])
    proc = subprocess.run(
        [
            str(fuzzer),
            "-runs=2000000",
            "-max_len=2048",
            "-seed=1",
            f"-artifact_prefix={tmp_path}/",
            str(seeds),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "AddressSanitizer" not in proc.stderr
    echo = [int(n) for n in re.findall(r"^echo statuses: (.*)$", proc.stderr, re.M)[0].split()]
    udp = [int(n) for n in re.findall(r"^udp statuses: (.*)$", proc.stderr, re.M)[0].split()]
    # every status of both checks came back at least once: each branch was taken
    assert len(echo) == 11, echo
    assert min(echo) > 0, echo
    assert len(udp) == 9, udp
    assert min(udp) > 0, udp
    (echoes,) = re.findall(r"^udp echoes checked: (\d+)$", proc.stderr, re.M)
    assert int(echoes) > 1000
    # IPv6's own branches: replies, errors, datagrams echoed, and their faults
    echo6 = [int(n) for n in re.findall(r"^echo6 statuses: (.*)$", proc.stderr, re.M)[0].split()]
    udp6 = [int(n) for n in re.findall(r"^udp6 statuses: (.*)$", proc.stderr, re.M)[0].split()]
    for status in ("OK", "ERROR", "TRUNCATED", "FRAGMENT", "NOT_ICMP", "BAD_ICMP_CHECKSUM"):
        assert echo6[getattr(lib, f"AIOXDP_ECHO_{status}")] > 0, (status, echo6)
    for status in ("OK", "TRUNCATED", "BAD_IP", "FRAGMENT", "NOT_UDP", "BAD_CHECKSUM"):
        assert udp6[getattr(lib, f"AIOXDP_UDP_{status}")] > 0, (status, udp6)
    (echoes6,) = re.findall(r"^udp6 echoes checked: (\d+)$", proc.stderr, re.M)
    assert int(echoes6) > 100
