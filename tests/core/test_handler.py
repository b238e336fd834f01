"""The request-reply protocol through both drivers (see docs protocol.md §4 to §8)."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import gc
import json
import logging
import socket
import sys
import threading
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, Callable

import pytest
from google.protobuf.message import DecodeError

from statefun_core import (
    AsyncFunctionInSyncContextError,
    BoolType,
    Context,
    DeadLetterEgress,
    EgressMessage,
    FunctionFailedError,
    FunctionNotFoundError,
    IntType,
    LimitExceededError,
    Limits,
    LongType,
    MalformedRequestError,
    Message,
    RequestReplyHandler,
    RequestTooLargeError,
    StatefulFunctions,
    StringType,
    Type,
    TypeSerializer,
    ValueSpec,
    hookimpl,
    kafka_egress_message,
    kinesis_egress_message,
    make_json_type,
    make_plugin_manager,
    message_builder,
    protocol,
)
from statefun_core.http import error_response
from statefun_core.plugins import InvocationCancelled
from statefun_core.testing.endpoint import FailureRecorder
from statefun_core.testing.wire import (
    egress,
    from_function,
    invocation_result,
    messages,
    mutations,
    to_function,
    typed_value,
)

from ..compiled import skip_if_compiled

Serve = Callable[[StatefulFunctions], Callable[[bytes], bytes]]
GREETER = "com.example.fns/greeter"


def greeter_functions() -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind(GREETER, specs=[ValueSpec(name="seen_count", type=IntType)])
    async def greet(ctx: Any, message: Any) -> None:
        name = message.as_string()
        seen = ctx.storage.seen_count or 0
        ctx.storage.seen_count = seen + 1
        ctx.send(
            message_builder(
                target_typename="com.example.fns/inbox",
                target_id=name,
                str_value=f"Hello {name} for the {seen}th time!",
            )
        )

    return functions


def test_greeter(serve: Serve) -> None:
    data = serve(greeter_functions())(
        to_function(
            GREETER,
            "bob",
            [typed_value(StringType, "bob")],
            state={"seen_count": typed_value(IntType, 4)},
        )
    )
    out = invocation_result(data)
    assert [(m.target.namespace, m.target.type, m.target.id) for m in out.outgoing_messages] == [
        ("com.example.fns", "inbox", "bob")
    ]
    argument = out.outgoing_messages[0].argument
    assert argument.typename == "io.statefun.types/string"
    assert StringType.serializer().deserialize(argument.value) == "Hello bob for the 4th time!"
    assert IntType.serializer().deserialize(mutations(data)["seen_count"].value) == 5


@pytest.mark.parametrize(
    ("spec", "mode", "millis"),
    [
        (ValueSpec("v", IntType), 0, 0),
        (ValueSpec("v", IntType, expire_after_write=timedelta(seconds=2)), 1, 2000),
        (ValueSpec("v", IntType, expire_after_call=timedelta(minutes=30)), 2, 1_800_000),
    ],
)
def test_state_discovery_reports_each_expiration_mode(
    serve: Serve, spec: ValueSpec, mode: int, millis: int
) -> None:
    functions = StatefulFunctions()
    calls = []
    functions.register("ns/f", lambda ctx, msg: calls.append(msg), specs=[spec])
    reply = from_function(serve(functions)(to_function("ns/f", "1", [typed_value(IntType, 1)])))
    (missing,) = reply.incomplete_invocation_context.missing_values
    assert missing.state_name == "v"
    assert missing.type_typename == "io.statefun.types/int"
    assert missing.expiration_spec.mode == mode
    assert missing.expiration_spec.expire_after_millis == millis
    assert not reply.HasField("invocation_result")
    assert calls == [], "an incomplete batch runs no function"


def test_discovery_lists_all_missing_specs_in_declaration_order(serve: Serve) -> None:
    functions = StatefulFunctions()
    specs = [ValueSpec("a", IntType), ValueSpec("b", StringType), ValueSpec("c", IntType)]
    functions.register("ns/f", lambda ctx, msg: None, specs=specs)
    data = serve(functions)(to_function("ns/f", "1", [typed_value(IntType, 1)], state={"b": None}))
    names = [m.state_name for m in from_function(data).incomplete_invocation_context.missing_values]
    assert names == ["a", "c"]


def test_state_without_value_is_none_and_unknown_state_names_are_ignored(serve: Serve) -> None:
    functions = StatefulFunctions()
    seen = []

    def fn(ctx: Any, msg: Any) -> None:
        seen.append((ctx.storage.a, ctx.storage.b))

    functions.register("ns/f", fn, specs=[ValueSpec("a", IntType), ValueSpec("b", IntType)])
    no_value = protocol.TypedValue(typename="io.statefun.types/int", has_value=False)
    data = serve(functions)(
        to_function(
            "ns/f",
            "1",
            [typed_value(IntType, 1)],
            state={"a": None, "b": no_value, "leftover": typed_value(StringType, "old")},
        )
    )
    assert seen == [(None, None)]
    assert mutations(data) == {}


def test_empty_but_present_value_is_the_default(serve: Serve) -> None:
    functions = StatefulFunctions()
    seen = []
    functions.register(
        "ns/f", lambda ctx, msg: seen.append(ctx.storage.a), [ValueSpec("a", IntType)]
    )
    zero = protocol.TypedValue(typename="io.statefun.types/int", has_value=True, value=b"")
    serve(functions)(to_function("ns/f", "1", [typed_value(IntType, 1)], state={"a": zero}))
    assert seen == [0]


def test_a_batch_runs_in_order_against_one_storage_and_replies_once(serve: Serve) -> None:
    functions = StatefulFunctions()

    def count(ctx: Any, msg: Any) -> None:
        ctx.storage.total = (ctx.storage.total or 0) + msg.as_int()
        ctx.send(message_builder("ns/log", ctx.address.id, int_value=ctx.storage.total))

    functions.register("ns/count", count, specs=[ValueSpec("total", IntType)])
    data = serve(functions)(
        to_function(
            "ns/count", "7", [typed_value(IntType, i) for i in range(1, 101)], state={"total": None}
        )
    )
    out = invocation_result(data)
    running = [IntType.serializer().deserialize(m.argument.value) for m in out.outgoing_messages]
    assert running == [sum(range(1, i + 1)) for i in range(1, 101)]
    assert len(out.state_mutations) == 1, "one mutation per changed state"
    assert IntType.serializer().deserialize(mutations(data)["total"].value) == 5050


def test_caller_is_present_for_function_messages_and_absent_for_ingress(serve: Serve) -> None:
    functions = StatefulFunctions()
    callers = []
    functions.register("ns/f", lambda ctx, msg: callers.append(ctx.caller))
    handle = serve(functions)
    handle(to_function("ns/f", "1", [typed_value(IntType, 1)], caller=("ns/g", "42")))
    handle(to_function("ns/f", "1", [typed_value(IntType, 1)]))
    handle(to_function("ns/f", "1", [typed_value(IntType, 1)], caller=("/", "")))
    # protocol §4.1: only an all-empty caller is no caller
    handle(to_function("ns/f", "1", [typed_value(IntType, 1)], caller=("ns/g", "")))
    handle(to_function("ns/f", "1", [typed_value(IntType, 1)], caller=("ns/", "")))
    handle(to_function("ns/f", "1", [typed_value(IntType, 1)], caller=("/g", "")))
    handle(to_function("ns/f", "1", [typed_value(IntType, 1)], caller=("/", "42")))
    assert callers[0].typename == "ns/g"
    assert (callers[0].namespace, callers[0].name, callers[0].id) == ("ns", "g", "42")
    assert callers[1:3] == [None, None]
    assert [(caller.typename, caller.id) for caller in callers[3:]] == [
        ("ns/g", ""),
        ("ns/", ""),
        ("/g", ""),
        ("/", "42"),
    ]


def test_each_invocation_of_a_batch_sees_its_own_caller(serve: Serve) -> None:
    request = protocol.ToFunction()
    batch = request.invocation
    batch.target.namespace, batch.target.type, batch.target.id = "ns", "f", "1"
    for caller in ("a", "", "b"):
        invocation = batch.invocations.add()
        invocation.argument.CopyFrom(typed_value(IntType, 1))
        if caller:
            invocation.caller.namespace, invocation.caller.type = "ns", caller
            invocation.caller.id = "7"
    functions = StatefulFunctions()
    seen = []

    async def fn(ctx: Any, msg: Any) -> None:
        first = ctx.caller
        await asyncio.sleep(0)
        assert ctx.caller == first  # the same caller, read again after a suspension
        seen.append(first and first.typename)

    functions.register("ns/f", fn)
    serve(functions)(request.SerializeToString())
    assert seen == ["ns/a", None, "ns/b"]


def test_address_and_message_target_are_the_invoked_function(serve: Serve) -> None:
    functions = StatefulFunctions()
    seen = []

    def fn(ctx: Any, msg: Any) -> None:
        seen.append((ctx.address.typename, ctx.address.id, msg.target_typename, msg.target_id))

    functions.register("com.example.fns/user", fn)
    serve(functions)(to_function("com.example.fns/user", "Zoë", [typed_value(StringType, "x")]))
    assert seen == [("com.example.fns/user", "Zoë", "com.example.fns/user", "Zoë")]


def test_delayed_messages_and_cancellations_keep_their_order(serve: Serve) -> None:
    functions = StatefulFunctions()

    def fn(ctx: Any, msg: Any) -> None:
        later = message_builder("ns/timer", "t", str_value="ping")
        ctx.send_after(timedelta(seconds=1.5), later)
        ctx.send_after(timedelta(minutes=1), later, cancellation_token="tok")
        ctx.cancel_delayed_message("tok")

    functions.register("ns/f", fn)
    delayed = invocation_result(
        serve(functions)(to_function("ns/f", "1", [typed_value(IntType, 1)]))
    ).delayed_invocations
    assert [(d.is_cancellation_request, d.cancellation_token, d.delay_in_ms) for d in delayed] == [
        (False, "", 1500),
        (False, "tok", 60000),
        (True, "tok", 0),
    ]
    assert delayed[0].target.type == "timer"
    assert StringType.serializer().deserialize(delayed[1].argument.value) == "ping"
    assert not delayed[2].HasField("target")


def test_a_delayed_message_with_a_none_token_has_no_token(serve: Serve) -> None:
    """As the official SDK sends it: None is no token, the message cannot be cancelled."""
    functions = StatefulFunctions()

    def fn(ctx: Any, msg: Any) -> None:
        later = message_builder("ns/timer", "t", str_value="ping")
        ctx.send_after(timedelta(seconds=2), later, None)  # type: ignore[arg-type]

    functions.register("ns/f", fn)
    (delayed,) = invocation_result(
        serve(functions)(to_function("ns/f", "1", [typed_value(IntType, 1)]))
    ).delayed_invocations
    assert (delayed.cancellation_token, delayed.delay_in_ms, delayed.target.id) == ("", 2000, "t")


def test_egress_records(serve: Serve) -> None:
    functions = StatefulFunctions()
    doc = make_json_type("com.example/Doc")

    def fn(ctx: Any, msg: Any) -> None:
        ctx.send_egress(kafka_egress_message("com.example/greets", "greetings", "hi", key="bob"))
        ctx.send_egress(kafka_egress_message("com.example/nums", "n", 7))
        ctx.send_egress(
            kinesis_egress_message("com.example/k", "stream", {"a": 1}, "pk", value_type=doc)
        )

    functions.register("ns/f", fn)
    egresses = invocation_result(
        serve(functions)(to_function("ns/f", "1", [typed_value(IntType, 1)]))
    ).outgoing_egresses
    assert [(e.egress_namespace, e.egress_type) for e in egresses] == [
        ("com.example", "greets"),
        ("com.example", "nums"),
        ("com.example", "k"),
    ]
    kafka = protocol.KafkaProducerRecord.FromString(egresses[0].argument.value)
    assert egresses[0].argument.typename.endswith("io.statefun.sdk.egress.KafkaProducerRecord")
    assert (kafka.topic, kafka.key, kafka.value_bytes) == ("greetings", "bob", b"hi")
    assert protocol.KafkaProducerRecord.FromString(egresses[1].argument.value).value_bytes == (
        b"\x00\x00\x00\x07"
    )
    kinesis = protocol.KinesisEgressRecord.FromString(egresses[2].argument.value)
    assert egresses[2].argument.typename.endswith("io.statefun.sdk.egress.KinesisEgressRecord")
    assert (kinesis.stream, kinesis.partition_key, kinesis.value_bytes) == (
        "stream",
        "pk",
        b'{"a": 1}',
    )


def test_an_egress_record_made_from_a_typed_value_is_sent_as_it_was_made(serve: Serve) -> None:
    """``EgressMessage(typename, typed_value)``, the official SDK's constructor."""
    argument = typed_value(StringType, "hi")
    made = EgressMessage("com.example/out", argument)
    assert (made.typename, made.value_typename(), made.raw_value()) == (
        "com.example/out", StringType.typename, argument.value,
    )  # fmt: skip
    assert made.typed_value is argument
    for missing in (lambda: EgressMessage("", argument), lambda: EgressMessage("e/o", None)):
        with pytest.raises(ValueError):
            missing()

    functions = StatefulFunctions()
    functions.register("ns/f", lambda ctx, msg: ctx.send_egress(made))
    records = invocation_result(
        serve(functions)(to_function("ns/f", "1", [typed_value(IntType, 1)]))
    ).outgoing_egresses
    assert [(r.egress_namespace, r.egress_type, r.argument) for r in records] == [
        ("com.example", "out", argument)
    ]


