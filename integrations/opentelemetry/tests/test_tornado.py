"""Behind statefun-tornado with a request span made current in ``prepare`` and ended in
``on_finish`` (what opentelemetry-instrumentation-tornado does): a rejected request's span is
its child, and the context is detached where it was attached."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

pytest.importorskip("statefun_tornado")

import statefun_tornado
from opentelemetry import context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind
from statefun_opentelemetry import OpenTelemetryPlugin
from tornado.web import Application

from statefun_core import Limits, RequestReplyHandler
from statefun_core.plugins import InvocationLogContext, InvocationLogFilter, make_plugin_manager
from statefun_core.testing import endpoint, wire
from statefun_core.testing.endpoint import FAILING, GREETER, NEW

LIMIT = 1000
REQUEST_SPAN = "POST /statefun"


class TracedHandler(statefun_tornado.StatefunHandler):
    """Makes the request's SERVER span current in ``prepare``; ends and detaches it in
    ``on_finish``."""

    def initialize(  # type: ignore[override]
        self, handler: RequestReplyHandler, tracer: trace.Tracer
    ) -> None:
        super().initialize(handler, max_body_size=LIMIT)
        self.tracer = tracer

    def prepare(self) -> None:
        self.span = self.tracer.start_span(REQUEST_SPAN, kind=SpanKind.SERVER)
        self.token = context.attach(trace.set_span_in_context(self.span))
        super().prepare()

    def on_finish(self) -> None:
        self.span.set_attribute("http.response.status_code", self.get_status())
        self.span.end()
        context.detach(self.token)  # logs "Failed to detach context" in another context
        super().on_finish()


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.shutdown()


def test_a_chunked_body_over_the_limit_is_traced_under_the_request_span(
    exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider)], load_entrypoints=False
    )
    handler = RequestReplyHandler(endpoint.make_functions(), plugins=plugins)
    options = {"handler": handler, "tracer": provider.get_tracer("test")}
    too_large = wire.to_function(GREETER, "Ann", ["x" * LIMIT], NEW)
    fits = wire.to_function(GREETER, "Bob", ["Bob"], NEW)

    async def scenario() -> list[int]:
        server = Application([("/statefun", TracedHandler, options)]).listen(0, address="127.0.0.1")
        port = next(iter(server._sockets.values())).getsockname()[1]
        try:
            statuses = []
            for body, chunked in ((too_large, True), (fits, False)):
                status, _, _ = await asyncio.to_thread(
                    endpoint.request, port, "/statefun", body, chunked=chunked
                )
                statuses.append(status)
            return statuses
        finally:
            server.stop()

    with caplog.at_level(logging.ERROR):
        assert asyncio.run(scenario()) == [413, 200]
    assert not caplog.records, caplog.text
    spans = exporter.get_finished_spans()
    requests = [span for span in spans if span.name == REQUEST_SPAN]
    assert [(span.attributes or {})["http.response.status_code"] for span in requests] == [
        413,
        200,
    ]
    (rejected,) = [span for span in spans if span.name == "POST"]
    assert rejected.kind is SpanKind.INTERNAL
    assert rejected.parent is not None and rejected.parent.span_id == requests[0].context.span_id
    # the next request's batch is under its own request span, not the refused one's
    (batch,) = [span for span in spans if span.name == f"process {GREETER}"]
    assert batch.kind is SpanKind.CONSUMER  # the request's SERVER span is the server's
    assert batch.parent is not None and batch.parent.span_id == requests[1].context.span_id
    provider.shutdown()


@pytest.mark.parametrize("method", ["PUT", "PROPFIND"])
def test_a_wrong_method_is_one_trace_under_opentelemetry_instrumentation_tornado(
    exporter: InMemorySpanExporter, method: str
) -> None:
    """A method Tornado does not route (PROPFIND) is refused like one it does (PUT): in
    ``prepare``, where the instrumentation's request span is current, not after it ended."""
    tornado_instrumentation = pytest.importorskip("opentelemetry.instrumentation.tornado")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider)], load_entrypoints=False
    )
    handler = RequestReplyHandler(endpoint.make_functions(), plugins=plugins)
    instrumentor = tornado_instrumentation.TornadoInstrumentor()
    instrumentor.instrument(tracer_provider=provider)

    async def scenario() -> tuple[int, dict[str, str]]:
        app = Application([("/statefun", statefun_tornado.StatefunHandler, {"handler": handler})])
        server = app.listen(0, address="127.0.0.1")
        port = next(iter(server._sockets.values())).getsockname()[1]
        try:
            status, headers, _ = await asyncio.to_thread(
                endpoint.request, port, "/statefun", b"", method=method
            )
            return status, headers
        finally:
            server.stop()

    try:
        status, headers = asyncio.run(scenario())
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    assert status == 405 and headers["Allow"] == "POST"
    spans = exporter.get_finished_spans()
    roots = [span for span in spans if span.parent is None]
    assert [span.kind for span in roots] == [SpanKind.SERVER], [span.name for span in spans]
    (rejected,) = [span for span in spans if span is not roots[0]]
    assert rejected.kind is SpanKind.INTERNAL
    assert rejected.parent is not None and rejected.parent.span_id == roots[0].context.span_id
    assert (rejected.attributes or {})["http.response.status_code"] == 405
    assert rejected.name == ("HTTP" if method == "PROPFIND" else method)


