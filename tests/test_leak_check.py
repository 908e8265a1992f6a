"""The leak check that runs after every test (aioxdp.testing.plugin's
xdp_leak_check) catches what it should: it is run here on inner tests that
leak on purpose."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

LEAKY = """
import pytest
from aioxdp import UmemConfig
from aioxdp.testing import Lab
from aioxdp.xsk import XSK

leaked = []

@pytest.fixture(autouse=True)
def _check(xdp_leak_check):
    pass

def test_socket_left_open():
    with Lab() as lab, lab.a.enter():
        leaked.append(XSK(lab.a.ifname))  # never closed

def test_closed_cleanly():
    with Lab() as lab, lab.a.enter():
        XSK(lab.a.ifname).close()

def test_frame_out_of_the_pool_at_close():
    with Lab() as lab, lab.a.enter():
        xsk = XSK(lab.a.ifname)
        from aioxdp._libs import ffi, lib
        lib.aioxdp_xsk_alloc(xsk._handle(), ffi.new("uint64_t[]", 1), 1)  # never sent or freed
        xsk.close()

def test_lab_left_open():
    Lab().open()
"""


def test_the_leak_check_fails_what_leaks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=LEAKY)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-p", "no:randomly")
    outcomes = result.parseoutcomes()
    # each inner test passes; the three that leak then fail at teardown
    assert outcomes.get("passed") == 4, result.stdout.str()
    assert outcomes.get("errors", outcomes.get("error", 0)) == 3, result.stdout.str()
    text = result.stdout.str()
    assert "AF_XDP socket on veth-a queue 0 was left open" in text
    assert "1 frames out of the pool" in text
    assert "was left open" in text
    assert "checked: ['veth-a queue 0']" in text
