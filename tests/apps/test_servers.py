"""The plain ASGI and WSGI applications and the examples of docs/servers.md under real servers
on 127.0.0.1, with real protobuf bytes: ``ENDPOINT_CHECKS`` and ``EDGE_CHECKS``, 200 addresses at
once, and a body over the limit declared and chunked."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import pytest

from statefun_core.testing import wire
from statefun_core.testing.endpoint import (
    BROKEN_BODIES,
    EDGE_CHECKS,
    ENDPOINT_CHECKS,
    GREETER,
    INBOX,
    check_broken_body_is_400,
    check_expect_continue,
    check_plugin_endpoints,
    check_plugin_endpoints_answer_head,
    check_reply_headers,
    check_request_limit,
    check_tiny_chunks,
    free_port,
    greetings,
    post_raw,
    request,
    running,
)
from tests.hardening.servers import body_of

from .served import LIMIT

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.apps.served:app"


def uvicorn(port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--no-access-log", APP]  # fmt: skip


def hypercorn(port: int) -> list[str]:
    return [sys.executable, "-m", "hypercorn", "-b", f"127.0.0.1:{port}", APP]


def granian(port: int) -> list[str]:
    return [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning", APP]  # fmt: skip


def gunicorn(port: int) -> list[str]:
    # Two workers with threads: requests run concurrently on one handler per process.
    return [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "2",
            "-k", "gthread", "--threads", "8", APP]  # fmt: skip


def waitress(port: int) -> list[str]:
    return [sys.executable, "-m", "waitress", "--listen", f"127.0.0.1:{port}", "--threads", "8",
            APP]  # fmt: skip


def functions_framework(port: int) -> list[str]:
    """The Functions Framework's server (gunicorn, threads), as Cloud Run functions run it."""
    return [sys.executable, "-m", "functions_framework", "--target", "statefun",
            "--source", "tests/apps/cloud_function.py", "--host", "127.0.0.1",
            "--port", str(port)]  # fmt: skip


class Served(NamedTuple):
    app: str  # an example of docs/servers.md (tests/apps/served.py)
    server: Callable[[int], list[str]]
    path: str  # where the runtime posts
    endpoints: bool = True  # the plugins' endpoints served beside it

    @property
    def prefix(self) -> str:
        """Where the plugins' endpoints are: beside the function endpoint."""
        return self.path.rstrip("/")


SERVED = {
    "asgi-uvicorn": Served("asgi", uvicorn, "/"),
    "asgi-hypercorn": Served("asgi", hypercorn, "/"),
    "asgi-granian": Served("asgi", granian, "/"),
    "wsgi-gunicorn": Served("wsgi", gunicorn, "/"),
    "wsgi-waitress": Served("wsgi", waitress, "/"),
    "fastapi-uvicorn": Served("fastapi", uvicorn, "/statefun/"),
    "starlette-hypercorn": Served("starlette", hypercorn, "/statefun/"),
    "falcon-gunicorn": Served("falcon", gunicorn, "/statefun"),
    "litestar-uvicorn": Served("litestar", uvicorn, "/statefun"),
    "quart-hypercorn": Served("quart", hypercorn, "/statefun"),
    "cloud_functions": Served("cloud_functions", functions_framework, "/", endpoints=False),
}


class Server(NamedTuple):
    port: int
    path: str
    prefix: str
    name: str  # a key of SERVED


@pytest.fixture(scope="module", params=list(SERVED))
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    served = SERVED[request.param]
    pytest.importorskip(served.server.__name__)
    port = free_port()
    env = {**os.environ, "SERVED_APP": served.app}
    with running(served.server(port), port, cwd=ROOT, env=env):
        yield Server(port, served.path, served.prefix, request.param)


@pytest.mark.parametrize("check", ENDPOINT_CHECKS.values(), ids=list(ENDPOINT_CHECKS))
def test_endpoint(server: Server, check: Callable[[int, str], None]) -> None:
    check(server.port, server.path)