def test_the_access_line_of_a_failure_names_the_trace_of_its_batch_span(
    exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    """A request without a traceparent: its batch span starts the trace, which Tornado's
    access line of the 500 names, as the core's line of the failure does (log context)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider), InvocationLogContext()],
        load_entrypoints=False,
    )
    handler = RequestReplyHandler(endpoint.make_functions(), plugins=plugins)

    caplog.handler.addFilter(InvocationLogFilter())
    with caplog.at_level(logging.INFO):
        assert post(handler, wire.to_function(FAILING, "x", ["x"])) == 500
    provider.shutdown()
    (batch,) = [s for s in exporter.get_finished_spans() if s.name == f"process {FAILING}"]
    trace_id = format(batch.context.trace_id, "032x")
    (failure,) = [r for r in caplog.records if r.name == "statefun_core"]
    assert failure.__dict__["trace_id"] == trace_id
    (access,) = [r for r in caplog.records if r.name == "tornado.access"]
    assert f" trace={trace_id} " in access.getMessage(), caplog.text


def test_a_failure_after_the_invocations_is_logged_in_the_trace_of_its_batch_span(
    exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch whose reply goes over ``Limits.reply_bytes`` fails after its invocations ended,
    where no span is current: the core's line of the failure names the trace of the batch
    span, as Tornado's access line of the 500 does (one rule for both)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider), InvocationLogContext()],
        load_entrypoints=False,
    )
    handler = RequestReplyHandler(
        endpoint.make_functions(), plugins=plugins, limits=Limits(reply_bytes=1)
    )

    caplog.handler.addFilter(InvocationLogFilter())
    body = wire.to_function(GREETER, "ann", ["x"], {"seen_count": None})
    with caplog.at_level(logging.INFO):
        assert post(handler, body) == 500
    provider.shutdown()
    (batch,) = [s for s in exporter.get_finished_spans() if s.name == f"process {GREETER}"]
    trace_id = format(batch.context.trace_id, "032x")
    (failure,) = [r for r in caplog.records if r.name == "statefun_core"]
    assert "reply_bytes" in failure.getMessage()
    assert failure.__dict__["trace_id"] == trace_id
    assert (failure.__dict__["statefun_function"], failure.__dict__["statefun_id"]) == (
        GREETER,
        "ann",
    )
    (access,) = [r for r in caplog.records if r.name == "tornado.access"]
    assert f" trace={trace_id} " in access.getMessage(), caplog.text


def post(handler: RequestReplyHandler, body: bytes) -> int:
    """The status of ``body`` posted to a real Tornado server of ``make_routes(handler)``."""

    async def scenario() -> int:
        app = Application(statefun_tornado.make_routes(handler, endpoints=False))
        server = app.listen(0, address="127.0.0.1")
        port = next(iter(server._sockets.values())).getsockname()[1]
        try:
            status, _, _ = await asyncio.to_thread(endpoint.request, port, "/statefun", body)
            return status
        finally:
            server.stop()

    return asyncio.run(scenario())
