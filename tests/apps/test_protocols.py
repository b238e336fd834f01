"""The ASGI and WSGI applications driven through their protocols in this process: lifespan,
streamed bodies and the limit, the hooks, other paths, ``mount``, and FastAPI's dependency."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any, Optional

import pytest

from statefun_core import (
    Limits,
    RequestReplyHandler,
    StatefulFunctions,
    ValueSpec,
    make_plugin_manager,
    serving,
)
from statefun_core.asgi import ScopeHeaders, StatefunASGI
from statefun_core.asgi import mount as mount_asgi
from statefun_core.aws_lambda import LambdaHandler
from statefun_core.errors import (
    MalformedRequestError,
    MethodNotAllowedError,
    RequestTooLargeError,
    UnknownTypeError,
)
from statefun_core.plugins import Endpoint, EndpointResponse, hookimpl
from statefun_core.testing import wire
from statefun_core.testing.endpoint import (
    BLOCKING,
    FAILING,
    GREETER,
    INBOX,
    NEW,
    FailureRecorder,
    greetings,
    make_functions,
)
from statefun_core.wsgi import StatefunWSGI
from statefun_core.wsgi import mount as mount_wsgi

from .served import load

LIMIT = 4096
GREET = wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 1})
AT_THE_LIMIT = wire.to_function(GREETER, "Ann", ["x" * 4005], NEW)  # LIMIT bytes


def handler(recorder: Optional[FailureRecorder] = None) -> RequestReplyHandler:
    plugins = make_plugin_manager(load_entrypoints=False)
    if recorder is not None:
        plugins.register(recorder)
    return RequestReplyHandler(make_functions(), plugins=plugins, limits=Limits(LIMIT))


# --- ASGI ---------------------------------------------------------------------------------


class Exchange:
    """One ASGI request: the messages the app receives, one at a time, and what it sends."""

    def __init__(self, *messages: dict[str, Any]) -> None:
        self.messages = list(messages)
        self.received = 0
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        self.received += 1
        return self.messages.pop(0)

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> dict[str, str]:
        return {name.decode().lower(): value.decode() for name, value in self.sent[0]["headers"]}

    @property
    def body(self) -> bytes:
        return b"".join(message.get("body", b"") for message in self.sent[1:])


def http(
    method: str = "POST", path: str = "/", root_path: str = "", **headers: str
) -> dict[str, Any]:
    raw = [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    return {"type": "http", "method": method, "path": path, "root_path": root_path, "headers": raw}


def chunks(body: bytes, size: int) -> list[dict[str, Any]]:
    parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    return [{"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
            for i, part in enumerate(parts)]  # fmt: skip


def asgi(app: Any, scope: dict[str, Any], *messages: dict[str, Any]) -> Exchange:
    exchange = Exchange(*messages)
    asyncio.run(app(scope, exchange.receive, exchange.send))
    return exchange


def test_lifespan_is_acknowledged() -> None:
    exchange = asgi(
        StatefunASGI(handler()),
        {"type": "lifespan", "asgi": {"version": "3.0"}},
        {"type": "lifespan.startup"},
        {"type": "lifespan.shutdown"},
    )
    assert [message["type"] for message in exchange.sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]


def test_a_body_in_many_messages_is_one_request() -> None:
    exchange = asgi(StatefunASGI(handler()), http(), *chunks(GREET, 7))
    assert exchange.status == 200
    assert exchange.headers["content-type"] == "application/octet-stream"
    assert exchange.headers["content-length"] == str(len(exchange.body))
    assert greetings(exchange.body) == (2, [(INBOX, "Ann", "Hello Ann for the 2th time!")])


def test_reading_stops_at_the_limit_and_the_hooks_hear_of_it() -> None:
    recorder = FailureRecorder()
    messages = chunks(b"\x00" * (10 * LIMIT), 1024)
    exchange = asgi(StatefunASGI(handler(recorder)), http(X_Request_Id="r-1"), *messages)
    assert exchange.status == 413
    assert b"Limits.request_bytes" in exchange.body
    assert exchange.received == LIMIT // 1024 + 1  # not one message more than it took
    assert recorder.failures == [(RequestTooLargeError, 413, "r-1")]


def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    scope = http(content_length=str(LIMIT + 1))
    exchange = asgi(StatefunASGI(handler()), scope, *chunks(b"\x00" * (LIMIT + 1), 1024))
    assert exchange.status == 413
    assert exchange.received == 0


def test_a_wrong_method_is_405_with_allow_and_reaches_the_hooks() -> None:
    recorder = FailureRecorder()
    exchange = asgi(
        StatefunASGI(handler(recorder)), http("PUT", X_REQUEST_ID="r-2"), *chunks(b"", 1)
    )
    assert exchange.status == 405
    assert exchange.headers["allow"] == "POST"
    assert recorder.failures == [(MethodNotAllowedError, 405, "r-2")]


@pytest.mark.parametrize(
    ("headers", "closes"),
    [
        ({"Content-Length": "3"}, True),
        ({"Transfer-Encoding": "chunked"}, True),
        ({"Content-Length": "3", "Expect": "100-continue"}, True),
        ({"Content-Length": "0"}, False),
        ({}, False),
    ],
)
def test_a_refusal_before_the_body_ends_the_connection_the_body_is_on(
    headers: dict[str, str], closes: bool
) -> None:
    """HTTP/1.1: a 405 answered without reading the body the request declares says the
    connection ends, so that the client's next request does not follow that body on it."""
    scope = {**http("PUT"), "http_version": "1.1"}
    scope["headers"] = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    exchange = asgi(StatefunASGI(handler()), scope, *chunks(b"abc", 3))
    assert exchange.status == 405
    assert (exchange.headers.get("connection") == "close") is closes


