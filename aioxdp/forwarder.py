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

Rules name IPv4 or IPv6 addresses; a rule on neither addresses nor ICMP
takes both families (``family`` narrows it). ICMPv6 neighbour, router and
multicast listener messages go to the kernel unless a rule names their type,
since the link depends on them.

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
    "icmpv6": socket.IPPROTO_ICMPV6,
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
ICMP6_ECHO_REQUEST = 128
ICMP6_ECHO_REPLY = 129
# unreachable, packet too big, time exceeded, parameter problem (RFC 4443)
ICMP6_ERRORS = (1, 2, 3, 4)
ICMP6_TYPES_WITH_ID = frozenset((ICMP6_ECHO_REQUEST, ICMP6_ECHO_REPLY, *ICMP6_ERRORS))
# MLD, router and neighbour discovery, redirect, MLDv2 reports: the kernel's
# unless a rule names the type
ICMP6_LINK_TYPES = frozenset((*range(130, 138), 143))
FAMILIES = (4, 6)


class Action(enum.IntEnum):
    """What the forwarder does with a packet that matches a rule."""

    REDIRECT = lib.AIOXDP_FW_REDIRECT  # to the XSK of the packet's RX queue
    PASS = lib.AIOXDP_FW_PASS  # to the kernel
    DROP = lib.AIOXDP_FW_DROP


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(value: str | None, name: str) -> Network | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name}: an address or prefix as a string, got {value!r}")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(
            f"{name}: not an IPv4 or IPv6 address or prefix: {value!r} ({exc})"
        ) from None


