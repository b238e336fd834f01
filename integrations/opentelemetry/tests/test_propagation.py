"""One trace follows a message through the Harness: ingress, three functions, egress."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from statefun_opentelemetry import OpenTelemetryPlugin

from statefun_core import (
    Context,
    IntType,
    Message,
    StatefulFunctions,
    ValueSpec,
    kafka_egress_message,
    message_builder,
)
from statefun_core.plugins import make_plugin_manager
from statefun_core.testing import Harness

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
INGRESS = f"00-{TRACE_ID}-b7ad6b7169203331-01"
OTHER_TRACE_ID = "1" * 32
OTHER_INGRESS = f"00-{OTHER_TRACE_ID}-{'2' * 16}-01"
FIRST, SECOND, THIRD = "example/first", "example/second", "example/third"


def chain() -> StatefulFunctions:
    """first -> second -> third -> the egress ``example/out``."""
    functions = StatefulFunctions()

    @functions.bind(FIRST)
    def first(context: Context, message: Message) -> None:
        context.send(message_builder(SECOND, "all", str_value=message.as_string()))

    @functions.bind(SECOND)
    def second(context: Context, message: Message) -> None:
        context.send(message_builder(THIRD, context.address.id, str_value=message.as_string()))

    @functions.bind(THIRD)
    def third(context: Context, message: Message) -> None:
        context.send_egress(
            kafka_egress_message("example/out", topic="t", key="k", value=message.as_string())
        )

    return functions


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    yield InMemorySpanExporter()


@pytest.fixture
def harness(exporter: InMemorySpanExporter) -> Iterator[Harness]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider)], load_entrypoints=False
    )
    yield Harness(chain(), plugins=plugins)
    provider.shutdown()


def batch_spans(exporter: InMemorySpanExporter, typename: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == f"process {typename}"]


def batch_span(exporter: InMemorySpanExporter, typename: str) -> ReadableSpan:
    (span,) = batch_spans(exporter, typename)
    return span


def invocation_spans(exporter: InMemorySpanExporter, typename: str) -> list[ReadableSpan]:
    found = [s for s in exporter.get_finished_spans() if s.name == typename]
    return sorted(found, key=lambda s: (s.attributes or {})["statefun.invocation.index"])


def traceparent(span: ReadableSpan) -> str:
    context = span.context
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def test_one_trace_from_the_ingress_through_three_functions_to_the_egress(
    harness: Harness, exporter: InMemorySpanExporter
) -> None:
    harness.send(FIRST, "ann", str_value="hello", traceparent=INGRESS)
    harness.run()

    first, second, third = (batch_span(exporter, name) for name in (FIRST, SECOND, THIRD))
    assert {format(s.context.trace_id, "032x") for s in exporter.get_finished_spans()} == {TRACE_ID}
    assert first.parent is not None and format(first.parent.span_id, "016x") == INGRESS[36:52]
    assert second.parent is not None and second.parent.span_id == first.context.span_id
    assert third.parent is not None and third.parent.span_id == second.context.span_id
    assert all(s.kind is SpanKind.SERVER for s in (first, second, third))
    for sender, receiver in ((first, SECOND), (second, THIRD)):
        (invocation,) = invocation_spans(exporter, receiver)
        assert [link.context.span_id for link in invocation.links] == [sender.context.span_id]
    (record,) = harness.engine.egress_records()
    assert record.trace is not None and record.trace.traceparent == traceparent(third)


def test_a_batch_of_messages_from_two_traces_links_each_to_its_own(
    harness: Harness, exporter: InMemorySpanExporter
) -> None:
    # the first message to the idle second/all goes alone; the two from two traces queued
    # behind it are its next batch
    harness.send(SECOND, "all", str_value="first")
    harness.send(SECOND, "all", str_value="a", traceparent=INGRESS)
    harness.send(SECOND, "all", str_value="b", traceparent=OTHER_INGRESS)
    harness.run()

    alone, second = batch_spans(exporter, SECOND)
    sizes = [(s.attributes or {}).get("messaging.batch.message_count") for s in (alone, second)]
    assert sizes == [None, 2]  # the conventions leave it off an operation on one message
    # the batch continues its first message's trace ...
    assert second.parent is not None and format(second.parent.span_id, "016x") == INGRESS[36:52]
    assert format(second.context.trace_id, "032x") == TRACE_ID
    # ... and each invocation links to where its own message came from
    invocations = [
        s
        for s in invocation_spans(exporter, SECOND)
        if s.parent is not None and s.parent.span_id == second.context.span_id
    ]
    links = [[link.context for link in s.links] for s in invocations]
    assert [[(c.trace_id, c.span_id) for c in context] for context in links] == [
        [(int(TRACE_ID, 16), int(INGRESS[36:52], 16))],
        [(int(OTHER_TRACE_ID, 16), int(OTHER_INGRESS[36:52], 16))],
    ]


def test_without_an_ingress_trace_the_first_function_starts_one(
    harness: Harness, exporter: InMemorySpanExporter
) -> None:
    harness.send(FIRST, "ann", str_value="hello")
    harness.run()
    first, third = batch_span(exporter, FIRST), batch_span(exporter, THIRD)
    assert first.parent is None
    assert len({s.context.trace_id for s in exporter.get_finished_spans()}) == 1
    (record,) = harness.engine.egress_records()
    assert record.trace is not None and record.trace.traceparent == traceparent(third)


def test_without_the_tracing_plugin_the_ingress_context_is_passed_on() -> None:
    harness = Harness(chain(), plugins=make_plugin_manager(load_entrypoints=False))
    harness.send(FIRST, "ann", str_value="hello", traceparent=INGRESS)
    harness.run()
    (record,) = harness.engine.egress_records()
    assert record.trace is not None and record.trace.traceparent == INGRESS
    assert all(batch.headers["traceparent"] == INGRESS for batch in harness.batches)


def test_a_malformed_traceparent_is_refused(harness: Harness) -> None:
    with pytest.raises(ValueError, match="traceparent"):
        harness.send(FIRST, "ann", str_value="x", traceparent="00-nope")


def test_a_delayed_message_keeps_the_trace_of_the_batch_that_scheduled_it(
    exporter: InMemorySpanExporter,
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    functions = StatefulFunctions()

    @functions.bind(FIRST)
    def first(context: Context, message: Message) -> None:
        context.send_after(timedelta(seconds=5), message_builder(SECOND, "later", str_value="hi"))

    @functions.bind(SECOND)
    def second(context: Context, message: Message) -> None:
        pass

    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider)], load_entrypoints=False
    )
    harness = Harness(functions, plugins=plugins)
    harness.send(FIRST, "ann", str_value="x", traceparent=INGRESS).run()
    (timer,) = harness.engine.pending_timers()
    assert timer.trace is not None and timer.trace.traceparent == traceparent(
        batch_span(exporter, FIRST)
    )
    harness.advance(timedelta(seconds=5))

    scheduler, receiver = batch_span(exporter, FIRST), batch_span(exporter, SECOND)
    assert receiver.parent is not None and receiver.parent.span_id == scheduler.context.span_id
    assert format(receiver.context.trace_id, "032x") == TRACE_ID
    provider.shutdown()


def test_a_message_of_no_known_origin_to_a_function_with_state_is_one_trace(
    exporter: InMemorySpanExporter,
) -> None:
    # its first batch finds the state missing (the runtime learns the specs), its retry runs
    # the function: both batches, and what the retry sends on, are in one trace
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    functions = StatefulFunctions()

    @functions.bind(FIRST, specs=[ValueSpec("seen", IntType)])
    def first(context: Context, message: Message) -> None:
        context.storage.seen = (context.storage.seen or 0) + 1
        context.send(message_builder(SECOND, "all", str_value="on"))

    @functions.bind(SECOND)
    def second(context: Context, message: Message) -> None:
        pass

    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider)], load_entrypoints=False
    )
    Harness(functions, plugins=plugins).send(FIRST, "ann", str_value="x").run()

    discovery, retry = batch_spans(exporter, FIRST)
    assert retry.parent is not None and retry.parent.span_id == discovery.context.span_id
    assert len({s.context.trace_id for s in exporter.get_finished_spans()}) == 1
    provider.shutdown()
