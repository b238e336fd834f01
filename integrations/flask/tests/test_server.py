"""statefun_flask under a real gunicorn on 127.0.0.1, with real protobuf bytes."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable, ContextManager

import pytest
from flask import Flask
from statefun_flask import Statefun
from werkzeug.serving import make_server

from statefun_core import RequestReplyHandler, make_plugin_manager
from statefun_core.errors import MalformedRequestError
from statefun_core.testing.endpoint import (
    BROKEN_BODIES,
    EDGE_CHECKS,
    ENDPOINT_CHECKS,
    FailureRecorder,
    check_broken_body_is_400,
    check_plugin_endpoints,
    check_plugin_endpoints_answer_head,
    check_reply_headers,
    check_request_limit,
    free_port,
    make_functions,
    missing_plugins,
    request,
    running,
    serving_in_a_thread,
)

from .server_app import LIMIT

# The plugins' endpoints and reply header: those of the example plugin and
# statefun-prometheus, which the sdist's tests may run without.
MISSING_PLUGINS = missing_plugins()
needs_plugins = pytest.mark.skipif(bool(MISSING_PLUGINS), reason=MISSING_PLUGINS)

pytest.importorskip("gunicorn")


def command(port: int) -> list[str]:
    # Two workers with threads: requests run concurrently on one handler per process.
    workers = ["-w", "2", "-k", "gthread", "--threads", "8"]
    gunicorn = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", *workers]
    return [*gunicorn, "tests.server_app:app"]


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
def test_body_over_max_content_length_is_413_and_names_it(port: int, chunked: bool) -> None:
    check_request_limit(port, "/statefun", LIMIT, "MAX_CONTENT_LENGTH", chunked=chunked)


def test_another_urls_405_stays_flasks(port: int) -> None:
    status, headers, _ = request(port, "/plain", method="TRACE")
    assert status == 405
    assert headers["Content-Type"].startswith("text/html"), headers
    assert headers["Allow"] != "POST"


MiB = 1024 * 1024


def _worker(master: int) -> int:
    """The pid of gunicorn's one worker."""
    for _ in range(100):
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise AssertionError("gunicorn started no worker")


def _peak_rss(pid: int) -> int:
    """The most memory the process has held (VmHWM), in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    (line,) = [line for line in status.splitlines() if line.startswith("VmHWM:")]
    return int(line.split()[1]) * 1024


def test_a_chunked_body_over_the_limit_is_held_once_at_most() -> None:
    """Without MAX_CONTENT_LENGTH, Limits.request_bytes (32 MiB) bounds a chunked body: it is
    refused one byte over the limit, before the chunks read are joined (twice the memory)."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1"]
    with running(
        [*command, "tests.server_app:unlimited"], port, cwd=Path(__file__).parents[1]
    ) as master:
        worker = _worker(master.pid)
        assert request(port, "/statefun", method="GET")[0] == 405  # the worker is up
        before = _peak_rss(worker)
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(
                b"POST /statefun HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b"%x\r\n%s\r\n" % (MiB, b"\x00" * MiB)
            try:
                for _ in range(48):
                    sock.sendall(chunk)
                sock.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused mid-body
            response = sock.recv(4096)
        growth = _peak_rss(worker) - before
    assert response.split()[1] == b"413", response[:200]
    assert b"(Limits.request_bytes)" in response, response
    assert growth < 48 * MiB, f"the worker grew by {growth // MiB} MiB for a 32 MiB limit"


@needs_plugins
def test_the_plugins_reply_headers_are_sent(port: int) -> None:
    check_reply_headers(port, "/statefun")


@needs_plugins
def test_the_plugins_endpoints_are_served(port: int) -> None:
    check_plugin_endpoints(port)


@needs_plugins
@pytest.mark.parametrize("path", ["/metrics", "/slow-batches"])
def test_the_plugins_endpoints_answer_head_and_405_any_other_method(port: int, path: str) -> None:
    check_plugin_endpoints_answer_head(port, path, "gunicorn")


@needs_plugins
def test_metrics_are_gone_when_the_prometheus_plugin_is_disabled() -> None:
    port = free_port()
    env = {**os.environ, "STATEFUN_DISABLED_PLUGINS": "prometheus"}
    with running(command(port), port, cwd=Path(__file__).parents[1], env=env):
        check_plugin_endpoints(port, metrics=False)


# --- bodies the server cannot hand over whole: 400 through the endpoint, never run ----------


@pytest.mark.parametrize("name", list(BROKEN_BODIES))
def test_a_body_gunicorn_cannot_hand_over_whole_is_400(port: int, name: str) -> None:
    """A malformed chunk, a chunked body cut off, a body shorter than its Content-Length:
    the endpoint's 400 (not Flask's 500 page), and the greeting is not run."""
    check_broken_body_is_400(port, "/statefun", name)


def werkzeug_server(app: Flask) -> ContextManager[int]:
    """Werkzeug's development server (``flask run``'s), in a thread of this process."""
    return serving_in_a_thread(make_server("127.0.0.1", 0, app, threaded=True))


@pytest.mark.parametrize("name", list(BROKEN_BODIES))
def test_a_body_werkzeugs_server_cannot_hand_over_whole_is_400_and_reaches_the_hooks(
    name: str,
) -> None:
    failures = FailureRecorder()
    plugins = make_plugin_manager([failures], load_entrypoints=False)
    app = Flask(__name__)
    Statefun(app, RequestReplyHandler(make_functions(), plugins=plugins))
    with werkzeug_server(app) as port:
        check_broken_body_is_400(port, "/statefun", name)
    assert failures.failures == [(MalformedRequestError, 400, "raw")]
    assert failures.batches == [None]  # refused before a batch existed
