"""Span kinds and attributes by OpenTelemetry's conventions, baggage inside the function,
links to each message's origin, ``traceresponse``, and a span for every rejected request."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import aiohttp
import pytest
from aiohttp import web
from opentelemetry import baggage
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from statefun_aiohttp import create_app
from statefun_opentelemetry import OpenTelemetryPlugin

from statefun_core import (
    Context,
    Limits,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    message_builder,
)
from statefun_core.errors import (
    FunctionFailedError,
    FunctionNotFoundError,
    MalformedRequestError,
    MethodNotAllowedError,
    RequestTooLargeError,
)
from statefun_core.http import status_for
from statefun_core.plugins import make_plugin_manager
from statefun_core.testing import wire
from statefun_core.tracecontext import ORIGINS, TRACERESPONSE, encode_origins

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
ORIGIN_A = f"00-{'a' * 32}-{'1' * 16}-01"
ORIGIN_B = f"00-{'b' * 32}-{'2' * 16}-01"
SYNC, ASYNC, BLOCKING, BROKEN = "example/sync", "example/async", "example/blocking", "example/x"


class Boom(Exception):
    pass


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def seen() -> list[Optional[object]]:
    return []


@pytest.fixture
def handler(
    provider: TracerProvider, seen: list[Optional[object]]
) -> Iterator[RequestReplyHandler]:
    functions = StatefulFunctions()

    @functions.bind(SYNC)
    def sync(context: Context, message: Message) -> None:
        seen.append(baggage.get_baggage("tenant"))

    @functions.bind(ASYNC)
    async def in_async(context: Context, message: Message) -> None:
        await asyncio.sleep(0)
        seen.append(baggage.get_baggage("tenant"))

    @functions.bind(BLOCKING, blocking=True)
    def blocking(context: Context, message: Message) -> None:
        seen.append(baggage.get_baggage("tenant"))

    @functions.bind(BROKEN)
    def broken(context: Context, message: Message) -> None:
        raise Boom("no")

    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider)], load_entrypoints=False
    )
    with ThreadPoolExecutor(1) as executor:
        yield RequestReplyHandler(
            functions, plugins=plugins, executor=executor, limits=Limits(request_bytes=1000)
        )


def spans(exporter: InMemorySpanExporter, typename: str) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """The batch span of the function ``typename`` and its invocation spans, by index."""
    finished = exporter.get_finished_spans()
    (batch,) = [s for s in finished if s.name == f"process {typename}"]
    invocations = [s for s in finished if s.name == typename]
    return batch, sorted(
        invocations, key=lambda s: (s.attributes or {})["statefun.invocation.index"]
    )


@pytest.mark.parametrize("typename", [SYNC, ASYNC, BLOCKING])
def test_the_requests_baggage_is_visible_inside_the_function(
    handler: RequestReplyHandler, seen: list[Optional[object]], typename: str
) -> None:
    headers = {"traceparent": TRACEPARENT, "baggage": "tenant=acme"}
    body = wire.to_function(typename, "ann", ["x"])
    asyncio.run(handler.handle_async(body, headers))
    if typename != BLOCKING:  # handle_sync has no executor: blocking is for handle_async
        handler.handle_sync(body, headers)
    assert seen and set(seen) == {"acme"}
    assert baggage.get_baggage("tenant") is None  # nothing left attached


def test_each_invocation_links_to_its_messages_origin_and_the_reply_names_the_batch_span(
    handler: RequestReplyHandler, exporter: InMemorySpanExporter
) -> None:
    headers = {
        "Content-Type": "application/octet-stream",
        "traceparent": ORIGIN_A,
        ORIGINS: encode_origins([ORIGIN_A, ORIGIN_A, None, ORIGIN_B]),
    }
    reply_headers: dict[str, str] = {}
    handler.handle_sync(wire.to_function(SYNC, "ann", ["1", "2", "3", "4"]), headers, reply_headers)

    batch, invocations = spans(exporter, SYNC)
    assert batch.kind is SpanKind.SERVER
    assert batch.parent is not None and format(batch.parent.span_id, "016x") == "1" * 16
    links = [
        [(format(link.context.trace_id, "032x"), link.context.is_remote) for link in s.links]
        for s in invocations
    ]
    assert links == [[("a" * 32, True)], [("a" * 32, True)], [], [("b" * 32, True)]]
    context = batch.context
    assert reply_headers == {TRACERESPONSE: f"00-{context.trace_id:032x}-{context.span_id:016x}-01"}


def test_an_origins_header_with_an_endless_count_keeps_the_batch_span(
    handler: RequestReplyHandler, exporter: InMemorySpanExporter
) -> None:
    headers = {"traceparent": TRACEPARENT, ORIGINS: f"{'1' * 5000}*{ORIGIN_A}"}
    handler.handle_sync(wire.to_function(SYNC, "ann", ["1", "2"]), headers)
    batch, invocations = spans(exporter, SYNC)
    assert batch.parent is not None and format(batch.context.trace_id, "032x") == TRACE_ID
    for invocation in invocations:
        assert invocation.parent is not None and invocation.parent.span_id == batch.context.span_id
        assert [link.context.trace_id for link in invocation.links] == [int("a" * 32, 16)]


def test_a_link_keeps_its_origins_sampled_flag(
    handler: RequestReplyHandler, exporter: InMemorySpanExporter
) -> None:
    unsampled = f"00-{'c' * 32}-{'3' * 16}-00"
    headers = {"traceparent": ORIGIN_A, ORIGINS: encode_origins([ORIGIN_A, unsampled])}
    handler.handle_sync(wire.to_function(SYNC, "ann", ["1", "2"]), headers)
    _, invocations = spans(exporter, SYNC)
    links = [(s.links[0].context.span_id, s.links[0].context.trace_flags) for s in invocations]
    assert links == [(int("1" * 16, 16), 1), (int("3" * 16, 16), 0)]


def test_the_batch_and_invocation_spans_are_named_apart_and_the_batch_is_the_requests_span(
    handler: RequestReplyHandler, exporter: InMemorySpanExporter
) -> None:
    """Name-based dashboards and span metrics tell the two levels apart: the batch is
    ``process {typename}`` (the messaging conventions' name), the invocation the typename. The
    batch span of an HTTP request is its SERVER span, with the reply's status; the count of
    messages only on a batch of more than one."""
    headers = {"traceparent": TRACEPARENT}
    handler.handle_sync(wire.to_function(SYNC, "ann", ["1"]), headers)
    with pytest.raises(FunctionFailedError):
        handler.handle_sync(wire.to_function(BROKEN, "ann", ["x", "y"]), headers)

    for typename, status, count in ((SYNC, 200, None), (BROKEN, 500, 2)):
        batch, invocations = spans(exporter, typename)
        attributes = batch.attributes or {}
        assert (batch.name, batch.kind) == (f"process {typename}", SpanKind.SERVER)
        assert attributes["messaging.destination.name"] == typename
        assert attributes["http.request.method"] == "POST"
        assert attributes["http.response.status_code"] == status
        assert attributes.get("messaging.batch.message_count") == count
        for invocation in invocations:
            assert (invocation.name, invocation.kind) == (typename, SpanKind.INTERNAL)
            assert (invocation.attributes or {})["messaging.destination.name"] == typename


def test_a_batch_without_an_http_request_is_a_consumer_span_with_no_http_attributes(
    handler: RequestReplyHandler, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(FunctionFailedError):
        handler.handle_sync(wire.to_function(BROKEN, "ann", ["x"]))
    batch, _ = spans(exporter, BROKEN)
    assert batch.kind is SpanKind.CONSUMER
    assert not [key for key in batch.attributes or {} if key.startswith("http.")]


def test_error_type_is_the_exceptions_qualified_name(
    handler: RequestReplyHandler, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(FunctionFailedError):
        handler.handle_sync(wire.to_function(BROKEN, "ann", ["x"]))
    batch, (invocation,) = spans(exporter, BROKEN)
    for span in (batch, invocation):
        assert (span.attributes or {})["error.type"] == f"{__name__}.Boom"
        assert span.status.status_code is StatusCode.ERROR


@pytest.mark.parametrize(
    ("body", "error", "status"),
    [
        (b"\xff\xff not protobuf", MalformedRequestError, 400),
        (wire.to_function("example/unknown", "ann", ["x"]), FunctionNotFoundError, 404),
        (wire.to_function(SYNC, "ann", ["x" * 2000]), RequestTooLargeError, 413),
    ],
)
def test_a_request_the_handler_rejects_has_a_span(
    handler: RequestReplyHandler,
    exporter: InMemorySpanExporter,
    body: bytes,
    error: type[Exception],
    status: int,
) -> None:
    with pytest.raises(error):
        handler.handle_sync(body, {"traceparent": TRACEPARENT})
    (span,) = exporter.get_finished_spans()
    assert span.name == "POST"  # a server span without a route, by the HTTP conventions
    assert span.kind is SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == TRACE_ID
    attributes = dict(span.attributes or {})
    assert attributes["error.type"] == f"statefun_core.errors.{error.__name__}"
    assert attributes["http.response.status_code"] == status
    assert attributes["http.request.method"] == "POST"
    assert span.status.status_code is StatusCode.UNSET  # a 4xx is the client's error
    if status == 404:
        assert attributes["messaging.destination.name"] == "example/unknown"


def test_another_error_before_a_batch_is_a_500_span_with_status_error(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider)], load_entrypoints=False
    )
    # as an integration reports a request that failed before the handler parsed it
    plugins.hook.statefun_request_failed(
        error=ConnectionResetError("peer left"), batch=None, headers={"traceparent": TRACEPARENT}
    )
    (span,) = exporter.get_finished_spans()
    assert (span.name, span.kind) == ("POST", SpanKind.SERVER)
    assert dict(span.attributes or {}) == {
        "error.type": "ConnectionResetError",
        "http.response.status_code": 500,
        "http.request.method": "POST",
        "statefun.outcome": "rejected",
    }
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ConnectionResetError: peer left"


@pytest.mark.parametrize(
    ("method", "attribute"),
    [
        *[(m, m) for m in ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "PUT", "TRACE")],
        ("get", "_OTHER"),  # the conventions' methods are case-sensitive
        ("QUERY", "_OTHER"),
    ],
)
def test_a_405_span_names_the_method_by_the_http_conventions(
    provider: TracerProvider, exporter: InMemorySpanExporter, method: str, attribute: str
) -> None:
    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider)], load_entrypoints=False
    )
    error = MethodNotAllowedError(method=method)
    plugins.hook.statefun_request_failed(error=error, batch=None, headers={"x": "y"})
    (span,) = exporter.get_finished_spans()
    assert span.name == ("HTTP" if attribute == "_OTHER" else method)
    attributes = dict(span.attributes or {})
    assert attributes["http.response.status_code"] == 405
    assert attributes["http.request.method"] == attribute
    if attribute == "_OTHER":
        assert attributes["http.request.method_original"] == method
    else:
        assert "http.request.method_original" not in attributes
    assert span.status.status_code is StatusCode.UNSET  # a 4xx on a SERVER span


def test_a_rejected_request_without_headers_is_a_consumer_span_with_status_error(
    handler: RequestReplyHandler, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(MalformedRequestError):
        handler.handle_sync(b"\xff\xff not protobuf")
    (span,) = exporter.get_finished_spans()
    assert (span.name, span.kind) == ("POST", SpanKind.CONSUMER)
    assert span.status.status_code is StatusCode.ERROR  # no HTTP request: no 4xx exemption
    assert (span.attributes or {})["http.response.status_code"] == 400


@contextlib.asynccontextmanager
async def serving(handler: RequestReplyHandler) -> AsyncIterator[str]:
    """The statefun-aiohttp application of ``handler`` (bodies up to 500 bytes) on a port."""
    runner = web.AppRunner(create_app(handler, client_max_size=500), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("method", "body", "status", "error"),
    [
        ("GET", b"", 405, "MethodNotAllowedError"),
        ("PROPFIND", b"", 405, "MethodNotAllowedError"),  # no method the conventions name
        ("POST", b"\xff\xff", 400, "MalformedRequestError"),
        ("POST", wire.to_function(SYNC, "ann", ["x" * 600]), 413, "RequestTooLargeError"),
    ],
)
def test_a_request_the_server_rejects_has_a_span(
    handler: RequestReplyHandler,
    exporter: InMemorySpanExporter,
    method: str,
    body: bytes,
    status: int,
    error: str,
) -> None:
    async def scenario() -> None:
        async with serving(handler) as url, aiohttp.ClientSession() as session:
            headers = {"traceparent": TRACEPARENT}
            async with session.request(method, url, data=body, headers=headers) as response:
                assert response.status == status

    asyncio.run(scenario())
    (span,) = exporter.get_finished_spans()
    assert span.name == ("HTTP" if method == "PROPFIND" else method)
    assert span.kind is SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert (span.attributes or {})["error.type"] == f"statefun_core.errors.{error}"
    assert (span.attributes or {})["http.response.status_code"] == status
    attributes = dict(span.attributes or {})
    if method == "PROPFIND":
        assert attributes["http.request.method"] == "_OTHER"
        assert attributes["http.request.method_original"] == "PROPFIND"
    else:
        assert attributes["http.request.method"] == method
        assert "http.request.method_original" not in attributes


def test_the_reply_of_a_served_batch_carries_traceresponse(
    handler: RequestReplyHandler, exporter: InMemorySpanExporter
) -> None:
    async def scenario() -> str:
        async with serving(handler) as url, aiohttp.ClientSession() as session:
            body = wire.to_function(SYNC, "ann", ["x"])
            headers = {"traceparent": TRACEPARENT}
            async with session.post(url, data=body, headers=headers) as response:
                assert response.status == 200
                return response.headers[TRACERESPONSE]

    traceresponse = asyncio.run(scenario())
    batch, _ = spans(exporter, SYNC)
    assert traceresponse == f"00-{TRACE_ID}-{batch.context.span_id:016x}-01"


def cancels_its_own_task(functions: StatefulFunctions) -> None:
    @functions.bind(BROKEN)
    async def cancels(context: Context, message: Message) -> None:
        task = asyncio.ensure_future(asyncio.sleep(10))
        await asyncio.sleep(0)
        task.cancel()
        await task  # raises CancelledError: the function's own failure, a 500


def sends_too_much(functions: StatefulFunctions) -> None:
    @functions.bind(BROKEN)
    def sends(context: Context, message: Message) -> None:
        for _ in range(3):
            context.send(message_builder("example/other", "x", str_value="hi"))


@pytest.mark.parametrize(
    ("bind", "driver", "error_type"),
    [
        (cancels_its_own_task, "handle_sync", "asyncio.exceptions.CancelledError"),
        pytest.param(
            cancels_its_own_task,
            "handle_async",
            "asyncio.exceptions.CancelledError",
            marks=pytest.mark.skipif(
                sys.version_info < (3, 11), reason="asyncio tells the two apart since 3.11"
            ),
        ),
        (sends_too_much, "handle_sync", "statefun_core.errors.LimitExceededError"),
    ],
    ids=["own CancelledError, sync", "own CancelledError, async", "a limit"],
)
def test_a_failed_batchs_span_has_the_status_the_server_answers(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    bind: Callable[[StatefulFunctions], None],
    driver: str,
    error_type: str,
) -> None:
    """Whatever the function raised, a failed batch is answered 500: a ``CancelledError`` of
    its own (not its request's cancellation, which gets no reply) or a limit of the batch
    (whose own status, 413, is for a request refused before it runs)."""
    functions = StatefulFunctions()
    bind(functions)
    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider)], load_entrypoints=False
    )
    handler = RequestReplyHandler(functions, plugins=plugins, limits=Limits(outgoing_per_batch=2))
    body, headers = wire.to_function(BROKEN, "ann", ["x"]), {"traceparent": TRACEPARENT}
    with pytest.raises(FunctionFailedError) as failure:
        if driver == "handle_sync":
            handler.handle_sync(body, headers)
        else:
            asyncio.run(handler.handle_async(body, headers))
    assert status_for(failure.value) == 500
    batch, _ = spans(exporter, BROKEN)
    attributes = batch.attributes or {}
    assert (batch.kind, attributes["http.response.status_code"]) == (SpanKind.SERVER, 500)
    assert (attributes["error.type"], attributes["statefun.outcome"]) == (error_type, "error")
    assert batch.status.status_code is StatusCode.ERROR


def test_a_request_whose_client_went_is_traced_as_cancelled_not_as_an_error(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """Behind a real aiohttp server that cancels the handler of a request whose client went
    (``handler_cancellation=True``), a client that closes its connection mid-batch, as a
    runtime whose call timed out does. Not the function's failure: as the conventions treat
    a call its caller cancelled (gRPC's CANCELLED on a server span, an HTTP request its
    client aborted), the batch span and the span of the invocation the cancellation stopped
    keep status UNSET, with no ``error.type`` and no exception event; ``statefun.outcome`` is
    ``cancelled``. No reply was sent: no ``http.response.status_code``."""
    slow = "example/slow"
    functions = StatefulFunctions()
    second: list[asyncio.Event] = []  # made in the loop (Python 3.9 binds one to a loop)

    @functions.bind(slow)
    async def waits_on_its_second(context: Context, message: Message) -> None:
        if message.as_string() == "second":
            second[0].set()
            await asyncio.Event().wait()  # until cancelled

    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider)], load_entrypoints=False
    )
    app = create_app(RequestReplyHandler(functions, plugins=plugins))

    async def client_goes() -> None:
        second.append(asyncio.Event())
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        try:
            body = wire.to_function(slow, "ann", ["first", "second", "third"])
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + f"traceparent: {TRACEPARENT}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            await second[0].wait()
            writer.close()  # the runtime gives up
            await writer.wait_closed()
            for _ in range(10_000):  # until the batch's span ended (no time is asserted)
                if any(s.name == f"process {slow}" for s in exporter.get_finished_spans()):
                    break
                await asyncio.sleep(0.001)
        finally:
            await runner.cleanup()

    asyncio.run(client_goes())
    batch, invocations = spans(exporter, slow)
    outcomes = [(span.attributes or {})["statefun.outcome"] for span in invocations]
    assert outcomes == ["ok", "cancelled"]  # the third never started
    for span in (batch, *invocations):
        attributes = span.attributes or {}
        assert span.status.is_unset, span.name
        assert "error.type" not in attributes, span.name
        assert [event.name for event in span.events] == [], span.name
    attributes = batch.attributes or {}
    assert (batch.kind, attributes["statefun.outcome"]) == (SpanKind.SERVER, "cancelled")
    assert "http.response.status_code" not in attributes
