"""TCP headers (RFC 9293) with the options a SYN carries: MSS, window scale,
SACK-permitted and timestamps. Unknown options are kept as raw bytes."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from aioxdp.protocols.checksum import transport_checksum, transport_verifies
from aioxdp.protocols.errors import BadChecksumError, BadFieldError, need

HEADER_LEN = 20
IPPROTO_TCP = 6
FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

OPT_END, OPT_NOP, OPT_MSS, OPT_WSCALE, OPT_SACK_PERMITTED, OPT_TIMESTAMPS = 0, 1, 2, 3, 4, 8
_OPTION_LEN = {OPT_MSS: 4, OPT_WSCALE: 3, OPT_SACK_PERMITTED: 2, OPT_TIMESTAMPS: 10}


@dataclass(frozen=True, slots=True)
class TcpOptions:
    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    timestamps: tuple[int, int] | None = None  # (TSval, TSecr)
    other: tuple[tuple[int, bytes], ...] = ()

    def build(self) -> bytes:
        out = bytearray()
        if self.mss is not None:
            out += struct.pack("!BBH", OPT_MSS, 4, self.mss)
        if self.sack_permitted:
            out += bytes([OPT_SACK_PERMITTED, 2])
        if self.timestamps is not None:
            out += struct.pack("!BBII", OPT_TIMESTAMPS, 10, *self.timestamps)
        if self.wscale is not None:
            out += bytes([OPT_NOP, OPT_WSCALE, 3, self.wscale])
        for kind, data in self.other:
            out += bytes([kind, len(data) + 2]) + data
        out += bytes(-len(out) % 4)  # END padding
        if len(out) > 40:
            raise ValueError(f"options: {len(out)} bytes exceed TCP's 40")
        return bytes(out)

    @classmethod
    def parse(cls, raw: bytes) -> TcpOptions:
        mss = wscale = None
        sack = False
        ts = None
        other: list[tuple[int, bytes]] = []
        i = 0
        while i < len(raw):
            kind = raw[i]
            if kind == OPT_END:
                break
            if kind == OPT_NOP:
                i += 1
                continue
            if i + 1 >= len(raw):
                raise BadFieldError("tcp", f"option {kind} truncated before its length")
            length = raw[i + 1]
            if length < 2 or i + length > len(raw):
                raise BadFieldError("tcp", f"option {kind} length {length} runs past the options")
            expected = _OPTION_LEN.get(kind)
            if expected is not None and length != expected:
                raise BadFieldError("tcp", f"option {kind} has length {length}, not {expected}")
            body = raw[i + 2 : i + length]
            if kind == OPT_MSS:
                (mss,) = struct.unpack("!H", body)
            elif kind == OPT_WSCALE:
                wscale = body[0]
            elif kind == OPT_SACK_PERMITTED:
                sack = True
            elif kind == OPT_TIMESTAMPS:
                ts = struct.unpack("!II", body)
            else:
                other.append((kind, bytes(body)))
            i += length
        return cls(mss, wscale, sack, ts, tuple(other))


@dataclass(frozen=True, slots=True)
class Tcp:
    sport: int
    dport: int
    seq: int = 0
    ack: int = 0
    flags: int = 0
    window: int = 65535
    urgent: int = 0
    options: TcpOptions = field(default_factory=TcpOptions)
    checksum: int = 0
    header_len: int = HEADER_LEN

    def build_into(
        self,
        buf: bytearray | memoryview,
        offset: int,
        payload: bytes | bytearray | memoryview,
        src: bytes,
        dst: bytes,
    ) -> int:
        opts = self.options.build()
        hlen = HEADER_LEN + len(opts)
        length = hlen + len(payload)
        struct.pack_into(
            "!HHIIBBHHH",
            buf,
            offset,
            self.sport,
            self.dport,
            self.seq & 0xFFFFFFFF,
            self.ack & 0xFFFFFFFF,
            (hlen // 4) << 4,
            self.flags,
            self.window,
            0,
            self.urgent,
        )
        buf[offset + HEADER_LEN : offset + hlen] = opts
        buf[offset + hlen : offset + length] = payload
        csum = transport_checksum(memoryview(buf)[offset : offset + length], src, dst, IPPROTO_TCP)
        struct.pack_into("!H", buf, offset + 16, csum)
        return length

    @classmethod
    def parse(
        cls,
        buf: bytes | bytearray | memoryview,
        offset: int = 0,
        end: int | None = None,
        *,
        src: bytes | None = None,
        dst: bytes | None = None,
    ) -> Tcp:
        end = len(buf) if end is None else end
        need(buf, offset, HEADER_LEN, "tcp", "header")
        sport, dport, seq, ack, off, flags, window, csum, urgent = struct.unpack_from(
            "!HHIIBBHHH", buf, offset
        )
        hlen = (off >> 4) * 4
        if hlen < HEADER_LEN:
            raise BadFieldError("tcp", f"data offset {hlen} below 20")
        if offset + hlen > end:
            raise BadFieldError(
                "tcp", f"header of {hlen} bytes runs past the {end - offset}-byte segment"
            )
        segment = memoryview(buf)[offset:end]
        if (
            src is not None
            and dst is not None
            and not transport_verifies(segment, src, dst, IPPROTO_TCP)
        ):
            raise BadChecksumError("tcp", f"checksum {csum:#06x} does not verify")
        options = TcpOptions.parse(bytes(buf[offset + HEADER_LEN : offset + hlen]))
        return cls(sport, dport, seq, ack, flags, window, urgent, options, csum, hlen)
