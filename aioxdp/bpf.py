"""BPF objects: open, load, typed maps, XDP attach through a bpf_link, test_run.

The lifetime rules that matter on someone's NIC:

* an XDP program is attached through a BPF link whose only reference is a
  file descriptor of this process, so the kernel detaches it when the
  process dies, however it dies;
* native (driver) mode is tried first and generic (SKB) mode is the
  fallback; :attr:`XDPLink.mode` says which one is in use;
* netlink attach is used only where the kernel refuses XDP links, with a
  warning, because such an attachment outlives a crashed process.

We call ``bpf_link_create`` rather than ``bpf_program__attach_xdp``: the
latter is the same call with no flags, and so cannot choose the mode.
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from aioxdp import privileges
from aioxdp._libs import ffi, lib, recent_libbpf_lines
from aioxdp.errors import (
    AlreadyAttachedError,
    BPFLoadError,
    InterfaceNotFoundError,
    MapError,
    ModeUnsupportedError,
    VerifierError,
    XDPError,
    error_for_errno,
    interface_hint,
    raise_for_errno,
)

__all__ = [
    "BPFObject",
    "Map",
    "Mode",
    "Program",
    "XDPLink",
    "XDPVerdict",
    "attached_program",
    "object_path",
]

log = logging.getLogger(__name__)

Mode = Literal["auto", "native", "generic"]

PACKAGE_OBJECTS = Path(__file__).resolve().parent / "bpf"
SOURCE_TREE = Path(__file__).resolve().parent.parent / "bpf"

_VERIFIER_LOG_SIZE = 1 << 22
_MODE_FLAGS = {"native": lib.XDP_FLAGS_DRV_MODE, "generic": lib.XDP_FLAGS_SKB_MODE}
_ATTACHED_MODES = {
    lib.XDP_ATTACHED_DRV: "native",
    lib.XDP_ATTACHED_SKB: "generic",
    lib.XDP_ATTACHED_HW: "offload",
    lib.XDP_ATTACHED_MULTI: "multi",
}


class XDPVerdict(enum.IntEnum):
    """What an XDP program returned for a packet."""

    ABORTED = lib.XDP_ABORTED
    DROP = lib.XDP_DROP
    PASS = lib.XDP_PASS
    TX = lib.XDP_TX
    REDIRECT = lib.XDP_REDIRECT


def object_path(name: str) -> Path:
    """Path of a BPF object shipped with aioxdp (``"forwarder"`` -> ``.../forwarder.o``).

    In a source checkout, refuses an object older than its source: a stale
    program would silently run yesterday's code.
    """
    path = PACKAGE_OBJECTS / f"{name}.o"
    if not path.exists():
        raise BPFLoadError(
            errno.ENOENT,
            f"finding BPF object {name!r} at {path}",
            "rebuild aioxdp (make test, or pip install -e .); the build compiles bpf/*.bpf.c",
        )
    source = SOURCE_TREE / f"{name}.bpf.c"
    if source.exists():
        newest = max(p.stat().st_mtime for p in [source, *SOURCE_TREE.glob("*.h")])
        if newest > path.stat().st_mtime:
            raise BPFLoadError(
                errno.ESTALE,
                f"loading {path}: it is older than {source}",
                "rebuild aioxdp (make test, or pip install -e .) so the object matches its source",
            )
    return path


def ifindex_of(ifname: str) -> int:
    """Interface index in the calling thread's network namespace."""
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        raise InterfaceNotFoundError(
            errno.ENODEV, f"looking up interface {ifname!r}", interface_hint(ifname)
        ) from None


def attached_program(ifname: str) -> tuple[int, str | None]:
    """``(prog_id, mode)`` of the XDP program on ``ifname``; ``(0, None)`` if none."""
    ifindex = ifindex_of(ifname)
    opts = ffi.new("struct bpf_xdp_query_opts *")
    opts.sz = ffi.sizeof("struct bpf_xdp_query_opts")
    ret = lib.bpf_xdp_query(ifindex, 0, opts)
    raise_for_errno(ret, f"querying the XDP program on {ifname}", ifname=ifname)
    if opts.attach_mode == lib.XDP_ATTACHED_NONE:
        return 0, None
    return int(opts.prog_id), _ATTACHED_MODES.get(opts.attach_mode, "unknown")


