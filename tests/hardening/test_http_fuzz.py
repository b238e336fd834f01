"""Random and mutated requests through each integration's real server.

Whatever arrives, the status is one of 200/400/404/405/413/500, an error body carries no
traceback or file path, a POST to the endpoint gets exactly what the handler itself decides
(``fuzz_target.check``), and afterwards the server still serves a valid request.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

import pytest

from statefun_core import protocol

from . import fuzz_target
from .fuzz_target import RandomSource, generate
from .servers import FRAMEWORKS, Server, body_of, post, raw_request, running
from .wire import counter_request

REQUESTS = 250
ALLOWED = {200, 400, 404, 405, 413, 500}
LEAK = re.compile(rb"Traceback|File \"|\.py\b|/site-packages/|/usr/|/work/|/home/|/tmp/")
METHODS = ["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "BREW"]
PATHS = [
    "/statefun", "/statefun", "/statefun", "/statefun/", "/", "/x", "/statefun?a=1",
    "/statefun%ff", "/..%2f..%2fetc/passwd", "/statefun/" + "a" * 2000, "/metrics",
]  # fmt: skip
HEADERS = [
    "",
    "\r\nContent-Type: text/plain",
    "\r\nX-Odd: \u00e9",
    "\r\nContent-Type: application/json; charset=utf-16",
    "\r\nTraceparent: 00-zz-zz-01",
    "\r\nHost: evil.example",
    "\r\nCookie: csrftoken=abc",
]

HANDLER = fuzz_target.make_handler()


@pytest.fixture(scope="module", params=list(FRAMEWORKS))
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with running(request.param) as server:
        yield server


def expected_status(body: bytes) -> int:
    outcome = fuzz_target.check(HANDLER, body)
    if outcome[0] in ("ok", "incomplete"):
        return 200
    if outcome[0] == "failed":
        return 500
    return {"MalformedRequestError": 400, "FunctionNotFoundError": 404}.get(outcome[1], 413)


def assert_no_leak(status: int, body: bytes) -> None:
    assert status in ALLOWED, (status, body[:300])
    if status != 200:
        assert not LEAK.search(body), body[:500]


def test_posted_bodies_get_what_the_handler_decides(server: Server) -> None:
    rng = random.Random(f"bodies-{server.framework}")
    for _ in range(REQUESTS):
        body = generate(RandomSource(rng))
        status, reply = post(server.port, body)
        assert_no_leak(status, reply)
        assert status == expected_status(body), body.hex()
        if status == 200:
            protocol.FromFunction.FromString(reply)
    assert server.process.poll() is None


def test_random_methods_paths_headers_and_framing(server: Server) -> None:
    rng = random.Random(f"requests-{server.framework}")
    for _ in range(REQUESTS):
        method, path = rng.choice(METHODS), rng.choice(PATHS)
        body = generate(RandomSource(rng))
        framing = rng.randrange(4)
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close"
        head += rng.choice(HEADERS)
        if framing == 0:
            head += f"\r\nContent-Length: {len(body)}"
        elif framing == 1:  # chunked
            head += "\r\nTransfer-Encoding: chunked"
            body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
        elif framing == 2:  # a Content-Length that lies (longer than the body, then EOF)
            head += f"\r\nContent-Length: {len(body) // 2}"
        else:  # garbage in the request line or a header
            head = head.replace("HTTP/1.1", rng.choice(["HTTP/9.9", "HTTP/1.1 x", "\x00"]), 1)
        status, rest = raw_request(server.port, head.encode("latin-1"), body)
        assert_no_leak(status, body_of(rest))
    assert server.process.poll() is None
    status, reply = post(server.port, counter_request("7", count=41, invocations=2))
    assert status == 200
    result = protocol.FromFunction.FromString(reply).invocation_result
    (mutation,) = result.state_mutations
    assert mutation.state_name == "count"


def test_a_truncated_upload_does_not_wedge_the_server(server: Server) -> None:
    import socket

    for _ in range(20):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(
                b"POST /statefun HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000"
                b"\r\n\r\n" + b"\x00" * 100
            )  # then hang up
    status, _ = post(server.port, counter_request("8", count=1, invocations=1))
    assert status == 200