def test_a_client_gone_gets_no_answer_and_is_a_400_for_the_hooks() -> None:
    """As under WSGI, where the server hands over a short body: one request refused, 400."""
    recorder = FailureRecorder()
    exchange = asgi(
        StatefunASGI(handler(recorder)), http(X_Request_Id="r-3"), {"type": "http.disconnect"}
    )
    assert exchange.sent == []
    assert recorder.failures == [(MalformedRequestError, 400, "r-3")]


def test_a_client_gone_while_the_body_arrives_gets_no_answer_and_is_a_400_for_the_hooks() -> None:
    recorder = FailureRecorder()
    first = {"type": "http.request", "body": GREET[:7], "more_body": True}
    exchange = asgi(StatefunASGI(handler(recorder)), http(), first, {"type": "http.disconnect"})
    assert exchange.sent == []
    assert recorder.failures == [(MalformedRequestError, 400, None)]
    assert recorder.batches == [None]


def test_a_message_without_a_body_adds_nothing_to_the_body() -> None:
    """ASGI: ``body`` is empty when absent, in the first message as in any other."""
    start = {"type": "http.request", "more_body": True}
    middle = {"type": "http.request", "body": GREET, "more_body": True}
    end = {"type": "http.request"}
    exchange = asgi(StatefunASGI(handler()), http(), start, middle, end)
    assert exchange.status == 200
    assert greetings(exchange.body) == (2, [(INBOX, "Ann", "Hello Ann for the 2th time!")])


def test_what_the_handler_refuses_or_fails_is_answered_with_its_status() -> None:
    unknown = wire.to_function("com.example.fns/nobody", "x", ["x"], NEW)
    failing = wire.to_function(FAILING, "x", ["x"])
    for body, status in ((b"\xff\xff\xff", 400), (unknown, 404), (failing, 500)):
        exchange = asgi(StatefunASGI(handler()), http(), *chunks(body, 1024))
        assert exchange.status == status
        assert exchange.headers["content-length"] == str(len(exchange.body))
        assert exchange.headers["content-type"].startswith("text/plain")
        assert "allow" not in exchange.headers  # only a 405 says what is allowed


