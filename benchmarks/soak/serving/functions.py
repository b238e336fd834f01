"""The functions the long runs serve: many addresses, state discovery, state written and
deleted (one state with a TTL), arguments of any typename, messages, delayed messages, egress,
and a function that always fails. The OpenTelemetry SDK is the tracer provider (its spans
dropped at export), so statefun-opentelemetry does its full work on every request."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from statefun_core import (
    Context,
    IntType,
    Message,
    StatefulFunctions,
    StringType,
    ValueSpec,
    kafka_egress_message,
    message_builder,
)

# the failing function would log every request
logging.getLogger("statefun_core").setLevel(logging.CRITICAL)


class _Dropping(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


if not isinstance(trace.get_tracer_provider(), TracerProvider):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_Dropping()))
    trace.set_tracer_provider(provider)

functions = StatefulFunctions()


@functions.bind(
    "soak/counter",
    specs=[
        ValueSpec("count", IntType),
        ValueSpec("note", StringType, expire_after_write=timedelta(hours=1)),
    ],
)
def counter(context: Context, message: Message) -> None:
    count = (context.storage.count or 0) + 1
    context.storage.count = count
    if count % 2:
        context.storage.note = f"{message.value_typename()}:{count}"
    else:
        del context.storage.note
    raw = message.raw_value() or b""
    target = context.address.id
    context.send(message_builder("soak/sink", target, str_value=raw.hex()))
    context.send_after(timedelta(seconds=5), message_builder("soak/sink", target, int_value=count))
    context.send_egress(kafka_egress_message(typename="soak/out", topic="t", key=target, value=raw))


@functions.bind("soak/failing")
def failing(context: Context, message: Message) -> None:
    raise ValueError(f"failed for {context.address.id} on {message.value_typename()}")


@functions.bind("soak/sink")
def sink(context: Context, message: Message) -> None:
    pass
