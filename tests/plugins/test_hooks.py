"""One ``test_hook_<name>`` per hookspec, each through a real PluginManager and handler.

``tests/plugins/test_meta.py`` fails when a hookspec has no such test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import sys
import threading
import time
from datetime import timedelta
from typing import Any, Callable, Mapping, Optional

import pytest

from statefun_core import (
    BoolType,
    Context,
    IntType,
    Limits,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    StringType,
    Type,
    ValueSpec,
    kafka_egress_message,
    make_json_type,
    message_builder,
    simple_type,
)
from statefun_core.errors import (
    FunctionFailedError,
    FunctionNotFoundError,
    MalformedRequestError,
    PluginError,
    RequestTooLargeError,
    UnknownTypeError,
)
from statefun_core.plugins import hookimpl, make_plugin_manager
from statefun_core.registry import TypeRegistry
from statefun_core.testing.wire import (
    from_function,
    invocation_result,
    mutations,
    to_function,
    typed_value,
)

from .recorder import Recorder

KINDS = ("sync", "async", "blocking")
DRIVERS = ("handle_sync", "handle_async")


def greet(context: Context, message: Message) -> None:
    name = message.as_string()
    if name == "boom":
        raise ValueError(f"boom for {context.address.id}")
    context.storage.seen = (context.storage.seen or 0) + 1
    context.send(message_builder("test/inbox", name, str_value="hi"))
    if name == "later":
        context.send_after(timedelta(seconds=5), message_builder("test/inbox", name, int_value=1))
        context.cancel_delayed_message("an-earlier-one")  # not counted: no message
        context.send_egress(kafka_egress_message("test/out", "topic", "bye"))


async def async_greet(context: Context, message: Message) -> None:
    await asyncio.sleep(0)  # really suspends
    greet(context, message)


def make_functions() -> StatefulFunctions:
    functions = StatefulFunctions()
    specs = [ValueSpec("seen", IntType)]
    functions.register("test/sync", greet, specs)
    functions.register("test/async", async_greet, specs)
    functions.register("test/blocking", greet, specs, blocking=True)
    return functions


def make_handler(*plugins: Any, **options: Any) -> RequestReplyHandler:
    manager = make_plugin_manager(plugins=plugins, load_entrypoints=False)
    return RequestReplyHandler(make_functions(), plugins=manager, **options)


def call(
    handler: RequestReplyHandler, driver: str, body: bytes, headers: Optional[dict[str, str]]
) -> bytes:
    if driver == "handle_sync":
        return handler.handle_sync(body, headers)
    return asyncio.run(handler.handle_async(body, headers))


def names(*words: str) -> list[Any]:
    return [typed_value(StringType, word) for word in words]


SEEN_3 = {"seen": typed_value(IntType, 3)}
CALLER = ("test/caller", "c-1")


@pytest.fixture(params=DRIVERS)
def driver(request: Any) -> str:
    return str(request.param)


@pytest.fixture(params=KINDS)
def kind(request: Any) -> str:
    return str(request.param)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


# --- the order --------------------------------------------------------------------------------


def test_hooks_run_in_order_for_every_driver_and_kind_of_function(
    recorder: Recorder, driver: str, kind: str
) -> None:
    handler = make_handler(recorder)
    call(handler, driver, to_function(f"test/{kind}", "a", names("x", "y"), SEEN_3), None)
    assert recorder.names() == [
        "batch_started",
        "invocation_started",
        "invocation_finished",
        "invocation_started",
        "invocation_finished",
        "batch_finished",
    ]
    assert [f["index"] for f in recorder.fields("invocation_started")] == [0, 1]


def test_a_failing_batch_stops_at_the_failure_and_ends_in_batch_failed_then_request_failed(
    recorder: Recorder, driver: str, kind: str
) -> None:
    handler = make_handler(recorder)
    with pytest.raises(FunctionFailedError):
        call(
            handler, driver, to_function(f"test/{kind}", "a", names("x", "boom", "z"), SEEN_3), None
        )
    assert recorder.names() == [
        "batch_started",
        "invocation_started",
        "invocation_finished",
        "invocation_started",
        "invocation_finished",
        "batch_failed",
        "request_failed",
    ]


# --- one test per hook -------------------------------------------------------------------------


class Money:
    def __init__(self, cents: int) -> None:
        self.cents = cents


MONEY = simple_type("test.types/money", lambda m: str(m.cents), lambda b: Money(int(b)))


def test_hook_statefun_register_types() -> None:
    class MoneyTypes:
        @hookimpl
        def statefun_register_types(self, registry: Any) -> None:
            registry.register(Money, MONEY, source="MoneyTypes")

    functions = StatefulFunctions()

    @functions.bind("test/wallet", specs=[ValueSpec("balance", type=Money)])
    def wallet(context: Context, message: Message) -> None:
        paid = message.as_type(Money)
        balance = context.storage.balance or Money(0)
        context.storage.balance = Money(balance.cents + paid.cents)
        context.send(message_builder("test/ledger", "all", value=paid))

    handler = RequestReplyHandler(
        functions, plugins=make_plugin_manager([MoneyTypes()], load_entrypoints=False)
    )
    reply_bytes = handler.handle_sync(
        to_function(
            "test/wallet",
            "w",
            [typed_value(MONEY, Money(250))],
            {"balance": typed_value(MONEY, Money(5))},
        )
    )
    assert mutations(reply_bytes)["balance"].value == b"255"
    (sent,) = invocation_result(reply_bytes).outgoing_messages
    assert (sent.argument.typename, sent.argument.value) == ("test.types/money", b"250")

    class Impostor:
        @hookimpl
        def statefun_register_types(self, registry: Any) -> None:
            registry.register(dict, make_json_type("test.types/money"), source="Impostor")

    with pytest.raises(PluginError, match=r"'test\.types/money' is claimed twice"):
        RequestReplyHandler(
            functions,
            plugins=make_plugin_manager([MoneyTypes(), Impostor()], load_entrypoints=False),
        )


def test_hook_statefun_type_for_class() -> None:
    asked: list[type] = []

    class Declines:
        @hookimpl(tryfirst=True)
        def statefun_type_for_class(self, cls: type) -> Optional[Type]:
            asked.append(cls)
            return None  # lets the next plugin answer

    class Answers:
        @hookimpl
        def statefun_type_for_class(self, cls: type) -> Optional[Type]:
            return MONEY if cls is Money else None

    functions = StatefulFunctions()

    @functions.bind("test/wallet", specs=[ValueSpec("balance", type=Money)])
    def wallet(context: Context, message: Message) -> None:
        assert message.is_type(Money)
        context.storage.balance = message.as_type(Money)
        context.send(message_builder("test/ledger", "all", value=Money(1)))

    manager = make_plugin_manager([Declines(), Answers()], load_entrypoints=False)
    handler = RequestReplyHandler(functions, plugins=manager)
    for _ in range(2):
        data = handler.handle_sync(
            to_function("test/wallet", "w", [typed_value(MONEY, Money(7))], {"balance": None})
        )
        assert mutations(data)["balance"].value == b"7"
        assert invocation_result(data).outgoing_messages[0].argument.typename == "test.types/money"
    assert asked == [Money]  # asked once per class, then cached

    class Unknown:
        pass

    # bound to functions already served: it fails at the bind, and is not bound
    with pytest.raises(UnknownTypeError, match=r"'test/unknown', state 'x': no StateFun type"):
        functions.register("test/unknown", wallet, [ValueSpec("x", type=Unknown)])
    assert "test/unknown" not in functions


def test_hook_statefun_batch_started(recorder: Recorder, driver: str) -> None:
    headers = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    call(
        make_handler(recorder), driver, to_function("test/sync", "a-1", names("x"), SEEN_3), headers
    )
    (started,) = recorder.fields("batch_started")
    assert started["function_type"] == "test/sync"
    assert started["function_id"] == "a-1"
    assert started["batch_size"] == 1
    assert started["headers"] == headers
    assert started["outcome"] is None
    assert started["started"] > 0
    assert recorder.batches[0].headers is headers  # passed through, not copied


def test_a_batch_starts_with_every_counter_at_zero(recorder: Recorder, driver: str) -> None:
    call(
        make_handler(recorder), driver, to_function("test/sync", "a", names("later"), SEEN_3), None
    )
    (started,) = recorder.fields("batch_started")
    counters = ("state_bytes_read", "state_bytes_written", "messages", "delayed_messages")
    assert [started[name] for name in counters] == [0, 0, 0, 0]
    assert (started["egress_records"], started["missing_states"]) == (0, ())
    assert (recorder.batches[0].dead_letters, recorder.batches[0].outcome) == (0, "ok")


def test_hook_statefun_invocation_started(recorder: Recorder, driver: str, kind: str) -> None:
    call(
        make_handler(recorder),
        driver,
        to_function(f"test/{kind}", "a", names("x", "y"), SEEN_3, caller=CALLER),
        None,
    )
    first, second = recorder.fields("invocation_started")
    assert first["index"] == 0 and second["index"] == 1
    assert first["argument_typename"] == StringType.typename
    caller = first["caller"]
    assert (caller.namespace, caller.name, caller.id, caller.typename) == (
        "test",
        "caller",
        "c-1",
        "test/caller",
    )
    assert first["batch_scratch"] == "from batch_started"  # the batch's scratch is shared


def test_hook_statefun_invocation_finished(recorder: Recorder, driver: str, kind: str) -> None:
    handler = make_handler(recorder)
    call(handler, driver, to_function(f"test/{kind}", "a", names("x", "y"), SEEN_3), None)
    finished = recorder.fields("invocation_finished")
    assert [(f["index"], f["error"], f["scratch"]) for f in finished] == [
        (0, None, "from invocation_started #0"),
        (1, None, "from invocation_started #1"),
    ]

    recorder.calls.clear()
    with pytest.raises(FunctionFailedError):
        call(handler, driver, to_function(f"test/{kind}", "a", names("boom"), SEEN_3), None)
    (failed,) = recorder.fields("invocation_finished")
    assert isinstance(failed["error"], ValueError)
    assert str(failed["error"]) == "boom for a"


def test_hook_statefun_batch_finished(recorder: Recorder, driver: str, kind: str) -> None:
    handler = make_handler(recorder)
    call(handler, driver, to_function(f"test/{kind}", "a", names("x", "later", "y"), SEEN_3), None)
    (finished,) = recorder.fields("batch_finished")
    assert finished["outcome"] == "ok"
    assert finished["batch_size"] == 3
    assert finished["state_bytes_read"] == len(typed_value(IntType, 3).value) == 5
    assert finished["state_bytes_written"] == 5  # seen = 6
    assert finished["messages"] == 3
    assert finished["delayed_messages"] == 1  # the cancellation is not a message
    assert finished["egress_records"] == 1
    assert finished["missing_states"] == ()
    assert finished["duration"] > 0
    assert finished["scratch"] == "from batch_started"


def test_hook_statefun_batch_finished_counts_deletes_and_cancellations_as_nothing(
    recorder: Recorder, driver: str
) -> None:
    functions = StatefulFunctions()

    def forget(context: Context, message: Message) -> None:
        del context.storage.seen
        context.cancel_delayed_message("an-earlier-one")

    functions.register("test/forget", forget, [ValueSpec("seen", IntType)])
    manager = make_plugin_manager(plugins=[recorder], load_entrypoints=False)
    handler = RequestReplyHandler(functions, plugins=manager)
    call(handler, driver, to_function("test/forget", "a", names("x"), SEEN_3), None)
    (finished,) = recorder.fields("batch_finished")
    assert finished["state_bytes_read"] == 5
    assert finished["state_bytes_written"] == 0  # a delete writes no value
    assert finished["messages"] == finished["delayed_messages"] == 0
    assert finished["egress_records"] == 0


def test_hook_statefun_batch_finished_for_missing_state(recorder: Recorder, driver: str) -> None:
    data = call(make_handler(recorder), driver, to_function("test/sync", "a", names("x")), None)
    assert from_function(data).HasField("incomplete_invocation_context")
    assert recorder.names() == ["batch_started", "batch_finished"]  # no invocation ran
    (finished,) = recorder.fields("batch_finished")
    assert finished["outcome"] == "missing_state"
    assert finished["missing_states"] == ("seen",)
    assert finished["state_bytes_read"] == finished["state_bytes_written"] == 0


@pytest.mark.parametrize(("tpe", "zero"), [(IntType, 0), (BoolType, False)])
def test_hook_statefun_batch_finished_counts_a_zero_as_the_no_bytes_it_writes(
    recorder: Recorder, driver: str, tpe: Type, zero: Any
) -> None:
    functions = StatefulFunctions()

    def reset(context: Context, message: Message) -> None:
        context.storage.seen = zero

    functions.register("test/reset", reset, [ValueSpec("seen", tpe)])
    manager = make_plugin_manager(plugins=[recorder], load_entrypoints=False)
    handler = RequestReplyHandler(functions, plugins=manager)
    reply = call(handler, driver, to_function("test/reset", "a", names("x"), {"seen": None}), None)
    assert mutations(reply)["seen"].value == b""  # proto3 leaves a zero out
    (finished,) = recorder.fields("batch_finished")
    assert finished["state_bytes_written"] == 0


class Timer:
    @hookimpl
    def statefun_batch_finished(self, batch: Any) -> None:
        self.duration = batch.duration

    @hookimpl
    def statefun_batch_failed(self, batch: Any, error: BaseException) -> None:
        self.duration = batch.duration


@pytest.mark.parametrize(
    ("state", "word"),
    [(SEEN_3, "x"), (None, "x"), (SEEN_3, "boom")],
    ids=["reply", "missing state", "failure"],
)
def test_a_batch_is_timed_however_it_ends(driver: str, state: Any, word: str) -> None:
    timer = Timer()
    started = time.perf_counter()
    with contextlib.suppress(FunctionFailedError):
        call(make_handler(timer), driver, to_function("test/sync", "a", names(word), state), None)
    took = time.perf_counter() - started
    assert 0 < timer.duration <= took


def test_hook_statefun_request_failed_is_told_the_functions_exception_as_the_cause(
    driver: str,
) -> None:
    causes = []

    class Reporter:
        @hookimpl
        def statefun_request_failed(self, error: BaseException) -> None:
            causes.append(error.__cause__)  # read when told, not after the handler raised

    with pytest.raises(FunctionFailedError) as raised:
        body = to_function("test/sync", "a", names("boom"), SEEN_3)
        call(make_handler(Reporter()), driver, body, None)
    assert causes == [raised.value.__cause__] and isinstance(causes[0], ValueError)


class ReplyStamp:
    """Sets a header for the reply, as statefun-tracecontext sets ``traceresponse``."""

    @hookimpl
    def statefun_batch_finished(self, batch: Any) -> None:
        batch.reply_headers["x-outcome"] = batch.outcome


@pytest.mark.parametrize(
    ("state", "outcome"), [(SEEN_3, "ok"), (None, "missing_state")], ids=["reply", "missing state"]
)
def test_headers_plugins_set_for_the_reply_go_to_the_servers_reply_headers(
    driver: str, state: Any, outcome: str
) -> None:
    handler = make_handler(ReplyStamp())
    body = to_function("test/sync", "a", names("x"), state)
    reply_headers = {"content-type": "application/octet-stream"}
    if driver == "handle_sync":
        handler.handle_sync(body, None, reply_headers)
    else:
        asyncio.run(handler.handle_async(body, None, reply_headers))
    assert reply_headers == {"content-type": "application/octet-stream", "x-outcome": outcome}


class BadStamps:
    """Reply headers no server can write, or that would reframe the reply."""

    @hookimpl
    def statefun_batch_started(self, batch: Any) -> None:
        batch.reply_headers["x-count"] = 5

    @hookimpl
    def statefun_invocation_started(self, invocation: Any) -> None:
        invocation.batch.reply_headers["x-split"] = "a\r\nInjected: yes"

    @hookimpl
    def statefun_batch_finished(self, batch: Any) -> None:
        batch.reply_headers["Content-Length"] = "3"


def test_a_reply_header_no_server_could_send_is_refused_in_the_plugins_hook(
    driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = to_function("test/sync", "a", names("x"), SEEN_3)
    reply_headers: dict[str, str] = {}
    handler = make_handler(BadStamps(), ReplyStamp())
    if driver == "handle_sync":
        reply = handler.handle_sync(body, None, reply_headers)
    else:
        reply = asyncio.run(handler.handle_async(body, None, reply_headers))
    assert reply == make_handler().handle_sync(body)  # the batch's reply, untouched
    assert reply_headers == {"x-outcome": "ok"}
    logged = [r.getMessage() for r in caplog.records if r.name == "statefun_core.plugins"]
    assert len(logged) == 3 and all("'BadStamps' raised" in message for message in logged)
    assert "ValueError: reply header 'Content-Length' frames the reply" in caplog.text


def test_hook_statefun_batch_failed(recorder: Recorder, driver: str, kind: str) -> None:
    with pytest.raises(FunctionFailedError) as raised:
        call(
            make_handler(recorder),
            driver,
            to_function(f"test/{kind}", "a", names("x", "boom"), SEEN_3),
            None,
        )
    (failed,) = recorder.fields("batch_failed")
    assert failed["outcome"] == "error"
    assert failed["error"] is raised.value.__cause__  # the function's own exception
    assert isinstance(failed["error"], ValueError)
    assert failed["batch_size"] == 2
    assert failed["scratch"] == "from batch_started"
    assert recorder.fields("batch_finished") == []


REJECTED: list[tuple[Callable[[], bytes], type[Exception], int]] = [
    (lambda: b"\x00\xff not a protobuf", MalformedRequestError, 400),
    (lambda: b"", MalformedRequestError, 400),  # no invocation batch
    (lambda: to_function("test/nobody", "a", names("x")), FunctionNotFoundError, 404),
    (lambda: to_function("test/sync", "a", names("x" * 200), SEEN_3), RequestTooLargeError, 413),
]


@pytest.mark.parametrize(("body", "expected", "status"), REJECTED)
def test_hook_statefun_request_failed(
    recorder: Recorder,
    driver: str,
    body: Callable[[], bytes],
    expected: type[Exception],
    status: int,
) -> None:
    handler = make_handler(recorder, limits=Limits(request_bytes=200))
    headers = {"x-request-id": "r-1"}
    with pytest.raises(expected) as raised:
        call(handler, driver, body(), headers)
    assert recorder.names() == ["request_failed"]  # rejected before a batch existed
    (failed,) = recorder.fields("request_failed")
    assert failed["error"] is raised.value
    assert getattr(failed["error"], "status", None) == status
    assert failed["batch"] is None
    assert failed["headers"] == headers


def test_hook_statefun_request_failed_after_a_batch(recorder: Recorder, driver: str) -> None:
    with pytest.raises(FunctionFailedError) as raised:
        call(
            make_handler(recorder), driver, to_function("test/sync", "a", names("boom"), SEEN_3), {}
        )
    (failed,) = recorder.fields("request_failed")
    assert failed["error"] is raised.value
    assert failed["error"].status == 500
    assert failed["batch"] is recorder.batches[0]
    assert failed["batch"].outcome == "error"


def test_a_plugin_with_only_request_failed_is_told_the_failed_batch(driver: str) -> None:
    """An error reporter alone still learns which function failed (no other hook makes the
    batch events)."""
    told: list[Any] = []

    class Reporter:
        @hookimpl
        def statefun_request_failed(self, batch: Any, headers: Mapping[str, str]) -> None:
            told.append((batch.function_type, batch.function_id, batch.batch_size, batch.outcome,
                         batch.headers is headers))  # fmt: skip

    with pytest.raises(FunctionFailedError):
        body = to_function("test/sync", "a", names("x", "boom"), SEEN_3)
        call(make_handler(Reporter()), driver, body, {"x-request-id": "r-1"})
    assert told == [("test/sync", "a", 2, "error", True)]


# --- how hooks are wired ------------------------------------------------------------------------


def test_a_plugin_with_only_a_finishing_hook_still_gets_its_events(driver: str) -> None:
    seen: list[str] = []

    class OnlyFinished:
        @hookimpl
        def statefun_batch_finished(self, batch: Any) -> None:
            seen.append(f"{batch.function_type} {batch.outcome} {batch.batch_size}")

    call(
        make_handler(OnlyFinished()),
        driver,
        to_function("test/sync", "a", names("x"), SEEN_3),
        None,
    )
    assert seen == ["test/sync ok 1"]


def test_plugins_registered_after_the_handler_was_built_are_called() -> None:
    handler = make_handler()
    handler.handle_sync(to_function("test/sync", "a", names("x"), SEEN_3))
    recorder = Recorder()
    handler.plugins.register(recorder)
    handler.handle_sync(to_function("test/sync", "a", names("x"), SEEN_3))
    assert recorder.names()[0] == "batch_started"
    handler.plugins.unregister(recorder)
    handler.handle_sync(to_function("test/sync", "a", names("x"), SEEN_3))
    assert len(recorder.fields("batch_started")) == 1


def serving_until(handler: RequestReplyHandler, stop: threading.Event) -> None:
    while not stop.is_set():
        handler.handle_sync(to_function("test/sync", "a", names("x"), SEEN_3))


def test_a_plugin_registered_while_other_threads_serve_is_called_from_then_on() -> None:
    """A handler looks at the hooks again when the plugins change: one that looked from
    another thread while a plugin was being registered does not keep the hooks it saw."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # a thread switch between almost any two bytecodes
    try:
        for _ in range(100):
            handler = make_handler()
            stop = threading.Event()
            with concurrent.futures.ThreadPoolExecutor(3) as pool:
                serving = [pool.submit(serving_until, handler, stop) for _ in range(3)]
                recorder = Recorder()
                handler.plugins.register(recorder)
                stop.set()
            for served in serving:
                served.result()
            called = len(recorder.fields("batch_finished"))
            handler.handle_sync(to_function("test/sync", "a", names("x"), SEEN_3))
            assert len(recorder.fields("batch_finished")) == called + 1
    finally:
        sys.setswitchinterval(interval)