def test_only_the_content_length_header_declares_a_length() -> None:
    scope = http(x_count=str(10 * LIMIT), content_length=str(len(GREET)))
    assert asgi(StatefunASGI(handler()), scope, *chunks(GREET, 1024)).status == 200


def test_a_content_length_that_is_no_number_declares_nothing() -> None:
    terminated = {"wsgi.input_terminated": True}  # the body read to its end instead
    for length in ("many", "-1"):
        scope = http(content_length=length)
        assert asgi(StatefunASGI(handler()), scope, *chunks(GREET, 1024)).status == 200
        app = StatefunWSGI(handler())
        assert wsgi(app, body=GREET, CONTENT_LENGTH=length, **terminated)[0] == "200 OK"


def test_a_404_shows_a_path_of_up_to_100_characters_whole() -> None:
    app = StatefunASGI(handler())
    for size, shown in ((100, "/" + "x" * 99 + "'"), (101, "/" + "x" * 99 + "…'")):
        answer = asgi(app, http("POST", "/" + "x" * (size - 1)), *chunks(GREET, 1024))
        assert answer.status == 404
        assert f"nothing is served at '{shown} below" in answer.body.decode()


class PingPlugin:
    """A plugin that contributes ``GET /ping`` and answers each batch with a header."""

    @hookimpl
    def statefun_endpoints(self, handler: RequestReplyHandler) -> list[Endpoint]:
        pong = EndpointResponse(200, {"Content-Type": "text/plain"}, b"pong")
        slashed = EndpointResponse(200, {"Content-Type": "text/plain"}, b"slashed")
        return [
            Endpoint("GET", "/ping", lambda headers: pong),
            Endpoint("GET", "/slashed/", lambda headers: slashed),
        ]

    @hookimpl
    def statefun_batch_started(self, batch: Any) -> None:
        batch.reply_headers["X-Ping"] = "pong"


def test_the_plugins_endpoints_and_reply_headers_head_and_other_paths() -> None:
    plugins = make_plugin_manager(load_entrypoints=False)
    plugins.register(PingPlugin())
    served = RequestReplyHandler(make_functions(), plugins=plugins, limits=Limits(LIMIT))
    app = StatefunASGI(served)
    ping = asgi(app, http("GET", "/ping"), *chunks(b"", 1))
    assert (ping.status, ping.body) == (200, b"pong")
    assert ping.headers["content-type"] == "text/plain"
    head = asgi(app, http("HEAD", "/ping"), *chunks(b"", 1))
    assert head.status == 200 and head.body == b""
    # as Litestar's mount hands the path on
    assert asgi(app, http("GET", "/ping/"), *chunks(b"", 1)).body == b"pong"
    assert asgi(app, http("GET", "/slashed/"), *chunks(b"", 1)).body == b"slashed"
    refused = asgi(app, http("POST", "/ping"), *chunks(b"", 1))
    assert (refused.status, refused.body) == (405, b"Method Not Allowed")
    assert refused.headers["allow"] == "GET, HEAD"
    elsewhere = asgi(app, http("POST", "/elsewhere"), *chunks(GREET, 1024))
    assert elsewhere.status == 404
    assert b"nothing is served at '/elsewhere' below this application's root" in elsewhere.body
    long = asgi(app, http("POST", "/" + "x" * 8000), *chunks(GREET, 1024)).body.decode()
    assert long.endswith("xxx…' below this application's root") and len(long) < 200, long
    assert asgi(app, http(), *chunks(GREET, 1024)).headers["x-ping"] == "pong"
    without = StatefunASGI(served, endpoints=False)
    assert asgi(without, http("GET", "/ping"), *chunks(b"", 1)).status == 404
    assert wsgi(StatefunWSGI(served), "GET", "/ping")[::2] == ("200 OK", b"pong")
    reply_headers = wsgi(StatefunWSGI(served), body=GREET, CONTENT_LENGTH=str(len(GREET)))[1]
    assert reply_headers["X-Ping"] == "pong"