class BPFObject:
    """One BPF object file: its programs and maps.

    ``BPFObject(path)`` opens the file; :meth:`load` creates the maps and
    loads the programs into the kernel. Close it (or use ``with``) to unload;
    attached programs keep their own reference until detached.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._log_buf = ffi.new("char[]", _VERIFIER_LOG_SIZE)
        opts = ffi.new("struct bpf_object_open_opts *")
        opts.sz = ffi.sizeof("struct bpf_object_open_opts")
        # A buffer of our own: libbpf fills it with the verifier's log when a
        # program is rejected, which VerifierError then carries.
        opts.kernel_log_buf = self._log_buf
        opts.kernel_log_size = _VERIFIER_LOG_SIZE
        recent_libbpf_lines()
        obj = lib.bpf_object__open_file(str(self.path).encode(), opts)
        if obj == ffi.NULL:
            err = ffi.errno or errno.EINVAL
            said = " | ".join(recent_libbpf_lines()[-3:])
            hint = "check that the file exists and is a BPF ELF object built with clang -target bpf"
            raise BPFLoadError(err, f"opening BPF object {self.path}", hint, detail=said)
        self._obj: Any = ffi.gc(obj, lib.bpf_object__close)
        self.loaded = False

    @classmethod
    def packaged(cls, name: str) -> BPFObject:
        """Open one of aioxdp's own programs, e.g. ``BPFObject.packaged("forwarder")``."""
        return cls(object_path(name))

    def __enter__(self) -> BPFObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._obj is None else ("loaded" if self.loaded else "opened")
        return f"<BPFObject {self.path.name} {state}>"

    @property
    def closed(self) -> bool:
        return self._obj is None

    def _handle(self) -> Any:
        if self._obj is None:
            raise BPFLoadError(errno.EBADF, f"using {self.path.name}", "the object is closed")
        return self._obj

    def load(self) -> None:
        """Create the maps and load every program; raises VerifierError with the log."""
        doing = f"loading BPF object {self.path.name}"
        privileges.require(doing)
        recent_libbpf_lines()
        ret = lib.bpf_object__load(self._handle())
        if ret < 0:
            verifier_log = ffi.string(self._log_buf).decode("utf-8", "replace")
            if verifier_log.strip():
                raise VerifierError(-ret, doing, verifier_log)
            err = error_for_errno(-ret, doing, default=BPFLoadError)
            err.detail = " | ".join(recent_libbpf_lines()[-3:])
            raise err
        self.loaded = True

    def programs(self) -> list[Program]:
        out = []
        prog = lib.bpf_object__next_program(self._handle(), ffi.NULL)
        while prog != ffi.NULL:
            out.append(Program(self, prog))
            prog = lib.bpf_object__next_program(self._obj, prog)
        return out

    def program(self, name: str | None = None) -> Program:
        """The program called ``name``, or the only one when ``name`` is None."""
        if name is None:
            progs = self.programs()
            if len(progs) != 1:
                names = [p.name for p in progs]
                raise ValueError(f"name: {self.path.name} has programs {names}; say which")
            return progs[0]
        prog = lib.bpf_object__find_program_by_name(self._handle(), name.encode())
        if prog == ffi.NULL:
            names = [p.name for p in self.programs()]
            raise KeyError(f"no program {name!r} in {self.path.name}; it has {names}")
        return Program(self, prog)

    def map(self, name: str, *, key: str | None = None, value: str | None = None) -> Map:
        """The map called ``name``, typed by cffi C type names for key and value.

        A type whose size differs from the map's is refused at once, so a
        drift between ``forwarder.h`` and the cdef cannot corrupt a map.
        """
        ptr = lib.bpf_object__find_map_by_name(self._handle(), name.encode())
        if ptr == ffi.NULL:
            raise KeyError(f"no map {name!r} in {self.path.name}; it has {self.map_names()}")
        return Map(self, ptr, key=key, value=value)

    def map_names(self) -> list[str]:
        names = []
        ptr = lib.bpf_object__next_map(self._handle(), ffi.NULL)
        while ptr != ffi.NULL:
            names.append(ffi.string(lib.bpf_map__name(ptr)).decode())
            ptr = lib.bpf_object__next_map(self._obj, ptr)
        return names

    def close(self) -> None:
        """Unload the object (idempotent). Attached links stay until detached."""
        if self._obj is not None:
            ffi.release(self._obj)
            self._obj = None


