"""Log records written inside a function carry its typename, id, caller and trace id."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Optional

import pytest

from statefun_core import (
    Context,
    FunctionFailedError,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    message_builder,
)
from statefun_core.plugins import (
    InvocationLogContext,
    InvocationLogFilter,
    add_invocation_context,
    current_invocation,
    make_plugin_manager,
)
from statefun_core.plugins.logcontext import log_line
from statefun_core.testing import wire
from statefun_core.testing.endpoint import request, serving_in_a_thread

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
GREETER, WAITER = "example/greeter", "example/waiter"
log = logging.getLogger("test.logcontext")


class Records(logging.Handler):
    """Keeps the records it is given, after its filters ran."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    handler.addFilter(InvocationLogFilter())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield handler
    log.removeHandler(handler)


def functions() -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind(GREETER)
    def greeter(context: Context, message: Message) -> None:
        log.info("greeting %s", message.as_string())
        context.send(message_builder("example/inbox", "x", str_value="hi"))

    @functions.bind(WAITER)
    async def waiter(context: Context, message: Message) -> None:
        await asyncio.sleep(0)
        log.info("after the wait")

    return functions


def context_of(record: logging.LogRecord) -> tuple[object, ...]:
    return (
        record.statefun_function,  # type: ignore[attr-defined]
        record.statefun_id,  # type: ignore[attr-defined]
        record.statefun_caller,  # type: ignore[attr-defined]
        record.trace_id,  # type: ignore[attr-defined]
    )


def test_a_record_written_inside_a_function_names_it(records: Records) -> None:
    plugins = make_plugin_manager([InvocationLogContext()], load_entrypoints=False)
    handler = RequestReplyHandler(functions(), plugins=plugins)
    body = wire.to_function(GREETER, "ann", ["ann"], caller=("example/sender", "bob"))
    handler.handle_sync(body, {"Traceparent": TRACEPARENT})
    asyncio.run(handler.handle_async(wire.to_function(WAITER, "zoe", ["x"])))
    log.info("outside")

    assert [context_of(r) for r in records.records] == [
        (GREETER, "ann", "example/sender/bob", TRACE_ID),
        (WAITER, "zoe", None, None),  # an ingress message, no trace context
        (None, None, None, None),
    ]
    assert current_invocation.get() is None


def test_a_format_string_can_name_the_fields(records: Records) -> None:
    records.setFormatter(
        logging.Formatter("%(statefun_function)s/%(statefun_id)s trace=%(trace_id)s %(message)s")
    )
    plugins = make_plugin_manager([InvocationLogContext()], load_entrypoints=False)
    RequestReplyHandler(functions(), plugins=plugins).handle_sync(
        wire.to_function(GREETER, "ann", ["ann"]), {"traceparent": TRACEPARENT}
    )
    assert records.format(records.records[0]) == (
        f"example/greeter/ann trace={TRACE_ID} greeting ann"
    )


def test_an_id_or_caller_from_the_request_can_not_forge_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The id and the caller are whatever the request says (a user name from an ingress): with
    the documented format, a newline or an ANSI escape in them is escaped, on the lines of a
    function and on the handler's line of its failure, so each record stays one line."""
    functions = StatefulFunctions()

    @functions.bind(GREETER)
    def greeter(context: Context, message: Message) -> None:
        log.info("greeting")
        raise ValueError("no")

    caplog.handler.addFilter(InvocationLogFilter())
    caplog.handler.setFormatter(
        logging.Formatter(
            "%(levelname)s %(statefun_function)s/%(statefun_id)s caller=%(statefun_caller)s "
            "%(message)s"
        )
    )
    forged = "ann\nERROR example/greeter/root caller=None granted\x1b[2K\u202e"
    plugins = make_plugin_manager([InvocationLogContext()], load_entrypoints=False)
    body = wire.to_function(GREETER, forged, ["x"], caller=("example/sender", forged))
    with caplog.at_level(logging.INFO), pytest.raises(FunctionFailedError):
        RequestReplyHandler(functions, plugins=plugins).handle_sync(body)
    escaped = "ann\\nERROR example/greeter/root caller=None granted\\x1b[2K\\u202e"
    lines = [caplog.handler.format(r).split("\n", 1)[0] for r in caplog.records]
    assert lines == [
        f"INFO example/greeter/{escaped} caller=example/sender/{escaped} greeting",
        f"ERROR example/greeter/{escaped} caller=example/sender/{escaped} statefun request "
        f"failed: function 'example/greeter' failed for id '{escaped}': ValueError: no",
    ]
    # outside an invocation, the fields a line was given (the failure of a batch after its
    # invocations, a cancellation) are escaped the same way
    log.warning("given", extra={"statefun_function": GREETER, "statefun_id": forged})
    assert caplog.handler.format(caplog.records[-1]) == (
        f"WARNING example/greeter/{escaped} caller=None given"
    )


