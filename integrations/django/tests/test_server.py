"""statefun_django served for real on 127.0.0.1: gunicorn (WSGI) and uvicorn (ASGI)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable, ContextManager

import django
import pytest
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application
from statefun_django import conf

from statefun_core.errors import MalformedRequestError
from statefun_core.testing import wire
from statefun_core.testing.endpoint import (
    BROKEN_BODIES,
    EDGE_CHECKS,
    ENDPOINT_CHECKS,
    GREETER,
    INBOX,
    FailureRecorder,
    check_broken_body_is_400,
    check_plugin_endpoints,
    check_plugin_endpoints_answer_head,
    check_reply_headers,
    check_request_limit,
    free_port,
    greetings,
    missing_plugins,
    post_raw,
    request,
    running,
    serving_in_a_thread,
)

LIMIT = 64 * 1024  # DATA_UPLOAD_MAX_MEMORY_SIZE of the test project
PACKAGE_ROOT = Path(__file__).parents[1]

# The plugins' endpoints and reply header: those of the example plugin and
# statefun-prometheus, which the sdist's tests may run without.
MISSING_PLUGINS = missing_plugins()
needs_plugins = pytest.mark.skipif(bool(MISSING_PLUGINS), reason=MISSING_PLUGINS)

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


def test_under_uvicorn_the_view_is_async_when_a_sync_middleware_loads_the_urlconf() -> None:
    """STATEFUN["ASYNC"] None picks the view as the URLconf loads: LocaleMiddleware loads it
    in the thread sync_to_async runs it in, where no event loop runs, and the sync view was
    served under ASGI (each request on a thread of its own)."""
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.project.settings_locale"}
    command = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port)]
    with running([*command, "tests.project.asgi:application"], port, cwd=PACKAGE_ROOT, env=env):
        status, _, name = request(port, "/endpoint-view-class/", method="GET")
        body = wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 0})
        served, _, reply = request(port, "/statefun", body)
    assert (status, name.decode()) == (200, "AsyncStatefunView")
    assert (served, greetings(reply)[0]) == (200, 1)


@pytest.mark.parametrize("path", ["/sync/", "/async/"])
def test_either_view_reads_a_chunked_body_under_either_server(
    server: str, port: int, path: str
) -> None:
    """STATEFUN["ASYNC"] set for one server and the project served by the other: the async
    view under WSGI read a chunked body as empty (400), as Django alone reads it, and ran a
    body shorter than its Content-Length (200)."""
    EDGE_CHECKS["chunked_body"](port, path)
    check_request_limit(port, path, LIMIT, "DATA_UPLOAD_MAX_MEMORY_SIZE", chunked=True)
    if server == "gunicorn-wsgi":  # uvicorn answers those itself (see below)
        for name in BROKEN_BODIES:
            check_broken_body_is_400(port, path, name)


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


@needs_plugins
def test_the_plugins_reply_headers_are_sent(port: int) -> None:
    check_reply_headers(port, "/statefun/")


@needs_plugins
def test_the_plugins_endpoints_are_served(port: int) -> None:
    check_plugin_endpoints(port, "/statefun")


@needs_plugins
@pytest.mark.parametrize("path", ["/statefun/metrics", "/statefun/slow-batches"])
def test_the_plugins_endpoints_answer_head_and_405_any_other_method(
    server: str, port: int, path: str
) -> None:
    """Any other method is the endpoint's 405, also an unsafe one, which the CSRF middleware
    would refuse (403) before the view: there is nothing to protect where nothing is done."""
    check_plugin_endpoints_answer_head(port, path, server.partition("-")[0])


@needs_plugins
def test_metrics_are_gone_when_the_prometheus_plugin_is_disabled() -> None:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "STATEFUN_DISABLED_PLUGINS": "prometheus"}
    with running([*command, "tests.project.asgi:application"], port, cwd=PACKAGE_ROOT, env=env):
        check_plugin_endpoints(port, "/statefun", metrics=False)


# --- bodies the server cannot hand over whole: 400 through the endpoint, never run ----------


@pytest.mark.parametrize("name", list(BROKEN_BODIES))
def test_a_body_the_server_cannot_hand_over_whole_is_400(server: str, port: int, name: str) -> None:
    """A malformed chunk, a chunked body cut off, a body shorter than its Content-Length:
    under gunicorn the endpoint's 400 (not Django's 500 page), and the greeting is not run.
    uvicorn refuses a malformed chunk itself, and ends the others unanswered."""
    if server == "gunicorn-wsgi":
        check_broken_body_is_400(port, "/statefun", name)
        return
    status, _, text = post_raw(port, "/statefun", *BROKEN_BODIES[name])
    if name == "chunk-size-not-hex":
        assert status == 400, (status, text[:200])  # uvicorn's own
    else:
        assert (status, text) == (0, b""), (status, text[:200])


def django_server() -> ContextManager[int]:
    """Django's development server (``runserver``'s), serving the test project in a thread of
    this process."""
    server = ThreadedWSGIServer(("127.0.0.1", 0), WSGIRequestHandler)
    server.set_app(get_wsgi_application())
    return serving_in_a_thread(server)


def test_a_body_shorter_than_its_content_length_is_400_and_reaches_the_hooks() -> None:
    """Under Django's development server; it reads no chunked body (no
    ``wsgi.input_terminated``): that one is empty, and so malformed."""
    failures = FailureRecorder()
    plugins = conf.get_handler().plugins
    plugins.register(failures)
    try:
        with django_server() as port:
            check_broken_body_is_400(port, "/statefun", "shorter-than-content-length")
    finally:
        plugins.unregister(failures)
    assert failures.failures == [(MalformedRequestError, 400, "raw")]
    assert failures.batches == [None]  # refused before a batch existed


@pytest.mark.parametrize("path", ["/sync/", "/async/"])
def test_a_chunked_body_the_server_does_not_end_is_400_saying_why(
    caplog: pytest.LogCaptureFixture, path: str
) -> None:
    """Django's development server (runserver, statefun_serve) passes a chunked body without
    ``wsgi.input_terminated``: Django reads it as empty, which the handler refused as a
    request with no invocation batch, not saying what to change."""
    body = wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 0})
    with caplog.at_level(logging.WARNING, logger="statefun_core"), django_server() as port:
        status, _, _ = request(port, path, body, chunked=True)
    assert status == 400
    assert "without marking its end (wsgi.input_terminated)" in caplog.text, caplog.text


@pytest.fixture(scope="module")
def unlimited_port() -> Iterator[int]:
    """gunicorn serving the test project without DATA_UPLOAD_MAX_MEMORY_SIZE."""
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.project.settings_unlimited"}
    command = ["gunicorn", "-b", f"127.0.0.1:{port}", "tests.project.wsgi:application"]
    with running([sys.executable, "-m", *command], port, cwd=PACKAGE_ROOT, env=env):
        yield port


def test_without_data_upload_max_memory_size_a_declared_length_over_the_limit_is_413_unread(
    unlimited_port: int,
) -> None:
    """Declared 10 MiB over Limits.request_bytes (64 KiB), 1 KiB sent: answered at once, the
    rest never asked for (Django would read it all into memory)."""
    status, content_type, text = post_raw(
        unlimited_port, "/statefun", f"Content-Length: {10 << 20}", b"\0" * 1024, fin=False
    )
    assert status == 413, (status, content_type, text[:200])
    assert content_type == "text/plain; charset=utf-8"
    assert f"over the limit of {LIMIT} bytes (Limits.request_bytes)".encode() in text, text


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_without_data_upload_max_memory_size_a_body_over_the_limit_is_413_and_names_it(
    unlimited_port: int, chunked: bool
) -> None:
    check_request_limit(unlimited_port, "/statefun", LIMIT, "Limits.request_bytes", chunked=chunked)


def test_under_uvicorn_a_cancelled_blocking_batch_is_logged_and_starts_no_further_invocation(
    tmp_path: Path,
) -> None:
    """Django (from 5.0) cancels the async view of a request whose client went (a runtime
    whose call timed out): the invocation running in its thread runs to its end, the batch's
    next ones never start, and ``statefun_core`` logs one warning. Django 4.2 does not: the
    whole batch runs, its reply reaching nobody, and nothing is logged."""
    cancels = django.VERSION >= (5, 0)
    ran, release, log = tmp_path / "ran", tmp_path / "release", tmp_path / "log"
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port)]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.project.settings_slow",
        "STATEFUN_TEST_RAN": str(ran),
        "STATEFUN_TEST_RELEASE": str(release),
        "STATEFUN_TEST_LOG": str(log),
    }
    body = wire.to_function("example/slow", "ann", ["first", "second", "third"])
    head = f"POST /statefun/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n"
    app = "tests.project.asgi:application"
    with running([*command, app], port, cwd=PACKAGE_ROOT, env=env) as server:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            client.sendall(head.encode() + body)
            for _ in range(10_000):  # until the first invocation runs
                if ran.exists() and ran.read_text():
                    break
                time.sleep(0.001)
        # the runtime gave up: the connection is closed
        for _ in range(10_000 if cancels else 0):  # until the handler heard of the cancellation
            if log.exists() and "cancelled" in log.read_text():
                break
            time.sleep(0.001)
        release.touch()
        server.terminate()  # uvicorn stops once the executor's thread ran what it runs
        # (and then ends itself with the signal it handled)
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
    if not cancels:
        assert ran.read_text().split() == ["first", "second", "third"]
        assert not log.exists() or not log.read_text(), log.read_text()
        return
    assert ran.read_text().split() == ["first"]
    (line,) = log.read_text().splitlines()
    assert line.startswith("statefun request cancelled: function 'example/slow' for id 'ann'")
