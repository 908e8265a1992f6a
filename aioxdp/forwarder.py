"""Rules, and the forwarder that installs them in the BPF classifier's maps.

A :class:`Rule` names the packets it wants (protocol, and any of addresses or
prefixes, ports, ICMP type and echo id) and what to do with them. The
:class:`Forwarder` turns each rule into a masked key for the rule hash and a
mask for the mask array; users never write masks.

Updates are ordered so that the running program never sees half a change:
a rule is written before the mask that makes it reachable, and a mask is
cleared only after the last rule using it is gone. When rules of different
masks match one packet, the most specific one (the mask with most bits)
wins, and of two equally specific ones the one installed first; the
classifier compares priorities, so slot order does not matter.

Rules see only traffic for this host: once :meth:`Forwarder.set_local_mac`
names the interface's address (``Interface`` does), unicast frames to other
MACs pass to the kernel, as do VLAN-tagged frames unless a rule names their
VLAN.
"""

from __future__ import annotations

import enum
import errno
import ipaddress
import itertools
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from aioxdp._libs import ffi, lib
from aioxdp.bpf import BPFObject, Map
from aioxdp.errors import MapError

__all__ = ["Action", "Forwarder", "Rule", "Verdicts"]

PROTOCOLS = {
    "icmp": socket.IPPROTO_ICMP,
    "tcp": socket.IPPROTO_TCP,
    "udp": socket.IPPROTO_UDP,
    "arp": 0,
}
ARP = 0  # the key's protocol number for ARP frames (with the ARP flag set)
ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
# errors that quote the datagram they answer: a rule names the echo id it quotes
ICMP_ERRORS_QUOTING_ECHO = (3, 11, 12)  # destination unreachable, time exceeded, parameter problem
ICMP_TYPES_WITH_ID = frozenset((ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, *ICMP_ERRORS_QUOTING_ECHO))


class Action(enum.IntEnum):
    """What the forwarder does with a packet that matches a rule."""

    REDIRECT = lib.AIOXDP_FW_REDIRECT  # to the XSK of the packet's RX queue
    PASS = lib.AIOXDP_FW_PASS  # to the kernel
    DROP = lib.AIOXDP_FW_DROP


def _network(value: str | None, name: str) -> ipaddress.IPv4Network | None:
    if value is None:
        return None
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{name}: not an IPv4 address or prefix: {value!r} ({exc})") from None


