"""pytest plugin (entry point ``pytest11``): lab fixtures, and every async
test run once per event loop, asyncio's and uvloop's.

Fixtures:

``lab``
    A fresh :class:`~aioxdp.testing.Lab`, removed after the test.
``loop_name``
    ``"asyncio"`` or ``"uvloop"``: which loop the current async test runs on.
``xdp_leak_check``
    Fails the test if an AF_XDP socket it opened is left open or closed with
    frames out of the pool, or a lab it made is left (make it autouse in a
    conftest.py: ``pytestmark`` or a fixture that requests it).

Loops come from pytest-asyncio's ``pytest_asyncio_loop_factories`` hook; a
test narrows them with ``@pytest.mark.asyncio(loop_factories=["asyncio"])``.
The ini option ``aioxdp_loops`` (default ``asyncio uvloop``) narrows them
for a whole suite.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping

import pytest
import pytest_asyncio

from aioxdp.testing.lab import Lab
from aioxdp.testing.leaks import LeakTracker

LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
}
try:
    import uvloop

    LOOP_FACTORIES["uvloop"] = uvloop.new_event_loop
except ImportError:  # pragma: no cover - uvloop is a test dependency
    pass


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "aioxdp_loops",
        "event loops every async test runs on (names: asyncio, uvloop)",
        type="args",
        default=["asyncio", "uvloop"],
    )


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    wanted = config.getini("aioxdp_loops")
    unknown = [name for name in wanted if name not in LOOP_FACTORIES]
    if unknown:
        raise pytest.UsageError(
            f"aioxdp_loops: unknown or unavailable loop(s) {unknown}; have {sorted(LOOP_FACTORIES)}"
        )
    return {name: LOOP_FACTORIES[name] for name in wanted}


@pytest.fixture
def xdp_leak_check() -> Iterator[LeakTracker]:
    tracker = LeakTracker()
    tracker.start()
    yield tracker
    report = tracker.finish()
    if report.problems:
        pytest.fail(
            "leaked by this test: " + "; ".join(report.problems) + f" (checked: {report.checked})",
            pytrace=False,
        )


@pytest.fixture
def lab() -> Iterator[Lab]:
    """Two hosts in fresh namespaces joined by veth; removed afterwards."""
    with Lab() as made:
        yield made


@pytest_asyncio.fixture
async def loop_name() -> str:
    """The event loop of the running async test: "asyncio" or "uvloop"."""
    loop = asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
