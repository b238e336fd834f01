"""The pytest plugin is found through its ``pytest11`` entry point and gives the fixture."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

pytest_plugins = ["pytester"]


def test_the_plugin_is_registered_as_a_pytest11_entry_point():
    found = (
        entry_points().select(group="pytest11")
        if hasattr(entry_points(), "select")
        else (entry_points().get("pytest11", []))
    )
    assert "statefun_core.testing.pytest_plugin" in [entry.value for entry in found]


def test_the_statefun_harness_fixture_makes_a_harness(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        from statefun_core import IntType, StatefulFunctions, ValueSpec

        functions = StatefulFunctions()

        @functions.bind("example/counter", specs=[ValueSpec("count", IntType)])
        def counter(context, message):
            context.storage.count = (context.storage.count or 0) + message.as_int()

        def test_counts(statefun_harness):
            harness = statefun_harness(functions, start_ms=5)
            harness.send("example/counter", "a", int_value=2).run()
            harness.assert_state("example/counter", "a", count=2)
            assert harness.now_ms == 5

        def test_fails_readably(statefun_harness):
            harness = statefun_harness(functions)
            harness.send("example/counter", "a", int_value=2).run()
            harness.assert_state("example/counter", "a", count=3)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*state of example/counter/a: expected {'count': 3}*"])
    # the failure points at the test's line, not inside the harness
    result.stdout.fnmatch_lines(['>*harness.assert_state("example/counter", "a", count=3)'])
    assert "statefun_core/testing/harness.py" not in result.stdout.str()
