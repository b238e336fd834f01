"""statefun_tornado under a real Tornado server on 127.0.0.1, with real protobuf bytes."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

from statefun_core.testing.endpoint import (
    EDGE_CHECKS,
    ENDPOINT_CHECKS,
    check_expect_continue,
    check_plugin_endpoints,
    check_plugin_endpoints_answer_head,
    check_reply_headers,
    check_request_limit,
    check_tiny_chunks,
    free_port,
    missing_plugins,
    request,
    running,
)

from .server_app import LIMIT

# The plugins' endpoints and reply header: those of the example plugin and
# statefun-prometheus, which the sdist's tests may run without.
MISSING_PLUGINS = missing_plugins()
needs_plugins = pytest.mark.skipif(bool(MISSING_PLUGINS), reason=MISSING_PLUGINS)


def command(port: int) -> list[str]:
    return [sys.executable, "-m", "tests.server_app", str(port)]


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    port = free_port()
    with running(command(port), port, cwd=Path(__file__).parents[1]):
        yield port


@pytest.mark.parametrize("check", ENDPOINT_CHECKS.values(), ids=list(ENDPOINT_CHECKS))
def test_endpoint(port: int, check: Callable[[int, str], None]) -> None:
    check(port, "/statefun")


@pytest.mark.parametrize("check", EDGE_CHECKS.values(), ids=list(EDGE_CHECKS))
def test_edges(port: int, check: Callable[[int, str], None]) -> None:
    check(port, "/statefun")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_over_max_body_size_is_413_and_names_it(port: int, chunked: bool) -> None:
    check_request_limit(port, "/statefun", LIMIT, "max_body_size", chunked=chunked)


def test_a_body_in_tiny_chunks_is_held_once() -> None:
    """An older Tornado (6.1) hands the handler each chunk of a chunked body as it came: kept
    in a list, a bytes object each, a body of 2-byte chunks took some 65 times its size (one
    of 32 MiB, the default limit, over 2 GiB)."""
    if not Path("/proc/self/status").exists():
        pytest.skip("the peak memory of a process is read from Linux's /proc")
    port = free_port()
    with running(
        [*command(port), str(2 * 1024 * 1024)], port, cwd=Path(__file__).parents[1]
    ) as process:
        check_tiny_chunks(port, "/statefun", process.pid)


def test_a_body_over_max_body_size_is_refused_before_100_continue(port: int) -> None:
    check_expect_continue(port, "/statefun", LIMIT)


def test_a_refused_request_says_the_connection_closes(port: int) -> None:
    """Tornado closes the connection after answering before the body was read."""
    for method in ("GET", "TRACE"):
        _, headers, _ = request(port, "/statefun", method=method)
        assert headers.get("Connection") == "close", (method, headers)


@needs_plugins
def test_the_plugins_reply_headers_are_sent(port: int) -> None:
    check_reply_headers(port, "/statefun")


@needs_plugins
def test_the_plugins_endpoints_are_served(port: int) -> None:
    check_plugin_endpoints(port, "")


@needs_plugins
@pytest.mark.parametrize("path", ["/metrics", "/slow-batches"])
def test_the_plugins_endpoints_answer_head_and_name_no_version(port: int, path: str) -> None:
    check_plugin_endpoints_answer_head(port, path, "TornadoServer")


@needs_plugins
def test_metrics_are_gone_when_the_prometheus_plugin_is_disabled() -> None:
    port = free_port()
    env = {**os.environ, "STATEFUN_DISABLED_PLUGINS": "prometheus"}
    with running(command(port), port, cwd=Path(__file__).parents[1], env=env):
        check_plugin_endpoints(port, "", metrics=False)
