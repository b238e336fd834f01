"""The endpoint checks against a real HTTP server: the standard library's, serving the handler.

A server that speaks the protocol passes every check; one that gets any part wrong fails it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

from statefun_core import RequestReplyHandler, make_plugin_manager
from statefun_core.errors import MethodNotAllowedError, RequestTooLargeError
from statefun_core.http import CONTENT_TYPE, error_response
from statefun_core.testing import endpoint, wire

LIMIT = 4096
Reply = Callable[[BaseHTTPRequestHandler, int, str, bytes], None]


def _reply(request: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes) -> None:
    request.send_response(status)
    request.send_header("Content-Type", content_type)
    if status == 405:
        request.send_header("Allow", "POST")
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the concurrency check connects from 32 threads at once


def _serve(handler: RequestReplyHandler, reply: Reply = _reply) -> Iterator[int]:
    """A threading HTTP server on 127.0.0.1 whose POST /statefun is ``handle_sync``."""

    class Endpoint(BaseHTTPRequestHandler):
        server_version = "reference"  # no versions in Server
        sys_version = ""

        def do_POST(self) -> None:
            if self.headers.get("Transfer-Encoding") == "chunked":
                body = self._read_chunked()
                size = len(body)
            else:
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size)  # read even when too large: the client still sends
            try:
                if size > LIMIT:
                    raise RequestTooLargeError(size, LIMIT)
                reply(self, 200, CONTENT_TYPE, handler.handle_sync(body, headers=self.headers))
            except Exception as error:
                self._error(error)

        def do_GET(self) -> None:
            self._error(MethodNotAllowedError(method="GET"))

        do_PUT = do_DELETE = do_TRACE = do_PROPFIND = do_GET

        def _read_chunked(self) -> bytes:
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)

        def _error(self, error: Exception) -> None:
            status, text = error_response(error)
            reply(self, status, "text/plain; charset=utf-8", text.encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = _Server(("127.0.0.1", 0), Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _handler() -> RequestReplyHandler:
    return RequestReplyHandler(
        endpoint.make_functions(), plugins=make_plugin_manager(load_entrypoints=False)
    )


@pytest.fixture
def port() -> Iterator[int]:
    yield from _serve(_handler())


@pytest.mark.parametrize("check", list(endpoint.ENDPOINT_CHECKS))
def test_a_correct_endpoint_passes_each_check(port: int, check: str) -> None:
    endpoint.ENDPOINT_CHECKS[check](port, "/statefun")


@pytest.mark.parametrize("check", list(endpoint.EDGE_CHECKS))
def test_a_correct_endpoint_passes_each_edge_check(port: int, check: str) -> None:
    endpoint.EDGE_CHECKS[check](port, "/statefun")


def _server_version(request: BaseHTTPRequestHandler, status: int, kind: str, body: bytes) -> None:
    request.server_version = "reference/1.0"
    _reply(request, status, kind, body)


def _no_allow(request: BaseHTTPRequestHandler, status: int, kind: str, body: bytes) -> None:
    _reply(request, 400 if status == 405 else status, kind, body)


@pytest.mark.parametrize(
    ("reply", "check"), [(_server_version, "no_versions"), (_no_allow, "every_other_method")]
)
def test_a_wrong_endpoint_fails_the_edge_check(reply: Reply, check: str) -> None:
    for port in _serve(_handler(), reply):
        with pytest.raises(AssertionError):
            endpoint.EDGE_CHECKS[check](port, "/statefun")


def _chunked(
    request: BaseHTTPRequestHandler,
    status: int,
    kind: str,
    body: bytes,
    coding: str = "chunked",
    extension: bytes = b"",
    trailer: bytes = b"",
) -> None:
    request.protocol_version = "HTTP/1.1"  # chunked replies are HTTP/1.1's
    request.send_response(status)
    request.send_header("Content-Type", kind)
    if status == 405:
        request.send_header("Allow", "POST")
    request.send_header("Transfer-Encoding", coding)
    request.send_header("Connection", "close")
    request.end_headers()
    half = len(body) // 2
    for chunk in (body[:half], body[half:]):
        if chunk:
            request.wfile.write(b"%x%s\r\n%s\r\n" % (len(chunk), extension, chunk))
    request.wfile.write(b"0%s\r\n%s\r\n" % (extension, trailer))


def _chunked_otherwise(
    request: BaseHTTPRequestHandler, status: int, kind: str, body: bytes
) -> None:
    """Chunked as HTTP also allows: the coding's name in capitals, chunk extensions and a
    trailer field."""
    _chunked(request, status, kind, body, "Chunked", b";name=value", b"X-Trailer: 1\r\n")


@pytest.mark.parametrize("reply", [_chunked, _chunked_otherwise])
def test_an_endpoint_whose_replies_are_chunked_passes_them_all(reply: Reply) -> None:
    """As a server sends a reply it was not given a length for (a plain Django view without
    CommonMiddleware, under gunicorn): the checks read it as an HTTP client does."""
    for port in _serve(_handler(), reply):
        endpoint.check_endpoint(port, request_limit=LIMIT)
        body = wire.to_function(endpoint.GREETER, "Ann", ["Ann"], {"seen_count": 1})
        expected = (200, CONTENT_TYPE, _handler().handle_sync(body))
        length = f"Content-Length: {len(body)}"
        assert endpoint.post_raw(port, "/statefun", length, body) == expected


def test_a_correct_endpoint_passes_them_all_with_its_request_limit(port: int) -> None:
    endpoint.check_endpoint(port, request_limit=LIMIT)


def _with_charset(request: BaseHTTPRequestHandler, status: int, kind: str, body: bytes) -> None:
    _reply(request, status, kind + "; charset=utf-8" if status == 200 else kind, body)


def _errors_as_200(request: BaseHTTPRequestHandler, status: int, kind: str, body: bytes) -> None:
    _reply(request, 200, kind, body)


def _traceback(request: BaseHTTPRequestHandler, status: int, kind: str, body: bytes) -> None:
    _reply(request, status, kind, body if status < 500 else b"Traceback (most recent call)")


@pytest.mark.parametrize(
    ("reply", "check"),
    [
        (_with_charset, "greeter_reply"),  # the runtime rejects any other content type
        (_errors_as_200, "error_statuses"),
        (_traceback, "error_statuses"),
    ],
)
def test_a_wrong_endpoint_fails_the_check(reply: Reply, check: str) -> None:
    for port in _serve(_handler(), reply):
        with pytest.raises(AssertionError):
            endpoint.ENDPOINT_CHECKS[check](port, "/statefun")


def test_an_endpoint_that_mixes_up_requests_fails_the_concurrency_check() -> None:
    handler = _handler()
    last: list[Optional[bytes]] = [None]
    lock = threading.Lock()

    def stale(request: BaseHTTPRequestHandler, status: int, kind: str, body: bytes) -> None:
        with lock:  # answer each request with the previous request's reply
            previous, last[0] = last[0], body
        _reply(request, status, kind, previous if previous is not None else body)

    for port in _serve(handler, stale):
        with pytest.raises(AssertionError):
            endpoint.check_concurrent_requests(port, "/statefun")


def test_the_recorders_keep_what_the_hooks_saw() -> None:
    failures = endpoint.FailureRecorder()
    headers = endpoint.HeaderRecorder("X-Request-Id")
    handler = RequestReplyHandler(
        endpoint.make_functions(),
        plugins=make_plugin_manager([failures, headers], load_entrypoints=False),
    )
    for port in _serve(handler):
        body = wire.to_function(endpoint.GREETER, "Ann", ["Ann"], {"seen_count": 1})
        greeted = endpoint.request(port, "/statefun", body, headers={"x-request-id": "r-1"})
        malformed = endpoint.request(port, "/statefun", b"\xff", headers={"X-Request-Id": "r-2"})
        assert (greeted[0], malformed[0]) == (200, 400)
    assert headers.headers == [{"X-Request-Id": "r-1"}]
    assert [(kind.__name__, status, id) for kind, status, id in failures.failures] == [
        ("MalformedRequestError", 400, "r-2")
    ]


def test_running_shows_the_servers_output_when_the_block_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = endpoint.free_port()
    server = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    failing = pytest.raises(AssertionError, match="a check failed")
    with failing, endpoint.running(server, port) as process:
        endpoint.request(port, "/", method="GET")  # http.server logs each request
        raise AssertionError("a check failed")
    assert process.poll() is not None  # stopped
    shown = capsys.readouterr().err
    assert "--- output of the server, pid" in shown and '"GET / HTTP/1.1" 200' in shown


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX's")
def test_running_stops_the_processes_the_server_started(tmp_path: Path) -> None:
    """gunicorn and hypercorn serve from workers they start: here a worker that listens, and
    would outlive its parent, stopped on its own."""
    port = endpoint.free_port()
    pid_file = tmp_path / "worker.pid"
    parent = (
        "import pathlib, subprocess, sys\n"
        "worker = subprocess.Popen([sys.executable, '-m', 'http.server', sys.argv[1],"
        " '--bind', '127.0.0.1'])\n"
        "pathlib.Path(sys.argv[2]).write_text(str(worker.pid))\n"
        "worker.wait()\n"
    )
    try:
        with endpoint.running([sys.executable, "-c", parent, str(port), str(pid_file)], port):
            pass
        for _ in range(200):  # a signal is delivered, not waited for: until the worker is gone
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except ConnectionRefusedError:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the server's worker still listens")
    finally:
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_running_waits_for_a_unix_socket_given_its_path(tmp_path: Path) -> None:
    sock = tmp_path / "server.sock"
    server = (
        "import socketserver, sys\n"
        "class Hello(socketserver.StreamRequestHandler):\n"
        "    def handle(self):\n"
        "        self.wfile.write(b'hello')\n"
        "socketserver.UnixStreamServer(sys.argv[1], Hello).serve_forever()\n"
    )
    command = [sys.executable, "-c", server, str(sock)]
    with endpoint.running(command, sock) as process, socket.socket(socket.AF_UNIX) as client:
        client.settimeout(30)
        client.connect(str(sock))
        assert client.recv(5) == b"hello"
    assert process.poll() is not None


def test_a_request_refused_before_its_body_is_sent_gets_its_answer() -> None:
    """A server may answer and close while the body is still being sent: the answer counts."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:

        def refuse_twice() -> None:
            for _ in range(2):
                peer, _ = server.accept()
                with peer:
                    peer.recv(1024)  # the head and a little of the body, never the rest
                    peer.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 2\r\n"
                                 b"Connection: close\r\n\r\nno")  # fmt: skip

        refusing = threading.Thread(target=refuse_twice, daemon=True)
        refusing.start()
        port = server.getsockname()[1]
        for chunked in (False, True):
            status, _, text = endpoint.request(port, "/", b"x" * 16_000_000, "PUT", chunked=chunked)
            assert (status, text) == (405, b"no")
        refusing.join(10)


