"""Every span the plugin starts is ended, exactly once, whatever ends its request: a reply, a
missing-state reply, a refusal, a function that raises, a limit, a try run again as a task,
an interrupt, a cancellation, a client that goes. Checked with a span processor of the real
OpenTelemetry SDK that records each span's start and end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Optional

import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind
from statefun_opentelemetry import OpenTelemetryPlugin

from statefun_core import (
    Context,
    DeadLetterEgress,
    IntType,
    Limits,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    ValueSpec,
    message_builder,
)
from statefun_core.plugins import make_plugin_manager
from statefun_core.testing import wire

FUNCTION = "example/fn"
REQUEST = wire.to_function(FUNCTION, "ann", ["first", "second"])
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Ledger(SpanProcessor):
    """Each span started and how many times it was ended, by span id."""

    def __init__(self) -> None:
        self.started: dict[int, str] = {}
        self.ended: dict[int, int] = {}
        self.finished: list[ReadableSpan] = []

    def on_start(self, span: Span, parent_context: Optional[context.Context] = None) -> None:
        self.started[span.context.span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        assert span.context is not None
        self.ended[span.context.span_id] = self.ended.get(span.context.span_id, 0) + 1
        self.finished.append(span)

    def unended(self) -> list[str]:
        return [name for span_id, name in self.started.items() if span_id not in self.ended]

    def ended_twice(self) -> list[str]:
        return [self.started[span_id] for span_id, count in self.ended.items() if count > 1]

    def check(self) -> None:
        assert self.started, "no span was started"
        assert self.unended() == []
        assert self.ended_twice() == []


Bind = Callable[[StatefulFunctions, trace.Tracer], None]


def traced_handler(bind: Bind, limits: Optional[Limits] = None) -> tuple[Any, Ledger]:
    ledger = Ledger()
    provider = TracerProvider()
    provider.add_span_processor(ledger)
    functions = StatefulFunctions()
    bind(functions, provider.get_tracer("test"))
    plugins = make_plugin_manager(
        [OpenTelemetryPlugin(tracer_provider=provider)], load_entrypoints=False
    )
    kwargs: dict[str, Any] = {} if limits is None else {"limits": limits}
    return RequestReplyHandler(functions, plugins=plugins, **kwargs), ledger


def replies(functions: StatefulFunctions, tracer: trace.Tracer) -> None:
    @functions.bind(FUNCTION)
    def fn(context: Context, message: Message) -> None:
        with tracer.start_as_current_span("inside"):
            pass


def needs_state(functions: StatefulFunctions, tracer: trace.Tracer) -> None:
    @functions.bind(FUNCTION, specs=[ValueSpec("seen", IntType)])
    def fn(context: Context, message: Message) -> None:
        pass


def raises(functions: StatefulFunctions, tracer: trace.Tracer) -> None:
    @functions.bind(FUNCTION)
    def fn(context: Context, message: Message) -> None:
        raise RuntimeError("boom")


def raises_async(functions: StatefulFunctions, tracer: trace.Tracer) -> None:
    @functions.bind(FUNCTION)
    async def fn(context: Context, message: Message) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("boom")


def raises_blocking(functions: StatefulFunctions, tracer: trace.Tracer) -> None:
    @functions.bind(FUNCTION, blocking=True)
    def fn(context: Context, message: Message) -> None:
        raise RuntimeError("boom")


def sends_too_much(functions: StatefulFunctions, tracer: trace.Tracer) -> None:
    @functions.bind(FUNCTION)
    def fn(context: Context, message: Message) -> None:
        for _ in range(3):
            context.send(message_builder("example/other", "x", str_value="hi"))


def interrupts(functions: StatefulFunctions, tracer: trace.Tracer) -> None:
    @functions.bind(FUNCTION)
    def fn(context: Context, message: Message) -> None:
        raise KeyboardInterrupt


def asks_for_the_loop(functions: StatefulFunctions, tracer: trace.Tracer) -> None:
    """Never awaits, so handle_sync runs it with no loop; it asks for one all the same, in a
    span of its own."""

    @functions.bind(FUNCTION)
    async def fn(context: Context, message: Message) -> None:
        with tracer.start_as_current_span("inside"):
            asyncio.get_running_loop()


def asks_for_the_loop_second(functions: StatefulFunctions, tracer: trace.Tracer) -> None:
    """The same, for the second invocation only: the first one's span ended ok."""

    @functions.bind(FUNCTION)
    async def fn(context: Context, message: Message) -> None:
        if message.as_string() == "second":
            asyncio.get_running_loop()


def asks_for_the_loop_final(functions: StatefulFunctions, tracer: trace.Tracer) -> None:
    """Declares RuntimeError final: asking for the loop is still no failure of it."""

    @functions.bind(
        FUNCTION, final_errors=[RuntimeError], dead_letters=DeadLetterEgress("example/dead")
    )
    async def fn(context: Context, message: Message) -> None:
        asyncio.get_running_loop()