def test_sends_of_every_kind_interleaved_keep_each_kinds_order(serve: Serve) -> None:
    functions = StatefulFunctions()

    def fn(ctx: Any, msg: Any) -> None:
        ctx.send_egress(kafka_egress_message("ns/out", "t", "e1"))
        ctx.send(message_builder("ns/g", "m1", int_value=1))
        ctx.cancel_delayed_message("tok")
        ctx.send_after(timedelta(seconds=1), message_builder("ns/g", "d1", int_value=2))
        ctx.send(message_builder("ns/g", "m2", int_value=3))
        ctx.send_egress(kafka_egress_message("ns/out", "t", "e2"))

    functions.register("ns/f", fn)
    result = invocation_result(
        serve(functions)(to_function("ns/f", "1", [typed_value(IntType, 1)]))
    )
    assert [m.target.id for m in result.outgoing_messages] == ["m1", "m2"]
    assert [(d.is_cancellation_request, d.target.id) for d in result.delayed_invocations] == [
        (True, ""),
        (False, "d1"),
    ]
    values = [
        protocol.KafkaProducerRecord.FromString(e.argument.value).value_bytes
        for e in (result.outgoing_egresses)
    ]
    assert values == [b"e1", b"e2"]


def test_a_message_subclass_is_sent_as_a_message(serve: Serve) -> None:
    class Tagged(Message):
        __slots__ = ()

    functions = StatefulFunctions()

    def fn(ctx: Any, msg: Any) -> None:
        built = message_builder("ns/g", "x", str_value="hi")
        tagged = Tagged("ns/g", "y", typed_value(StringType, "hello"))
        ctx.send(built)
        ctx.send(tagged)

    functions.register("ns/f", fn)
    result = invocation_result(
        serve(functions)(to_function("ns/f", "1", [typed_value(IntType, 1)]))
    )
    assert [(m.target.id, m.argument.value) for m in result.outgoing_messages] == [
        ("x", typed_value(StringType, "hi").value),
        ("y", typed_value(StringType, "hello").value),
    ]


def test_a_received_message_can_be_sent_on(serve: Serve) -> None:
    functions = StatefulFunctions()

    def forward(ctx: Any, message: Message) -> None:
        ctx.send(message)  # to itself: the target of a received message is the invoked function
        ctx.send_after(timedelta(seconds=1), message)

    functions.register("ns/f", forward)
    argument = typed_value(StringType, "hi")
    result = invocation_result(serve(functions)(to_function("ns/f", "1", [argument])))
    sent = [result.outgoing_messages[0], result.delayed_invocations[0]]
    assert [(m.target.namespace, m.target.type, m.target.id) for m in sent] == [
        ("ns", "f", "1")
    ] * 2
    assert [m.argument for m in sent] == [argument] * 2


class CountingType(Type):
    """A custom type that compares by typename (so is unhashable) and counts its serializers."""

    def __init__(self) -> None:
        super().__init__("com.example/Counted")
        self.serializers = 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Type) and other.typename == self.typename

    def serializer(self) -> TypeSerializer:
        self.serializers += 1
        return make_json_type(self.typename).serializer()


def test_a_custom_state_type_may_be_unhashable_and_is_asked_for_one_serializer(
    serve: Serve,
) -> None:
    counted = CountingType()
    functions = StatefulFunctions()

    def fn(ctx: Any, msg: Any) -> None:
        ctx.storage.doc = {"n": (ctx.storage.doc or {"n": 0})["n"] + 1}

    functions.register("ns/f", fn, [ValueSpec("doc", counted)])
    call = serve(functions)
    first = mutations(
        call(to_function("ns/f", "1", [typed_value(IntType, 1)], state={"doc": None}))
    )
    assert json.loads(first["doc"].value) == {"n": 1}
    call(to_function("ns/f", "1", [typed_value(IntType, 1)], state={"doc": None}))
    assert counted.serializers == 1  # once per handler, when the function is first served


def test_delete_and_custom_types(serve: Serve) -> None:
    functions = StatefulFunctions()
    doc = make_json_type("com.example/Doc")

    def fn(ctx: Any, msg: Any) -> None:
        profile = ctx.storage.profile
        profile["visits"] += 1
        ctx.storage.profile = profile
        del ctx.storage.name

    functions.register("ns/f", fn, [ValueSpec("profile", doc), ValueSpec("name", StringType)])
    data = serve(functions)(
        to_function(
            "ns/f",
            "1",
            [typed_value(IntType, 1)],
            state={
                "profile": typed_value(doc, {"visits": 1, "név": "ü"}),
                "name": typed_value(StringType, "x"),
            },
        )
    )
    changed = mutations(data)
    assert changed["name"] is None
    assert changed["profile"].typename == "com.example/Doc"
    assert doc.serializer().deserialize(changed["profile"].value) == {"visits": 2, "név": "ü"}


