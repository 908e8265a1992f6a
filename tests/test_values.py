"""Values and arguments checked without a lab: statistics against hand-computed
numbers, and every misuse of the configuration objects named."""

from __future__ import annotations

import array
import dataclasses
import math
import pickle
from typing import Any

import pytest

import aioxdp
from aioxdp import Interface, PingResult, Rule, UmemConfig


def test_rtt_statistics_against_hand_computed_values() -> None:
    # rtts 1, 2, 4 ms: mean 7/3 ms; iputils' mdev = sqrt(mean(x^2) - mean^2)
    #   mean(x^2) = (1 + 4 + 16) / 3 = 7 ms^2; 7 - 49/9 = 14/9; sqrt = 1.247219... ms
    result = PingResult("h", "198.18.0.2", sent=4, received=3, rtts=[0.001, 0.002, 0.004])
    assert result.min == pytest.approx(0.001)
    assert result.max == pytest.approx(0.004)
    assert result.avg == pytest.approx(0.0023333333)
    assert result.mdev == pytest.approx(0.0012472191)
    assert result.loss == pytest.approx(0.25)
    empty = PingResult("h", "198.18.0.2", sent=2, received=0, rtts=[])
    assert math.isnan(empty.avg)
    assert empty.loss == 1.0


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"nframes": 1000}, "nframes"),
        ({"nframes": 8}, "nframes"),
        ({"frame_size": 1024}, "frame_size"),
        ({"frame_size": 3000}, "frame_size"),
        ({"fill_size": 0}, "fill_size"),
        ({"tx_size": 3}, "tx_size"),
        ({"rx_size": 1 << 17}, "rx_size"),
        ({"comp_size": "64"}, "comp_size"),
    ],
)
def test_umem_config_names_the_bad_field(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=rf"^{named}: must be a power of two"):
        UmemConfig(**kwargs)  # type: ignore[arg-type]


def test_the_receive_batch_is_256_frames_unless_the_rings_are_small() -> None:
    # a quarter of the smaller of the fill and RX rings at most: a batch
    # being delivered holds its frames out of the fill ring
    assert UmemConfig().batch_size == 256
    assert UmemConfig(fill_size=256, rx_size=256).batch_size == 64
    assert UmemConfig(fill_size=4096, rx_size=512).batch_size == 128
    assert UmemConfig(fill_size=8, rx_size=8).batch_size == 2
    assert Interface("veth-a").batch_size == 256
    assert Interface("veth-a", config=UmemConfig(rx_size=128)).batch_size == 32
    assert Interface("veth-a", batch_size=16).batch_size == 16
    with pytest.raises(TypeError, match=r"^config: expected a UmemConfig, got dict"):
        Interface("veth-a", config={"rx_size": 128})  # type: ignore[arg-type]
    # refused when made, before anything is attached
    for bad in (0, 4097, True, 2.5, "8"):
        with pytest.raises(ValueError, match=r"^batch_size: must be 1\.\.4096, got "):
            Interface("veth-a", batch_size=bad)  # type: ignore[arg-type]


def test_busy_poll_is_refused_by_name_and_a_refused_value_changes_nothing() -> None:
    assert Interface("veth-a").busy_poll == 0.0
    assert Interface("veth-a", busy_poll=1e-4).busy_poll == 1e-4
    assert Interface("veth-a", busy_poll=0).busy_poll == 0.0
    for bad in (-1e-6, 0.0101, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"^busy_poll: must be 0\.\.0\.01 seconds, got "):
            Interface("veth-a", busy_poll=bad)
    for wrong in (True, "0.001", None, [1e-4]):
        with pytest.raises(TypeError, match=r"^busy_poll: expected seconds \(a number\), got "):
            Interface("veth-a", busy_poll=wrong)  # type: ignore[arg-type]
    nic = Interface("veth-a", busy_poll=2e-4)
    for bad_value in (-1, 1.0, False, "x"):
        with pytest.raises((TypeError, ValueError), match=r"^busy_poll: "):
            nic.busy_poll = bad_value  # type: ignore[assignment]
        assert nic.busy_poll == 2e-4


