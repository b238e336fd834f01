"""Each of ``Limits`` has its documented default, can be set, and when exceeded ends in an
error that names it: in the handler, and through each integration's real server (413 for the
request-side limits, 500 for what a function produces), never in an out-of-memory."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from statefun_core import (
    FunctionFailedError,
    LimitExceededError,
    Limits,
    StringType,
    error_response,
    protocol,
)
from statefun_core.errors import MalformedRequestError
from statefun_core.limits import DEFAULT_LIMITS
from statefun_core.protowire import element, field, key, varint

from .fuzz_target import DOC, DOCS, LIMITS, STATELESS, make_handler
from .servers import FRAMEWORKS as SERVED
from .servers import Server, post, raw_request, running
from .wire import counter_request, request

MiB = 1024 * 1024
FRAMEWORKS = list(SERVED)
#: The framework's own body limit, which refuses a body before the handler sees it and which
#: its 413 names (the servers set it to Limits.request_bytes).
BODY_LIMIT_SETTING = {
    "aiohttp": "client_max_size",
    "tornado": "max_body_size",
    "flask": "MAX_CONTENT_LENGTH",
    "django": "DATA_UPLOAD_MAX_MEMORY_SIZE",
    "django-asgi": "DATA_UPLOAD_MAX_MEMORY_SIZE",
}


def sized_request(size: int) -> bytes:
    """A valid request of exactly ``size`` bytes: one string message to the stateless function."""
    text = "y" * size
    while len(data := request(STATELESS, "1", {}, [(StringType, text)])) != size:
        text = text[: len(text) - (len(data) - size)]
    return data


def over_request_bytes(limits: Limits) -> bytes:
    assert limits.request_bytes is not None
    return sized_request(limits.request_bytes + 1)


def over_invocations(limits: Limits) -> bytes:
    assert limits.invocations_per_batch is not None
    return counter_request("1", 0, limits.invocations_per_batch + 1)


def over_state_value(limits: Limits) -> bytes:
    assert limits.state_value_bytes is not None
    big = {"big": "y" * limits.state_value_bytes}
    return request(DOCS, "1", {"doc": None}, [(DOC, big)])


def over_outgoing(limits: Limits) -> bytes:
    assert limits.outgoing_per_batch is not None
    return counter_request("1", 0, limits.outgoing_per_batch + 1, value=5)  # an egress each


def over_reply(limits: Limits) -> bytes:
    """Documents each under ``state_value_bytes``, sent on as egress records: within every
    other limit, together over ``reply_bytes``."""
    assert limits.reply_bytes is not None and limits.state_value_bytes is not None
    doc = {"big": "y" * (limits.state_value_bytes // 2)}
    count = limits.reply_bytes // len(doc["big"]) + 1
    return request(DOCS, "1", {"doc": None}, [(DOC, {**doc, "n": n}) for n in range(count)])


# (limit, request builder, status through HTTP)
CASES = [
    ("request_bytes", over_request_bytes, 413),
    ("invocations_per_batch", over_invocations, 413),
    ("state_value_bytes", over_state_value, 500),
    ("outgoing_per_batch", over_outgoing, 500),
    ("reply_bytes", over_reply, 500),
]


def test_the_documented_defaults() -> None:
    assert Limits() == DEFAULT_LIMITS
    assert DEFAULT_LIMITS.request_bytes == 32 * MiB
    assert DEFAULT_LIMITS.invocations_per_batch == 10_000
    assert DEFAULT_LIMITS.state_value_bytes == 32 * MiB
    assert DEFAULT_LIMITS.outgoing_per_batch == 10_000
    assert DEFAULT_LIMITS.reply_bytes == 32 * MiB  # the runtime's payload_max_bytes
    assert make_handler(DEFAULT_LIMITS).limits == Limits()


@pytest.mark.parametrize(("limit", "build", "status"), CASES)
def test_each_limit_is_enforced_and_named(limit: str, build: object, status: int) -> None:
    handler = make_handler(LIMITS)
    data = build(LIMITS)  # type: ignore[operator]
    for drive in (handler.handle_sync, lambda d: asyncio.run(handler.handle_async(d))):
        with pytest.raises((LimitExceededError, FunctionFailedError)) as raised:
            drive(data)
        error = raised.value
        exceeded = error.__cause__ if isinstance(error, FunctionFailedError) else error
        assert isinstance(exceeded, LimitExceededError)
        assert exceeded.limit == limit
        assert f"(Limits.{limit})" in str(exceeded)
        assert exceeded.value > exceeded.maximum == getattr(LIMITS, limit)
        answer, text = error_response(error)
        assert answer == status
        assert f"Limits.{limit}" in text


@pytest.mark.parametrize(("limit", "build", "status"), CASES)
def test_a_limit_set_to_none_is_off(limit: str, build: object, status: int) -> None:
    unlimited = Limits(**{**LIMITS.__dict__, limit: None})
    reply = make_handler(unlimited).handle_sync(build(LIMITS))  # type: ignore[operator]
    assert isinstance(reply, bytes)


def test_at_the_limit_is_allowed() -> None:
    handler = make_handler(LIMITS)
    assert LIMITS.invocations_per_batch is not None
    handler.handle_sync(counter_request("1", 0, LIMITS.invocations_per_batch))
    handler.handle_sync(counter_request("1", 0, LIMITS.outgoing_per_batch or 0, value=5))
    assert LIMITS.request_bytes is not None
    handler.handle_sync(sized_request(LIMITS.request_bytes))


def test_a_large_body_s_invocations_are_counted_before_it_is_parsed() -> None:
    """Over 256 KiB, a body's invocations are counted before it is parsed: at the limit it is
    handled, over it refused as a parse would have it refused; two batches in one body, which a
    parse merges, count together."""
    handler = make_handler(Limits(**{**LIMITS.__dict__, "request_bytes": None}))

    def large(invocations: int) -> bytes:
        return request(STATELESS, "1", {}, [(StringType, "y" * 5000)] * invocations)

    handler.handle_sync(large(64))
    for data in (large(65), large(40) + large(40)):
        assert len(data) > 256 * 1024
        with pytest.raises(LimitExceededError, match=r"more than 64 invocations \(Limits\."):
            handler.handle_sync(data)


def test_the_state_name_is_in_the_message_not_in_the_limit() -> None:
    with pytest.raises(FunctionFailedError) as raised:
        make_handler(LIMITS).handle_sync(over_state_value(LIMITS))
    cause = raised.value.__cause__
    assert isinstance(cause, LimitExceededError)
    assert cause.limit == "state_value_bytes"
    assert str(cause).startswith("state_value_bytes of 'doc' is ")


# --- through each integration -------------------------------------------------------------


@pytest.fixture(scope="module", params=FRAMEWORKS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with running(request.param, LIMITS) as server:
        yield server


@pytest.mark.parametrize(("limit", "build", "status"), CASES)
def test_each_limit_through_http(server: Server, limit: str, build: object, status: int) -> None:
    answer, body = post(server.port, build(LIMITS))  # type: ignore[operator]
    assert answer == status
    if limit != "request_bytes":
        assert f"(Limits.{limit})".encode() in body, body
    else:  # the framework refuses the body before the handler: its own setting is named
        assert f"({BODY_LIMIT_SETTING[server.framework]})".encode() in body, body
    # and the server goes on
    answer, _ = post(server.port, counter_request("2", 1, 1))
    assert answer == 200


def test_a_huge_declared_body_is_refused_without_reading_it(server: Server) -> None:
    before = server.settled_rss()
    sent = 2 * (LIMITS.request_bytes or 0)
    # Django under ASGI reads (spools to disk) every body whole before any view or middleware
    # runs, so there the declared length is what is sent (see docs/security.md).
    declared = sent if server.framework == "django-asgi" else 4 * 1024 * MiB
    head = (
        "POST /statefun HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Length: {declared}"
    ).encode()
    # aiohttp reads up to its client_max_size before it refuses; the others go by the header
    status, _ = raw_request(server.port, head, b"\x00" * sent)
    assert status == 413
    assert server.rss() - before < 64 * MiB


def test_a_long_chunked_body_is_cut_off(server: Server) -> None:
    before = server.settled_rss()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            b"POST /statefun HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"%x\r\n%s\r\n" % (MiB, b"\x00" * MiB)
        try:
            for _ in range(64):  # 64 MiB, a thousand times the limit
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-body
        try:
            sock.sendall(b"0\r\n\r\n")
            response = sock.recv(4096)
        except (BrokenPipeError, ConnectionResetError):
            response = b""
    if response:
        assert response.split()[1] in (b"400", b"413"), response[:200]
    assert server.rss() - before < 64 * MiB
    answer, _ = post(server.port, counter_request("3", 1, 1))
    assert answer == 200


def test_the_default_request_limit_through_http() -> None:
    """With no limits given, 32 MiB + 1 byte is refused by every integration."""
    body = over_request_bytes(DEFAULT_LIMITS)
    for framework in FRAMEWORKS:
        with running(framework, default_limits=True) as server:
            status, text = post(server.port, body)
            assert status == 413, (framework, text)
            assert f"({BODY_LIMIT_SETTING[framework]})".encode() in text, text
            status, _ = post(server.port, counter_request("1", 1, 1))
            assert status == 200


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_handler_limit_bounds_memory_without_a_framework_limit(
    framework: str, chunked: bool
) -> None:
    """With the framework's body limit left at its default, a body far over
    ``Limits.request_bytes`` is still refused without being held in memory."""
    with running(framework, LIMITS, framework_limits=False) as server:
        before = server.settled_rss()
        peak = before
        sending = threading.Event()
        sending.set()

        def sample() -> None:  # the peak, while the body is being sent and handled
            nonlocal peak
            while sending.is_set():
                peak = max(peak, server.rss())
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        size = 256 * MiB
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
            framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % size
            sock.sendall(
                b"POST /statefun HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                + framing
                + b"\r\n\r\n"
            )
            block = b"%x\r\n%s\r\n" % (MiB, b"\x00" * MiB) if chunked else b"\x00" * MiB
            try:
                for _ in range(size // MiB):
                    sock.sendall(block)
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused mid-body
            try:
                response = sock.recv(4096)
            except ConnectionResetError:
                response = b""
        sending.clear()
        sampler.join()
        growth = peak - before
        assert growth < 64 * MiB, f"{framework} grew by {growth // MiB} MiB"
        if response:  # Tornado refuses a chunked body over its own limit with 400
            assert response.split()[1] in (b"400", b"413"), response[:200]
        status, _ = post(server.port, counter_request("4", 1, 1))
        assert status == 200


def tiny_elements(number: int, size: int) -> bytes:
    """A request of about ``size`` bytes to the counter whose batch holds empty elements of its
    repeated field ``number`` (2: state values, 3: invocations), two bytes each."""
    target = element(1, field(1, b"fuzz") + field(2, b"counter") + field(3, b"tiny"))
    batch = target + element(number, b"") * (size // 2)
    return key(100, 2) + varint(len(batch)) + batch


@pytest.mark.parametrize(
    ("number", "status", "message"),
    [
        (3, 413, b"more than 10000 invocations (Limits.invocations_per_batch)"),
        (2, 400, b"not a StateFun ToFunction message"),  # what a 400 says through HTTP
    ],
    ids=["invocations", "state values"],
)
def test_a_body_of_many_tiny_elements_is_refused_before_it_is_parsed(
    number: int, status: int, message: bytes
) -> None:
    """Parsed, an empty element of a repeated field takes some 30 times its two bytes: a body
    of 16 MiB of them would take about 500 MiB (a 32 MiB one 1 GiB) before
    ``invocations_per_batch`` could be checked. Their count is checked before parsing."""
    body = tiny_elements(number, 16 * MiB)
    with running("aiohttp", default_limits=True) as server:
        before = server.settled_rss()
        peak = before
        answered = threading.Event()

        def sample() -> None:  # the peak, while the body is handled
            nonlocal peak
            while not answered.is_set():
                peak = max(peak, server.rss())
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            answer, text = post(server.port, body)
        finally:
            answered.set()
            sampler.join()
        assert peak - before < 64 * MiB, f"grew by {(peak - before) // MiB} MiB"
        assert (answer, message in text) == (status, True), text
        answer, _ = post(server.port, counter_request("1", 1, 1))
        assert answer == 200


def test_a_large_body_of_repeated_batches_is_refused_after_a_bounded_count() -> None:
    """A parse merges repeats of ``ToFunction.invocation`` into one batch, so 32 MiB of empty
    ones parse in a tenth of a second; the count before the parse went through every one (some
    5 s of CPU a request) without counting any. They count as fields besides the invocations,
    and the count stops past their bound."""
    body = (key(100, 2) + varint(0)) * (300 * 1024 // 3)
    assert protocol.batch_field_counts(body, 10_000, 10_000) == (0, 10_001)
    with pytest.raises(MalformedRequestError, match="more than 10000 fields besides"):
        make_handler(DEFAULT_LIMITS).handle_sync(body)