def test_reading_state_of_another_type_fails_the_batch(serve: Serve) -> None:
    functions = StatefulFunctions()
    functions.register("ns/f", lambda ctx, msg: ctx.storage.a, [ValueSpec("a", IntType)])
    with pytest.raises(FunctionFailedError) as failure:
        serve(functions)(
            to_function(
                "ns/f", "1", [typed_value(IntType, 1)], state={"a": typed_value(StringType, "x")}
            )
        )
    assert isinstance(failure.value.__cause__, TypeError)
    assert "io.statefun.types/string" in str(failure.value.__cause__)


def test_a_raising_function_fails_the_whole_batch(serve: Serve) -> None:
    functions = StatefulFunctions()

    def fn(ctx: Any, msg: Any) -> None:
        ctx.storage.a = 1
        ctx.send(message_builder("ns/g", "1", int_value=1))
        if msg.as_int() == 2:
            raise RuntimeError("boom")

    functions.register("ns/f", fn, [ValueSpec("a", IntType)])
    with pytest.raises(FunctionFailedError) as failure:
        serve(functions)(
            to_function(
                "ns/f", "9", [typed_value(IntType, 1), typed_value(IntType, 2)], {"a": None}
            )
        )
    assert failure.value.status == 500
    assert (failure.value.typename, failure.value.id) == ("ns/f", "9")
    assert str(failure.value.__cause__) == "boom"


@pytest.mark.parametrize("body", [b"\xff\xff\xff", b"", b"\x0a\x02hi"])
def test_malformed_requests(serve: Serve, body: bytes) -> None:
    with pytest.raises(MalformedRequestError) as error:
        serve(greeter_functions())(body)
    assert error.value.status == 400
    expected = "the ToFunction request has no invocation batch"
    if body == b"\xff\xff\xff":
        expected = "the request body is not a ToFunction: "
    assert str(error.value).startswith(expected)
    # what the official SDK raised, for code that catches it
    assert isinstance(error.value, ValueError) and isinstance(error.value, DecodeError)


def test_a_body_with_data_after_an_end_group_tag_is_malformed_on_every_backend(
    serve: Serve,
) -> None:
    """protobuf 3.x's C++ parser stops at an end-group tag and keeps the valid prefix, with only
    a warning: such a body is refused all the same, not served from its prefix."""
    functions = greeter_functions()
    greeting = to_function(GREETER, "Ann", [typed_value(StringType, "Ann")], {"seen_count": None})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the C++ parser's
        for body in (b"\x0c" + b"garbage", greeting + b"\x0c" + b"garbage"):
            with pytest.raises(MalformedRequestError):
                serve(functions)(body)


def test_unknown_function(serve: Serve) -> None:
    with pytest.raises(FunctionNotFoundError) as error:
        serve(greeter_functions())(
            to_function("com.example.fns/nobody", "1", [typed_value(IntType, 1)])
        )
    assert error.value.status == 404
    assert "com.example.fns/nobody" in str(error.value)


def test_an_unknown_function_names_the_nearest_and_the_bound_typenames(
    serve: Serve, caplog: Any
) -> None:
    """A typename that module.yaml spells otherwise than bind() does: the runtime retries
    the 404 for ever, and the log line is all the operator has to go on."""
    functions = greeter_functions()
    with pytest.raises(FunctionNotFoundError) as error:
        serve(functions)(to_function("com.example/greeter", "1", [typed_value(IntType, 1)]))
    assert str(error.value) == (
        "no function is bound to the typename 'com.example/greeter' "
        f"(did you mean {GREETER!r}?); bound here: {GREETER}"
    )
    with caplog.at_level(logging.WARNING, logger="statefun_core"):
        status, body = error_response(error.value)
    assert f"did you mean {GREETER!r}" in caplog.text
    assert status == 404 and GREETER not in body  # the caller is told nothing it did not send

    for number in range(25):
        functions.register(f"other.ns/fn{number:02}", lambda context, message: None)
    with pytest.raises(FunctionNotFoundError) as error:
        serve(functions)(to_function("elsewhere/x", "1", [typed_value(IntType, 1)]))
    assert "did you mean" not in str(error.value)
    assert str(error.value).endswith("other.ns/fn18 and 6 more")

    # a nearest is looked for up to a length a module's typename could have, not past it (a
    # request's body can make a typename megabytes long, and difflib indexes every character)
    long_bound = "com.example." + "a" * 200 + "/greeter"
    functions.register(long_bound, lambda context, message: None)
    with pytest.raises(FunctionNotFoundError) as error:
        serve(functions)(to_function(long_bound[:-1], "1", [typed_value(IntType, 1)]))
    assert f"(did you mean {long_bound!r}?)" in str(error.value)
    with pytest.raises(FunctionNotFoundError) as error:
        serve(functions)(to_function(long_bound + "s" * 40, "1", [typed_value(IntType, 1)]))
    assert "did you mean" not in str(error.value) and "bound here: " in str(error.value)


def test_a_handler_needs_functions() -> None:
    """As the official SDK says it."""
    with pytest.raises(ValueError, match=r"^functions must be provided\.$"):
        RequestReplyHandler(None)


def test_a_handler_and_its_asgi_app_may_be_subclassed() -> None:
    """As any class: the compiled core's classes allow it too."""
    from statefun_core.asgi import StatefunASGI

    class Counting(RequestReplyHandler):
        handled = 0

        def handle_sync(self, *args: Any, **kwargs: Any) -> bytes:
            self.handled += 1
            return super().handle_sync(*args, **kwargs)

    class App(StatefunASGI):
        pass

    plugins = make_plugin_manager(load_entrypoints=False)
    handler = Counting(greeter_functions(), plugins=plugins)
    request = to_function(GREETER, "bob", ["bob"], state={"seen_count": None})
    assert len(messages(handler.handle_sync(request))) == 1
    assert handler.handled == 1
    assert isinstance(App(greeter_functions(), plugins=plugins).handler, RequestReplyHandler)


def test_request_size_limit() -> None:
    handler = RequestReplyHandler(
        greeter_functions(),
        plugins=make_plugin_manager(load_entrypoints=False),
        limits=Limits(request_bytes=10),
    )
    with pytest.raises(RequestTooLargeError) as error:
        handler.handle_sync(to_function(GREETER, "bob", [typed_value(StringType, "bob" * 10)]))
    assert error.value.status == 413


def test_a_request_may_take_up_the_size_limit_and_not_one_byte_more() -> None:
    body = to_function(GREETER, "bob", [typed_value(StringType, "bob")], {"seen_count": None})
    answers = []
    for limit in (len(body), len(body) - 1):
        handler = RequestReplyHandler(
            greeter_functions(),
            plugins=make_plugin_manager(load_entrypoints=False),
            limits=Limits(request_bytes=limit),
        )
        try:
            answers.append(messages(handler.handle_sync(body))[0].target.id)
        except RequestTooLargeError:
            answers.append("413")
    assert answers == ["bob", "413"]


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_a_request_may_be_any_bytes_like(serve: Serve, kind: Any) -> None:
    """``RequestBytes``: bytes, bytearray or memoryview, each answered alike."""
    body = to_function(GREETER, "bob", [typed_value(StringType, "bob")], {"seen_count": None})
    handle = serve(greeter_functions())
    assert handle(kind(body)) == handle(body)


def test_a_request_given_as_text_is_malformed(serve: Serve) -> None:
    with pytest.raises(MalformedRequestError, match="must be bytes, not str"):
        serve(greeter_functions())("\n\x00")  # type: ignore[arg-type]


def test_functions_registered_after_the_handler_is_built_are_served() -> None:
    functions = StatefulFunctions()
    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    functions.register(
        "ns/late", lambda ctx, msg: ctx.send(message_builder("ns/x", "1", int_value=2))
    )
    assert (
        len(
            invocation_result(
                handler.handle_sync(to_function("ns/late", "1", [typed_value(IntType, 1)]))
            ).outgoing_messages
        )
        == 1
    )


# --- the sync driver and async functions -----------------------------------------------------


def test_functions_outlive_a_handler_that_served_them() -> None:
    functions = greeter_functions()
    RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    gc.collect()  # the handler is gone: binding a function must not call it
    functions.register("ns/late", lambda context, message: None)
    assert "ns/late" in functions


def test_a_dropped_handler_is_freed_while_its_functions_live_on() -> None:
    """The functions tell their handlers of each later bind, holding them weakly: a handler
    made for a while (a test's, a reloaded app's) does not live as long as its functions."""
    functions = greeter_functions()
    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    # the handler's own types: compiled by mypyc, the handler itself takes no weak reference
    types = weakref.ref(handler.types)
    del handler
    gc.collect()
    assert types() is None
    functions.register("ns/late", lambda context, message: None)
    assert "ns/late" in functions


def test_a_handler_given_other_functions_serves_them() -> None:
    handler = RequestReplyHandler(
        greeter_functions(), plugins=make_plugin_manager(load_entrypoints=False)
    )
    request = to_function(
        GREETER, "bob", [typed_value(StringType, "bob")], state={"seen_count": None}
    )
    handler.handle_sync(request)
    others = StatefulFunctions()
    others.register(GREETER, lambda ctx, msg: ctx.send(message_builder("ns/g", "x", int_value=1)))
    handler.functions = others
    result = invocation_result(handler.handle_sync(request))
    assert [m.target.id for m in result.outgoing_messages] == ["x"]


