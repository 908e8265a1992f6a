"""aioxdp.bpf against the real kernel: load, maps, attach in each mode, test_run, errors."""

from __future__ import annotations

import errno
import os
import signal
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AS_NOBODY, TESTS, read_line, start_python, wait_until

from aioxdp import bpf
from aioxdp._bpf_build import compile_program
from aioxdp._libs import ffi, lib
from aioxdp.bpf import BPFObject, XDPVerdict, attached_program
from aioxdp.errors import (
    AlreadyAttachedError,
    BPFLoadError,
    InterfaceNotFoundError,
    MapError,
    ModeUnsupportedError,
    PrivilegeError,
    VerifierError,
    XDPError,
)
from aioxdp.testing import Lab

ICMP_ECHO = bytes.fromhex(
    "02a000000a0002a000000b000800"  # Ethernet: to a, from b, IPv4
    "4500001c0001000040010000c6120002c6120001"  # IPv4 198.18.0.2 -> 198.18.0.1, ICMP
    "0800f7fe00010000"  # echo request
)


@pytest.fixture
def forwarder() -> Iterator[BPFObject]:
    with BPFObject.packaged("forwarder") as obj:
        obj.load()
        yield obj


def xdp_line(host_run: subprocess.CompletedProcess[str]) -> str:
    return " ".join(line.strip() for line in host_run.stdout.splitlines() if "xdp" in line)


@pytest.mark.parametrize(("mode", "shown"), [("native", " xdp "), ("generic", " xdpgeneric ")])
def test_attach_in_each_mode_shows_in_ip_link_and_goes_away(
    lab: Lab, forwarder: BPFObject, mode: str, shown: str
) -> None:
    prog = forwarder.program("aioxdp_forwarder")
    with lab.a.enter():
        link = prog.attach(lab.a.ifname, mode=mode)  # type: ignore[arg-type]
        try:
            assert (link.mode, link.method) == (mode, "link")
            prog_id, seen = attached_program(lab.a.ifname)
            assert prog_id == link.prog_id > 0
            assert seen == mode
            line = xdp_line(lab.a.run("ip", "-d", "link", "show", lab.a.ifname))
            assert shown in line
            assert f"prog/xdp id {prog_id} " in line
            # traffic still flows through the pass-everything forwarder
            assert lab.b.run("ping", "-c2", "-i0.2", "-W2", lab.a.ip).returncode == 0
        finally:
            link.detach()
        assert attached_program(lab.a.ifname) == (0, None)
        assert "prog/xdp" not in lab.a.run("ip", "-d", "link", "show", lab.a.ifname).stdout
        link.detach()  # idempotent


def test_auto_mode_prefers_native_and_falls_back_to_generic(lab: Lab, forwarder: BPFObject) -> None:
    prog = forwarder.program()
    with lab.a.enter():
        with prog.attach(lab.a.ifname) as link:
            assert link.mode == "native"
        # loopback has no driver XDP: native is refused, auto falls back
        with pytest.raises(
            ModeUnsupportedError, match=r"cannot run XDP in native mode.*mode='generic'"
        ):
            prog.attach("lo", mode="native")
        with prog.attach("lo") as link:
            assert link.mode == "generic"
            assert attached_program("lo")[1] == "generic"
        assert attached_program("lo") == (0, None)


def test_netlink_attach_is_detached_on_close(lab: Lab, forwarder: BPFObject) -> None:
    prog = forwarder.program()
    with lab.a.enter():
        with prog.attach(lab.a.ifname, mode="generic", netlink=True) as link:
            assert link.method == "netlink"
            assert attached_program(lab.a.ifname) == (link.prog_id, "generic")
        assert attached_program(lab.a.ifname) == (0, None)


def test_second_attach_is_refused_with_the_holder_named(lab: Lab, forwarder: BPFObject) -> None:
    prog = forwarder.program()
    with lab.a.enter(), prog.attach(lab.a.ifname, mode="native") as first:
        with pytest.raises(AlreadyAttachedError) as info:
            prog.attach(lab.a.ifname, mode="native")
        assert f"program id {first.prog_id}" in str(info.value)
        assert info.value.errno in (errno.EBUSY, errno.EEXIST)
        # someone else's netlink attachment is refused too, and ours stays
        with pytest.raises(AlreadyAttachedError):
            prog.attach(lab.a.ifname, mode="native", netlink=True)
        assert attached_program(lab.a.ifname)[0] == first.prog_id