def _port(value: int | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"{name}: must be a port number 1..65535, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Rule:
    """Which packets to take, and what to do with them.

    ``proto`` is ``"icmp"``, ``"udp"``, ``"tcp"``, ``"arp"`` or an IP
    protocol number; ``src``/``dst`` an IPv4 address or prefix
    (``"198.18.0.0/24"``; for ARP the sender and target addresses); ports
    only with udp/tcp; ``icmp_type`` and ``icmp_id`` only with icmp, and
    ``icmp_id`` only for echo request (8) or reply (0), or for an error
    (destination unreachable 3, time exceeded 11, parameter problem 12),
    where it is the id of the echo request the error quotes; ``arp_op`` (1
    request, 2 reply) only with arp; ``vlan`` (1..4094) to take frames
    tagged with that VLAN id instead of untagged ones; ``fragments=True``
    to take only IPv4 fragments (the first one too: none has a whole
    transport header), so it names no ports nor ICMP fields.
    """

    proto: str | int
    src: str | None = None
    dst: str | None = None
    src_port: int | None = None
    dst_port: int | None = None
    icmp_type: int | None = None
    icmp_id: int | None = None
    action: Action = Action.REDIRECT
    arp_op: int | None = None
    vlan: int | None = None
    fragments: bool = False
    _proto_number: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.proto, str):
            number = PROTOCOLS.get(self.proto.lower())
            if number is None:
                raise ValueError(
                    f"proto: must be one of {sorted(PROTOCOLS)} or 1..255, got {self.proto!r}"
                )
        elif (
            isinstance(self.proto, int)
            and not isinstance(self.proto, bool)
            and 1 <= self.proto <= 255
        ):
            number = self.proto
        else:
            raise ValueError(
                f"proto: must be one of {sorted(PROTOCOLS)} or 1..255, got {self.proto!r}"
            )
        object.__setattr__(self, "_proto_number", number)
        _network(self.src, "src")
        _network(self.dst, "dst")
        _port(self.src_port, "src_port")
        _port(self.dst_port, "dst_port")
        has_ports = self.src_port is not None or self.dst_port is not None
        if has_ports and number not in (socket.IPPROTO_TCP, socket.IPPROTO_UDP):
            raise ValueError(
                f"src_port/dst_port: only udp and tcp have ports, not proto {self.proto!r}"
            )
        has_icmp = self.icmp_type is not None or self.icmp_id is not None
        if has_icmp and number != socket.IPPROTO_ICMP:
            raise ValueError(f"icmp_type/icmp_id: only with proto 'icmp', not {self.proto!r}")
        if self.icmp_type is not None and not 0 <= self.icmp_type <= 255:
            raise ValueError(f"icmp_type: must be 0..255, got {self.icmp_type!r}")
        if self.icmp_id is not None:
            if not 0 <= self.icmp_id <= 0xFFFF:
                raise ValueError(f"icmp_id: must be 0..65535, got {self.icmp_id!r}")
            if self.icmp_type not in ICMP_TYPES_WITH_ID:
                raise ValueError(
                    "icmp_id: only echo messages carry an id (or quote one, in an error); "
                    f"set icmp_type to one of {sorted(ICMP_TYPES_WITH_ID)}, not {self.icmp_type!r}"
                )
        if not isinstance(self.fragments, bool):
            raise ValueError(f"fragments: True or False, got {self.fragments!r}")
        if self.fragments and (has_ports or has_icmp or number == ARP):
            raise ValueError(
                "fragments: a fragment has no whole transport header, so the rule names "
                "only addresses and an IP protocol"
            )
        if self.arp_op is not None and (number != ARP or self.arp_op not in (1, 2)):
            raise ValueError(
                f"arp_op: 1 (request) or 2 (reply), with proto 'arp'; got {self.arp_op!r}"
            )
        if self.vlan is not None and (
            isinstance(self.vlan, bool)
            or not isinstance(self.vlan, int)
            or not 1 <= self.vlan <= 4094
        ):
            raise ValueError(f"vlan: must be a VLAN id 1..4094, got {self.vlan!r}")
        if not isinstance(self.action, Action):
            object.__setattr__(self, "action", Action(self.action))

    @property
    def proto_number(self) -> int:
        return self._proto_number

    def key_and_mask(self) -> tuple[bytes, bytes]:
        """The rule as (masked key, mask): 24 bytes each, network order."""
        key = ffi.new("struct aioxdp_fw_key *")
        mask = ffi.new("struct aioxdp_fw_key *")
        key.proto, mask.proto = self._proto_number, 0xFF
        # the ARP flag tells ARP frames from IPv4 ones; the VLAN flag and id
        # keep tagged frames from every rule that does not name their VLAN
        mask.flags |= lib.AIOXDP_FW_KEY_ARP | lib.AIOXDP_FW_KEY_VLAN
        mask.vlan = 0xFFFF
        if self.vlan is not None:
            key.flags |= lib.AIOXDP_FW_KEY_VLAN
            key.vlan = _ne16(self.vlan)
        if self._proto_number == ARP:
            key.flags |= lib.AIOXDP_FW_KEY_ARP
            if self.arp_op is not None:
                key.sport, mask.sport = _ne16(self.arp_op), 0xFFFF
        for name in ("src", "dst"):
            net = _network(getattr(self, name), name)
            if net is not None:
                field_name = "saddr" if name == "src" else "daddr"
                # struct fields are host integers holding network-order bytes
                setattr(key, field_name, _ne32(int(net.network_address)))
                setattr(mask, field_name, _ne32(int(net.netmask)))
        if self.src_port is not None:
            key.sport, mask.sport = _ne16(self.src_port), 0xFFFF
        if self.dst_port is not None:
            key.dport, mask.dport = _ne16(self.dst_port), 0xFFFF
        if self.icmp_type is not None:
            # type is the first byte on the wire, code the second
            raw = ffi.cast("uint8_t *", ffi.addressof(key, "sport"))
            raw[0] = self.icmp_type
            ffi.cast("uint8_t *", ffi.addressof(mask, "sport"))[0] = 0xFF
        if self.icmp_id is not None:
            key.dport, mask.dport = _ne16(self.icmp_id), 0xFFFF
        if self.src_port or self.dst_port or self.icmp_type is not None:
            # an L4 rule never matches a packet without an L4 header
            mask.flags |= lib.AIOXDP_FW_KEY_NO_L4
        if self.fragments:  # and a fragments rule matches nothing else
            key.flags |= lib.AIOXDP_FW_KEY_NO_L4
            mask.flags |= lib.AIOXDP_FW_KEY_NO_L4
        return bytes(ffi.buffer(key)), bytes(ffi.buffer(mask))

    def __str__(self) -> str:
        parts = [str(self.proto)]
        for name in (
            "src",
            "dst",
            "src_port",
            "dst_port",
            "icmp_type",
            "icmp_id",
            "arp_op",
            "vlan",
            "fragments",
        ):
            value = getattr(self, name)
            if value is not None and value is not False:
                parts.append(f"{name}={value}")
        return " ".join(parts) + f" -> {self.action.name}"