def sleeper_functions() -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind("ns/sleeper", specs=[ValueSpec("n", IntType)])
    async def sleeper(ctx: Any, msg: Any) -> None:
        await asyncio.sleep(0.001)
        await asyncio.sleep(0)
        ctx.storage.n = (ctx.storage.n or 0) + msg.as_int()

    return functions


def test_handle_sync_runs_async_functions_that_really_suspend() -> None:
    handler = RequestReplyHandler(
        sleeper_functions(), plugins=make_plugin_manager(load_entrypoints=False)
    )
    data = handler.handle_sync(
        to_function(
            "ns/sleeper", "1", [typed_value(IntType, 2), typed_value(IntType, 3)], {"n": None}
        )
    )
    assert IntType.serializer().deserialize(mutations(data)["n"].value) == 5


def test_handle_sync_keeps_one_event_loop_per_thread_from_request_to_request() -> None:
    """What a function keeps that is bound to its loop (a client's connections) still works
    in the thread's next request."""
    functions = StatefulFunctions()
    loops: list[asyncio.AbstractEventLoop] = []

    @functions.bind("ns/f")
    async def f(context: Context, message: Message) -> None:
        await asyncio.sleep(0)
        loops.append(asyncio.get_running_loop())

    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    for _ in range(2):
        handler.handle_sync(to_function("ns/f", "1", [typed_value(IntType, 1)]))
    assert loops[0] is loops[1] and not loops[0].is_closed()


def test_the_event_loop_of_a_thread_is_closed_when_the_thread_ends() -> None:
    handler = RequestReplyHandler(
        sleeper_functions(), plugins=make_plugin_manager(load_entrypoints=False)
    )
    request = to_function("ns/sleeper", "1", [typed_value(IntType, 2)], {"n": None})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        thread = threading.Thread(target=handler.handle_sync, args=(request,))
        thread.start()
        thread.join()
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_handle_sync_works_from_many_threads() -> None:
    handler = RequestReplyHandler(
        sleeper_functions(), plugins=make_plugin_manager(load_entrypoints=False)
    )
    results: dict[int, int] = {}

    def work(i: int) -> None:
        data = handler.handle_sync(
            to_function("ns/sleeper", str(i), [typed_value(IntType, i)], {"n": None})
        )
        results[i] = IntType.serializer().deserialize(mutations(data)["n"].value)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: i for i in range(20)}


def test_handle_sync_with_an_awaiting_function_inside_a_running_loop_is_a_clear_error() -> None:
    functions = StatefulFunctions()

    @functions.bind("ns/f")
    async def f(context: Context, message: Message) -> None:
        await asyncio.sleep(0)

    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))

    async def main() -> None:
        handler.handle_sync(to_function("ns/f", "1", [typed_value(IntType, 1)]))

    with pytest.raises(FunctionFailedError) as failure:
        asyncio.run(main())
    assert isinstance(failure.value.__cause__, AsyncFunctionInSyncContextError)


def test_handle_sync_runs_a_never_awaiting_async_function_inside_a_running_loop() -> None:
    handler = RequestReplyHandler(
        greeter_functions(), plugins=make_plugin_manager(load_entrypoints=False)
    )

    async def main() -> bytes:
        return handler.handle_sync(
            to_function(GREETER, "bob", [typed_value(StringType, "bob")], {"seen_count": None})
        )

    assert len(invocation_result(asyncio.run(main())).outgoing_messages) == 1


def test_handle_sync_runs_an_awaiting_function_as_a_task() -> None:
    """asyncio.timeout, task groups and HTTP clients need the current task, as under the
    official SDK's asyncio.run."""
    functions = StatefulFunctions()
    tasks: list[Any] = []

    @functions.bind("ns/f")
    async def f(context: Context, message: Message) -> None:
        tasks.append(asyncio.current_task())
        await asyncio.wait_for(asyncio.sleep(0), timeout=5)
        if hasattr(asyncio, "timeout"):  # Python 3.11+
            async with asyncio.timeout(5):
                await asyncio.sleep(0)
        context.send(message_builder("ns/g", "1", int_value=message.as_int()))

    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    request = to_function("ns/f", "1", [typed_value(IntType, 1), typed_value(IntType, 2)])
    assert len(invocation_result(handler.handle_sync(request)).outgoing_messages) == 2
    assert len(tasks) == 2 and tasks[0] is not None and tasks[0] is tasks[1]  # one per batch


def cancelled_while_it_waits(plugin: object) -> bool:
    """Cancel, as a server whose client went does, the request of an ``async`` function that
    awaits for ever, with ``plugin`` observing; whether the task ended cancelled."""
    functions = StatefulFunctions()
    started: list[asyncio.Event] = []  # made in the loop (Python 3.9 binds one to a loop)

    @functions.bind("ns/waits")
    async def waits(context: Context, message: Message) -> None:
        started[0].set()
        await asyncio.Event().wait()

    handler = RequestReplyHandler(
        functions, plugins=make_plugin_manager([plugin], load_entrypoints=False)
    )

    async def main() -> bool:
        started.append(asyncio.Event())
        request = to_function("ns/waits", "1", [typed_value(IntType, 1)])
        task = asyncio.ensure_future(handler.handle_async(request))
        await started[0].wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled()

    return asyncio.run(main())


def test_a_cancelled_request_is_cancelled_not_a_failed_function() -> None:
    """A server cancels the request's task when its client goes: the cancellation goes on
    up (the task ends cancelled), and observers still hear the batch end, with the outcome
    ``cancelled``; the invocation it stopped is told ``InvocationCancelled``."""
    observer = FailureObserver()
    assert cancelled_while_it_waits(observer)
    assert observer.failed == [(asyncio.CancelledError, asyncio.CancelledError)]
    assert observer.outcomes == ["cancelled"]
    (told,) = observer.invocations
    assert type(told) is InvocationCancelled
    assert type(told.__cause__) is asyncio.CancelledError


def test_a_cancelled_request_is_named_cancelled_when_only_request_failed_is_implemented() -> None:
    """With no other lifecycle hook the batch is not observed: the event given to
    ``statefun_request_failed`` only names it, and says it was cancelled."""
    recorder = FailureRecorder()
    assert cancelled_while_it_waits(recorder)
    assert [failure[0] for failure in recorder.failures] == [asyncio.CancelledError]
    (batch,) = recorder.batches
    assert batch is not None
    assert (batch.function_type, batch.function_id, batch.outcome) == ("ns/waits", "1", "cancelled")


def test_another_error_raised_while_the_request_is_cancelled_is_the_functions_failure() -> None:
    """Only the ``CancelledError`` is the request's: a function whose clean-up raises
    something else while its request is cancelled has failed."""
    functions = StatefulFunctions()
    started: list[asyncio.Event] = []

    @functions.bind("ns/waits")
    async def waits(context: Context, message: Message) -> None:
        started[0].set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise ValueError("clean-up failed") from None

    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))

    async def main() -> None:
        started.append(asyncio.Event())
        request = to_function("ns/waits", "1", [typed_value(IntType, 1)])
        task = asyncio.ensure_future(handler.handle_async(request))
        await started[0].wait()
        task.cancel()
        with pytest.raises(FunctionFailedError) as failure:
            await task
        assert isinstance(failure.value.__cause__, ValueError)

    asyncio.run(main())


def test_a_cancelled_blocking_batch_starts_no_further_invocation() -> None:
    """A server that cancels the request (its client went) cannot stop the invocation running
    in the executor's thread, but the batch's next invocations never start: nobody waits for
    their reply, and they would only repeat, with the batch sent again, their calls out."""
    functions = StatefulFunctions()
    entered, release = threading.Event(), threading.Event()
    ran: list[int] = []

    @functions.bind("ns/blocking", blocking=True)
    def blocking(context: Context, message: Message) -> None:
        ran.append(message.as_int())
        entered.set()
        release.wait()

    executor = ThreadPoolExecutor(max_workers=1)
    handler = RequestReplyHandler(
        functions, executor=executor, plugins=make_plugin_manager(load_entrypoints=False)
    )
    request = to_function("ns/blocking", "1", [typed_value(IntType, i) for i in (1, 2, 3)])

    async def main() -> None:
        task = asyncio.ensure_future(handler.handle_async(request))
        await asyncio.get_running_loop().run_in_executor(None, entered.wait)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
    finally:
        release.set()
        executor.shutdown(wait=True)  # the thread ran what it was going to run
    assert ran == [1]


TRACEPARENT_HEADER = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}


