"""Values and arguments checked without a lab: statistics against hand-computed
numbers, and every misuse of the configuration objects named."""

from __future__ import annotations

import math

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
