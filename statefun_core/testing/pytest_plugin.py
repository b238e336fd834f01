"""The pytest plugin (entry point ``pytest11: statefun``): harness fixtures, and the output of
the servers :func:`statefun_core.testing.endpoint.running` serves, in the report of a test that
fails while they run.

``statefun_harness`` is a factory: ``statefun_harness(functions, **options)`` returns a
:class:`~statefun_core.testing.Harness` (options as its constructor's)::

    def test_greets(statefun_harness):
        harness = statefun_harness(functions)
        harness.send("example/greeter", "ann", str_value="Ann").run()
        harness.assert_egress("example/greets", key="ann")

pytest imports this module in every run where the package is installed, in projects that
never use it too: the SDK is imported by the fixtures, when a test asks for one.
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

# pytest is not a dependency of the core: the type checker may run without it.
import pytest  # type: ignore[import-not-found, unused-ignore]

if TYPE_CHECKING:
    from .harness import HarnessFactory

__all__ = ["statefun_harness"]


@pytest.fixture  # type: ignore[untyped-decorator, misc, unused-ignore]
def statefun_harness() -> HarnessFactory:
    """Make a :class:`~statefun_core.testing.Harness` for a ``StatefulFunctions``: the class."""
    from .harness import Harness

    return Harness


@pytest.hookimpl(hookwrapper=True)  # type: ignore[untyped-decorator, misc, unused-ignore]
def pytest_runtest_makereport(item: Any, call: Any) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    # Only where a test has started a server: this module must not import the SDK.
    endpoint = sys.modules.get("statefun_core.testing.endpoint")
    if report.failed and endpoint is not None:
        for server in endpoint._serving:
            report.sections.append((server.title(), server.output(lines=200)))