@pytest.mark.parametrize("observed", [False, True], ids=["unobserved", "observed"])
@pytest.mark.parametrize("raises", ["after_the_cancel", "before_the_task_hears"])
def test_a_cancelled_blocking_invocation_that_raises_is_logged_once(
    caplog: pytest.LogCaptureFixture, observed: bool, raises: str
) -> None:
    """Its request cancelled, a ``blocking=True`` invocation still running in its thread
    that raises has failed all the same: the handler writes the line of a function that
    failed (with its function, id and trace id), once, whether it raised after the task
    was cancelled or before the task heard of it, and whether plugins observe the batch
    (they log it where it raised) or not."""
    functions = StatefulFunctions()
    entered, release = threading.Event(), threading.Event()

    @functions.bind("ns/blocking", blocking=True)
    def blocking(context: Context, message: Message) -> None:
        entered.set()
        release.wait()
        raise RuntimeError("the call out failed")

    executor = ThreadPoolExecutor(max_workers=1)
    plugins = make_plugin_manager([FailureObserver()] if observed else [], load_entrypoints=False)
    handler = RequestReplyHandler(functions, executor=executor, plugins=plugins)
    request = to_function("ns/blocking", "1", [typed_value(IntType, 1)])

    async def main() -> None:
        task = asyncio.ensure_future(handler.handle_async(request, TRACEPARENT_HEADER))
        await asyncio.get_running_loop().run_in_executor(None, entered.wait)
        if raises == "before_the_task_hears":
            release.set()
            # the loop held: the thread's error waits for a turn of it the task never gets
            executor.submit(lambda: None).result()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        with caplog.at_level(logging.WARNING, logger="statefun_core"):
            asyncio.run(main())
            release.set()
            executor.shutdown(wait=True)  # the thread ran what it was going to run
    finally:
        release.set()
        executor.shutdown(wait=True)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, caplog.text
    (failure,) = errors
    assert failure.getMessage() == (
        "statefun request failed: function 'ns/blocking' failed for id '1': "
        "RuntimeError: the call out failed"
    )
    assert (failure.__dict__["statefun_function"], failure.__dict__["statefun_id"]) == (
        "ns/blocking",
        "1",
    )
    assert failure.__dict__["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert [r.getMessage().split(":")[0] for r in caplog.records].count(
        "statefun request cancelled"
    ) == 1


def failed_function_line(
    caplog: pytest.LogCaptureFixture, dead_letters: Any = None
) -> logging.LogRecord:
    """The line logged for a function that raises ``RuntimeError("boom")``, called with
    ``TRACEPARENT_HEADER`` by a handler with no plugin."""
    functions = StatefulFunctions()

    @functions.bind("ns/f", dead_letters=dead_letters)
    def fails(context: Context, message: Message) -> None:
        raise RuntimeError("boom")

    handler = RequestReplyHandler(
        functions, plugins=make_plugin_manager([], load_entrypoints=False)
    )
    request = to_function("ns/f", "1", [typed_value(IntType, 1)])
    with caplog.at_level(logging.ERROR, logger="statefun_core"), pytest.raises(FunctionFailedError):
        handler.handle_sync(request, TRACEPARENT_HEADER)
    (failure,) = caplog.records
    return failure


@pytest.mark.parametrize("dead_letters", [None, DeadLetterEgress("ns/dl")], ids=["none", "ns/dl"])
def test_a_failed_function_s_line_names_the_request_s_trace(
    caplog: pytest.LogCaptureFixture, dead_letters: Any
) -> None:
    """With no plugin the failure line's trace id is the request's ``traceparent``'s, whether
    the function has a dead-letter egress (its invocations are watched for final failures,
    this one is not final) or not."""
    failure = failed_function_line(caplog, dead_letters)
    assert failure.__dict__["trace_id"] == "0af7651916cd43dd8448eb211c80319c"


def test_a_record_factory_setting_trace_id_neither_loses_the_line_nor_the_error(
    caplog: pytest.LogCaptureFixture, factory_trace_id: str
) -> None:
    """``logging`` refuses an ``extra`` that overwrites an attribute the record factory set
    (``KeyError``): the failure line is still written, the factory's trace id standing, and
    the caller still gets the function's failure, not a ``KeyError``."""
    failure = failed_function_line(caplog)
    assert failure.getMessage().endswith("RuntimeError: boom")
    assert (failure.__dict__["trace_id"], failure.__dict__["statefun_function"]) == (
        factory_trace_id,
        "ns/f",
    )


@skip_if_compiled("its functions have no Python frames for a log record to name")
def test_a_record_factory_setting_trace_id_leaves_the_failure_line_its_origin(
    caplog: pytest.LogCaptureFixture, factory_trace_id: str
) -> None:
    """Logged again without the refused fields, the line still names the handler's function
    that logs it (``stacklevel=2`` past ``log_line``), as the first try would."""
    assert failed_function_line(caplog).funcName == "_failed_function"


class FailureObserver:
    """What ``statefun_batch_failed`` and ``statefun_request_failed`` hear: a pair of error
    classes per request; and the outcome of each failed batch, and what each invocation that
    raised was told."""

    def __init__(self) -> None:
        self.failed: list[tuple[type, type]] = []
        self.outcomes: list[str] = []
        self.invocations: list[BaseException] = []
        self._batch_error: type = type(None)

    @hookimpl
    def statefun_invocation_finished(self, invocation: Any, error: Any) -> None:
        if error is not None:
            self.invocations.append(error)

    @hookimpl
    def statefun_batch_failed(self, batch: Any, error: BaseException) -> None:
        self._batch_error = type(error)
        self.outcomes.append(batch.outcome)

    @hookimpl
    def statefun_request_failed(self, error: BaseException, batch: Any, headers: Any) -> None:
        self.failed.append((self._batch_error, type(error)))


def cancels_its_own_task() -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind("ns/f")
    async def f(context: Context, message: Message) -> None:
        task = asyncio.ensure_future(asyncio.sleep(10))
        await asyncio.sleep(0)
        task.cancel()
        await task  # raises CancelledError: the function's own failure

    return functions


def test_a_cancelled_error_a_function_raises_itself_is_its_failure_under_handle_sync() -> None:
    """Nothing outside can cancel handle_sync's batch: a server's thread must get its 500."""
    observer = FailureObserver()
    handler = RequestReplyHandler(
        cancels_its_own_task(), plugins=make_plugin_manager([observer], load_entrypoints=False)
    )
    with pytest.raises(FunctionFailedError) as failure:
        handler.handle_sync(to_function("ns/f", "1", [typed_value(IntType, 1)]))
    assert isinstance(failure.value.__cause__, asyncio.CancelledError)
    assert observer.failed == [(asyncio.CancelledError, FunctionFailedError)]
    assert observer.outcomes == ["error"]
    assert [type(error) for error in observer.invocations] == [asyncio.CancelledError]


def test_a_cancelled_error_a_function_raises_itself_under_handle_async() -> None:
    """Its failure (500, outcome ``error``) where the task can tell (Python 3.11+:
    ``Task.cancelling``); before, a cancellation either way, which goes on up."""
    observer = FailureObserver()
    handler = RequestReplyHandler(
        cancels_its_own_task(), plugins=make_plugin_manager([observer], load_entrypoints=False)
    )
    request = to_function("ns/f", "1", [typed_value(IntType, 1)])
    its_failure = sys.version_info >= (3, 11)
    with pytest.raises(FunctionFailedError if its_failure else asyncio.CancelledError):
        asyncio.run(handler.handle_async(request))
    assert observer.outcomes == ["error" if its_failure else "cancelled"]
    (told,) = observer.invocations
    assert type(told) is (asyncio.CancelledError if its_failure else InvocationCancelled)


def test_no_task_a_batch_starts_outlives_it_under_handle_sync() -> None:
    """As under asyncio.run: what is left running when the batch ends is cancelled then, not
    frozen until the thread's next request."""
    functions = StatefulFunctions()
    ended: list[str] = []

    async def background() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise

    left: list[Any] = []  # the function forgets it (a "fire and forget" task); the test not

    @functions.bind("ns/f")
    async def f(context: Context, message: Message) -> None:
        left.append(asyncio.ensure_future(background()))
        await asyncio.sleep(0)

    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    handler.handle_sync(to_function("ns/f", "1", [typed_value(IntType, 1)]))
    assert ended == ["cancelled"] and left[0].cancelled()


def test_a_blocking_function_runs_in_a_copy_of_the_requests_context() -> None:
    """In the executor's thread: it sees what the request's context holds (a current span),
    and what it sets there does not reach the thread's next request."""
    functions = StatefulFunctions()
    seen: list[str] = []

    def blocking(context: Context, message: Message) -> None:
        seen.append(CURRENT_TENANT.get())
        CURRENT_TENANT.set(message.as_string())

    functions.register("ns/f", blocking, blocking=True)
    with ThreadPoolExecutor(max_workers=1) as executor:  # one thread: both requests on it
        handler = RequestReplyHandler(
            functions, executor=executor, plugins=make_plugin_manager(load_entrypoints=False)
        )

        async def serve(name: str) -> None:
            CURRENT_TENANT.set(f"request {name}")
            await handler.handle_async(to_function("ns/f", name, [typed_value(StringType, name)]))

        asyncio.run(serve("a"))
        asyncio.run(serve("b"))
    assert seen == ["request a", "request b"]


def test_an_interrupt_in_a_function_interrupts_the_server(serve: Serve) -> None:
    functions = StatefulFunctions()

    interrupt = KeyboardInterrupt()

    def interrupted(context: Context, message: Message) -> None:
        raise interrupt

    functions.register("ns/f", interrupted)
    with pytest.raises(KeyboardInterrupt) as raised:
        serve(functions)(to_function("ns/f", "1", [typed_value(IntType, 1)]))
    assert raised.value is interrupt and raised.value.__cause__ is None  # as it was raised


def test_an_interrupted_batch_is_an_error_not_a_cancellation() -> None:
    """Nobody hung up: the process is stopping. Observers hear an ``error`` batch, and the
    invocation's ``KeyboardInterrupt``, as before outcomes told the two apart."""
    functions = StatefulFunctions()

    @functions.bind("ns/f")
    async def interrupted(context: Context, message: Message) -> None:
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    observer = FailureObserver()
    handler = RequestReplyHandler(
        functions, plugins=make_plugin_manager([observer], load_entrypoints=False)
    )
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(handler.handle_async(to_function("ns/f", "1", [typed_value(IntType, 1)])))
    assert observer.outcomes == ["error"]
    assert [type(error) for error in observer.invocations] == [KeyboardInterrupt]


