from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry import baggage, trace
from opentelemetry.propagators.textmap import TextMapPropagator, default_getter, default_setter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from statefun_opentelemetry import SCRATCH_KEY, OpenTelemetryPlugin

from statefun_core import (
    Context,
    DeadLetterEgress,
    IntType,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    ValueSpec,
    message_builder,
)
from statefun_core.aws_lambda import LambdaHandler
from statefun_core.errors import FunctionFailedError
from statefun_core.plugins import hookimpl, make_plugin_manager
from statefun_core.testing import wire
from statefun_core.testing.aws_lambda import gateway_event, invoke

GREETER = "example/greeter"
BROKEN = "example/broken"
SEEN_2 = {"seen": 2}
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


def make_functions(tracer: trace.Tracer) -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind(GREETER, specs=[ValueSpec("seen", IntType)])
    def greeter(context: Context, message: Message) -> None:
        with tracer.start_as_current_span("inside greeter"):
            context.storage.seen = (context.storage.seen or 0) + 1
            context.send(message_builder("example/inbox", "x", str_value=message.as_string()))

    @functions.bind(BROKEN)
    async def broken(context: Context, message: Message) -> None:
        raise RuntimeError("boom")

    return functions


@pytest.fixture
def handler(provider: TracerProvider) -> RequestReplyHandler:
    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider)], load_entrypoints=False
    )
    return RequestReplyHandler(make_functions(provider.get_tracer("test")), plugins=plugins)