def test_the_concurrency_check_names_every_failed_request_and_how() -> None:
    """A server that fails a few of the 100 requests, each its own way: the failure says how
    many, which, and what each got (a status with its text, a dropped connection, another
    request's reply), not only the first status."""
    handler = _handler()

    def some_fail(request: BaseHTTPRequestHandler, status: int, kind: str, body: bytes) -> None:
        name = wire.messages(body)[0].target.id  # the reply greets its request's name
        if name == "user-7":
            _reply(request, 503, "text/plain; charset=utf-8", b"too busy")
        elif name == "user-8":
            request.close_connection = True  # no response at all
        elif name == "user-9":
            _reply(request, status, kind, handler.handle_sync(_greeting_of("user-1", 1)))
        else:
            _reply(request, status, kind, body)

    for port in _serve(handler, some_fail):
        with pytest.raises(AssertionError) as failure:
            endpoint.check_concurrent_requests(port, "/statefun")
    message = str(failure.value)
    assert message.startswith("3 of 100 concurrent requests failed:\n"), message
    assert "request 7: status 503: b'too busy'" in message, message
    assert "request 8: RemoteDisconnected" in message, message
    assert "request 9: not its own reply: (2, [('com.example.fns/inbox', 'user-1'," in message


def _greeting_of(name: str, seen: int) -> bytes:
    return wire.to_function(endpoint.GREETER, name, [name], {"seen_count": seen})