@pytest.mark.parametrize("check", EDGE_CHECKS.values(), ids=list(EDGE_CHECKS))
def test_edges(server: Server, check: Callable[[int, str], None]) -> None:
    """The integrations' edges (docs/security.md): any other method is our 405, a connection
    serves on after a refusal, no server version is named."""
    check(server.port, server.path)


def test_a_declared_body_over_the_limit_is_413(server: Server) -> None:
    check_request_limit(server.port, server.path, LIMIT)


# The servers that send "100 Continue" only once the application reads the body: gunicorn,
# waitress and hypercorn send it before the application sees the request (docs/security.md).
CONTINUE_ON_READ = (uvicorn, granian)


def test_a_declared_body_over_the_limit_is_refused_before_100_continue(server: Server) -> None:
    if SERVED[server.name].server not in CONTINUE_ON_READ:
        pytest.skip(f"{server.name}: the server sends 100 Continue before the app sees it")
    check_expect_continue(server.port, server.path, LIMIT)


def test_200_addresses_at_once_each_get_their_own_reply(server: Server) -> None:
    def greet(i: int) -> tuple[int, tuple[Optional[int], list[tuple[str, str, Optional[str]]]]]:
        name = f"address-{i}"
        body = wire.to_function(GREETER, name, [name, name], {"seen_count": i})
        status, _, reply = request(server.port, server.path, body)
        return status, greetings(reply)

    with ThreadPoolExecutor(max_workers=200) as pool:
        results = list(pool.map(greet, range(200)))
    for i, (status, reply) in enumerate(results):
        name = f"address-{i}"
        assert status == 200, status
        assert reply == (
            i + 2,
            [
                (INBOX, name, f"Hello {name} for the {i + 1}th time!"),
                (INBOX, name, f"Hello {name} for the {i + 2}th time!"),
            ],
        ), reply


def test_a_chunked_body_is_read_whole(server: Server) -> None:
    body = wire.to_function(GREETER, "Chunked", ["Chunked"], {"seen_count": 6})
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 10]), body[i : i + 10])
                       for i in range(0, len(body), 10)) + b"0\r\n\r\n"  # fmt: skip
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            f"POST {server.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            + chunked
        )
        response = b""
        while data := sock.recv(65536):
            response += data
    assert response.split()[1] == b"200", response[:300]
    reply = body_of(response.partition(b"\r\n")[2])
    assert greetings(reply) == (7, [(INBOX, "Chunked", "Hello Chunked for the 7th time!")])


def test_a_chunked_body_over_the_limit_is_413(server: Server) -> None:
    response = chunked_post(server.port, server.path, b"\x00" * 2 * LIMIT)  # twice the limit
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.split()[1] == b"413", response[:300]
    assert b"text/plain; charset=utf-8" in head.lower(), head
    assert b"Limits.request_bytes" in body, body
    # its size, if said, is the whole body's (waitress reads it all first), else "over"
    assert b"the request body is over the limit" in body or (
        b"the request body is %d bytes" % (2 * LIMIT) in body
    ), body
    # and the server goes on
    name = "after"
    status, _, reply = request(
        server.port, server.path, wire.to_function(GREETER, name, [name], {"seen_count": 1})
    )
    assert status == 200
    assert greetings(reply) == (2, [(INBOX, name, "Hello after for the 2th time!")])


def test_a_body_in_tiny_chunks_is_held_once() -> None:
    """hypercorn hands the application each chunk of a chunked body as it came: StatefunASGI
    kept them in a list, a bytes object each, which made a body of 2-byte chunks take some 65
    times its size (one of 32 MiB, the default limit, over 2 GiB)."""
    pytest.importorskip("hypercorn")
    if not Path("/proc/self/status").exists():
        pytest.skip("the peak memory of a process is read from Linux's /proc")
    port = free_port()
    env = {**os.environ, "SERVED_APP": "asgi", "SERVED_LIMIT": str(2 * 1024 * 1024)}
    # no worker process (-w 0): the application runs in the process started here
    with running([*hypercorn(port), "-w", "0"], port, cwd=ROOT, env=env) as process:
        check_tiny_chunks(port, "/", process.pid)


