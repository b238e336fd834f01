"""The pytest plugin (entry point ``pytest11: statefun``): harness fixtures.

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

from typing import TYPE_CHECKING

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