def _port(value: int | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"{name}: must be a port number 1..65535, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Rule:
    """Which packets to take, and what to do with them.

    ``proto`` is ``"icmp"``, ``"icmpv6"``, ``"udp"``, ``"tcp"``, ``"arp"``
    or an IP protocol number; ``src``/``dst`` an IPv4 or IPv6 address or
    prefix (``"198.18.0.0/24"``, ``"2001:2::/64"``; both of one family; for
    ARP the sender and target addresses); ports only with udp/tcp;
    ``icmp_type`` and ``icmp_id`` only with icmp or icmpv6, and ``icmp_id``
    only for echo request or reply (ICMP 8 and 0, ICMPv6 128 and 129), or
    for an error (ICMP 3, 11 and 12, ICMPv6 1 to 4), where it is the id of
    the echo request the error quotes; ``arp_op`` (1 request, 2 reply) only
    with arp; ``vlan`` (1..4094) to take frames tagged with that VLAN id
    instead of untagged ones; ``fragments=True`` to take only fragments (the
    first one too: none has a whole transport header), so it names no ports
    nor ICMP fields. ``family`` (4 or 6) is implied by the addresses, by
    icmp (4), icmpv6 (6) and arp (4); a rule that implies none takes both.
    ICMPv6 neighbour, router and listener messages (types 130 to 137 and
    143) match only a rule that names their type.
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
    family: int | None = None
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
        self._check_family(number)
        _port(self.src_port, "src_port")
        _port(self.dst_port, "dst_port")
        has_ports = self.src_port is not None or self.dst_port is not None
        if has_ports and number not in (socket.IPPROTO_TCP, socket.IPPROTO_UDP):
            raise ValueError(
                f"src_port/dst_port: only udp and tcp have ports, not proto {self.proto!r}"
            )
        has_icmp = self.icmp_type is not None or self.icmp_id is not None
        if has_icmp and number not in (socket.IPPROTO_ICMP, socket.IPPROTO_ICMPV6):
            raise ValueError(
                f"icmp_type/icmp_id: only with proto 'icmp' or 'icmpv6', not {self.proto!r}"
            )
        if self.icmp_type is not None and not _is_int(self.icmp_type, 0, 255):
            raise ValueError(f"icmp_type: must be 0..255, got {self.icmp_type!r}")
        if self.icmp_id is not None:
            if not _is_int(self.icmp_id, 0, 0xFFFF):
                raise ValueError(f"icmp_id: must be 0..65535, got {self.icmp_id!r}")
            with_id = ICMP6_TYPES_WITH_ID if number == socket.IPPROTO_ICMPV6 else ICMP_TYPES_WITH_ID
            if self.icmp_type not in with_id:
                raise ValueError(
                    "icmp_id: only echo messages carry an id (or quote one, in an error); "
                    f"set icmp_type to one of {sorted(with_id)}, not {self.icmp_type!r}"
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

    def _check_family(self, number: int) -> None:
        if self.family is not None and self.family not in FAMILIES:
            raise ValueError(f"family: 4 or 6, got {self.family!r}")
        implied: dict[str, int] = {}
        for name in ("src", "dst"):
            net = _network(getattr(self, name), name)
            if net is not None:
                implied[name] = net.version
        if number in (socket.IPPROTO_ICMP, ARP):
            implied["proto"] = 4
        elif number == socket.IPPROTO_ICMPV6:
            implied["proto"] = 6
        if self.family is not None:
            implied["family"] = self.family
        if len(set(implied.values())) > 1:
            said = ", ".join(f"{name} is IPv{version}" for name, version in implied.items())
            raise ValueError(f"family: a rule is for one address family, but {said}")

    @property
    def proto_number(self) -> int:
        return self._proto_number

    @property
    def address_family(self) -> int | None:
        """4 or 6 as the rule names or implies it; None: it takes both."""
        if self.family is not None:
            return self.family
        for value in (self.src, self.dst):
            if value is not None:
                return ipaddress.ip_network(value).version
        if self._proto_number in (socket.IPPROTO_ICMP, ARP):
            return 4
        return 6 if self._proto_number == socket.IPPROTO_ICMPV6 else None

    def key_and_mask(self) -> tuple[bytes, bytes]:
        """The rule as (masked key, mask): 48 bytes each, network order."""
        key = ffi.new("struct aioxdp_fw_key *")
        mask = ffi.new("struct aioxdp_fw_key *")
        key.proto, mask.proto = self._proto_number, 0xFF
        # the ARP flag tells ARP frames from IPv4 ones; the VLAN flag and id
        # keep tagged frames from every rule that does not name their VLAN;
        # the link flag keeps neighbour discovery from rules that do not name it
        mask.flags |= lib.AIOXDP_FW_KEY_ARP | lib.AIOXDP_FW_KEY_VLAN | lib.AIOXDP_FW_KEY_LINK
        mask.vlan = 0xFFFF
        family = self.address_family
        if family is not None:
            mask.flags |= lib.AIOXDP_FW_KEY_IPV6
            if family == 6:
                key.flags |= lib.AIOXDP_FW_KEY_IPV6
        if self._proto_number == socket.IPPROTO_ICMPV6 and self.icmp_type in ICMP6_LINK_TYPES:
            key.flags |= lib.AIOXDP_FW_KEY_LINK
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
                # network-order bytes: IPv4 in the first word, IPv6 in all four
                where = ffi.cast("uint8_t *", ffi.addressof(key, field_name))
                ffi.memmove(where, net.network_address.packed, net.max_prefixlen // 8)
                where = ffi.cast("uint8_t *", ffi.addressof(mask, field_name))
                ffi.memmove(where, net.netmask.packed, net.max_prefixlen // 8)
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
            "family",
        ):
            value = getattr(self, name)
            if value is not None and value is not False:
                parts.append(f"{name}={value}")
        return " ".join(parts) + f" -> {self.action.name}"


def _ne16(value: int) -> int:
    return int.from_bytes(value.to_bytes(2, "big"), "little")


def _is_int(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


@dataclass(frozen=True, slots=True)
class Verdicts:
    """The forwarder's verdict counters, summed over CPUs."""

    redirected: int  # to an XSK
    passed: int  # matched a PASS rule
    dropped: int  # matched a DROP rule
    unmatched: int  # IPv4, IPv6 or ARP, no rule: to the kernel
    not_ip: int  # neither IPv4, IPv6 nor ARP for IPv4: to the kernel
    malformed: int  # bad or truncated headers: to the kernel
    fragments: int  # fragments no rule took: to the kernel
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
            # most bits first (at most 320 of them: 9 bits); of equals, the
            # earlier rule (order wraps after 2**23 adds)
            priority = _bits(mask) << 23 | (0x7FFFFF - next(self._installed) % 0x800000)
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


SLOT_OFFSET = ffi.offsetof("struct aioxdp_fw_key", "pad")


def _in_slot(key: bytes, slot: int) -> bytes:
    # the classifier writes the mask's slot into pad[0] of the masked key
    return key[:SLOT_OFFSET] + bytes([slot]) + key[SLOT_OFFSET + 1 :]


def _bits(mask: bytes) -> int:
    return sum(bin(b).count("1") for b in mask)