@pytest.mark.parametrize("broken", list(BROKEN_BODIES))
def test_a_body_the_server_cannot_hand_over_whole_is_never_run(server: Server, broken: str) -> None:
    """Whatever the server makes of it (its own 400 or 500, no answer), never a 200; where
    the application reads the body itself (WSGI under gunicorn), its own 400."""
    if server.name in ("wsgi-gunicorn", "cloud_functions"):
        check_broken_body_is_400(server.port, server.path, broken)
    else:
        status, _, text = post_raw(server.port, server.path, *BROKEN_BODIES[broken])
        assert status != 200, text[:300]


def test_the_plugins_reply_headers_are_sent(server: Server) -> None:
    pytest.importorskip("statefun_slow_batches")
    check_reply_headers(server.port, server.path)


def test_the_plugins_endpoints_are_served_where_the_example_serves_them(server: Server) -> None:
    pytest.importorskip("statefun_slow_batches")
    pytest.importorskip("statefun_prometheus")
    if SERVED[server.name].endpoints:
        check_plugin_endpoints(server.port, server.prefix)
    else:
        for path in ("/metrics", "/slow-batches"):
            status, _, text = request(server.port, f"{server.prefix}{path}", method="GET")
            assert status == 404, text[:300]


def test_the_plugins_endpoints_answer_head_and_405_any_other_method(server: Server) -> None:
    pytest.importorskip("statefun_slow_batches")
    if not SERVED[server.name].endpoints:
        pytest.skip(f"{server.name} serves no plugin endpoints")
    _, headers, _ = request(server.port, server.path, method="GET")  # the function endpoint's
    check_plugin_endpoints_answer_head(
        server.port, f"{server.prefix}/slow-batches", headers.get("Server", "")
    )


@pytest.mark.parametrize("name", ["asgi-uvicorn", "wsgi-waitress", "fastapi-uvicorn"])
def test_metrics_are_gone_when_the_prometheus_plugin_is_disabled(name: str) -> None:
    pytest.importorskip("statefun_slow_batches")
    pytest.importorskip("statefun_prometheus")
    served = SERVED[name]
    pytest.importorskip(served.server.__name__)
    port = free_port()
    env = {**os.environ, "SERVED_APP": served.app, "STATEFUN_DISABLED_PLUGINS": "prometheus"}
    with running(served.server(port), port, cwd=ROOT, env=env):
        check_plugin_endpoints(port, served.prefix, metrics=False)


EXAMPLE = ROOT / "examples" / "fastapi"


def test_the_fastapi_example_serves_the_greeter() -> None:
    pytest.importorskip("fastapi")
    port = free_port()
    command = [*uvicorn(port)[:-1], "--app-dir", str(EXAMPLE), "app:app"]
    with running(command, port, cwd=ROOT):
        body = wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 1})
        status, _, reply = request(port, "/statefun/", body)
        assert status == 200
        assert greetings(reply) == (2, [(INBOX, "Ann", "Hello Ann for the 1th time!")])
        status, _, listed = request(port, "/functions", method="GET")
        assert status == 200
        assert b"com.example.fns/greeter" in listed
        if find_spec("statefun_prometheus") and find_spec("statefun_slow_batches"):
            check_plugin_endpoints(port, "/statefun")  # beside the mount, as the example says


def test_the_fastapi_example_behind_a_proxy_that_takes_a_prefix_off() -> None:
    """docs/servers.md: the prefix the proxy took off goes to the server (``--root-path``)."""
    pytest.importorskip("fastapi")
    pytest.importorskip("statefun_prometheus")
    port = free_port()
    command = [*uvicorn(port)[:-1], "--root-path", "/api", APP]
    with running(command, port, cwd=ROOT, env={**os.environ, "SERVED_APP": "fastapi"}):
        body = wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 1})
        status, _, reply = request(port, "/statefun/", body)
        assert status == 200
        assert greetings(reply) == (2, [(INBOX, "Ann", "Hello Ann for the 2th time!")])
        status, _, metrics = request(port, "/statefun/metrics", method="GET")
        assert status == 200 and b"statefun_batches_total" in metrics