CURRENT_TENANT: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default="none")


@pytest.mark.parametrize("kind", ["sync", "async", "async that awaits"])
def test_handle_sync_keeps_what_a_function_sets_in_a_context_variable_to_its_batch(
    kind: str,
) -> None:
    """A server thread serves one request after another: a context variable set in one (a
    logger's bound fields) must not be seen by the next."""
    functions = StatefulFunctions()
    seen: list[str] = []

    def tenant(message: Message) -> None:
        seen.append(CURRENT_TENANT.get())
        CURRENT_TENANT.set(message.as_string())

    if kind == "sync":
        functions.register("ns/f", lambda context, message: tenant(message))
    else:

        @functions.bind("ns/f")
        async def f(context: Context, message: Message) -> None:
            if kind == "async that awaits":
                await asyncio.sleep(0)
            tenant(message)

    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    for name in ("a", "b"):
        handler.handle_sync(to_function("ns/f", name, [typed_value(StringType, name)] * 2))
    assert seen == ["none", "a", "none", "b"]  # shared within a batch, as in one asyncio.run
    assert CURRENT_TENANT.get() == "none"


def test_handle_sync_runs_sync_functions_inside_a_running_loop() -> None:
    functions = StatefulFunctions()
    functions.register("ns/f", lambda ctx, msg: ctx.send(message_builder("ns/g", "1", int_value=1)))
    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))

    async def main() -> bytes:
        return handler.handle_sync(to_function("ns/f", "1", [typed_value(IntType, 1)]))

    assert len(invocation_result(asyncio.run(main())).outgoing_messages) == 1


def test_blocking_functions_run_in_the_executor_under_handle_async() -> None:
    functions = StatefulFunctions()
    threads = []

    @functions.bind("ns/blocking", blocking=True)
    def blocking(ctx: Any, msg: Any) -> None:
        threads.append(threading.current_thread())

    @functions.bind("ns/inline")
    def inline(ctx: Any, msg: Any) -> None:
        threads.append(threading.current_thread())

    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))

    async def main() -> None:
        await handler.handle_async(to_function("ns/blocking", "1", [typed_value(IntType, 1)]))
        await handler.handle_async(to_function("ns/inline", "1", [typed_value(IntType, 1)]))

    asyncio.run(main())
    assert threads[0] is not threading.main_thread()
    assert threads[1] is threading.main_thread()


# --- limits -------------------------------------------------------------------------------------


def limited(functions: StatefulFunctions, **limits: int) -> RequestReplyHandler:
    return RequestReplyHandler(
        functions, plugins=make_plugin_manager(load_entrypoints=False), limits=Limits(**limits)
    )


def test_default_limits_are_documented_values() -> None:
    assert Limits() == Limits(
        request_bytes=32 * 1024 * 1024,
        invocations_per_batch=10_000,
        state_value_bytes=32 * 1024 * 1024,
        outgoing_per_batch=10_000,
    )


@pytest.mark.parametrize("value", [-1, 1.5, "1024", True])
def test_a_limit_is_none_or_a_non_negative_int(value: Any) -> None:
    with pytest.raises(ValueError, match="request_bytes"):
        Limits(request_bytes=value)
    assert Limits(request_bytes=0, outgoing_per_batch=None).request_bytes == 0


def test_limits_cannot_be_changed_once_made() -> None:
    # a handler reads its limits when it is built: changing them later would change nothing
    with pytest.raises(dataclasses.FrozenInstanceError):
        Limits().request_bytes = 1  # type: ignore[misc]


def test_a_handler_with_no_limits_serves_requests() -> None:
    unlimited = Limits(
        request_bytes=None, invocations_per_batch=None, state_value_bytes=None,
        outgoing_per_batch=None,
    )  # fmt: skip
    handler = RequestReplyHandler(
        greeter_functions(), plugins=make_plugin_manager(load_entrypoints=False), limits=unlimited
    )
    body = to_function(GREETER, "bob", [typed_value(StringType, "bob")], {"seen_count": None})
    assert messages(handler.handle_sync(body))[0].target.id == "bob"


def test_too_many_invocations_is_a_413_naming_the_limit() -> None:
    handler = limited(greeter_functions(), invocations_per_batch=3)
    body = to_function(GREETER, "a", [typed_value(StringType, "a")] * 4, {"seen_count": None})
    with pytest.raises(LimitExceededError, match="invocations_per_batch") as error:
        handler.handle_sync(body)
    assert error.value.status == 413
    request3 = to_function(GREETER, "a", [typed_value(StringType, "a")] * 3, {"seen_count": None})
    assert len(invocation_result(handler.handle_sync(request3)).outgoing_messages) == 3


def test_a_function_sending_without_end_fails_its_batch_at_the_limit() -> None:
    functions = StatefulFunctions()

    def flood(ctx: Any, msg: Any) -> None:
        while True:
            ctx.send(message_builder("ns/g", "1", int_value=1))

    functions.register("ns/flood", flood)
    with pytest.raises(FunctionFailedError) as failure:
        limited(functions, outgoing_per_batch=50).handle_sync(
            to_function("ns/flood", "1", [typed_value(IntType, 1)])
        )
    assert isinstance(failure.value.__cause__, LimitExceededError)
    assert failure.value.__cause__.limit == "outgoing_per_batch"
    assert (failure.value.__cause__.value, failure.value.__cause__.maximum) == (51, 50)


@pytest.mark.parametrize("kind", ["send", "send_after", "cancel_delayed_message", "send_egress"])
def test_each_kind_of_send_is_refused_past_the_outgoing_limit(kind: str) -> None:
    functions = StatefulFunctions()
    sends = {
        "send": lambda ctx: ctx.send(message_builder("ns/g", "1", int_value=1)),
        "send_after": lambda ctx: ctx.send_after(
            timedelta(seconds=1), message_builder("ns/g", "1", int_value=1)
        ),
        "cancel_delayed_message": lambda ctx: ctx.cancel_delayed_message("token"),
        "send_egress": lambda ctx: ctx.send_egress(kinesis_egress_message("e/k", "s", "v", "p")),
    }
    refused = []

    def fn(ctx: Any, msg: Any) -> None:
        for _ in range(3):
            try:
                sends[kind](ctx)
            except LimitExceededError as error:
                refused.append((error.limit, error.value, error.maximum))

    functions.register("ns/f", fn)
    reply = limited(functions, outgoing_per_batch=2).handle_sync(
        to_function("ns/f", "1", [typed_value(IntType, 1)])
    )
    assert refused == [("outgoing_per_batch", 3, 2)]
    result = invocation_result(reply)
    sent = [*result.outgoing_messages, *result.delayed_invocations, *result.outgoing_egresses]
    assert len(sent) == 2


def test_a_state_value_over_the_limit_fails_the_batch() -> None:
    functions = StatefulFunctions()

    def grow(ctx: Any, msg: Any) -> None:
        ctx.storage.blob = "x" * 100

    functions.register("ns/grow", grow, [ValueSpec("blob", StringType)])
    with pytest.raises(FunctionFailedError) as failure:
        limited(functions, state_value_bytes=64).handle_sync(
            to_function("ns/grow", "1", [typed_value(IntType, 1)], {"blob": None})
        )
    assert isinstance(failure.value.__cause__, LimitExceededError)
    assert "state_value_bytes of 'blob'" in str(failure.value.__cause__)


@pytest.mark.parametrize(
    ("tpe", "value", "size"),
    [
        (IntType, 1, 5),
        (LongType, 1, 9),
        (BoolType, True, 2),
        (StringType, "abc", 5),
        (make_json_type("com.example/doc"), [1], 3),
    ],
)
def test_a_state_value_may_take_up_the_limit_and_not_one_byte_more(
    tpe: Type, value: Any, size: int
) -> None:
    # ints and bools too, though kept unencoded until the reply under an ordinary limit
    outcomes = []

    def write(ctx: Any, msg: Any) -> None:
        try:
            ctx.storage.n = value
            outcomes.append("stored")
        except LimitExceededError as error:
            outcomes.append(error.limit)

    for limit in (size, size - 1):
        functions = StatefulFunctions()
        functions.register("ns/f", write, [ValueSpec("n", tpe)])
        reply = limited(functions, state_value_bytes=limit).handle_sync(
            to_function("ns/f", "1", [typed_value(IntType, 1)], {"n": None})
        )
        assert set(mutations(reply)) == ({"n"} if limit == size else set())
    assert outcomes == ["stored", "state_value_bytes"]


def loop_asking_functions(
    sent: list[str], ask: Callable[[], asyncio.AbstractEventLoop]
) -> StatefulFunctions:
    """An async function that never awaits, but calls what needs the running loop, after it
    has written its state and sent a message: as a function that starts a task does. It
    declares RuntimeError final: asking for the loop is not its failure, nor dead-lettered."""
    functions = StatefulFunctions()
    dead_letters = DeadLetterEgress("ns/dead-letters", topic="dead")

    def loop_time() -> float:  # a helper, as a library asking for the loop would be
        return ask().time()

    @functions.bind(
        "ns/asks",
        specs=[ValueSpec("n", IntType)],
        final_errors=[RuntimeError],
        dead_letters=dead_letters,
    )
    async def asks(context: Context, message: Message) -> None:
        context.storage.n = (context.storage.n or 0) + 1
        context.send(message_builder("ns/g", "1", int_value=message.as_int()))
        sent.append(str(message.as_int()))
        loop_time()

    return functions