def test_program_is_detached_when_its_process_is_killed(lab: Lab) -> None:
    child = start_python(
        "import time\n"
        "from aioxdp.bpf import BPFObject\n"
        "obj = BPFObject.packaged('forwarder'); obj.load()\n"
        f"link = obj.program().attach({lab.a.ifname!r}, mode='native')\n"
        "print(link.prog_id, flush=True)\n"
        "time.sleep(60)\n",
        prefix=lab.a.command(),
    )
    try:
        prog_id = int(read_line(child))
        with lab.a.enter():
            assert attached_program(lab.a.ifname) == (prog_id, "native")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    with lab.a.enter():
        assert wait_until(lambda: attached_program(lab.a.ifname) == (0, None))
    assert "prog/xdp" not in lab.a.run("ip", "-d", "link", "show", lab.a.ifname).stdout


def test_test_run_passes_a_packet_and_counts_it(forwarder: BPFObject) -> None:
    prog = forwarder.program("aioxdp_forwarder")
    counters = forwarder.map("aioxdp_fw_counters", value="uint64_t")
    before = sum(v[0] for v in counters.lookup(3))  # AIOXDP_FW_CNT_UNMATCHED
    verdict, out = prog.test_run(ICMP_ECHO, repeat=5)
    assert verdict is XDPVerdict.PASS
    assert out == ICMP_ECHO
    after = sum(v[0] for v in counters.lookup(3))
    assert after - before == 5


def test_test_run_rejects_runt_frames(forwarder: BPFObject) -> None:
    with pytest.raises(ValueError, match="data"):
        forwarder.program().test_run(b"\x00" * 10)


def test_typed_maps_round_trip(forwarder: BPFObject) -> None:
    rules = forwarder.map(
        "aioxdp_fw_rules", key="struct aioxdp_fw_key", value="struct aioxdp_fw_rule"
    )
    assert (rules.key_size, rules.value_size, rules.max_entries) == (
        48,
        24,
        lib.AIOXDP_FW_MAX_RULES,
    )
    key = rules.new_key(proto=1, dport=0x3412)
    rules.update(key, rules.new_value(action=lib.AIOXDP_FW_REDIRECT, tag=7))
    got = rules.lookup(key)
    assert (got.action, got.tag, got.hits) == (lib.AIOXDP_FW_REDIRECT, 7, 0)
    assert [(k.proto, k.dport) for k in rules] == [(1, 0x3412)]
    assert rules.delete(key) is True
    assert rules.lookup(key) is None
    assert rules.delete(key) is False

    masks = forwarder.map("aioxdp_fw_masks", key="uint32_t", value="struct aioxdp_fw_key")
    assert masks.max_entries == lib.AIOXDP_FW_MAX_MASKS
    masks.update(0, masks.new_value(proto=0xFF, saddr=[0xFFFFFFFF, 0, 0, 0]))
    assert list(masks.lookup(0).saddr) == [0xFFFFFFFF, 0, 0, 0]
    with pytest.raises(MapError, match=r"E2BIG|Argument list too long"):
        masks.update(lib.AIOXDP_FW_MAX_MASKS, masks.new_value())


def test_map_types_must_match_the_object(forwarder: BPFObject) -> None:
    with pytest.raises(MapError, match="key type uint32_t is 4 bytes, the map's key is 48"):
        forwarder.map("aioxdp_fw_rules", key="uint32_t")
    with pytest.raises(KeyError, match="aioxdp_fw_rules"):
        forwarder.map("no_such_map")


def test_cffi_layout_matches_forwarder_h() -> None:
    # The BPF object's BTF-derived sizes are the truth; the cdef must agree.
    assert ffi.sizeof("struct aioxdp_fw_key") == 48
    assert ffi.offsetof("struct aioxdp_fw_key", "daddr") == 16
    assert ffi.offsetof("struct aioxdp_fw_key", "proto") == 36
    assert ffi.offsetof("struct aioxdp_fw_key", "vlan") == 40
    assert ffi.sizeof("struct aioxdp_fw_rule") == 24
    assert ffi.offsetof("struct aioxdp_fw_rule", "priority") == 4