def dead_letters(functions: StatefulFunctions, tracer: trace.Tracer) -> None:
    @functions.bind(FUNCTION, final_errors=[ValueError], dead_letters=DeadLetterEgress("ex/dead"))
    def fn(context: Context, message: Message) -> None:
        raise ValueError("never")


class Unprintable(ValueError):
    """An exception whose ``__str__`` raises (an attribute it reads was never set)."""

    def __str__(self) -> str:
        raise AttributeError("detail")


def raises_unprintable(functions: StatefulFunctions, tracer: trace.Tracer) -> None:
    @functions.bind(FUNCTION)
    def fn(context: Context, message: Message) -> None:
        raise Unprintable()


def dead_letters_unprintable(functions: StatefulFunctions, tracer: trace.Tracer) -> None:
    @functions.bind(FUNCTION, final_errors=[ValueError], dead_letters=DeadLetterEgress("ex/dead"))
    def fn(context: Context, message: Message) -> None:
        raise Unprintable()


SYNC_CASES: dict[str, tuple[Bind, bytes, Optional[Limits]]] = {
    "reply": (replies, REQUEST, None),
    "missing state": (needs_state, REQUEST, None),
    "malformed (400)": (replies, b"\xff\xff", None),
    "unknown function (404)": (replies, wire.to_function("example/none", "ann", ["x"]), None),
    "too large (413)": (replies, REQUEST, Limits(request_bytes=10)),
    "too many invocations": (replies, REQUEST, Limits(invocations_per_batch=1)),
    "raises": (raises, REQUEST, None),
    "raises after awaiting": (raises_async, REQUEST, None),
    "over the outgoing limit": (sends_too_much, REQUEST, Limits(outgoing_per_batch=2)),
    "reply over its limit": (sends_too_much, REQUEST, Limits(reply_bytes=20)),
    "dead-lettered": (dead_letters, REQUEST, None),
    "raises an exception whose str() raises": (raises_unprintable, REQUEST, None),
    "dead-letters an exception whose str() raises": (dead_letters_unprintable, REQUEST, None),
    "interrupted": (interrupts, REQUEST, None),
    "asks for the loop": (asks_for_the_loop, REQUEST, None),
    "asks for the loop at the second invocation": (asks_for_the_loop_second, REQUEST, None),
    "asks for the loop, RuntimeError final": (asks_for_the_loop_final, REQUEST, None),
}


@pytest.mark.parametrize("case", SYNC_CASES.values(), ids=list(SYNC_CASES))
def test_every_span_is_ended_once_under_handle_sync(
    case: tuple[Bind, bytes, Optional[Limits]],
) -> None:
    bind, request, limits = case
    handler, ledger = traced_handler(bind, limits)
    with contextlib.suppress(Exception, KeyboardInterrupt):  # what the request ends in
        handler.handle_sync(request, {"traceparent": TRACEPARENT})
    ledger.check()
    assert not trace.get_current_span().get_span_context().is_valid


ASYNC_CASES = {
    name: case
    for name, case in SYNC_CASES.items()
    if not name.startswith("asks for the loop")  # handle_async has the loop
} | {"blocking function raises": (raises_blocking, REQUEST, None)}


@pytest.mark.parametrize("case", ASYNC_CASES.values(), ids=list(ASYNC_CASES))
def test_every_span_is_ended_once_under_handle_async(
    case: tuple[Bind, bytes, Optional[Limits]],
) -> None:
    bind, request, limits = case
    handler, ledger = traced_handler(bind, limits)

    async def call() -> None:
        with contextlib.suppress(Exception, KeyboardInterrupt):
            await handler.handle_async(request, {"traceparent": TRACEPARENT})

    asyncio.run(call())
    ledger.check()


def test_the_try_run_again_as_a_task_is_ended_with_no_error() -> None:
    """Ended (a span processor that keeps what starts until it ends leaks nothing) with
    ``statefun.outcome = retried`` and no error status, and the span the function started in
    it has its parent among the exported spans; then the batch's invocations run again."""
    handler, ledger = traced_handler(asks_for_the_loop)
    handler.handle_sync(REQUEST)
    ledger.check()
    by_id = {span.context.span_id: span for span in ledger.finished if span.context is not None}
    invocations = [
        span
        for span in ledger.finished
        if span.name == FUNCTION and "statefun.invocation.index" in (span.attributes or {})
    ]
    outcomes = [(span.attributes or {})["statefun.outcome"] for span in invocations]
    assert outcomes == ["retried", "ok", "ok"]
    assert all(span.status.is_unset for span in invocations)
    for inside in (span for span in ledger.finished if span.name == "inside"):
        assert inside.parent is not None and inside.parent.span_id in by_id


def waits_until_cancelled(started: asyncio.Event) -> Bind:
    def bind(functions: StatefulFunctions, tracer: trace.Tracer) -> None:
        @functions.bind(FUNCTION)
        async def fn(context: Context, message: Message) -> None:
            with tracer.start_as_current_span("inside"):
                started.set()
                await asyncio.Event().wait()  # until cancelled

    return bind