@pytest.mark.parametrize("observed", [False, True])
@pytest.mark.parametrize(
    "ask",
    [asyncio.get_running_loop, asyncio.get_event_loop],  # 'no running', 'no current' loop
)
def test_an_async_function_that_never_awaits_but_needs_the_loop_runs_under_handle_sync(
    observed: bool,
    ask: Callable[[], asyncio.AbstractEventLoop],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """It has a running loop under handle_async, as it had under the official SDK's
    asyncio.run: under a WSGI server it was a 500 for ever (RuntimeError: no running event
    loop). Its first batch is run again, with none of the effects of the first try."""
    sent: list[str] = []
    observer = [FailureObserver()] if observed else []
    handler = RequestReplyHandler(
        loop_asking_functions(sent, ask),
        plugins=make_plugin_manager(observer, load_entrypoints=False),
    )
    request = to_function(
        "ns/asks", "1", [typed_value(IntType, 1), typed_value(IntType, 2)], {"n": None}
    )
    replies: list[bytes] = []
    with caplog.at_level(logging.ERROR, logger="statefun_core"):
        for _ in range(2):  # from a thread of a server: no event loop there
            thread = threading.Thread(target=lambda: replies.append(handler.handle_sync(request)))
            thread.start()
            thread.join()
    assert caplog.records == []  # not logged as a failure
    for reply in replies:
        assert IntType.serializer().deserialize(mutations(reply)["n"].value) == 2
        assert [m.message.as_int() for m in messages(reply)] == [1, 2]
        assert egress(reply) == []  # nothing dead-lettered
    assert sent == ["1", "1", "2", "1", "2"]  # the first try, then as a task each time
    if observed:
        assert observer[0].failed == []  # the plugins hear of two batches that succeeded


class InvocationObserver:
    """How each invocation ended, as ``statefun_invocation_finished`` hears it."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    @hookimpl
    def statefun_invocation_finished(self, invocation: Any, error: Any) -> None:
        self.log.append(f"finished: {type(error).__name__}")


@pytest.mark.parametrize("observed", [False, True])
def test_an_async_function_whose_code_awaits_since_it_was_bound_runs_as_a_task(
    observed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """IPython's autoreload puts a function's new code in the function bound before: one that
    never awaited, edited to await, suspends under handle_sync, which took it for one that
    needs no loop. Its batch is run again as a task, and so is every later one; the first
    try is closed at once, undone, and not a failure (it was a 500 for ever)."""
    log: list[str] = []
    functions = StatefulFunctions()

    @functions.bind("ns/f", specs=[ValueSpec("n", IntType)])
    async def f(context: Context, message: Message) -> None:
        context.storage.n = 1
        log.append("the first code")  # as the edited code, it reads log from the test

    async def edited(context: Context, message: Message) -> None:
        context.storage.n = (context.storage.n or 0) + message.as_int()
        context.send(message_builder("ns/g", "1", int_value=message.as_int()))
        try:
            await asyncio.sleep(0)
        finally:
            log.append(f"ran {message.as_int()}")

    observer = [InvocationObserver(log)] if observed else []
    handler = RequestReplyHandler(
        functions, plugins=make_plugin_manager(observer, load_entrypoints=False)
    )
    request = to_function(
        "ns/f", "1", [typed_value(IntType, 1), typed_value(IntType, 2)], {"n": None}
    )
    assert IntType.serializer().deserialize(mutations(handler.handle_sync(request))["n"].value) == 1
    log.clear()
    f.__code__ = edited.__code__  # as autoreload does
    with caplog.at_level(logging.ERROR, logger="statefun_core"):
        replies = [handler.handle_sync(request) for _ in range(2)]
    assert caplog.records == []  # not logged as a failure
    for reply in replies:
        assert IntType.serializer().deserialize(mutations(reply)["n"].value) == 3
        assert [m.message.as_int() for m in messages(reply)] == [1, 2]
    first_try = ["ran 1", "finished: InvocationRetried"] if observed else ["ran 1"]
    each_batch = ["ran 1", "finished: NoneType", "ran 2", "finished: NoneType"]
    if not observed:
        each_batch = ["ran 1", "ran 2"]
    assert log == [*first_try, *each_batch, *each_batch]


def test_a_coroutine_closed_unfinished_under_handle_async_finishes_with_generator_exit() -> None:
    """Closed while its loop runs (a server's task destroyed), not handle_sync's first try of a
    function that awaits after all: the plugins hear GeneratorExit, not InvocationRetried."""
    log: list[str] = []
    functions = StatefulFunctions()

    @functions.bind("ns/f")
    async def f(context: Context, message: Message) -> None:
        await asyncio.sleep(10)

    handler = RequestReplyHandler(
        functions, plugins=make_plugin_manager([InvocationObserver(log)], load_entrypoints=False)
    )

    async def close() -> None:
        coroutine = handler.handle_async(to_function("ns/f", "1", [typed_value(IntType, 1)]))
        coroutine.send(None)  # up to the function's first await
        coroutine.close()

    asyncio.run(close())
    assert log == ["finished: GeneratorExit"]


def test_a_coroutine_closed_after_its_loop_stopped_finishes_with_generator_exit() -> None:
    """Its task destroyed once the loop stopped (a server shut down with requests in flight):
    no loop runs, as in handle_sync's first try, but nothing runs it again."""
    log: list[str] = []
    functions = StatefulFunctions()

    @functions.bind("ns/f")
    async def f(context: Context, message: Message) -> None:
        await asyncio.sleep(10)

    handler = RequestReplyHandler(
        functions, plugins=make_plugin_manager([InvocationObserver(log)], load_entrypoints=False)
    )
    coroutine = handler.handle_async(to_function("ns/f", "1", [typed_value(IntType, 1)]))

    async def start() -> None:
        coroutine.send(None)  # up to the function's first await

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(start())
    finally:
        loop.close()
    coroutine.close()
    assert log == ["finished: GeneratorExit"]


class DeadLetterCounter:
    """The dead letters each batch that succeeded reports."""

    def __init__(self) -> None:
        self.dead_letters: list[int] = []

    @hookimpl
    def statefun_batch_finished(self, batch: Any) -> None:
        self.dead_letters.append(batch.dead_letters)


def test_a_batch_run_again_as_a_task_reports_the_dead_letters_of_its_reply() -> None:
    """An invocation dead-lettered before the one that asked for the loop is dead-lettered
    again when the batch runs again: the batch reports the one record of its reply, not two."""
    functions = StatefulFunctions()

    @functions.bind("ns/f", final_errors=[KeyError], dead_letters=DeadLetterEgress("ns/dl"))
    async def f(context: Context, message: Message) -> None:
        if message.as_int() == 1:
            raise KeyError("final")
        asyncio.get_running_loop()

    counter = DeadLetterCounter()
    handler = RequestReplyHandler(
        functions, plugins=make_plugin_manager([counter], load_entrypoints=False)
    )
    request = to_function("ns/f", "1", [typed_value(IntType, 1), typed_value(IntType, 2)])
    replies: list[bytes] = []
    thread = threading.Thread(target=lambda: replies.append(handler.handle_sync(request)))
    thread.start()
    thread.join()
    assert len(egress(replies[0])) == 1
    assert counter.dead_letters == [1]


class OneAnswerServer:
    """A TCP server on 127.0.0.1 that answers each connection's first line with ``ok`` and
    closes it when told (:meth:`close_connection`), as an HTTP server closes a kept-alive
    connection left idle."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.close_now = threading.Semaphore(0)
        self.closed = threading.Semaphore(0)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:  # stop() closed the listening socket
                return
            with connection, connection.makefile("rb") as lines:
                lines.readline()
                connection.sendall(b"ok\n")
                self.close_now.acquire()
            self.closed.release()

    def close_connection(self) -> None:
        """Close the connection answered last, and return once it is closed."""
        self.close_now.release()
        self.closed.acquire()

    def stop(self) -> None:
        self.socket.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close() alone does not)
        self.socket.close()
        self.thread.join()


def test_handle_sync_lets_the_loop_see_a_kept_connection_closed_between_requests() -> None:
    """Under a WSGI server the thread's loop stands still between requests: a kept-alive
    connection its server closed meanwhile looked open to the next batch, whose client took
    it from its pool and failed on it (aiohttp's 'Can not write request body', a 500 on every
    request that came after the server's keep-alive timeout)."""
    server = OneAnswerServer()
    kept: dict[Any, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
    functions = StatefulFunctions()

    @functions.bind("ns/client", specs=[ValueSpec("answers", IntType)])
    async def client(context: Context, message: Message) -> None:
        loop = asyncio.get_running_loop()
        connection = kept.get(loop)
        if connection is None or connection[0].at_eof():  # what a client's pool checks
            if connection is not None:
                connection[1].close()
            connection = kept[loop] = await asyncio.open_connection("127.0.0.1", server.port)
        reader, writer = connection
        writer.write(b"ask\n")
        answer = await reader.readline()
        if answer != b"ok\n":
            raise ConnectionError("the kept connection was closed by its server")
        context.storage.answers = (context.storage.answers or 0) + 1

    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    try:
        for _ in range(2):
            reply = handler.handle_sync(to_function("ns/client", "1", [1], {"answers": None}))
            assert IntType.serializer().deserialize(mutations(reply)["answers"].value) == 1
            server.close_connection()  # while the thread's loop stands still
    finally:
        server.stop()
        # the handler's loop stands still between requests: turn it to let the sockets close
        for loop, (_, writer) in kept.items():
            writer.close()
            loop.run_until_complete(writer.wait_closed())


def test_a_blocking_function_that_raises_stop_iteration_fails_its_batch() -> None:
    """An asyncio future can not hold a ``StopIteration``: raised in the executor, it was
    dropped (logged by the loop) and the request awaited its answer for ever."""
    functions = StatefulFunctions()

    def blocking(context: Context, message: Message) -> None:
        next(iter(()))

    functions.register("ns/f", blocking, blocking=True)
    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    request = handler.handle_async(to_function("ns/f", "1", [typed_value(IntType, 1)]))

    async def served() -> bytes:
        return await asyncio.wait_for(request, timeout=60)  # no answer: a hang, not slowness

    with pytest.raises(FunctionFailedError) as raised:
        asyncio.run(served())
    assert isinstance(raised.value.__cause__, StopIteration)


class _Watcher:
    @hookimpl
    def statefun_invocation_finished(self, invocation: Any, error: Any) -> None:
        pass


@pytest.mark.parametrize("driver", ["handle_sync", "handle_async"])
@pytest.mark.parametrize("awaits", [False, True])
@pytest.mark.parametrize("observer", ["plugin", "dead letters"])
def test_a_batch_goes_with_its_reply_while_its_invocations_are_observed(
    driver: str, awaits: bool, observer: str
) -> None:
    """An observed batch (a plugin that hears of its invocations, a dead-letter policy)
    called a function that held the batch, kept in the batch: a reference cycle, in which its
    request, state and outbox outlived the reply until the cyclic garbage collector ran, on
    every request to a server with statefun-prometheus or statefun-opentelemetry installed.
    With the collector off, no message of a served batch is left."""
    functions = StatefulFunctions()
    dead_letters = (
        DeadLetterEgress("ns/dead-letters", topic="dead") if observer != "plugin" else None
    )

    async def sends_async(context: Context, message: Message) -> None:
        await asyncio.sleep(0)
        context.send(message_builder("ns/g", "1", str_value="x" * 1000))

    def sends(context: Context, message: Message) -> None:
        context.send(message_builder("ns/g", "1", str_value="x" * 1000))

    functions.register("ns/f", sends_async if awaits else sends, dead_letters=dead_letters)
    plugins = [_Watcher()] if observer == "plugin" else []
    handler = RequestReplyHandler(
        functions, plugins=make_plugin_manager(plugins, load_entrypoints=False)
    )
    request = to_function("ns/f", "1", ["a", "b"])

    def serve() -> bytes:
        if driver == "handle_sync":
            return handler.handle_sync(request)
        return asyncio.run(handler.handle_async(request))

    serve()  # what the first request makes once
    gc.collect()
    gc.disable()
    try:
        assert len(messages(serve())) == 2
        left = [o for o in gc.get_objects() if type(o) is Message]
    finally:
        gc.enable()
    assert left == []


# not an awaiting function under handle_sync: asyncio's run_until_complete, which raises the
# error of the task it holds, keeps that batch in a cycle
@pytest.mark.parametrize(
    ("driver", "kind"),
    [
        ("handle_sync", "sync"),
        ("handle_async", "sync"),
        ("handle_async", "awaits"),
        ("handle_async", "blocking"),  # raised in the executor, re-raised on the loop
        ("handle_async", "blocking StopIteration"),  # which a future can not hold
    ],
)
@pytest.mark.parametrize("observed", [False, True])
def test_a_failed_batch_goes_with_its_error(
    driver: str, kind: str, observed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error of a failed batch holds, through its traceback, the frames that held the
    batch; the frame that raised it and the batch held the error in turn: reference cycles,
    in which the batch (request, state, outbox) outlived every failed request until the
    cyclic garbage collector ran. With the collector off, no message of it is left once the
    caller has let the error go."""
    monkeypatch.setattr(logging.getLogger("statefun_core"), "disabled", True)  # keeps records
    functions = StatefulFunctions()

    async def fails_async(context: Context, message: Message) -> None:
        await asyncio.sleep(0)
        context.send(message_builder("ns/g", "1", str_value="x" * 1000))
        raise ValueError("failed")

    def fails(context: Context, message: Message) -> None:
        context.send(message_builder("ns/g", "1", str_value="x" * 1000))
        if kind == "blocking StopIteration":
            raise StopIteration
        raise ValueError("failed")

    blocking = kind.startswith("blocking")
    functions.register("ns/f", fails_async if kind == "awaits" else fails, blocking=blocking)
    plugins = [_Watcher()] if observed else []
    handler = RequestReplyHandler(
        functions, plugins=make_plugin_manager(plugins, load_entrypoints=False)
    )
    request = to_function("ns/f", "1", ["a"])

    async def served_async() -> bool:  # caught in the task, as a server does
        try:
            await handler.handle_async(request)
        except FunctionFailedError:
            return True
        return False

    def served_sync() -> bool:
        try:
            handler.handle_sync(request)
        except FunctionFailedError:
            return True
        return False

    def serve() -> None:
        failed = served_sync() if driver == "handle_sync" else asyncio.run(served_async())
        assert failed

    serve()  # what the first request makes once
    gc.collect()
    gc.disable()
    try:
        serve()
        left = [o for o in gc.get_objects() if type(o) is Message]
    finally:
        gc.enable()
    assert left == []


def test_the_log_line_of_a_decoder_failing_on_another_types_bytes_names_the_types(
    serve: Serve, caplog: Any
) -> None:
    """A JSON function sent a plain string (a Kafka ingress' valueType left at
    io.statefun.types/string): json's own words ('Expecting value: line 2 column 1') are
    about the string's protobuf bytes; the line alone, what a log search shows, names the
    two types, which only the traceback's chained cause did."""
    user = make_json_type("com.example/User")
    functions = StatefulFunctions()

    @functions.bind("com.example/users")
    def users(context: Context, message: Message) -> None:
        message.as_type(user)

    request = to_function("com.example/users", "ann", [typed_value(StringType, "ann")])
    with (
        caplog.at_level(logging.ERROR, logger="statefun_core"),
        pytest.raises(FunctionFailedError) as failed,
    ):
        serve(functions)(request)
    assert isinstance(failed.value.__cause__, json.JSONDecodeError)
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert line.startswith(
        "statefun request failed: function 'com.example/users' failed for id 'ann': "
        "JSONDecodeError: Expecting value: "
    )
    assert (
        " (raised reading a value of another type: the message is of type "
        "io.statefun.types/string, not com.example/User: as_type() cannot read it"
    ) in line


def test_a_state_write_that_would_make_the_address_too_large_to_call_fails_its_batch() -> None:
    """Every request carries all of an address's states: a write that would make them,
    together, over ``Limits.request_bytes`` fails its batch (naming the limit) instead of
    leaving an address every later request to which is refused (413)."""
    kib = 1024
    functions = StatefulFunctions()

    def grow(ctx: Any, msg: Any) -> None:
        ctx.storage.a = "x" * (400 * kib)

    functions.register("ns/grow", grow, [ValueSpec("a", StringType), ValueSpec("b", StringType)])
    handler = limited(functions, request_bytes=600 * kib)

    def request(b: str) -> bytes:
        states = {"a": None, "b": typed_value(StringType, b)}
        return to_function("ns/grow", "1", [typed_value(IntType, 1)], states)

    with pytest.raises(FunctionFailedError) as failure:
        handler.handle_sync(request("y" * (300 * kib)))
    error = failure.value.__cause__
    assert isinstance(error, LimitExceededError)
    assert error.limit == "request_bytes" and error.maximum == 600 * kib
    assert 700 * kib < error.value < 701 * kib, error.value
    assert "every later request to it would be refused" in str(error)
    # within the limit together, the same write is the reply
    reply = invocation_result(handler.handle_sync(request("y" * (100 * kib))))
    assert [mutation.state_name for mutation in reply.state_mutations] == ["a"]


def test_a_state_write_over_a_request_limit_below_256_kib_fails_its_batch() -> None:
    """A reply under 256 KiB is not looked at for the states it writes, but one over a lower
    ``Limits.request_bytes`` writes a state that no later request could carry."""
    kib = 1024
    functions = StatefulFunctions()

    def grow(ctx: Any, msg: Any) -> None:
        ctx.storage.a = "x" * (150 * kib)

    functions.register("ns/grow", grow, [ValueSpec("a", StringType)])
    handler = limited(functions, request_bytes=100 * kib)
    with pytest.raises(FunctionFailedError) as failure:
        handler.handle_sync(to_function("ns/grow", "1", [typed_value(IntType, 1)], {"a": None}))
    error = failure.value.__cause__
    assert isinstance(error, LimitExceededError)
    assert error.limit == "request_bytes" and error.maximum == 100 * kib