def test_missing_interface_is_named(forwarder: BPFObject) -> None:
    with pytest.raises(InterfaceNotFoundError, match=r"'nosuch0'.*ip link") as info:
        forwarder.program().attach("nosuch0")
    assert info.value.errno == errno.ENODEV
    assert isinstance(info.value, XDPError)


def test_verifier_rejection_carries_the_log(tmp_path: Path) -> None:
    obj_file = compile_program(
        TESTS / "bpf" / "unchecked_read.bpf.c", tmp_path / "unchecked_read.o"
    )
    with BPFObject(obj_file) as obj, pytest.raises(VerifierError) as info:
        obj.load()
    err = info.value
    assert err.errno == errno.EACCES
    assert "invalid access to packet" in err.log
    assert "invalid access to packet" in str(err)
    assert "bounds check" in str(err)


def test_unreadable_object_is_a_load_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.o"
    junk.write_bytes(b"not an ELF file")
    with pytest.raises(BPFLoadError, match="opening BPF object"):
        BPFObject(junk)


def test_stale_object_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "obj").mkdir()
    (tmp_path / "obj" / "prog.o").write_bytes(b"")
    (tmp_path / "src" / "prog.bpf.c").write_text("/* newer */")
    old = os.stat(tmp_path / "src" / "prog.bpf.c").st_mtime - 10
    os.utime(tmp_path / "obj" / "prog.o", (old, old))
    monkeypatch.setattr(bpf, "SOURCE_TREE", tmp_path / "src")
    monkeypatch.setattr(bpf, "PACKAGE_OBJECTS", tmp_path / "obj")
    with pytest.raises(BPFLoadError, match="older than"):
        bpf.object_path("prog")
    with pytest.raises(BPFLoadError, match="rebuild"):
        bpf.object_path("other")


def test_shipped_objects_are_built_from_current_sources() -> None:
    for source in (TESTS.parent / "bpf").glob("*.bpf.c"):
        name = source.name.removesuffix(".bpf.c")
        assert bpf.object_path(name).stat().st_mtime >= source.stat().st_mtime


def test_unprivileged_user_gets_a_clear_error() -> None:
    code = (
        "from aioxdp.bpf import BPFObject\n"
        "from aioxdp.errors import PrivilegeError\n"
        "try:\n"
        "    BPFObject.packaged('forwarder').load()\n"
        "except PrivilegeError as e:\n"
        "    print('PrivilegeError', e.errno, e)\n"
    )
    proc = start_python(
        code,
        prefix=AS_NOBODY,
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith(f"PrivilegeError {errno.EPERM} loading BPF object forwarder.o")
    assert "missing CAP_BPF, CAP_NET_ADMIN" in out
    assert "run as root" in out


def test_privilege_error_from_the_kernel_itself() -> None:
    # Without our up-front check the kernel's EPERM maps to the same class.
    code = (
        "import aioxdp.privileges as p; p.require = lambda *a, **k: None\n"
        "from aioxdp.bpf import BPFObject\n"
        "from aioxdp.errors import PrivilegeError\n"
        "try:\n"
        "    BPFObject.packaged('forwarder').load()\n"
        "except PrivilegeError as e:\n"
        "    print('PrivilegeError', e.errno)\n"
    )
    proc = start_python(
        code,
        prefix=AS_NOBODY,
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.split()[0] == "PrivilegeError"
    assert int(out.split()[1]) in (errno.EPERM, errno.EACCES)


def test_errors_format_errno_doing_and_hint() -> None:
    exc = PrivilegeError(errno.EPERM, "loading x", "run as root")
    assert str(exc) == "loading x: Operation not permitted (errno 1, EPERM). Hint: run as root"
    assert isinstance(exc, PermissionError)
    assert isinstance(exc, OSError)


def test_packet_layout_of_the_probe() -> None:
    # guard the hand-written frame above: IPv4 header checksum field, lengths
    ihl_ver, _, total = struct.unpack_from("!BBH", ICMP_ECHO, 14)
    assert (ihl_ver, total, len(ICMP_ECHO)) == (0x45, 28, 42)