def by_name(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    spans: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        spans.setdefault(span.name, []).append(span)
    return spans


def batch_and_invocations(
    exporter: InMemorySpanExporter, typename: str
) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """The batch span of the function ``typename`` and its invocation spans, by index."""
    spans = by_name(exporter)
    (batch,) = spans[f"process {typename}"]
    return batch, sorted(
        spans[typename], key=lambda s: (s.attributes or {})["statefun.invocation.index"]
    )


def test_a_batch_span_with_a_child_per_invocation(
    handler: RequestReplyHandler, exporter: InMemorySpanExporter
) -> None:
    handler.handle_sync(wire.to_function(GREETER, "ann", ["ann", "bob"], SEEN_2))

    batch, invocations = batch_and_invocations(exporter, GREETER)
    assert batch.kind is SpanKind.CONSUMER  # no HTTP request: no headers
    assert batch.parent is None
    assert batch.status.status_code is StatusCode.UNSET
    assert dict(batch.attributes or {}) == {
        "faas.trigger": "pubsub",
        "messaging.system": "statefun",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": GREETER,
        "messaging.batch.message_count": 2,
        "statefun.function.id": "ann",
        "statefun.state.read_bytes": 5,
        "statefun.state.written_bytes": 5,
        "statefun.outgoing.messages": 2,
        "statefun.outgoing.delayed": 0,
        "statefun.outgoing.egress": 0,
        "statefun.outcome": "ok",
    }
    assert [(s.attributes or {})["statefun.invocation.index"] for s in invocations] == [0, 1]
    for invocation in invocations:
        assert invocation.kind is SpanKind.INTERNAL
        assert invocation.parent is not None
        assert invocation.parent.span_id == batch.context.span_id
        assert not invocation.links  # no statefun-origins header
        attributes = dict(invocation.attributes or {})
        index = attributes.pop("statefun.invocation.index")
        assert attributes == {
            "messaging.destination.name": GREETER,
            "statefun.function.id": "ann",
            "statefun.argument.type": "io.statefun.types/string",
            "statefun.outcome": "ok",
        }, index


def test_the_invocation_span_is_current_while_the_function_runs(
    handler: RequestReplyHandler, exporter: InMemorySpanExporter
) -> None:
    handler.handle_sync(wire.to_function(GREETER, "ann", ["ann"], SEEN_2))
    _, (invocation,) = batch_and_invocations(exporter, GREETER)
    (inside,) = by_name(exporter)["inside greeter"]
    assert inside.parent is not None
    assert inside.parent.span_id == invocation.context.span_id
    assert not trace.get_current_span().get_span_context().is_valid  # detached again


def test_a_traceparent_header_is_continued(
    handler: RequestReplyHandler, exporter: InMemorySpanExporter
) -> None:
    headers = {"Traceparent": TRACEPARENT}  # any case
    handler.handle_sync(wire.to_function(GREETER, "ann", ["ann"], SEEN_2), headers)
    batch, (invocation,) = batch_and_invocations(exporter, GREETER)
    assert batch.kind is SpanKind.SERVER  # an HTTP request carried it
    assert batch.parent is not None
    assert format(batch.context.trace_id, "032x") == TRACE_ID
    assert format(batch.parent.span_id, "016x") == PARENT_ID
    assert batch.parent.is_remote
    assert invocation.context.trace_id == batch.context.trace_id


def test_a_current_span_is_the_parent_rather_than_the_header(
    handler: RequestReplyHandler, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer("http-server")
    with tracer.start_as_current_span("POST /statefun", kind=SpanKind.SERVER) as server:
        handler.handle_sync(
            wire.to_function(GREETER, "ann", ["ann"], SEEN_2), {"traceparent": TRACEPARENT}
        )
    batch, _ = batch_and_invocations(exporter, GREETER)
    assert batch.kind is SpanKind.CONSUMER  # one SERVER span per request: the server's
    assert "http.response.status_code" not in (batch.attributes or {})  # the server's tells
    assert batch.parent is not None
    assert batch.parent.span_id == server.get_span_context().span_id


def test_an_injected_propagator_reads_the_headers(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    class OwnHeader(TextMapPropagator):
        """Reads the W3C value from a header of its own name."""

        def extract(self, carrier, context=None, getter=default_getter):  # type: ignore[no-untyped-def]
            value = getter.get(carrier, "x-own-trace")
            carrier = {"traceparent": value[0]} if value else {}
            return TraceContextTextMapPropagator().extract(carrier, context)

        def inject(self, carrier, context=None, setter=default_setter):  # type: ignore[no-untyped-def]
            raise NotImplementedError

        @property
        def fields(self) -> set[str]:
            return {"x-own-trace"}

    plugin = OpenTelemetryPlugin(tracer_provider=provider, propagator=OwnHeader())
    handler = RequestReplyHandler(
        make_functions(provider.get_tracer("test")),
        plugins=make_plugin_manager([plugin], load_entrypoints=False),
    )
    handler.handle_sync(
        wire.to_function(GREETER, "ann", ["ann"], SEEN_2),
        {"x-own-trace": TRACEPARENT, "traceparent": f"00-{'1' * 32}-{'2' * 16}-01"},
    )
    batch, _ = batch_and_invocations(exporter, GREETER)
    assert format(batch.context.trace_id, "032x") == TRACE_ID


def test_an_invocation_sent_by_a_function_names_its_caller(
    handler: RequestReplyHandler, exporter: InMemorySpanExporter
) -> None:
    body = wire.to_function(GREETER, "ann", ["ann"], SEEN_2, caller=("example/sender", "bob"))
    handler.handle_sync(body)
    _, (invocation,) = batch_and_invocations(exporter, GREETER)
    attributes = dict(invocation.attributes or {})
    assert attributes["statefun.caller.type"] == "example/sender"
    assert attributes["statefun.caller.id"] == "bob"


def test_a_propagator_may_list_the_headers_whatever_their_mapping(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    seen: list[object] = []

    class Prefixed(TextMapPropagator):
        """Baggage from every ``x-ctx-<key>`` header: it needs the getter's ``keys``."""

        def extract(self, carrier, context=None, getter=default_getter):  # type: ignore[no-untyped-def]
            for key in getter.keys(carrier):
                if key.lower().startswith("x-ctx-"):
                    value = getter.get(carrier, key)[0]
                    context = baggage.set_baggage(key.lower()[6:], value, context)
            return context

        def inject(self, carrier, context=None, setter=default_setter):  # type: ignore[no-untyped-def]
            raise NotImplementedError

        @property
        def fields(self) -> set[str]:
            return set()

    functions = StatefulFunctions()

    @functions.bind("example/reads")
    def reads(context: Context, message: Message) -> None:
        seen.append(baggage.get_baggage("tenant"))

    plugin = OpenTelemetryPlugin(tracer_provider=provider, propagator=Prefixed())
    handler = RequestReplyHandler(
        functions, plugins=make_plugin_manager([plugin], load_entrypoints=False)
    )
    handler.handle_sync(wire.to_function("example/reads", "ann", ["x"]), {"X-Ctx-Tenant": "acme"})
    assert seen == ["acme"]


def test_a_dead_lettered_invocation_says_so_on_its_span_and_the_batch_counts_it(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    functions = StatefulFunctions()
    poison = "example/poison"

    @functions.bind(
        poison, final_errors=(KeyError,), dead_letters=DeadLetterEgress("example/dead", "dead")
    )
    def fragile(context: Context, message: Message) -> None:
        if message.as_string() == "bad":
            raise KeyError("bad")

    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider)], load_entrypoints=False
    )
    handler = RequestReplyHandler(functions, plugins=plugins)
    handler.handle_sync(wire.to_function(poison, "ann", ["ok", "bad", "ok"]))

    batch, (first, dead, last) = batch_and_invocations(exporter, poison)
    assert (batch.attributes or {})["statefun.outcome"] == "ok"
    assert (batch.attributes or {})["statefun.dead_letters"] == 1
    assert batch.status.status_code is StatusCode.UNSET
    for span in (first, last):
        assert (span.attributes or {})["statefun.outcome"] == "ok"
        assert "statefun.dead_lettered" not in (span.attributes or {})
    attributes = dict(dead.attributes or {})
    assert attributes["statefun.outcome"] == "dead_lettered"
    assert attributes["statefun.dead_lettered"] is True
    assert attributes["error.type"] == "KeyError"
    assert dead.status.status_code is StatusCode.ERROR
    letter, exception = dead.events
    assert letter.name == "statefun.dead_letter"
    assert dict(letter.attributes or {}) == {
        "exception.type": "builtins.KeyError",
        "exception.message": "'bad'",
    }
    assert exception.name == "exception"


def test_a_raising_function_records_the_exception_and_status_error(
    handler: RequestReplyHandler, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(FunctionFailedError):
        asyncio.run(handler.handle_async(wire.to_function(BROKEN, "ann", ["x", "y"])))
    batch, invocations = batch_and_invocations(exporter, BROKEN)
    assert len(invocations) == 1  # the batch stops at the first failure
    for span in (batch, invocations[0]):
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "RuntimeError: boom"
        assert (span.attributes or {})["statefun.outcome"] == "error"
        assert (span.attributes or {})["error.type"] == "RuntimeError"
        (event,) = span.events
        assert event.name == "exception"
        assert (event.attributes or {})["exception.type"] == "RuntimeError"
        assert (event.attributes or {})["exception.message"] == "boom"


def test_missing_state_ends_the_batch_span_without_invocations(
    handler: RequestReplyHandler, exporter: InMemorySpanExporter
) -> None:
    asyncio.run(handler.handle_async(wire.to_function(GREETER, "ann", ["ann"])))
    (batch,) = exporter.get_finished_spans()
    assert (batch.attributes or {})["statefun.outcome"] == "missing_state"
    assert tuple((batch.attributes or {})["statefun.state.missing"]) == ("seen",)
    assert batch.status.status_code is StatusCode.UNSET


def test_the_spans_are_carried_in_scratch(provider: TracerProvider) -> None:
    seen: list[object] = []

    class Peek:
        @hookimpl(trylast=True)
        def statefun_invocation_started(self, invocation) -> None:  # type: ignore[no-untyped-def]
            seen.append(invocation.batch.scratch[SCRATCH_KEY])
            seen.append(invocation.scratch[SCRATCH_KEY])

    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider), Peek()], load_entrypoints=False
    )
    handler = RequestReplyHandler(make_functions(provider.get_tracer("t")), plugins=plugins)
    handler.handle_sync(wire.to_function(GREETER, "ann", ["ann"], SEEN_2))
    batch_span, invocation_span = seen
    assert isinstance(batch_span, trace.Span) and isinstance(invocation_span, trace.Span)
    assert batch_span is not invocation_span


