"""statefun_django served for real on 127.0.0.1: gunicorn (WSGI) and uvicorn (ASGI)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest

from statefun_core.testing import wire
from statefun_core.testing.endpoint import (
    EDGE_CHECKS,
    ENDPOINT_CHECKS,
    GREETER,
    INBOX,
    check_plugin_endpoints,
    check_reply_headers,
    check_request_limit,
    free_port,
    greetings,
    request,
    running,
)

LIMIT = 64 * 1024  # DATA_UPLOAD_MAX_MEMORY_SIZE of the test project
PACKAGE_ROOT = Path(__file__).parents[1]

SERVERS = {"gunicorn-wsgi": "StatefunView", "uvicorn-asgi": "AsyncStatefunView"}


@pytest.fixture(scope="module", params=list(SERVERS))
def server(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def port(server: str) -> Iterator[int]:
    port = free_port()
    if server == "gunicorn-wsgi":
        pytest.importorskip("gunicorn")
        # Two workers with threads: requests run concurrently on one handler per process.
        workers = ["-w", "2", "-k", "gthread", "--threads", "8"]
        app = "tests.project.wsgi:application"
        command = ["gunicorn", "-b", f"127.0.0.1:{port}", *workers, app]
    else:
        pytest.importorskip("uvicorn")
        address = ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        command = ["uvicorn", *address, "tests.project.asgi:application"]
    with running([sys.executable, "-m", *command], port, cwd=PACKAGE_ROOT):
        yield port


def test_the_view_follows_the_server(server: str, port: int) -> None:
    status, _, name = request(port, "/endpoint-view-class/", method="GET")
    assert (status, name.decode()) == (200, SERVERS[server])


@pytest.mark.parametrize("path", ["/statefun", "/statefun/"])
@pytest.mark.parametrize("check", ENDPOINT_CHECKS.values(), ids=list(ENDPOINT_CHECKS))
def test_endpoint(port: int, check: Callable[[int, str], None], path: str) -> None:
    check(port, path)


@pytest.mark.parametrize("check", EDGE_CHECKS.values(), ids=list(EDGE_CHECKS))
def test_edges(port: int, check: Callable[[int, str], None]) -> None:
    check(port, "/statefun")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_over_data_upload_max_memory_size_is_413_and_names_it(
    port: int, chunked: bool
) -> None:
    check_request_limit(port, "/statefun", LIMIT, "DATA_UPLOAD_MAX_MEMORY_SIZE", chunked=chunked)


def test_statefun_serve_serves_the_project() -> None:
    port = free_port()
    command = [sys.executable, "-m", "django", "statefun_serve"]
    options = ["--settings", "tests.project.settings", "--host", "127.0.0.1", "--port", str(port)]
    with running([*command, *options], port, cwd=PACKAGE_ROOT):
        body = wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 0})
        status, headers, reply = request(port, "/statefun/", body)
    assert status == 200
    assert headers["Content-Type"] == "application/octet-stream"
    assert greetings(reply) == (1, [(INBOX, "Ann", "Hello Ann for the 1th time!")])


def test_the_plugins_reply_headers_are_sent(port: int) -> None:
    check_reply_headers(port, "/statefun/")


def test_the_plugins_endpoints_are_served(port: int) -> None:
    check_plugin_endpoints(port, "/statefun")


def test_metrics_are_gone_when_the_prometheus_plugin_is_disabled() -> None:
    import os

    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "STATEFUN_DISABLED_PLUGINS": "prometheus"}
    with running([*command, "tests.project.asgi:application"], port, cwd=PACKAGE_ROOT, env=env):
        check_plugin_endpoints(port, "/statefun", metrics=False)