class Program:
    """A program of a :class:`BPFObject`."""

    def __init__(self, obj: BPFObject, ptr: Any) -> None:
        self._owner = obj
        self._ptr = ptr
        self.name: str = ffi.string(lib.bpf_program__name(ptr)).decode()

    def __repr__(self) -> str:
        return f"<Program {self.name} of {self._owner.path.name}>"

    @property
    def fd(self) -> int:
        self._owner._handle()
        fd = int(lib.bpf_program__fd(self._ptr))
        if fd < 0:
            raise BPFLoadError(
                errno.EBADFD, f"using program {self.name}", "load() the object first"
            )
        return fd

    def attach(self, ifname: str, *, mode: Mode = "auto", netlink: bool = False) -> XDPLink:
        """Attach to ``ifname`` as XDP; see :class:`XDPLink`.

        ``mode="auto"`` tries native then generic. ``netlink=True`` forces the
        legacy netlink attachment (which survives a crash of this process).
        """
        return XDPLink.attach(self, ifname, mode=mode, netlink=netlink)

    def test_run(self, data: bytes, *, repeat: int = 1) -> tuple[XDPVerdict, bytes]:
        """Run the program on one packet with BPF_PROG_TEST_RUN.

        Returns the verdict and the packet as the program left it.
        """
        if len(data) < 14:
            raise ValueError(
                f"data: XDP test runs need at least an Ethernet header (14 bytes), got {len(data)}"
            )
        if repeat < 1:
            raise ValueError(f"repeat: must be at least 1, got {repeat}")
        data_in = ffi.from_buffer(data)
        out = ffi.new("char[]", len(data) + 4096)  # room for programs that grow the packet
        opts = ffi.new("struct bpf_test_run_opts *")
        opts.sz = ffi.sizeof("struct bpf_test_run_opts")
        opts.data_in = data_in
        opts.data_size_in = len(data)
        opts.data_out = out
        opts.data_size_out = len(out)
        opts.repeat = repeat
        ret = lib.bpf_prog_test_run_opts(self.fd, opts)
        raise_for_errno(ret, f"test-running program {self.name}")
        return XDPVerdict(opts.retval), ffi.buffer(out, opts.data_size_out)[:]


class XDPLink:
    """An XDP program attached to one interface; :meth:`detach` removes it.

    ``mode`` is the mode in use ("native" or "generic") and ``method`` how it
    was attached ("link" normally, "netlink" only as the fallback).
    """

    def __init__(
        self, ifname: str, ifindex: int, prog: Program, mode: str, method: str, fd: int
    ) -> None:
        self.ifname = ifname
        self.ifindex = ifindex
        self.program = prog
        self.mode = mode
        self.method = method
        self._fd = fd  # link fd, or the program fd for netlink
        self.prog_id, _ = attached_program(ifname)

    @classmethod
    def attach(
        cls, prog: Program, ifname: str, *, mode: Mode = "auto", netlink: bool = False
    ) -> XDPLink:
        if mode not in ("auto", "native", "generic"):
            raise ValueError(f"mode: must be 'auto', 'native' or 'generic', got {mode!r}")
        doing = f"attaching XDP program {prog.name} to {ifname}"
        privileges.require(doing)
        ifindex = ifindex_of(ifname)
        tries = ["native", "generic"] if mode == "auto" else [mode]
        last: XDPError | None = None
        for try_mode in tries:
            try:
                if netlink:
                    return cls._attach_netlink(prog, ifname, ifindex, try_mode)
                return cls._attach_link(prog, ifname, ifindex, try_mode)
            except ModeUnsupportedError as exc:
                last = exc
                if mode == "auto":
                    log.info("%s: native XDP unsupported, falling back to generic mode", ifname)
        assert last is not None
        raise last

    @classmethod
    def _attach_link(cls, prog: Program, ifname: str, ifindex: int, mode: str) -> XDPLink:
        opts = ffi.new("struct bpf_link_create_opts *")
        opts.sz = ffi.sizeof("struct bpf_link_create_opts")
        opts.flags = _MODE_FLAGS[mode]
        fd = lib.bpf_link_create(prog.fd, ifindex, lib.BPF_XDP, opts)
        if fd >= 0:
            link = cls(ifname, ifindex, prog, mode, "link", fd)
            log.info("attached %s to %s in %s mode (bpf_link)", prog.name, ifname, mode)
            return link
        err = -fd
        if err == errno.EINVAL and not _links_supported():
            warnings.warn(
                f"the kernel refuses XDP links; attaching {prog.name} to {ifname} through "
                "netlink, which stays attached if this process crashes "
                f"(remove it with: ip link set dev {ifname} xdp off)",
                RuntimeWarning,
                stacklevel=4,
            )
            return cls._attach_netlink(prog, ifname, ifindex, mode)
        raise _attach_error(err, prog, ifname, mode)

    @classmethod
    def _attach_netlink(cls, prog: Program, ifname: str, ifindex: int, mode: str) -> XDPLink:
        flags = _MODE_FLAGS[mode] | lib.XDP_FLAGS_UPDATE_IF_NOEXIST
        ret = lib.bpf_xdp_attach(ifindex, prog.fd, flags, ffi.NULL)
        if ret < 0:
            raise _attach_error(-ret, prog, ifname, mode)
        log.info("attached %s to %s in %s mode (netlink)", prog.name, ifname, mode)
        return cls(ifname, ifindex, prog, mode, "netlink", prog.fd)

    @property
    def attached(self) -> bool:
        return self._fd >= 0

    def detach(self) -> None:
        """Remove the program from the interface (idempotent)."""
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        if self.method == "link":
            os.close(fd)  # the link's only reference: the kernel detaches now
            return
        opts = ffi.new("struct bpf_xdp_attach_opts *")
        opts.sz = ffi.sizeof("struct bpf_xdp_attach_opts")
        opts.old_prog_fd = fd  # only remove it if it is still ours
        ret = lib.bpf_xdp_detach(self.ifindex, _MODE_FLAGS[self.mode] | lib.XDP_FLAGS_REPLACE, opts)
        if ret < 0 and -ret not in (errno.ENODEV, errno.EEXIST):
            raise_for_errno(ret, f"detaching XDP from {self.ifname}", ifname=self.ifname)

    close = detach

    def __enter__(self) -> XDPLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=1)
            self.detach()

    def __repr__(self) -> str:
        state = "attached" if self.attached else "detached"
        return (
            f"<XDPLink {self.program.name} on {self.ifname} {self.mode} via {self.method} {state}>"
        )


