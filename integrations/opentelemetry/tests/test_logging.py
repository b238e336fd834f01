"""Inside a traced function, log records carry the trace id of its span (stdlib and structlog)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
import structlog
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from statefun_opentelemetry import OpenTelemetryPlugin

from statefun_core import Context, Message, RequestReplyHandler, StatefulFunctions
from statefun_core.plugins import (
    InvocationLogContext,
    InvocationLogFilter,
    add_invocation_context,
    make_plugin_manager,
)
from statefun_core.testing import wire

GREETER = "example/greeter"
std_log = logging.getLogger("test.otel.logging")


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