def test_registered_by_the_environment_and_costs_nothing_without_it(
    records: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugins = make_plugin_manager(load_entrypoints=False)
    assert plugins.get_plugin("log_context") is None
    RequestReplyHandler(functions(), plugins=plugins).handle_sync(
        wire.to_function(GREETER, "ann", ["ann"])
    )
    assert context_of(records.records[-1]) == (None, None, None, None)

    monkeypatch.setenv("STATEFUN_LOG_CONTEXT", "true")
    plugins = make_plugin_manager(load_entrypoints=False)
    assert isinstance(plugins.get_plugin("log_context"), InvocationLogContext)
    RequestReplyHandler(functions(), plugins=plugins).handle_sync(
        wire.to_function(GREETER, "ann", ["ann"])
    )
    assert context_of(records.records[-1])[:2] == (GREETER, "ann")


def test_the_structlog_processor_adds_the_known_fields_inside_an_invocation_only() -> None:
    events: list[object] = []
    functions = StatefulFunctions()

    @functions.bind(GREETER)
    def greeter(context: Context, message: Message) -> None:
        events.append(add_invocation_context(None, "info", {"event": "hi"}))

    plugins = make_plugin_manager([InvocationLogContext()], load_entrypoints=False)
    handler = RequestReplyHandler(functions, plugins=plugins)
    body = wire.to_function(GREETER, "ann", ["ann"], caller=("example/sender", "bob"))
    handler.handle_sync(body, {"TRACEPARENT": TRACEPARENT})
    handler.handle_sync(wire.to_function(GREETER, "zoe", ["zoe"]))
    assert events == [
        {
            "event": "hi",
            "statefun_function": GREETER,
            "statefun_id": "ann",
            "statefun_caller": "example/sender/bob",
            "trace_id": TRACE_ID,
        },
        {"event": "hi", "statefun_function": GREETER, "statefun_id": "zoe"},
    ]
    assert add_invocation_context(None, "info", {"event": "out"}) == {"event": "out"}


def test_the_trace_id_is_the_current_opentelemetry_spans_over_the_traceparent(
    records: Records,
) -> None:
    sdk = pytest.importorskip("opentelemetry.sdk.trace")  # not in the plugin sessions' envs
    plugins = make_plugin_manager([InvocationLogContext()], load_entrypoints=False)
    handler = RequestReplyHandler(functions(), plugins=plugins)
    tracer = sdk.TracerProvider().get_tracer("test.logcontext")
    with tracer.start_as_current_span("outer") as span:
        handler.handle_sync(wire.to_function(GREETER, "ann", ["ann"]), {"traceparent": TRACEPARENT})
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert trace_id != TRACE_ID
    assert context_of(records.records[0])[3] == trace_id


def test_no_invocation_is_current_once_handle_async_returns() -> None:
    plugins = make_plugin_manager([InvocationLogContext()], load_entrypoints=False)
    handler = RequestReplyHandler(functions(), plugins=plugins)

    async def run() -> list[object]:
        await handler.handle_async(wire.to_function(GREETER, "ann", ["ann"]))
        after_sync = current_invocation.get()
        await handler.handle_async(wire.to_function(WAITER, "zoe", ["x"]))
        return [after_sync, current_invocation.get()]

    assert asyncio.run(run()) == [None, None]


@pytest.fixture
def served() -> Iterator[int]:
    """StatefunWSGI under the standard library's WSGI server on 127.0.0.1, in a thread."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from statefun_core import Limits
    from statefun_core.wsgi import StatefunWSGI

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass  # its access line on stderr

    plugins = make_plugin_manager(load_entrypoints=False)
    handler = RequestReplyHandler(functions(), plugins=plugins, limits=Limits(request_bytes=1000))
    app = StatefunWSGI(handler)
    with serving_in_a_thread(make_server("127.0.0.1", 0, app, handler_class=Quiet)) as port:
        yield port


REFUSED = {
    "malformed (400)": ("POST", b"\xff\xff", 400),
    "unknown function (404)": ("POST", wire.to_function("example/none", "ann", ["x"]), 404),
    "wrong method (405)": ("GET", None, 405),
    "too large (413)": ("POST", wire.to_function(GREETER, "ann", ["x" * 2000]), 413),
}


@pytest.mark.parametrize("refused", REFUSED.values(), ids=list(REFUSED))
def test_a_refused_requests_log_line_carries_its_trace_id(
    served: int, refused: tuple[str, Optional[bytes], int], caplog: pytest.LogCaptureFixture
) -> None:
    """Searching the logs by a request's trace id finds its refusal, as it finds a failed
    function's line; with no traceparent, or a malformed one, the line has none."""
    method, body, status = refused
    caplog.handler.addFilter(InvocationLogFilter())
    with caplog.at_level(logging.INFO, logger="statefun_core"):
        for headers in ({"traceparent": TRACEPARENT}, {}, {"traceparent": "00-nonsense"}):
            assert request(served, "/", body, method, headers)[0] == status
    lines = [r for r in caplog.records if r.name == "statefun_core"]
    assert [r.getMessage().startswith(f"statefun request rejected ({status})") for r in lines] == [
        True,
        True,
        True,
    ], caplog.text
    assert [context_of(r) for r in lines] == [
        (None, None, None, TRACE_ID),
        (None, None, None, None),
        (None, None, None, None),
    ]


def test_a_cancelled_requests_log_line_names_its_function_id_and_trace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server cancels the request whose client went (a runtime whose call timed out): one
    warning, not an error (the function did not fail), which a search by the request's trace
    id finds, as it finds a failed function's line."""
    started: list[asyncio.Event] = []
    functions = StatefulFunctions()

    @functions.bind(WAITER)
    async def waiter(context: Context, message: Message) -> None:
        started[0].set()
        await asyncio.Event().wait()

    plugins = make_plugin_manager([InvocationLogContext()], load_entrypoints=False)
    handler = RequestReplyHandler(functions, plugins=plugins)

    async def cancel(headers: dict[str, str]) -> None:
        started[:] = [asyncio.Event()]
        task = asyncio.ensure_future(
            handler.handle_async(wire.to_function(WAITER, "zoe", ["x", "y"]), headers)
        )
        await started[0].wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    caplog.handler.addFilter(InvocationLogFilter())
    with caplog.at_level(logging.INFO, logger="statefun_core"):
        asyncio.run(cancel({"traceparent": TRACEPARENT}))
        asyncio.run(cancel({}))
    lines = [r for r in caplog.records if r.name == "statefun_core"]
    assert [(r.levelno, r.exc_info) for r in lines] == [(logging.WARNING, None)] * 2, caplog.text
    assert (
        lines[0]
        .getMessage()
        .startswith(f"statefun request cancelled: function '{WAITER}' for id 'zoe' gets no reply")
    )
    assert [context_of(r) for r in lines] == [
        (WAITER, "zoe", None, TRACE_ID),
        (WAITER, "zoe", None, None),
    ]


def test_a_line_written_past_a_factorys_trace_id_keeps_the_error_it_reports(
    records: Records, factory_trace_id: str
) -> None:
    """``log_line(..., exc_info=True)`` in an ``except`` (as statefun-local's runtime logs a
    failed call) shows the error being handled, even when the record factory sets
    ``trace_id`` and ``logging`` refused the first attempt with its own ``KeyError``."""
    try:
        raise RuntimeError("the call failed")
    except RuntimeError as error:
        handled = error
        log_line(log, logging.ERROR, "failed", fields={"trace_id": TRACE_ID}, exc_info=True)
    (line,) = records.records
    assert line.exc_info is not None and line.exc_info[1] is handled
    assert line.__dict__["trace_id"] == factory_trace_id