def test_a_blocking_function_in_an_executor_reports_from_its_thread(recorder: Recorder) -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        handler = make_handler(recorder, executor=pool)
        asyncio.run(handler.handle_async(to_function("test/blocking", "a", names("x"), SEEN_3)))
    assert recorder.names()[-1] == "batch_finished"


def test_a_raising_hook_does_not_fail_the_request(
    driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        @hookimpl
        def statefun_batch_started(self, batch: Any) -> None:
            raise RuntimeError("plugin bug")

    request = to_function("test/sync", "a", names("x"), SEEN_3)
    assert call(make_handler(Broken()), driver, request, None) == call(
        make_handler(), driver, request, None
    )
    assert "plugin 'Broken' raised in statefun_batch_started" in caplog.text


def test_an_unknown_hook_is_refused() -> None:
    class Typo:
        @hookimpl
        def statefun_batch_finishd(self, batch: Any) -> None:
            pass

    with pytest.raises(PluginError, match="statefun_batch_finishd"):
        make_plugin_manager([Typo()], load_entrypoints=False)


def test_hook_statefun_batch_failed_when_the_reply_cannot_be_encoded(
    recorder: Recorder, driver: str
) -> None:
    functions = StatefulFunctions()
    functions.register(
        "test/bad-state",
        lambda context, message: setattr(context.storage, "seen", "not an int"),
        [ValueSpec("seen", IntType)],
    )
    handler = RequestReplyHandler(
        functions, plugins=make_plugin_manager([recorder], load_entrypoints=False)
    )
    with pytest.raises(FunctionFailedError) as raised:
        call(handler, driver, to_function("test/bad-state", "a", names("x"), SEEN_3), None)
    assert recorder.names()[-2:] == ["batch_failed", "request_failed"]
    (failed,) = recorder.fields("batch_failed")
    assert failed["error"] is raised.value.__cause__
    assert isinstance(failed["error"], TypeError)


CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("current", default="none")


def test_context_set_in_invocation_started_is_reset_in_invocation_finished(driver: str) -> None:
    """What tracing plugins do: make something current while the function runs. It must hold
    in the function and be undone afterwards, even when an async function really suspends
    under handle_sync (then a task finishes it)."""
    seen: list[str] = []

    class MakesCurrent:
        @hookimpl
        def statefun_invocation_started(self, invocation: Any) -> None:
            invocation.scratch["token"] = CURRENT.set(f"invocation {invocation.index}")

        @hookimpl
        def statefun_invocation_finished(self, invocation: Any, error: Any) -> None:
            CURRENT.reset(invocation.scratch.pop("token"))

    functions = StatefulFunctions()

    @functions.bind("test/suspends")
    async def suspends(context: Context, message: Message) -> None:
        await asyncio.sleep(0)
        seen.append(CURRENT.get())

    handler = RequestReplyHandler(
        functions, plugins=make_plugin_manager([MakesCurrent()], load_entrypoints=False)
    )
    call(handler, driver, to_function("test/suspends", "a", names("x", "y")), None)
    assert seen == ["invocation 0", "invocation 1"]
    assert CURRENT.get() == "none"


def test_a_typename_claimed_by_a_registered_type_and_a_class_hook_names_the_plugin() -> None:
    class Registers:
        @hookimpl
        def statefun_register_types(self, registry: Any) -> None:
            registry.register(dict, MONEY, source="Registers")

    class Answers:
        @hookimpl
        def statefun_type_for_class(self, cls: type) -> Optional[Type]:
            return make_json_type("test.types/money") if cls is Money else None

    manager = make_plugin_manager([Registers(), Answers()], load_entrypoints=False)
    handler = RequestReplyHandler(StatefulFunctions(), plugins=manager)
    claimed = (
        r"'test\.types/money' is claimed twice: by plugin 'Registers' and by "
        r"statefun_type_for_class "
        rf"of Answers \(for {__name__}\.Money\)$"
    )
    with pytest.raises(PluginError, match=claimed):
        handler.types.for_class(Money)


def test_a_typename_claimed_by_two_plugins_names_them_by_the_names_they_are_blocked_by() -> None:
    class GivesSource:
        @hookimpl
        def statefun_register_types(self, registry: Any) -> None:
            registry.register(Money, MONEY, source="statefun-money")

    class GivesNone:
        @hookimpl
        def statefun_register_types(self, registry: Any) -> None:
            registry.register(dict, make_json_type("test.types/money"))

    manager = make_plugin_manager(load_entrypoints=False)
    manager.register(GivesNone(), name="json-money")
    manager.register(GivesSource(), name="money")
    claimed = (
        r"'test\.types/money' is claimed twice: by statefun-money \(plugin 'money'\) and by "
        r"plugin 'json-money'$"
    )
    with pytest.raises(PluginError, match=claimed):
        RequestReplyHandler(StatefulFunctions(), plugins=manager)
    registry = TypeRegistry()
    registry.register(Money, MONEY)
    with pytest.raises(PluginError, match=r"by user and by user$"):  # not from a plugin
        registry.register(dict, make_json_type("test.types/money"))


def test_a_type_plugin_answering_something_else_than_a_type_names_the_plugin() -> None:
    class AnswersTheClass:
        @hookimpl
        def statefun_type_for_class(self, cls: type) -> Any:
            return cls

    class RegistersAName:
        @hookimpl
        def statefun_register_types(self, registry: Any) -> None:
            registry.register(Money, "test.types/money")

    functions = StatefulFunctions()
    functions.register("test/wallet", lambda context, message: None, [ValueSpec("m", Money)])
    with pytest.raises(
        PluginError,
        match=r"^statefun plugin 'AnswersTheClass' returned type from statefun_type_for_class;",
    ):
        RequestReplyHandler(
            functions, plugins=make_plugin_manager([AnswersTheClass()], load_entrypoints=False)
        )
    with pytest.raises(
        PluginError, match=r"'RegistersAName' raised .* tpe must be a statefun Type"
    ):
        RequestReplyHandler(
            functions, plugins=make_plugin_manager([RegistersAName()], load_entrypoints=False)
        )
    registry = TypeRegistry()
    registry.add_factory(lambda cls: "test.types/money", source="by-name")
    with pytest.raises(PluginError, match=r"^by-name returned str for .*Money; expected"):
        registry.for_class(Money)


def test_a_state_type_the_runtime_would_refuse_fails_the_handler_build_naming_its_plugin() -> None:
    class Versioned:
        @hookimpl
        def statefun_register_types(self, registry: Any) -> None:
            registry.register(Money, make_json_type("test.types/money/v2"), source="versioned")

    functions = StatefulFunctions()
    functions.register("test/wallet", lambda context, message: None, [ValueSpec("m", Money)])
    with pytest.raises(
        PluginError,
        match=r"^function 'test/wallet', state 'm': type 'test\.types/money/v2' is not "
        r"namespace/name, as a state's must be; it came from versioned \(plugin 'Versioned'\)$",
    ):
        RequestReplyHandler(
            functions, plugins=make_plugin_manager([Versioned()], load_entrypoints=False)
        )
    for typename in ("money", "test.types/"):  # Java's split drops the empty name
        given = StatefulFunctions()
        spec = ValueSpec("m", make_json_type(typename))
        given.register("test/wallet", lambda c, m: None, [spec])
        with pytest.raises(ValueError, match=f"type '{typename}' is not namespace/name"):
            RequestReplyHandler(given, plugins=make_plugin_manager(load_entrypoints=False))