def test_mounted_below_a_root_path_old_and_new_style() -> None:
    app = StatefunASGI(handler())
    for path in ("/statefun", "/statefun/", "/"):  # Starlette keeps the prefix, older ones not
        exchange = asgi(app, http(path=path, root_path="/statefun"), *chunks(GREET, 1024))
        assert exchange.status == 200, path


def test_asgi_mount_sends_the_rest_and_lifespan_to_the_other_app() -> None:
    seen: list[tuple[str, str]] = []

    async def other(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["type"], scope.get("path", "")))
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    app = mount_asgi(other, "/statefun", StatefunASGI(handler()))
    assert asgi(app, http(path="/statefun"), *chunks(GREET, 1024)).status == 200
    assert asgi(app, http(path="/statefun/"), *chunks(GREET, 1024)).status == 200
    assert asgi(app, http(path="/statefunx"), *chunks(GREET, 1024)).status == 204
    asgi(app, {"type": "lifespan"}, {"type": "lifespan.startup"})
    assert seen == [("http", "/statefunx"), ("lifespan", "")]


def test_fastapi_gets_the_handler_as_a_dependency() -> None:
    testclient = pytest.importorskip("fastapi.testclient")
    example = load("fastapi", handler())
    client = testclient.TestClient(example.app)
    assert client.get("/functions").json() == sorted(f.typename for f in make_functions())
    other = RequestReplyHandler(StatefulFunctions())  # no functions bound
    example.app.dependency_overrides[example.statefun_handler] = lambda: other
    assert client.get("/functions").json() == []
    # the mount is not a route: it serves with its own handler, whatever the overrides
    assert client.post("/statefun/", content=GREET).status_code == 200


def test_a_message_without_more_body_ends_the_body() -> None:
    """ASGI: ``more_body`` is false when absent; nothing more is awaited."""
    whole = {"type": "http.request", "body": GREET}
    exchange = asgi(StatefunASGI(handler()), http(), whole)
    assert (exchange.status, exchange.received) == (200, 1)
    first = {"type": "http.request", "body": GREET[:7], "more_body": True}
    last = {"type": "http.request", "body": GREET[7:]}
    exchange = asgi(StatefunASGI(handler()), http(), first, last)
    assert (exchange.status, exchange.received) == (200, 2)


def test_a_body_of_exactly_the_limit_is_served() -> None:
    assert len(AT_THE_LIMIT) == LIMIT
    for scope in (http(), http(content_length=str(LIMIT))):
        exchange = asgi(StatefunASGI(handler()), scope, *chunks(AT_THE_LIMIT, 1024))
        assert exchange.status == 200
    app = StatefunWSGI(handler())
    assert wsgi(app, body=AT_THE_LIMIT, CONTENT_LENGTH=str(LIMIT))[0] == "200 OK"
    assert wsgi(app, body=AT_THE_LIMIT, **{"wsgi.input_terminated": True})[0] == "200 OK"


def test_a_websocket_is_closed_as_a_policy_violation_before_it_is_accepted() -> None:
    exchange = asgi(StatefunASGI(handler()), {"type": "websocket", "path": "/", "headers": []})
    assert exchange.sent == [{"type": "websocket.close", "code": 1008}]


def test_the_answers_before_the_body_carry_their_content_length() -> None:
    plugins = make_plugin_manager([PingPlugin()], load_entrypoints=False)
    app = StatefunASGI(RequestReplyHandler(make_functions(), plugins=plugins))
    refused = asgi(app, http("GET"), *chunks(b"", 1))
    assert refused.status == 405
    assert refused.headers["content-length"] == str(len(refused.body))
    head = asgi(app, http("HEAD", "/ping"), *chunks(b"", 1))
    assert (head.headers["content-length"], head.body) == ("4", b"")  # the GET's length