def test_the_entry_point_traces_with_the_global_provider(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    from statefun_opentelemetry.default import plugin

    manager = make_plugin_manager()
    assert manager.get_plugin("opentelemetry") is plugin
    trace.set_tracer_provider(provider)  # once per process; the default plugin follows it
    handler = RequestReplyHandler(make_functions(provider.get_tracer("t")), plugins=manager)
    handler.handle_sync(wire.to_function(GREETER, "ann", ["ann"], SEEN_2))
    batch, _ = batch_and_invocations(exporter, GREETER)
    assert (batch.attributes or {})["statefun.function.id"] == "ann"


def test_the_entry_point_can_be_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATEFUN_DISABLED_PLUGINS", "prometheus, opentelemetry")
    assert make_plugin_manager().get_plugin("opentelemetry") is None


def test_an_async_function_that_suspends_under_handle_sync_leaks_no_current_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer("test")
    functions = StatefulFunctions()

    @functions.bind("example/waits")
    async def waits(context: Context, message: Message) -> None:
        await asyncio.sleep(0)  # really suspends: the handler finishes it on an event loop
        with tracer.start_as_current_span("after the wait"):
            pass

    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider)], load_entrypoints=False
    )
    handler = RequestReplyHandler(functions, plugins=plugins)
    handler.handle_sync(wire.to_function("example/waits", "first", ["x"]))
    assert not trace.get_current_span().get_span_context().is_valid
    handler.handle_sync(wire.to_function("example/waits", "second", ["x"]))

    for id in ("first", "second"):
        (batch,) = [
            s
            for s in exporter.get_finished_spans()
            if s.name == "process example/waits"
            and (s.attributes or {})["statefun.function.id"] == id
        ]
        assert batch.parent is None  # not a child of the previous request's spans
    inner = by_name(exporter)["after the wait"]
    invocation_ids = {
        s.context.span_id
        for s in by_name(exporter)["example/waits"]
        if "statefun.invocation.index" in (s.attributes or {})
    }
    assert len(inner) == 2
    assert all(s.parent is not None and s.parent.span_id in invocation_ids for s in inner)


