"""Inside a traced function, log records carry the trace id of its span (stdlib and structlog)."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from typing import Optional

import pytest
import structlog
from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from statefun_aiohttp import create_app
from statefun_opentelemetry import OpenTelemetryPlugin

from statefun_core import Context, Message, RequestReplyHandler, StatefulFunctions
from statefun_core.plugins import (
    InvocationLogContext,
    InvocationLogFilter,
    add_invocation_context,
    make_plugin_manager,
)
from statefun_core.testing import endpoint, wire

GREETER = "example/greeter"
std_log = logging.getLogger("test.otel.logging")


def post(app: web.Application, body: bytes, headers: Optional[dict[str, str]] = None) -> int:
    """The status of ``body`` posted to ``app`` served by a real aiohttp server."""

    async def scenario() -> int:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            status, _, _ = await asyncio.to_thread(
                endpoint.request, port, "/", body, "POST", headers or {}
            )
            return status
        finally:
            await runner.cleanup()

    return asyncio.run(scenario())


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def capture() -> structlog.testing.LogCapture:
    return structlog.testing.LogCapture()


@pytest.fixture
def handler(
    exporter: InMemorySpanExporter, capture: structlog.testing.LogCapture
) -> Iterator[RequestReplyHandler]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    struct_log = structlog.wrap_logger(
        structlog.PrintLogger(io.StringIO()), processors=[add_invocation_context, capture]
    )
    functions = StatefulFunctions()

    @functions.bind(GREETER)
    def greeter(context: Context, message: Message) -> None:
        std_log.warning("with the standard library")
        struct_log.info("with structlog", name=message.as_string())

    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider), InvocationLogContext()],
        load_entrypoints=False,
    )
    yield RequestReplyHandler(functions, plugins=plugins)
    provider.shutdown()


def invocation_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = [
        s
        for s in exporter.get_finished_spans()
        if "statefun.invocation.index" in (s.attributes or {})
    ]
    return span


def test_records_carry_the_trace_id_of_the_invocations_span(
    handler: RequestReplyHandler,
    exporter: InMemorySpanExporter,
    capture: structlog.testing.LogCapture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.handler.addFilter(InvocationLogFilter())
    handler.handle_sync(wire.to_function(GREETER, "ann", ["ann"], caller=("example/a", "b")))
    trace_id = format(invocation_span(exporter).context.trace_id, "032x")

    (record,) = [r for r in caplog.records if r.name == std_log.name]
    assert record.trace_id == trace_id  # type: ignore[attr-defined]
    assert record.statefun_function == GREETER  # type: ignore[attr-defined]

    (event,) = capture.entries
    assert event == {
        "event": "with structlog",
        "name": "ann",
        "log_level": "info",
        "statefun_function": GREETER,
        "statefun_id": "ann",
        "statefun_caller": "example/a/b",
        "trace_id": trace_id,
    }


class CurrentSpan(logging.Filter):
    """Keeps the span current when a record is made, as OpenTelemetry's logging
    instrumentation reads it for ``otelTraceID``/``otelSpanID``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.span_context = trace.get_current_span().get_span_context()
        return True


def test_a_failed_functions_log_line_is_in_its_invocations_span_and_log_context(
    exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    """Behind a real server (statefun-aiohttp), the 500's log line is written while the span
    that recorded the exception is current: the log leads to the trace."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    functions = StatefulFunctions()

    @functions.bind("example/broken")
    def broken(context: Context, message: Message) -> None:
        raise RuntimeError("boom")

    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider), InvocationLogContext()],
        load_entrypoints=False,
    )
    app = create_app(RequestReplyHandler(functions, plugins=plugins))

    caplog.handler.addFilter(CurrentSpan())
    caplog.handler.addFilter(InvocationLogFilter())
    with caplog.at_level(logging.ERROR, logger="statefun_core"):
        assert post(app, wire.to_function("example/broken", "ann", ["x"])) == 500
    provider.shutdown()

    (record,) = [r for r in caplog.records if r.name == "statefun_core"]
    assert record.getMessage().startswith("statefun request failed: function 'example/broken'")
    span = invocation_span(exporter)
    assert [event.name for event in span.events] == ["exception"]
    assert record.span_context.trace_id == span.context.trace_id  # type: ignore[attr-defined]
    assert record.span_context.span_id == span.context.span_id  # type: ignore[attr-defined]
    assert record.trace_id == format(span.context.trace_id, "032x")  # type: ignore[attr-defined]
    assert (record.statefun_function, record.statefun_id) == ("example/broken", "ann")  # type: ignore[attr-defined]


def test_a_refused_requests_log_line_is_in_the_trace_of_its_span(
    exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    """Behind a real server (statefun-aiohttp), the warning of a 404 carries the trace id of
    the request's traceparent, which the plugin's span of the refusal continues: a search of
    the logs by that trace finds the line."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider), InvocationLogContext()],
        load_entrypoints=False,
    )
    app = create_app(RequestReplyHandler(StatefulFunctions(), plugins=plugins))
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    caplog.handler.addFilter(InvocationLogFilter())
    with caplog.at_level(logging.WARNING, logger="statefun_core"):
        body = wire.to_function("example/none", "ann", ["x"])
        assert post(app, body, {"traceparent": traceparent}) == 404
    provider.shutdown()

    (record,) = [r for r in caplog.records if r.name == "statefun_core"]
    assert record.getMessage().startswith("statefun request rejected (404)")
    (span,) = exporter.get_finished_spans()
    assert (span.attributes or {})["statefun.outcome"] == "rejected"
    assert record.trace_id == format(span.context.trace_id, "032x") == traceparent[3:35]  # type: ignore[attr-defined]


def test_a_cancelled_requests_warning_is_in_the_trace_of_its_batch_span(
    exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    """Behind a real aiohttp server that cancels the handler of a request whose client went
    (``handler_cancellation=True``): the request had no traceparent, its batch span started
    the trace, and the warning names that trace, as a failed function's line would."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    functions = StatefulFunctions()
    started: list[asyncio.Event] = []

    @functions.bind("example/slow")
    async def slow(context: Context, message: Message) -> None:
        started[0].set()
        await asyncio.Event().wait()

    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider), InvocationLogContext()],
        load_entrypoints=False,
    )
    app = create_app(RequestReplyHandler(functions, plugins=plugins))

    async def client_goes() -> None:
        started.append(asyncio.Event())
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        try:
            body = wire.to_function("example/slow", "ann", ["x"])
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            head = f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
            await started[0].wait()
            writer.close()  # the runtime gives up
            await writer.wait_closed()
            for _ in range(10_000):  # until the batch's span ended
                if exporter.get_finished_spans():
                    break
                await asyncio.sleep(0.001)
        finally:
            await runner.cleanup()

    caplog.handler.addFilter(InvocationLogFilter())
    with caplog.at_level(logging.WARNING, logger="statefun_core"):
        asyncio.run(client_goes())
    provider.shutdown()

    (record,) = [r for r in caplog.records if r.name == "statefun_core"]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("statefun request cancelled: function 'example/slow'")
    (batch,) = [s for s in exporter.get_finished_spans() if s.name == "process example/slow"]
    assert batch.parent is None  # no traceparent: the batch span started the trace
    assert record.trace_id == format(batch.context.trace_id, "032x")  # type: ignore[attr-defined]
    assert (record.statefun_function, record.statefun_id) == ("example/slow", "ann")  # type: ignore[attr-defined]
