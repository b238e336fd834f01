"""statefun_core.testing.wire: requests built as the runtime does, replies read back."""

from __future__ import annotations

from datetime import timedelta

import pytest

from statefun_core import (
    BoolType,
    Context,
    IntType,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    StringType,
    ValueSpec,
    kafka_egress_message,
    make_plugin_manager,
    message_builder,
    protocol,
    simple_type,
)
from statefun_core.engine import Address, ExpireMode, StateSpec
from statefun_core.testing import KafkaRecord, wire

from .test_harness import Point, PointTypes


def handler() -> RequestReplyHandler:
    functions = StatefulFunctions()

    @functions.bind(
        "ns/counter",
        specs=[
            ValueSpec("count", IntType),
            ValueSpec("seen", BoolType, expire_after_write=timedelta(seconds=2)),
            ValueSpec("gone", StringType),
        ],
    )
    def counter(context: Context, message: Message) -> None:
        count = (context.storage.count or 0) + message.as_int()
        context.storage.count = count
        context.storage.seen = True
        del context.storage.gone
        caller = context.caller
        context.send(message_builder("ns/log", caller.id if caller else "-", int_value=count))
        context.send_after(timedelta(seconds=5), message_builder("ns/log", "later", int_value=0))
        context.send_egress(kafka_egress_message("ns/out", topic="t", key="k", value="v"))

    return RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))


def test_a_request_carries_typed_arguments_state_and_caller() -> None:
    body = wire.to_function(
        "ns/counter",
        "a",
        [2, wire.typed_value(IntType, 3)],
        {"count": 10, "seen": None, "gone": "x"},
        caller=("ns/caller", "c"),
    )
    batch = protocol.ToFunction.FromString(body).invocation
    assert (batch.target.namespace, batch.target.type, batch.target.id) == ("ns", "counter", "a")
    state = {s.state_name: s for s in batch.state}
    assert state["count"].state_value == wire.typed_value(IntType, 10)
    assert not state["seen"].HasField("state_value")
    assert state["gone"].state_value == wire.typed_value(StringType, "x")
    arguments = [i.argument for i in batch.invocations]
    assert arguments == [wire.typed_value(IntType, 2), wire.typed_value(IntType, 3)]
    assert {(i.caller.namespace, i.caller.type, i.caller.id) for i in batch.invocations} == {
        ("ns", "caller", "c")
    }


def test_a_typename_splits_at_its_last_slash() -> None:
    target = protocol.ToFunction.FromString(wire.to_function("a.b/c/d", "x")).invocation.target

    assert (target.namespace, target.type, target.id) == ("a.b/c", "d", "x")


def test_plain_values_take_the_builtin_types() -> None:
    body = wire.to_function("ns/f", "a", [True, 1, "s"])
    arguments = [
        i.argument.typename for i in protocol.ToFunction.FromString(body).invocation.invocations
    ]
    assert arguments == [BoolType.typename, IntType.typename, StringType.typename]


def test_a_reply_reads_back() -> None:
    state = {"count": 10, "seen": None, "gone": "x"}
    reply = handler().handle_sync(
        wire.to_function("ns/counter", "a", [2, 3], state, caller=("ns/caller", "c"))
    )
    assert wire.mutations(reply) == {
        "count": wire.typed_value(IntType, 15),
        "seen": wire.typed_value(BoolType, True),
        "gone": None,
    }
    sent = wire.messages(reply)
    assert [(m.target, m.message.as_int()) for m in sent] == [
        (Address("ns/log", "c"), 12),
        (Address("ns/log", "c"), 15),
    ]
    assert [(d.delay_in_ms, d.target.id) for d in wire.delayed(reply)] == [(5000, "later")] * 2
    assert wire.egress(reply) == [KafkaRecord("ns/out", "t", "k", b"v")] * 2
    assert wire.missing_states(reply) == []


def test_a_sent_message_of_a_plugins_type_reads_back_with_the_handlers_types() -> None:
    functions = StatefulFunctions()

    @functions.bind("ns/pointer")
    def point(context: Context, message: Message) -> None:
        context.send(message_builder("ns/log", "c", value=Point(1, 2)))

    served = RequestReplyHandler(
        functions, plugins=make_plugin_manager([PointTypes()], load_entrypoints=False)
    )
    reply = served.handle_sync(wire.to_function("ns/pointer", "a", ["go"], {}))
    (sent,) = wire.messages(reply, served.types)
    assert sent.message.as_type(Point) == Point(1, 2)
    (untyped,) = wire.messages(reply)
    with pytest.raises(TypeError, match=r"wire\.messages\(reply, handler\.types\)$"):
        untyped.message.as_type(Point)


def test_a_discovery_reply_lists_the_missing_specs() -> None:
    reply = handler().handle_sync(wire.to_function("ns/counter", "a", [1], {"count": None}))
    assert wire.missing_states(reply) == [
        StateSpec("seen", BoolType.typename, ExpireMode.AFTER_WRITE, 2000),
        StateSpec("gone", StringType.typename),
    ]
    with pytest.raises(AssertionError, match="missing state"):
        wire.invocation_result(reply)
    assert wire.from_function(reply).HasField("incomplete_invocation_context")


def test_a_type_whose_serializer_returns_str_is_sent_as_its_utf8_bytes() -> None:
    """``simple_type``'s ``serialize_fn`` may return ``str``: the runtime gets UTF-8 bytes."""
    text = simple_type("ns/text", serialize_fn=lambda value: value, deserialize_fn=bytes.decode)

    assert wire.typed_value(text, "hé") == protocol.TypedValue(
        typename="ns/text", has_value=True, value="hé".encode()
    )
    body = wire.to_function("ns/f", "a", [wire.typed_value(text, "x")], {"s": "y"})
    batch = protocol.ToFunction.FromString(body).invocation
    assert batch.invocations[0].argument.value == b"x"
    assert batch.state[0].state_value == wire.typed_value(StringType, "y")


def test_a_type_whose_serializer_returns_a_bytes_like_is_sent_as_its_bytes() -> None:
    """As the handler takes them: ``bytearray`` and ``memoryview`` too; anything else is a
    ``TypeError`` naming the type."""
    raw = simple_type("ns/raw", serialize_fn=lambda value: value, deserialize_fn=bytes)

    for data in (bytearray(b"ab"), memoryview(b"ab")):
        assert wire.typed_value(raw, data).value == b"ab"
    with pytest.raises(TypeError, match="the serializer of 'ns/raw' returned int"):
        wire.typed_value(raw, 7)