def test_an_old_style_root_path_is_not_cut_from_a_path_without_it() -> None:
    """Older servers take the mount point out of ``path``: it is then relative already."""
    plugins = make_plugin_manager([PingPlugin()], load_entrypoints=False)
    app = StatefunASGI(RequestReplyHandler(make_functions(), plugins=plugins))
    ping = asgi(app, http("GET", "/ping", root_path="/statefun"), *chunks(b"", 1))
    assert (ping.status, ping.body) == (200, b"pong")


def test_asgi_mount_below_an_old_style_root_path() -> None:
    async def other(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = mount_asgi(other, "/statefun", StatefunASGI(handler()))
    scope = http(path="/statefun", root_path="/app")  # "/app" already taken out of the path
    assert asgi(app, scope, *chunks(GREET, 1024)).status == 200


class HeadersSeen:
    """A plugin that keeps the truth, length and contents of each batch's headers."""

    def __init__(self) -> None:
        self.seen: list[tuple[bool, int, dict[str, str]]] = []

    @hookimpl
    def statefun_batch_started(self, batch: Any) -> None:
        headers = batch.headers
        self.seen.append((bool(headers), len(headers), dict(headers)))


def test_the_hooks_get_the_scope_headers_as_a_mapping() -> None:
    seen = HeadersSeen()
    plugins = make_plugin_manager([seen], load_entrypoints=False)
    app = StatefunASGI(RequestReplyHandler(make_functions(), plugins=plugins))
    scope = http(x_request_id="r-5", content_type="application/octet-stream")
    assert asgi(app, scope, *chunks(GREET, 1024)).status == 200
    expected = {"x-request-id": "r-5", "content-type": "application/octet-stream"}
    assert seen.seen == [(True, 2, expected)]


def test_the_scope_headers_hold_only_the_request_s_headers() -> None:
    headers = ScopeHeaders([(b"x-request-id", b"r-6")])
    assert "X-Request-Id" in headers and "traceparent" not in headers
    assert headers.get("traceparent") is None
    with pytest.raises(KeyError):
        headers["traceparent"]


# --- WSGI ---------------------------------------------------------------------------------


def wsgi(
    app: Any, method: str = "POST", path: str = "/", body: bytes = b"", **environ: Any
) -> tuple[str, dict[str, str], bytes]:
    full = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "wsgi.input": io.BytesIO(body),
        **environ,
    }
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        started.extend([status, dict(headers)])

    result: Iterable[bytes] = app(full, start_response)
    return started[0], started[1], b"".join(result)


def test_wsgi_refuses_a_chunked_body_the_server_does_not_mark_terminated(caplog: Any) -> None:
    """PEP 3333 forbids reading it (hypercorn's WSGI passes it so): a 400 whose log line says
    why, rather than the body taken as empty ('no invocation batch')."""
    status, _, _ = wsgi(StatefunWSGI(handler()), body=GREET, HTTP_TRANSFER_ENCODING="chunked")
    assert status.startswith("400")
    assert "without marking its end (wsgi.input_terminated)" in caplog.text


def test_wsgi_reads_a_terminated_body_without_a_length() -> None:
    status, headers, body = wsgi(
        StatefunWSGI(handler()), body=GREET, **{"wsgi.input_terminated": True}
    )
    assert status == "200 OK"
    assert headers["Content-Type"] == "application/octet-stream"
    assert greetings(body)[0] == 2


def test_wsgi_stops_at_the_limit_and_the_hooks_hear_of_it() -> None:
    recorder = FailureRecorder()
    stream = io.BytesIO(b"\x00" * (10 * LIMIT))
    app = StatefunWSGI(handler(recorder))
    status, _, body = wsgi(
        app, **{"wsgi.input": stream, "wsgi.input_terminated": True, "HTTP_X_REQUEST_ID": "r-3"}
    )
    assert status.startswith("413 ")
    assert b"Limits.request_bytes" in body
    assert stream.tell() == LIMIT + 1
    assert recorder.failures == [(RequestTooLargeError, 413, "r-3")]


