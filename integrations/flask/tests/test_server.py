"""statefun_flask under a real gunicorn on 127.0.0.1, with real protobuf bytes."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from statefun_core.engine import StateSpec
from statefun_core.testing import wire

from .functions import FAILING, GREETER, INBOX, NEW, greetings
from .server_app import LIMIT
from .servers import gunicorn, request

pytest.importorskip("gunicorn")


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    # Two workers with threads: requests run concurrently on one handler per process.
    with gunicorn("tests.server_app:app", "-w", "2", "-k", "gthread", "--threads", "8") as port:
        yield port


def test_greeter_reply_with_exact_content_type(port: int) -> None:
    body = wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 4})
    status, headers, body = request(port, "/statefun", body)
    assert status == 200
    assert headers["Content-Type"] == "application/octet-stream"
    assert greetings(body) == (5, [(INBOX, "Ann", "Hello Ann for the 5th time!")])


def test_state_discovery(port: int) -> None:
    body = wire.to_function(GREETER, "Ann", ["Ann"])
    status, headers, body = request(port, "/statefun", body)
    assert status == 200
    assert headers["Content-Type"] == "application/octet-stream"
    assert wire.missing_states(body) == [StateSpec("seen_count", "io.statefun.types/int")]


def test_batch(port: int) -> None:
    _, _, body = request(
        port, "/statefun", wire.to_function(GREETER, "Bo", ["Bo", "Bo"], {"seen_count": 1})
    )
    seen, sent = greetings(body)
    assert seen == 3
    assert [greeting for _, _, greeting in sent] == [
        "Hello Bo for the 2th time!",
        "Hello Bo for the 3th time!",
    ]


@pytest.mark.parametrize(
    ("method", "body", "status"),
    [
        ("POST", b"\xff\xff\xff", 400),
        ("POST", wire.to_function("com.example.fns/nobody", "x", ["x"], NEW), 404),
        ("GET", None, 405),
        ("POST", wire.to_function(GREETER, "Ann", ["x" * LIMIT], NEW), 413),
        ("POST", wire.to_function(FAILING, "x", ["x"]), 500),
    ],
    ids=["400", "404", "405", "413", "500"],
)
def test_error_statuses(port: int, method: str, body: bytes, status: int) -> None:
    got, headers, text = request(port, "/statefun", body, method=method)
    assert got == status
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert 0 < len(text) < 200  # one short line, no traceback
    assert b"\n" not in text
    assert b"Traceback" not in text


def test_concurrent_requests_do_not_cross_talk(port: int) -> None:
    def greet(i: int) -> tuple[int, tuple[object, object]]:
        name = f"user-{i}"
        status, _, body = request(
            port, "/statefun", wire.to_function(GREETER, name, [name], {"seen_count": i})
        )
        return status, greetings(body)

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(greet, range(100)))
    for i, (status, reply) in enumerate(results):
        name = f"user-{i}"
        assert status == 200
        assert reply == (i + 1, [(INBOX, name, f"Hello {name} for the {i + 1}th time!")])