def test_an_async_function_run_again_as_a_task_under_handle_sync_shows_no_error(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """Under handle_sync (WSGI, Lambda) an async function that never awaits runs with no
    loop; one that asks for the loop all the same fails that try, and its batch runs again
    as a task. The try is not its failure: its span ends with the outcome "retried" and no
    error, and the batch's invocation span that replies is current while it runs on the loop."""
    tracer = provider.get_tracer("test")
    functions = StatefulFunctions()

    @functions.bind("example/asks")
    async def asks(context: Context, message: Message) -> None:
        asyncio.get_running_loop()
        with tracer.start_as_current_span("inside"):
            pass

    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider)], load_entrypoints=False
    )
    handler = RequestReplyHandler(functions, plugins=plugins)
    handler.handle_sync(wire.to_function("example/asks", "first", ["x"]))  # no loop here

    assert not [s for s in exporter.get_finished_spans() if s.status.is_ok is False]
    batch, (retried, invocation) = batch_and_invocations(exporter, "example/asks")
    assert (retried.attributes or {})["statefun.outcome"] == "retried"
    assert retried.parent is not None and retried.parent.span_id == batch.context.span_id
    assert (invocation.attributes or {})["statefun.outcome"] == "ok"
    assert invocation.parent is not None and invocation.parent.span_id == batch.context.span_id
    (inside,) = by_name(exporter)["inside"]
    assert inside.parent is not None and inside.parent.span_id == invocation.context.span_id
    assert not trace.get_current_span().get_span_context().is_valid


def test_a_lambda_reply_over_what_the_gateway_takes_back_is_one_failed_batch_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """Not an ok batch span and a rejected request's span besides."""
    functions = StatefulFunctions()

    @functions.bind(GREETER)
    def large(context: Context, message: Message) -> None:
        context.send(message_builder("example/inbox", "x", str_value="x" * 800_000))

    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider)], load_entrypoints=False
    )
    statefun = LambdaHandler(RequestReplyHandler(functions, plugins=plugins))
    event = gateway_event(wire.to_function(GREETER, "ann", ["x"]), gateway="alb")  # 1 MB
    assert invoke(statefun, event).status == 500
    assert set(by_name(exporter)) == {f"process {GREETER}", GREETER}
    batch, (invocation,) = batch_and_invocations(exporter, GREETER)
    assert batch.status.status_code is StatusCode.ERROR
    assert (batch.kind, (batch.attributes or {})["http.response.status_code"]) == (
        SpanKind.SERVER,
        500,
    )
    assert (batch.attributes or {})["error.type"] == "statefun_core.aws_lambda.ReplyTooLargeError"
    assert (invocation.attributes or {})["statefun.outcome"] == "ok"


def test_two_instances_each_trace_to_their_own_provider(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    other_exporter = InMemorySpanExporter()
    other = TracerProvider()
    other.add_span_processor(SimpleSpanProcessor(other_exporter))
    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider), OpenTelemetryPlugin(tracer_provider=other)],
        load_entrypoints=False,
    )
    handler = RequestReplyHandler(make_functions(provider.get_tracer("t")), plugins=plugins)
    reply_headers: dict[str, str] = {}
    request = wire.to_function(GREETER, "ann", ["ann", "bob"], SEEN_2)

    async def serve() -> trace.Span:
        await handler.handle_async(request, headers={}, reply_headers=reply_headers)
        return trace.get_current_span()  # in the server's task, after the request

    assert not asyncio.run(serve()).get_span_context().is_valid  # no span left current
    # the reply names the batch span of the instance pluggy calls first: the last registered
    named = batch_and_invocations(other_exporter, GREETER)[0]
    assert reply_headers["traceresponse"].split("-")[2] == f"{named.context.span_id:016x}"
    for spans in (exporter, other_exporter):
        batch, invocations = batch_and_invocations(spans, GREETER)
        assert (batch.attributes or {})["statefun.outcome"] == "ok"
        assert [span.parent.span_id for span in invocations if span.parent] == [
            batch.context.span_id
        ] * 2
    other.shutdown()