def test_wsgi_reads_one_byte_over_a_limit_larger_than_a_read() -> None:
    limit = 200_000  # over the 64 KiB each read asks for
    handler = RequestReplyHandler(make_functions(), limits=Limits(request_bytes=limit))
    stream = io.BytesIO(b"\x00" * (3 * limit))
    status, _, _ = wsgi(
        StatefunWSGI(handler), **{"wsgi.input": stream, "wsgi.input_terminated": True}
    )
    assert status.startswith("413 ")
    assert stream.tell() == limit + 1


def test_wsgi_refuses_a_declared_length_over_the_limit_unread() -> None:
    stream = io.BytesIO(b"\x00" * (LIMIT + 1))
    status, _, _ = wsgi(
        StatefunWSGI(handler()), **{"wsgi.input": stream, "CONTENT_LENGTH": str(LIMIT + 1)}
    )
    assert status.startswith("413")
    assert stream.tell() == 0


def test_wsgi_wrong_method_other_paths_and_head() -> None:
    recorder = FailureRecorder()
    app = StatefunWSGI(handler(recorder), endpoints=False)
    status, headers, _ = wsgi(app, "GET", HTTP_X_REQUEST_ID="r-4")
    assert status == "405 Method Not Allowed" and headers["Allow"] == "POST"
    assert recorder.failures == [(MethodNotAllowedError, 405, "r-4")]
    assert wsgi(app, "POST", "/elsewhere", GREET)[0].startswith("404")
    assert wsgi(app, "HEAD")[2] == b""


def test_wsgi_mount_shifts_the_path() -> None:
    def other(environ: Any, start_response: Any) -> list[bytes]:
        start_response("204 No Content", [])
        return [environ["PATH_INFO"].encode()]

    app = mount_wsgi(other, "/statefun/", StatefunWSGI(handler()))
    length = {"CONTENT_LENGTH": str(len(GREET))}
    assert wsgi(app, path="/statefun", body=GREET, **length)[0] == "200 OK"
    assert wsgi(app, path="/statefun/", body=GREET, **length)[0] == "200 OK"
    assert wsgi(app, path="/other", body=GREET, **length) == ("204 No Content", {}, b"/other")
    beside = wsgi(app, path="/statefunds", body=GREET, **length)  # not below /statefun
    assert beside == ("204 No Content", {}, b"/statefunds")