def _ne16(value: int) -> int:
    return int.from_bytes(value.to_bytes(2, "big"), "little")


def _ne32(value: int) -> int:
    return int.from_bytes(value.to_bytes(4, "big"), "little")


@dataclass(frozen=True, slots=True)
class Verdicts:
    """The forwarder's verdict counters, summed over CPUs."""

    redirected: int  # to an XSK
    passed: int  # matched a PASS rule
    dropped: int  # matched a DROP rule
    unmatched: int  # IPv4, no rule: to the kernel
    not_ipv4: int  # to the kernel
    malformed: int  # bad or truncated headers: to the kernel
    fragments: int  # non-first fragments no rule took: to the kernel
    no_socket: int  # REDIRECT rule but no XSK on that queue: to the kernel
    not_local: int  # unicast to another host's MAC: to the kernel
    vlan: int  # VLAN-tagged, no rule names the VLAN: to the kernel
    no_meta: int  # matched a REDIRECT rule but could not be tagged: to the kernel

    @property
    def total(self) -> int:
        return sum(getattr(self, name) for name in self.__slots__)


@dataclass
class _MaskSlot:
    slot: int
    users: int


class Forwarder:
    """The rules of one loaded forwarder object.

    ``add(rule)`` returns the rule's tag (the number redirected packets carry
    to userspace); ``remove(rule)`` takes it out. Thread-safe.
    """

    def __init__(self, obj: BPFObject) -> None:
        self._obj = obj
        self._rules_map: Map = obj.map(
            "aioxdp_fw_rules", key="struct aioxdp_fw_key", value="struct aioxdp_fw_rule"
        )
        self._masks_map: Map = obj.map(
            "aioxdp_fw_masks", key="uint32_t", value="struct aioxdp_fw_key"
        )
        self._counters_map: Map = obj.map("aioxdp_fw_counters", key="uint32_t", value="uint64_t")
        self._config_map: Map = obj.map(
            "aioxdp_fw_config", key="uint32_t", value="struct aioxdp_fw_config"
        )
        self.max_rules = self._rules_map.max_entries
        self.max_masks = self._masks_map.max_entries
        self._rules: dict[Rule, tuple[bytes, bytes, int]] = {}  # rule -> (key, mask, tag)
        self._by_key: dict[bytes, Rule] = {}
        self._masks: dict[bytes, _MaskSlot] = {}
        self._tags = itertools.count(1)
        self._installed = itertools.count()  # orders equally specific rules
        self._lock = threading.Lock()

    @property
    def rules(self) -> list[Rule]:
        with self._lock:
            return list(self._rules)

    def set_local_mac(self, mac: str | bytes | None) -> None:
        """Match only frames to ``mac``, broadcast or multicast (None: any frame)."""
        if isinstance(mac, str):
            try:
                raw = bytes.fromhex(mac.replace(":", ""))
            except ValueError:
                raw = b""
        else:
            raw = b"" if mac is None else bytes(mac)
        if mac is not None and (len(raw) != 6 or raw[0] & 1):
            raise ValueError(f"mac: not a unicast Ethernet address: {mac!r}")
        value = ffi.new("struct aioxdp_fw_config *")
        if mac is not None:
            value.mac = list(raw)
            value.check_mac = 1
        self._config_map.update(0, value)

    def tag(self, rule: Rule) -> int:
        return self._rules[rule][2]

    def add(self, rule: Rule) -> int:
        """Install ``rule``; returns its tag. Raises on a duplicate or a full table."""
        if not isinstance(rule, Rule):
            raise TypeError(f"rule: expected aioxdp.Rule, got {type(rule).__name__}")
        key, mask = rule.key_and_mask()
        with self._lock:
            if rule in self._rules:
                raise ValueError(f"rule: {rule} is already installed")
            slot = self._masks.get(mask)
            clash = self._by_key.get(_in_slot(key, slot.slot)) if slot is not None else None
            if clash is not None:
                raise ValueError(
                    f"rule: {rule} matches exactly the packets of installed rule {clash}"
                )
            if len(self._rules) >= self.max_rules:
                raise MapError(
                    errno.E2BIG,
                    f"adding rule {rule}",
                    f"the forwarder holds at most {self.max_rules} rules",
                )
            if slot is None and len(self._masks) >= self.max_masks:
                raise MapError(
                    errno.E2BIG,
                    f"adding rule {rule}",
                    f"the forwarder holds at most {self.max_masks} distinct masks (combinations of "
                    "fields and prefix lengths); make rules name the same fields",
                )
            if slot is None:
                free = min(set(range(self.max_masks)) - {s.slot for s in self._masks.values()})
                slot = _MaskSlot(free, 0)
            hashed = _in_slot(key, slot.slot)
            tag = next(self._tags)
            # most bits first; of equals, the earlier rule (order wraps after 2**24 adds)
            priority = _bits(mask) << 24 | (0xFFFFFF - next(self._installed) % 0x1000000)
            value = self._rules_map.new_value(
                action=int(rule.action), priority=priority, tag=tag, hits=0
            )
            # rule first: unreachable until its mask is in the mask array
            self._rules_map.update(ffi.from_buffer(hashed), value, flags=1)  # BPF_NOEXIST
            if slot.users == 0:
                try:
                    self._masks_map.update(slot.slot, ffi.from_buffer(mask))
                except MapError:
                    self._rules_map.delete(ffi.from_buffer(hashed))
                    raise
                self._masks[mask] = slot
            slot.users += 1
            self._rules[rule] = (hashed, mask, tag)
            self._by_key[hashed] = rule
            return tag

    def remove(self, rule: Rule) -> None:
        """Uninstall ``rule``; KeyError if it is not installed."""
        with self._lock:
            try:
                key, mask, _tag = self._rules[rule]
            except KeyError:
                raise KeyError(f"rule: {rule} is not installed") from None
            # the map first: if the kernel refuses, Python still says what it holds
            self._rules_map.delete(ffi.from_buffer(key))
            del self._rules[rule]
            del self._by_key[key]
            slot = self._masks[mask]
            slot.users -= 1
            if slot.users == 0:
                # mask last: no packet can reach a rule through it any more
                del self._masks[mask]
                self._masks_map.update(slot.slot, bytes(ffi.sizeof("struct aioxdp_fw_key")))

    def clear(self) -> None:
        for rule in self.rules:
            self.remove(rule)

    def hits(self, rule: Rule) -> int:
        """How many packets ``rule`` has matched."""
        key, _mask, _tag = self._rules[rule]
        value = self._rules_map.lookup(ffi.from_buffer(key))
        return int(value.hits) if value is not None else 0

    @property
    def counters(self) -> Verdicts:
        values = []
        for index in range(lib.AIOXDP_FW_CNT_REDIRECT, lib.AIOXDP_FW_CNT_MAX):
            per_cpu: list[Any] = self._counters_map.lookup(index)
            values.append(sum(int(v[0]) for v in per_cpu))
        return Verdicts(*values)

    def __repr__(self) -> str:
        return f"<Forwarder {len(self._rules)} rules, {len(self._masks)} masks>"


def _in_slot(key: bytes, slot: int) -> bytes:
    # the classifier writes the mask's slot into pad[0] of the masked key
    return key[:14] + bytes([slot]) + key[15:]


def _bits(mask: bytes) -> int:
    return sum(bin(b).count("1") for b in mask)