def chunked_post(port: int, path: str, body: bytes) -> bytes:
    """``body`` POSTed in chunks of 16 KiB: the whole response, or what came before a reset."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        try:
            for i in range(0, len(body), 16 * 1024):
                chunk = body[i : i + 16 * 1024]
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-body
        response = b""
        try:
            while data := sock.recv(65536):
                response += data
        except ConnectionResetError:
            pass
    return response


def test_waitress_reads_a_chunked_body_whole_unless_told_its_limit() -> None:
    """docs/servers.md: waitress reads a chunked body whole before the WSGI app sees it (the
    app's 413 then knows its size), up to its own --max-request-body-size."""
    pytest.importorskip("waitress")
    over = wire.to_function(GREETER, "Ann", ["x" * 2 * LIMIT], {"seen_count": 1})
    env = {**os.environ, "SERVED_APP": "wsgi"}
    port = free_port()
    with running(waitress(port), port, cwd=ROOT, env=env):
        response = chunked_post(port, "/", over)
        assert response.split()[1] == b"413", response[:300]
        assert b"the request body is %d bytes" % len(over) in response, response[:300]
    port = free_port()
    limited = [*waitress(port)[:-1], f"--max-request-body-size={LIMIT}", APP]
    with running(limited, port, cwd=ROOT, env=env):
        response = chunked_post(port, "/", over)
        assert response.split()[1] == b"413", response[:300]
        assert b"(generated by waitress)" in response, response[:300]
        within = wire.to_function(GREETER, "Bo", ["Bo"], {"seen_count": 1})
        status, _, reply = request(port, "/", within)
        assert status == 200 and greetings(reply)[0] == 2


def test_hypercorn_answers_a_head_to_the_wsgi_app() -> None:
    """hypercorn's WSGI support starts the response with the body's first item: a HEAD's
    empty body is one empty item, not none (it answered 500)."""
    pytest.importorskip("hypercorn")
    port = free_port()
    with running(hypercorn(port), port, cwd=ROOT, env={**os.environ, "SERVED_APP": "wsgi"}):
        status, headers, body = request(port, "/", method="HEAD")
        assert (status, headers["Allow"], body) == (405, "POST", b"")
        if find_spec("statefun_prometheus"):
            status, headers, body = request(port, "/metrics", method="HEAD")
            assert (status, body) == (200, b"") and int(headers["Content-Length"]) > 0


@pytest.mark.parametrize("name", ["asgi-uvicorn", "wsgi-gunicorn"])
def test_on_a_unix_socket_the_runtimes_request_target_reaches_the_root(name: str) -> None:
    """Apache StateFun 3.3 POSTs ``/%2F`` to ``http+unix:///…/fn.sock`` (OkHttp's
    ``addPathSegment("/")``, observed on the runtime): servers decode it as ``//``."""
    served = SERVED[name]
    pytest.importorskip(served.server.__name__)
    folder = Path(tempfile.mkdtemp(prefix="statefun-"))  # a socket's path is 107 bytes at most
    sock = folder / "fn.sock"
    bind = ["--uds", str(sock)] if served.server is uvicorn else ["-b", f"unix:{sock}"]
    command = [*served.server(0)[:3], *bind, APP]  # python -m SERVER
    env = {**os.environ, "SERVED_APP": served.app}
    try:
        with running(command, sock, cwd=ROOT, env=env):
            body = wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 1})
            with socket.socket(socket.AF_UNIX) as client:
                client.settimeout(30)
                client.connect(str(sock))
                client.sendall(b"POST /%%2F HTTP/1.1\r\nHost: unused\r\nConnection: close\r\n"
                               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
                response = b""
                while data := client.recv(65536):
                    response += data
            assert response.split()[1] == b"200", response[:300]
            reply = body_of(response.partition(b"\r\n")[2])
            assert greetings(reply) == (2, [(INBOX, "Ann", "Hello Ann for the 2th time!")])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