@pytest.mark.parametrize("app", [StatefunASGI, StatefunWSGI, LambdaHandler])
def test_a_state_of_a_disabled_type_plugin_fails_when_the_app_is_made(
    app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example plugin's Decimal type: resolved when it is on, refused at once when off."""
    pytest.importorskip("statefun_slow_batches")

    def decimal_functions() -> StatefulFunctions:
        functions = StatefulFunctions()
        functions.register("bank/account", lambda c, m: None, [ValueSpec("balance", type=Decimal)])
        return functions

    app(decimal_functions())
    monkeypatch.setenv("STATEFUN_DISABLED_PLUGINS", "slow-batches")
    with pytest.raises(UnknownTypeError, match=r"'bank/account', state 'balance'.*slow-batches"):
        app(decimal_functions())


@pytest.mark.parametrize("app", [StatefunASGI, StatefunWSGI, LambdaHandler])
def test_each_app_serves_with_the_handler_it_was_given(app: Any) -> None:
    given = handler()
    assert app(given).handler is given


def test_wsgi_reads_no_body_without_a_length_or_past_a_length_of_zero(caplog: Any) -> None:
    """PEP 3333: without ``CONTENT_LENGTH`` the input is read only when marked terminated."""
    app = StatefunWSGI(handler())
    assert wsgi(app, body=GREET)[0].startswith("400 ")  # an empty body, not the greeting
    assert "no invocation batch" in caplog.text and "chunked" not in caplog.text
    terminated = {"CONTENT_LENGTH": "0", "wsgi.input_terminated": True}
    assert wsgi(app, body=GREET, **terminated)[0].startswith("400 ")


def test_wsgi_reads_a_terminated_body_whole_without_a_limit() -> None:
    unlimited = RequestReplyHandler(make_functions(), limits=Limits(request_bytes=None))
    large = wire.to_function(GREETER, "Ann", ["x" * 200_000], NEW)  # read in several chunks
    status, _, body = wsgi(StatefunWSGI(unlimited), body=large, **{"wsgi.input_terminated": True})
    assert status == "200 OK" and greetings(body)[0] == 1


def test_wsgi_a_body_that_cannot_be_read_is_400_and_reaches_the_hooks() -> None:
    recorder = FailureRecorder()
    app = StatefunWSGI(handler(recorder))
    for framing in ({"CONTENT_LENGTH": str(len(GREET))}, {"wsgi.input_terminated": True}):
        closed = io.BytesIO(GREET)
        closed.close()  # reading it raises ValueError, as a server's input does for a client gone
        assert wsgi(app, **{"wsgi.input": closed, **framing})[0].startswith("400 ")
    assert recorder.failures == [(MalformedRequestError, 400, None)] * 2


def test_wsgi_a_body_shorter_than_its_content_length_is_400_and_never_run(caplog: Any) -> None:
    """gunicorn hands over less than the Content-Length when the client stops sending: the
    batch it holds may be whole, but is not run."""
    recorder = FailureRecorder()
    app = StatefunWSGI(handler(recorder))
    status, _, _ = wsgi(app, body=GREET, CONTENT_LENGTH=str(len(GREET) + 10))
    assert status.startswith("400 ")
    assert recorder.failures == [(MalformedRequestError, 400, None)]
    assert recorder.batches == [None]
    assert f"incomplete: {len(GREET)} of its {len(GREET) + 10} bytes" in caplog.text


def test_wsgi_a_malformed_chunk_under_gunicorn_is_400_and_reaches_the_hooks() -> None:
    """gunicorn's chunked body reader raises its own ParseException, no OSError nor
    ValueError, at a chunk size that is not hex."""
    gunicorn_body = pytest.importorskip("gunicorn.http.body")
    from gunicorn.http.unreader import IterUnreader

    chunked = b"7\r\n" + GREET[:7] + b"\r\nzz\r\n" + GREET[7:] + b"\r\n0\r\n\r\n"
    reader = gunicorn_body.ChunkedReader(object(), IterUnreader([chunked]))
    recorder = FailureRecorder()
    environ = {"wsgi.input": gunicorn_body.Body(reader), "wsgi.input_terminated": True}
    assert wsgi(StatefunWSGI(handler(recorder)), **environ)[0].startswith("400 ")
    assert recorder.failures == [(MalformedRequestError, 400, None)]


def test_the_hooks_get_the_environ_headers_as_a_mapping() -> None:
    seen = HeadersSeen()
    plugins = make_plugin_manager([seen], load_entrypoints=False)
    app = StatefunWSGI(RequestReplyHandler(make_functions(), plugins=plugins))
    length, octets = str(len(GREET)), "application/octet-stream"
    environ = {"CONTENT_LENGTH": length, "CONTENT_TYPE": octets, "HTTP_X_REQUEST_ID": "r-6"}
    assert wsgi(app, body=GREET, **environ)[0] == "200 OK"
    expected = {"content-length": length, "content-type": octets, "x-request-id": "r-6"}
    assert seen.seen == [(True, 3, expected)]


def test_wsgi_mount_moves_the_prefix_to_the_script_name() -> None:
    def where(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [f"{environ['SCRIPT_NAME']} {environ['PATH_INFO']}".encode()]

    app = mount_wsgi(where, "/statefun", where)
    assert wsgi(app, path="/statefun/ping", SCRIPT_NAME="/app")[2] == b"/app/statefun /ping"
    assert wsgi(app, path="/other", SCRIPT_NAME="/app")[2] == b"/app /other"


def test_an_endpoint_made_alone_serves_the_plugins_endpoints() -> None:
    plugins = make_plugin_manager([PingPlugin()], load_entrypoints=False)
    endpoint = serving.Endpoint(RequestReplyHandler(make_functions(), plugins=plugins))
    answer = endpoint.before_body("GET", "/ping", {}, None)
    assert answer is not None and (answer.status, answer.body) == (200, b"pong")


def test_a_blocking_function_runs_in_the_executor_under_asgi_only() -> None:
    """docs/servers.md: ``blocking=True`` under ``StatefunASGI`` is ``executor=``'s; under
    ``StatefunWSGI`` every function runs on the thread serving the request."""
    body = wire.to_function(BLOCKING, "b", ["b"])
    with ThreadPoolExecutor(thread_name_prefix="statefun-pool") as executor:
        app = StatefunASGI(make_functions(blocking=True), executor=executor)
        ((_, _, thread),) = greetings(asgi(app, http(), *chunks(body, 1024)).body)[1]
        assert thread is not None and thread.startswith("statefun-pool"), thread
        served = StatefunWSGI(make_functions(blocking=True), executor=executor)
        reply = wsgi(served, body=body, CONTENT_LENGTH=str(len(body)))[2]
    assert greetings(reply)[1] == [(INBOX, "b", threading.current_thread().name)]


class SizedPing:
    """A plugin whose endpoint says its own ``Content-Length``, as a plugin author may."""

    @hookimpl
    def statefun_endpoints(self, handler: RequestReplyHandler) -> list[Endpoint]:
        pong = EndpointResponse(200, {"Content-Type": "text/plain", "Content-Length": "4"}, b"pong")
        return [Endpoint("GET", "/ping", lambda headers: pong)]


def test_an_endpoint_s_own_content_length_is_not_sent_twice() -> None:
    plugins = make_plugin_manager([SizedPing()], load_entrypoints=False)
    served = RequestReplyHandler(make_functions(), plugins=plugins)
    ping = asgi(StatefunASGI(served), http("GET", "/ping"), *chunks(b"", 1))
    names = [name.lower() for name, _ in ping.sent[0]["headers"]]
    assert (ping.body, names.count(b"content-length")) == (b"pong", 1)
    started: list[tuple[str, str]] = []
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/ping", "wsgi.input": io.BytesIO()}
    body = b"".join(StatefunWSGI(served)(environ, lambda status, headers: started.extend(headers)))
    lengths = [value for name, value in started if name.lower() == "content-length"]
    assert (body, lengths) == (b"pong", ["4"])


def test_the_hooks_hear_of_the_function_endpoint_s_refusals_only() -> None:
    """docs/servers.md: a 404 at another path, a 405 at a plugin's endpoint are not reported."""
    recorder = FailureRecorder()
    plugins = make_plugin_manager([PingPlugin(), recorder], load_entrypoints=False)
    served = RequestReplyHandler(make_functions(), plugins=plugins)
    app = StatefunASGI(served)
    assert asgi(app, http("POST", "/elsewhere"), *chunks(GREET, 1024)).status == 404
    assert asgi(app, http("POST", "/ping"), *chunks(b"", 1)).status == 405
    assert wsgi(StatefunWSGI(served), "POST", "/elsewhere", GREET)[0].startswith("404")
    assert recorder.failures == []
    assert asgi(app, http("PUT"), *chunks(b"", 1)).status == 405
    assert recorder.failures == [(MethodNotAllowedError, 405, None)]