def _links_supported() -> bool:
    # XDP links arrived in Linux 5.9; older kernels answer EINVAL.
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    return (major, minor) >= (5, 9)


def _attach_error(err: int, prog: Program, ifname: str, mode: str) -> XDPError:
    doing = f"attaching XDP program {prog.name} to {ifname} in {mode} mode"
    if err == errno.EOPNOTSUPP:
        other = "generic" if mode == "native" else "native"
        return ModeUnsupportedError(
            err,
            doing,
            f"the driver of {ifname} cannot run XDP in {mode} mode; use mode={other!r} or 'auto'",
        )
    if err == errno.ERANGE and mode == "native":
        # veth and many drivers: the MTU is larger than one page of native XDP
        return ModeUnsupportedError(
            err,
            doing,
            f"the MTU of {ifname} is too large for native XDP on its driver; "
            "lower the MTU, or use mode='generic' or 'auto'",
        )
    if err in (errno.EBUSY, errno.EEXIST):
        prog_id, held = attached_program(ifname)
        return AlreadyAttachedError(
            err,
            doing,
            f"{ifname} already runs XDP program id {prog_id} ({held} mode); stop its owner, "
            f"or remove it with 'ip link set dev {ifname} xdp off' if it was attached by netlink",
        )
    return error_for_errno(err, doing, ifname=ifname)


