"""One handler traced by the real OpenTelemetry SDK, shared by many threads with a thread switch
between almost any two bytecodes: each request's spans are its own (parent, id, reply's
``traceresponse``), every span ends once, and no thread is left with a span current."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from statefun_opentelemetry import OpenTelemetryPlugin

from statefun_core import (
    Context,
    IntType,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    ValueSpec,
    message_builder,
)
from statefun_core.plugins import InvocationLogContext, current_invocation, make_plugin_manager
from statefun_core.testing import wire

THREADS = 8
REQUESTS = 6  # per thread and function
KINDS = ("t/sync", "t/step", "t/await", "t/blocking")


def make_functions() -> StatefulFunctions:
    functions = StatefulFunctions()

    def greet(context: Context, message: Message) -> None:
        running = current_invocation.get()
        assert running is not None and running.id == context.address.id
        span = trace.get_current_span().get_span_context()  # the invocation's, current
        assert span.is_valid
        context.storage.seen = (context.storage.seen or 0) + 1
        text = f"{context.address.id} {span.span_id:016x}"  # which span the function saw
        context.send(message_builder(target_typename="t/inbox", target_id="x", str_value=text))

    specs = [ValueSpec("seen", IntType)]
    functions.register("t/sync", greet, specs)
    functions.register("t/blocking", greet, specs, blocking=True)

    async def step(context: Context, message: Message) -> None:  # never awaits
        greet(context, message)

    async def awaiting(context: Context, message: Message) -> None:
        await asyncio.sleep(0)
        greet(context, message)

    functions.register("t/step", step, specs)
    functions.register("t/await", awaiting, specs)
    return functions


@pytest.fixture
def switching_often() -> Iterator[None]:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


@pytest.mark.parametrize("driver", ["handle_sync", "handle_async"])
def test_each_threads_requests_have_their_own_spans(driver: str, switching_often: None) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider), InvocationLogContext()],
        load_entrypoints=False,
    )
    with ThreadPoolExecutor(4) as executor:
        handler = RequestReplyHandler(make_functions(), plugins=plugins, executor=executor)
        replies = at_once(handler, driver)
    provider.shutdown()
    spans = exporter.get_finished_spans()
    by_id = {span.context.span_id: span for span in spans if span.context is not None}
    assert len(by_id) == len(spans) == 2 * len(replies)  # a batch span, an invocation span
    for (kind, id), (reply, traceresponse, current) in replies.items():
        assert current is None  # nothing left attached in the thread
        batch = by_id[int(traceresponse[36:52], 16)]
        assert batch.name == f"process {kind}"
        assert attribute(batch, "statefun.function.id") == id
        (sent,) = wire.messages(reply)
        seen_id, seen_span = sent.message.as_string().split()
        invocation = by_id[int(seen_span, 16)]
        assert seen_id == id and attribute(invocation, "statefun.function.id") == id
        assert invocation.parent is not None
        assert invocation.parent.span_id == batch.context.span_id


def attribute(span: ReadableSpan, name: str) -> object:
    return (span.attributes or {}).get(name)


Reply = tuple[bytes, str, Optional[trace.Span]]


def at_once(handler: RequestReplyHandler, driver: str) -> dict[tuple[str, str], Reply]:
    """Every thread's requests, the first ones at once; with each the reply's
    ``traceresponse``, and the span left current in the thread after it (None: none)."""
    start = threading.Barrier(THREADS)

    def serve(thread: int) -> dict[tuple[str, str], Reply]:
        start.wait()
        answers: dict[tuple[str, str], Reply] = {}
        for n in range(REQUESTS):
            for kind in KINDS:
                id = f"{thread}-{n}"
                data = wire.to_function(kind, id, ["hi"], {"seen": n})
                headers: dict[str, str] = {}
                if driver == "handle_sync":
                    reply = handler.handle_sync(data, {}, headers)
                else:
                    reply = asyncio.run(handler.handle_async(data, {}, headers))
                current = trace.get_current_span()
                left = current if current.get_span_context().is_valid else None
                answers[kind, id] = (reply, headers["traceresponse"], left)
        return answers

    with ThreadPoolExecutor(THREADS) as pool:
        return {
            key: reply
            for answers in pool.map(serve, range(THREADS))
            for key, reply in answers.items()
        }