def test_every_span_is_ended_once_when_the_request_is_cancelled() -> None:
    """A server that cancels the handler of a request whose client went (Django under ASGI,
    aiohttp with ``handler_cancellation=True``)."""

    async def cancel() -> Ledger:
        started = asyncio.Event()
        handler, ledger = traced_handler(waits_until_cancelled(started))
        task = asyncio.ensure_future(handler.handle_async(REQUEST, {"traceparent": TRACEPARENT}))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return ledger

    ledger = asyncio.run(cancel())
    ledger.check()
    assert sorted(ledger.started.values()) == [FUNCTION, "inside", f"process {FUNCTION}"]


def sleeps_blocking(functions: StatefulFunctions, tracer: trace.Tracer) -> None:
    @functions.bind(FUNCTION, blocking=True)
    def fn(context: Context, message: Message) -> None:
        time.sleep(0.05)


def test_every_span_is_ended_once_when_a_blocking_batch_is_cancelled() -> None:
    """The executor's thread cannot be stopped: its invocations end their spans when they
    return, after the batch's span ended with the cancellation."""
    handler, ledger = traced_handler(sleeps_blocking)

    async def cancel() -> None:
        task = asyncio.ensure_future(handler.handle_async(REQUEST))
        while FUNCTION not in ledger.started.values():
            await asyncio.sleep(0.001)  # until the first invocation started
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel())  # waits for the executor's thread
    ledger.check()


@pytest.mark.parametrize("cancelling", [False, True], ids=["aiohttp's default", "cancelling"])
def test_every_span_is_ended_once_when_the_client_goes_behind_aiohttp(cancelling: bool) -> None:
    """The runtime gives up on a request (its call timed out) and closes the connection while
    the function awaits. By aiohttp's default the function runs on to its end, and its spans
    end then; with ``handler_cancellation=True`` it is cancelled at its ``await``, and they end
    with the cancellation. Either way each ends once."""
    from aiohttp import web
    from statefun_aiohttp import create_app

    async def scenario() -> tuple[Ledger, list[str]]:
        started, release = asyncio.Event(), asyncio.Event()
        seen: list[str] = []

        def bind(functions: StatefulFunctions, tracer: trace.Tracer) -> None:
            @functions.bind(FUNCTION)
            async def fn(context: Context, message: Message) -> None:
                started.set()
                try:
                    await release.wait()
                    seen.append("ran to its end")
                except asyncio.CancelledError:
                    seen.append("cancelled")
                    raise

        handler, ledger = traced_handler(bind)
        runner = web.AppRunner(create_app(handler), handler_cancellation=cancelling)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            body = wire.to_function(FUNCTION, "ann", ["x"])
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + f"traceparent: {TRACEPARENT}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            await started.wait()
            writer.close()  # the runtime gives up
            await writer.wait_closed()
            if not cancelling:
                for _ in range(100):  # aiohttp takes in the closed connection
                    await asyncio.sleep(0)
                release.set()
            for _ in range(10_000):  # until the batch's span ended (no time is asserted)
                if len(ledger.ended) == len(ledger.started) == 2:
                    break
                await asyncio.sleep(0.001)
        finally:
            await runner.cleanup()
        return ledger, seen

    ledger, seen = asyncio.run(scenario())
    ledger.check()
    assert seen == (["cancelled"] if cancelling else ["ran to its end"])
    (batch,) = [s for s in ledger.finished if s.name == f"process {FUNCTION}"]
    outcome = (batch.attributes or {})["statefun.outcome"]
    assert outcome == ("cancelled" if cancelling else "ok")
    # the request's SERVER span: a cancelled request got no reply, so no status
    status = (batch.attributes or {}).get("http.response.status_code")
    assert (batch.kind, status) == (SpanKind.SERVER, None if cancelling else 200)
    assert batch.status.is_unset  # neither way the function's failure


def test_a_request_whose_coroutine_is_closed_unfinished_is_no_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that stops with a request in flight and never cancels its task (the task is
    destroyed, its coroutine closed): the function gets GeneratorExit at its await. Not the
    function's failure: no error line, and closing raises nothing (Python would report an
    exception in a coroutine's close as ignored); the spans end all the same."""

    async def close() -> Ledger:
        started = asyncio.Event()
        handler, ledger = traced_handler(waits_until_cancelled(started))
        coroutine = handler.handle_async(REQUEST, {"traceparent": TRACEPARENT})
        coroutine.send(None)  # up to the function's first await
        assert started.is_set()
        coroutine.close()
        return ledger

    with caplog.at_level(logging.INFO, logger="statefun_core"):
        ledger = asyncio.run(close())
    ledger.check()
    assert [r for r in caplog.records if r.name == "statefun_core"] == []
    (batch,) = [s for s in ledger.finished if s.name == f"process {FUNCTION}"]
    assert (batch.attributes or {})["error.type"] == "GeneratorExit"
    assert "http.response.status_code" not in (batch.attributes or {})  # no reply was sent