def test_interface_and_rule_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="mode: must be 'auto', 'native' or 'generic'"):
        Interface("veth-a", mode="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"vlan: must be a VLAN id 1\.\.4094"):
        Rule("udp", vlan=4095)
    with pytest.raises(ValueError, match=r"vlan: must be a VLAN id 1\.\.4094"):
        Rule("udp", vlan=True)
    assert Rule("udp", dst_port=53, vlan=7).vlan == 7
    assert "vlan=7" in str(Rule("udp", dst_port=53, vlan=7))


def test_every_public_name_exists() -> None:
    for name in aioxdp.__all__:
        assert getattr(aioxdp, name) is not None, name


def test_a_resolved_route_keeps_every_field_and_takes_the_mac() -> None:
    from aioxdp.route import ResolvedRoute, Route

    route = Route("198.19.0.9", "veth-a", 7, "198.18.0.1", b"\x02" * 6, "198.18.0.2", None, 1500)
    resolved = route.resolved(b"\x0a" * 6)
    assert isinstance(resolved, ResolvedRoute)
    assert resolved == ResolvedRoute(
        destination="198.19.0.9",
        ifname="veth-a",
        ifindex=7,
        source="198.18.0.1",
        source_mac=b"\x02" * 6,
        next_hop="198.18.0.2",
        next_hop_mac=b"\x0a" * 6,
        mtu=1500,
    )
    assert resolved.resolved() is resolved
    with pytest.raises(ValueError, match="not known yet"):
        route.resolved()


def _route(destination: str, next_hop: str = "198.18.0.2", mac: bytes | None = None) -> Any:
    from aioxdp.route import Route

    return Route(destination, "veth-a", 7, "198.18.0.1", b"\x02" * 6, next_hop, mac, 1500)


def test_a_route_set_shares_one_path_per_next_hop_and_gives_back_every_route() -> None:
    from aioxdp.route import ResolvedRoute, RouteSet

    routes = [_route(f"198.19.{i // 256}.{i % 256}") for i in range(1000)]
    routes += [_route("198.18.0.7", next_hop="198.18.0.7"), _route("198.18.0.8", "198.18.0.8")]
    table = RouteSet.of(routes)
    assert len(table) == 1002
    assert len(table.paths) == 3  # the gateway, and each on-link host
    assert list(table) == routes  # every field, in order, for every host
    assert table[-1] == routes[-1]
    assert table[5:8] == routes[5:8]
    assert table.destination(1000) == "198.18.0.7"
    with pytest.raises(IndexError):
        table[1002]
    picked = table.select([1001, 3, 1000])
    assert list(picked) == [routes[1001], routes[3], routes[1000]]
    assert len(picked.paths) == 3
    resolved = picked.with_paths([p.resolved(b"\x0b" * 6) for p in picked.paths])
    assert all(isinstance(r, ResolvedRoute) and r.next_hop_mac == b"\x0b" * 6 for r in resolved)
    assert [r.destination for r in resolved] == ["198.18.0.8", "198.19.0.3", "198.18.0.7"]


@pytest.mark.parametrize(
    ("destinations", "path_of", "named"),
    [(b"\x01" * 7, [0, 0], "destinations"), (b"\x01" * 8, [0, 1], "path_of")],
)
def test_a_route_set_refuses_what_does_not_add_up(
    destinations: bytes, path_of: list[int], named: str
) -> None:
    from aioxdp.route import RouteSet

    with pytest.raises(ValueError, match=named):
        RouteSet(destinations, array.array("I", path_of), [_route("198.19.0.1")])
    with pytest.raises(ValueError, match="paths"):
        RouteSet.of([_route("198.19.0.1")]).with_paths([])


def test_ping_result_fields_are_in_the_order_the_session_builds_them() -> None:
    # echo.py builds a PingResult per host positionally (it is the hot loop
    # of reading 65 000 results): this is the order it assumes
    assert [f.name for f in dataclasses.fields(aioxdp.PingResult)] == [
        "host",
        "address",
        "sent",
        "received",
        "rtts",
        "duplicates",
        "late",
        "foreign",
        "malformed",
        "elapsed",
        "open",
        "error",
        "errors",
        "span",
        "pipe",
        "kernel_drops",
        "_seqs",
        "_ttls",
        "_sizes",
    ]


def test_ping_results_read_like_a_list_and_name_misuse() -> None:
    made: list[int] = []

    def make(i: int) -> aioxdp.PingResult:
        made.append(i)
        return aioxdp.PingResult(f"h{i}", f"198.19.0.{i}", 3, i % 4, [0.001] * (i % 4))

    results = aioxdp.PingResults(5, make)
    assert made == []  # nothing is made until it is read
    assert len(results) == 5
    assert results[0].host == "h0"
    assert results[-1].host == "h4"
    assert [r.host for r in results] == ["h0", "h1", "h2", "h3", "h4"]
    assert results[1:4] == [make(1), make(2), make(3)]
    assert results == [make(i) for i in range(5)]
    assert results != [make(0)]
    assert results.count(make(2)) == 1
    assert results.index(make(3)) == 3
    assert pickle.loads(pickle.dumps(results[2])) == results[2]
    for bad in (5, -6):
        with pytest.raises(IndexError, match="out of range for 5 hosts"):
            results[bad]
    with pytest.raises(TypeError, match="int or slice"):
        results["0"]  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="count of results"):
        aioxdp.PingResults(-1, make)
    with pytest.raises(TypeError):
        hash(results)


def test_echo_target_words_are_the_c_struct_field_by_field() -> None:
    from aioxdp._libs import ffi
    from aioxdp.echo import TARGET_WORDS

    assert ffi.sizeof("struct aioxdp_echo_target") == 4 * len(TARGET_WORDS)
    for name, word in TARGET_WORDS.items():
        assert ffi.offsetof("struct aioxdp_echo_target", name) == 4 * word, name
        assert ffi.sizeof(ffi.typeof("struct aioxdp_echo_target").fields[word][1].type) == 4
