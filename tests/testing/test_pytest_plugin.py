"""The pytest plugin is found through its ``pytest11`` entry point and gives the fixture."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import statefun_core

pytest_plugins = ["pytester"]


def test_the_plugin_is_registered_as_a_pytest11_entry_point():
    found = (
        entry_points().select(group="pytest11")
        if hasattr(entry_points(), "select")
        else (entry_points().get("pytest11", []))
    )
    assert "statefun_core.testing.pytest_plugin" in [entry.value for entry in found]


def test_importing_the_plugin_imports_neither_the_sdk_nor_protobuf():
    """pytest imports the plugin in every run where statefun-core is installed, in projects
    that never use it too: the SDK is imported by the fixture, not by the plugin's import."""
    root = str(Path(statefun_core.__file__).parents[1])
    code = (
        f"import json, sys; sys.path.insert(0, {root!r}); "
        "import statefun_core.testing.pytest_plugin; print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    imported = json.loads(done.stdout)
    assert "statefun_core.testing.pytest_plugin" in imported
    sdk = [name for name in imported if name.startswith(("statefun_core.", "google.protobuf"))]
    assert sdk == [
        "statefun_core._lazy",
        "statefun_core.testing",
        "statefun_core.testing.pytest_plugin",
    ]


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


def test_a_test_that_fails_shows_the_output_of_the_servers_running_then(pytester: pytest.Pytester):
    """A module's server outlives its tests: the report of the one that fails shows what the
    server wrote (here http.server's log of the test's own request), and whether it runs."""
    pytester.makepyfile(
        """
        import sys

        import pytest
        from statefun_core.testing.endpoint import free_port, request, running

        @pytest.fixture(scope="module")
        def port():
            port = free_port()
            command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
            with running(command, port):
                yield port

        def test_passes(port):
            request(port, "/asked-by-the-passing-test", method="GET")

        def test_fails(port):
            request(port, "/asked-by-the-failing-test", method="GET")
            assert False, "on purpose"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*output of the server, pid * (running): * -m http.server *",
            '*"GET /asked-by-the-passing-test HTTP/1.1" 404*',
            '*"GET /asked-by-the-failing-test HTTP/1.1" 404*',
        ]
    )


def test_a_server_stopped_is_no_longer_shown(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        import sys

        from statefun_core.testing.endpoint import free_port, running

        def test_fails_after_its_server_stopped():
            port = free_port()
            with running([sys.executable, "-m", "http.server", str(port)], port):
                pass
            assert False, "on purpose"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(failed=1)
    assert "output of the server" not in result.stdout.str()
