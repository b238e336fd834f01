"""statefun_aiohttp under a real aiohttp server on 127.0.0.1, with real protobuf bytes."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

from statefun_core.testing.endpoint import (
    EDGE_CHECKS,
    ENDPOINT_CHECKS,
    check_endpoint,
    check_expect_continue,
    check_plugin_endpoints,
    check_plugin_endpoints_answer_head,
    check_reply_headers,
    check_request_limit,
    free_port,
    missing_plugins,
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
def test_body_over_client_max_size_is_413_and_names_it(port: int, chunked: bool) -> None:
    check_request_limit(port, "/statefun", LIMIT, "client_max_size", chunked=chunked)


@pytest.mark.parametrize("path", ["/statefun", "/mounted/", "/own"])
def test_a_body_over_client_max_size_is_refused_before_100_continue(port: int, path: str) -> None:
    check_expect_continue(port, path, LIMIT)


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [
        ("/statefun", "POST", 413),
        ("/mounted/", "POST", 413),
        ("/own", "POST", 413),
        ("/statefun", "PUT", 405),
        ("/mounted/", "PUT", 405),
    ],
)
def test_an_answer_before_100_continue_ends_the_connection(
    port: int, path: str, method: str, status: int
) -> None:
    """The client sends no body after it: the response says the connection ends (RFC 9110,
    10.1.1), or the client would send its next request on it, which aiohttp, waiting for that
    body, would take for it and never answer."""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {LIMIT + 1}\r\n"
        "Expect: 100-continue\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode())
        stream = sock.makefile("rb")
        assert int(stream.readline().split()[1]) == status
        headers = []
        while line := stream.readline().strip():
            headers.append(line.decode().lower())
        assert "connection: close" in headers, headers


def test_a_mounted_app_names_the_parents_client_max_size(port: int) -> None:
    """create_app's own client_max_size is larger: the parent's is the one in force."""
    check_request_limit(port, "/mounted/", LIMIT, "client_max_size")
    check_endpoint(port, "/mounted/")


@needs_plugins
def test_the_plugins_reply_headers_are_sent(port: int) -> None:
    check_reply_headers(port, "/statefun")


@needs_plugins
def test_the_plugins_endpoints_are_served(port: int) -> None:
    check_plugin_endpoints(port, "")


@needs_plugins
@pytest.mark.parametrize("path", ["/metrics", "/slow-batches"])
def test_the_plugins_endpoints_answer_head_and_name_no_version(port: int, path: str) -> None:
    check_plugin_endpoints_answer_head(port, path, "aiohttp")


@needs_plugins
def test_metrics_are_gone_when_the_prometheus_plugin_is_disabled() -> None:
    port = free_port()
    env = {**os.environ, "STATEFUN_DISABLED_PLUGINS": "prometheus"}
    with running(command(port), port, cwd=Path(__file__).parents[1], env=env):
        check_plugin_endpoints(port, "", metrics=False)
