"""The pytest plugin: async tests run on both loops; the lab fixture cleans up."""

from __future__ import annotations

import subprocess

import pytest

pytest_plugins = ["pytester"]


def test_every_async_test_runs_on_asyncio_and_uvloop(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(
        """
        import asyncio

        async def test_loop(loop_name):
            loop = asyncio.get_running_loop()
            assert type(loop).__module__.split(".")[0] == loop_name
            print("ran on", loop_name)
        """
    )
    result = pytester.runpytest_subprocess("-v", "-s")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*test_loop?asyncio? ran on asyncio", "*test_loop?uvloop? ran on uvloop"]
    )


def test_ini_option_narrows_the_loops(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = auto\naioxdp_loops = uvloop\n")
    pytester.makepyfile("async def test_one(loop_name):\n    assert loop_name == 'uvloop'\n")
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_lab_fixture_builds_and_removes_a_lab(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_it(lab):
            print("NS", lab.a.netns, lab.b.netns)
            assert lab.b.run("ping", "-c1", "-W2", lab.a.ip).returncode == 0
        """
    )
    result = pytester.runpytest_subprocess("-s")
    result.assert_outcomes(passed=1)
    (line,) = [ln for ln in result.outlines if "NS aioxdp-" in ln]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for name in line.split("NS ")[1].split()[:2]:
        assert name not in listed