class Map:
    """A BPF map with typed keys and values.

    ``key``/``value`` are cffi C type names (e.g. ``"struct aioxdp_fw_key"``);
    without them keys and values are ``bytes`` of the map's sizes, and
    ``int`` is accepted for 4- and 8-byte keys. Per-CPU maps take and return
    one value per possible CPU.
    """

    def __init__(self, obj: BPFObject, ptr: Any, *, key: str | None, value: str | None) -> None:
        self._owner = obj
        self._ptr = ptr
        self.name: str = ffi.string(lib.bpf_map__name(ptr)).decode()
        self.type = int(lib.bpf_map__type(ptr))
        self.key_size = int(lib.bpf_map__key_size(ptr))
        self.value_size = int(lib.bpf_map__value_size(ptr))
        self.max_entries = int(lib.bpf_map__max_entries(ptr))
        self.percpu = self.type in (lib.BPF_MAP_TYPE_PERCPU_ARRAY, lib.BPF_MAP_TYPE_PERCPU_HASH)
        self.ncpus = int(lib.libbpf_num_possible_cpus()) if self.percpu else 1
        self.key_type = self._check_type("key", key, self.key_size)
        self.value_type = self._check_type("value", value, self.value_size)

    def _check_type(self, role: str, ctype: str | None, size: int) -> str | None:
        if ctype is not None and ffi.sizeof(ctype) != size:
            raise MapError(
                errno.EINVAL,
                f"typing map {self.name}",
                "bpf/forwarder.h and aioxdp/_cffi/native.py must declare the same layout",
                detail=f"{role} type {ctype} is {ffi.sizeof(ctype)} bytes, "
                f"the map's {role} is {size}",
            )
        return ctype

    def __repr__(self) -> str:
        key = self.key_type or self.key_size
        return f"<Map {self.name} key={key} value={self.value_type or self.value_size}>"

    @property
    def fd(self) -> int:
        self._owner._handle()
        return int(lib.bpf_map__fd(self._ptr))

    def new_key(self, **fields: Any) -> Any:
        if self.key_type is None:
            raise TypeError(f"map {self.name} has no key type")
        return ffi.new(self.key_type + " *", fields)

    def new_value(self, **fields: Any) -> Any:
        if self.value_type is None:
            raise TypeError(f"map {self.name} has no value type")
        return ffi.new(self.value_type + " *", fields)

    def _key_buf(self, key: Any) -> Any:
        if isinstance(key, int):
            ctype = {4: "uint32_t *", 8: "uint64_t *"}.get(self.key_size)
            if ctype is None:
                raise TypeError(
                    f"key: map {self.name} has {self.key_size}-byte keys; int keys need 4 or 8"
                )
            return ffi.new(ctype, key)
        if isinstance(key, (bytes, bytearray, memoryview)):
            if len(key) != self.key_size:
                raise ValueError(
                    f"key: {len(key)} bytes for map {self.name} with {self.key_size}-byte keys"
                )
            return ffi.from_buffer(key)
        return key  # cdata of the key type

    def _value_out(self) -> Any:
        if self.value_type is not None:
            return ffi.new(f"{self.value_type}[]", self.ncpus)
        return ffi.new("char[]", self.value_size * self.ncpus)

    def _unpack(self, buf: Any) -> Any:
        if self.value_type is not None:
            # Copies that own their memory, each a pointer to one value.
            values = []
            for i in range(self.ncpus):
                one = ffi.new(self.value_type + " *")
                ffi.memmove(one, buf + i, self.value_size)
                values.append(one)
        else:
            raw = ffi.buffer(buf)[:]
            values = [
                raw[i * self.value_size : (i + 1) * self.value_size] for i in range(self.ncpus)
            ]
        return values if self.percpu else values[0]

    def lookup(self, key: Any) -> Any:
        """The value for ``key`` (a list per CPU for per-CPU maps), or None."""
        out = self._value_out()
        ret = lib.bpf_map__lookup_elem(
            self._ptr, self._key_buf(key), self.key_size, out, self.value_size * self.ncpus, 0
        )
        if ret == -errno.ENOENT:
            return None
        raise_for_errno(ret, f"looking up a key in map {self.name}", default=MapError)
        return self._unpack(out)

    def update(self, key: Any, value: Any, *, flags: int = 0) -> None:
        """Insert or replace (``flags``: 0 any, 1 BPF_NOEXIST, 2 BPF_EXIST)."""
        if isinstance(value, (bytes, bytearray, memoryview)):
            buf, size = ffi.from_buffer(value), len(value)
        else:
            ctype = ffi.typeof(value)  # a pointer to one value, or an array of them
            buf = value
            size = ffi.sizeof(ctype.item) if ctype.kind == "pointer" else ffi.sizeof(value)
        if size != self.value_size * self.ncpus:
            raise ValueError(
                f"value: {size} bytes for map {self.name} expecting {self.value_size * self.ncpus}"
            )
        ret = lib.bpf_map__update_elem(
            self._ptr, self._key_buf(key), self.key_size, buf, size, flags
        )
        if ret == -errno.E2BIG or ret == -errno.ENOSPC:
            raise MapError(
                -ret, f"adding to map {self.name}", f"it holds at most {self.max_entries} entries"
            )
        raise_for_errno(ret, f"updating map {self.name}", default=MapError)

    def delete(self, key: Any) -> bool:
        """Remove ``key``; False if it was not there."""
        ret = lib.bpf_map__delete_elem(self._ptr, self._key_buf(key), self.key_size, 0)
        if ret == -errno.ENOENT:
            return False
        raise_for_errno(ret, f"deleting from map {self.name}", default=MapError)
        return True

    def keys(self) -> Iterator[Any]:
        ctype = f"{self.key_type} *" if self.key_type else f"char[{self.key_size}]"
        cur: Any = ffi.NULL
        while True:
            nxt = ffi.new(ctype)
            ret = lib.bpf_map__get_next_key(self._ptr, cur, nxt, self.key_size)
            if ret == -errno.ENOENT:
                return
            raise_for_errno(ret, f"iterating map {self.name}", default=MapError)
            yield nxt if self.key_type else ffi.buffer(nxt)[:]
            cur = nxt

    def __iter__(self) -> Iterator[Any]:
        return self.keys()

    def items(self) -> Iterator[tuple[Any, Any]]:
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:  # removed while we walked
                yield key, value
