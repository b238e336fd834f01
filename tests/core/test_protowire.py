"""The handler writes its replies by hand (statefun_core/protowire.py): every reply must be the
bytes protobuf itself writes for the same ``FromFunction``.

Random functions (a program of sends, delayed messages, cancellations, egress records, state
writes and deletes) run through ``handle_sync``; the expected reply is built here with
protobuf's own classes, field by field, and serialized by protobuf.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statefun_core import (
    BoolType,
    Context,
    DoubleType,
    FloatType,
    FunctionFailedError,
    IntType,
    LongType,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    StringType,
    ValueSpec,
    egress_message_builder,
    kafka_egress_message,
    kinesis_egress_message,
    make_json_type,
    make_plugin_manager,
    message_builder,
    protocol,
)
from statefun_core.protowire import element, field, key, varint
from statefun_core.testing.wire import to_function, typed_value

FUNCTION = "com.example/program"
JSON = make_json_type("com.example/Json")
STATES = {"count": IntType, "flag": BoolType, "text": StringType, "doc": JSON, "big": LongType}
KEYWORDS = {
    "str_value": StringType,
    "int_value": IntType,
    "bool_value": BoolType,
    "long_value": LongType,
    "float_value": FloatType,
    "double_value": DoubleType,
}

texts = st.text(max_size=300) | st.sampled_from(["", "a", "é" * 70, "x" * 20_000])
identifiers = st.text(min_size=1, max_size=200)
targets = st.sampled_from(["com.example/inbox", "a/b", "com.example.deep.namespace/fn",
                           "ns/with/slashes/type", "ünï/cødé"])  # fmt: skip
values = st.one_of(
    st.tuples(st.just("str_value"), texts),
    st.tuples(st.just("int_value"), st.integers(-(2**31), 2**31 - 1)),
    st.tuples(st.just("long_value"), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just("bool_value"), st.booleans()),
    st.tuples(st.just("double_value"), st.floats(allow_nan=False)),
    st.tuples(st.just("json"), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)),
    st.tuples(st.just("received"), st.none()),
)
state_values = {
    "count": st.integers(-(2**31), 2**31 - 1),
    "flag": st.booleans(),
    "text": texts,
    "doc": st.lists(st.integers(), max_size=50),
    "big": st.integers(-(2**63), 2**63 - 1),
}
commands = st.one_of(
    st.tuples(st.just("send"), targets, identifiers, values),
    st.tuples(
        st.just("send_after"),
        targets,
        identifiers,
        values,
        st.integers(0, 10**12),
        st.sampled_from(["", "token", "τ" * 200]),
    ),
    st.tuples(st.just("cancel"), st.sampled_from(["token", "τ" * 200])),
    st.tuples(
        st.just("kafka"), st.text(min_size=1, max_size=20), st.none() | st.text(max_size=20), texts
    ),
    st.tuples(st.just("kinesis"), st.text(min_size=1, max_size=20), st.text(max_size=20), texts),
    st.tuples(st.just("egress"), texts),
    st.sampled_from(sorted(STATES)).flatmap(
        lambda name: st.tuples(st.just("set"), st.just(name), state_values[name])
    ),
    st.tuples(st.just("del"), st.sampled_from(sorted(STATES))),
)


def build(keyword: str, value: Any, target: str, id: str, received: Message) -> Message:
    if keyword == "received":
        return received
    if keyword == "json":
        return message_builder(target, id, value=value, value_type=JSON)
    return message_builder(target, id, **{keyword: value})


def run(program: list[tuple[Any, ...]]) -> None:
    """Run ``program`` as a function and compare its reply with protobuf's bytes."""
    functions = StatefulFunctions()

    @functions.bind(FUNCTION, specs=[ValueSpec(name, tpe) for name, tpe in STATES.items()])
    def fun(context: Context, message: Message) -> None:
        for command, *args in program:
            if command == "send":
                target, id, (keyword, value) = args
                context.send(build(keyword, value, target, id, message))
            elif command == "send_after":
                target, id, (keyword, value), delay, token = args
                sent = build(keyword, value, target, id, message)
                context.send_after(timedelta(milliseconds=delay), sent, token)
            elif command == "cancel":
                context.cancel_delayed_message(args[0])
            elif command == "kafka":
                topic, key, value = args
                context.send_egress(kafka_egress_message("io/kafka", topic, value, key=key))
            elif command == "kinesis":
                stream, key, value = args
                context.send_egress(kinesis_egress_message("io/kinesis", stream, value, key))
            elif command == "egress":
                context.send_egress(egress_message_builder("io/out", args[0], StringType))
            elif command == "set":
                setattr(context.storage, args[0], args[1])
            else:
                delattr(context.storage, args[0])

    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    argument = typed_value(StringType, "hello")
    request = to_function(FUNCTION, "id", [argument], state=dict.fromkeys(STATES))
    assert handler.handle_sync(request) == expected(program, argument)


def expected(program: list[tuple[Any, ...]], argument: Any) -> bytes:
    """The reply ``program`` must give, built with protobuf's classes."""
    out = protocol.FromFunction()
    result = out.invocation_result
    final: dict[str, Any] = {}  # each state's last write; None: deleted

    def write(value: Any, keyword: str, raw: Any) -> None:
        if keyword == "received":
            value.CopyFrom(argument)
        else:
            tpe = JSON if keyword == "json" else KEYWORDS[keyword]
            value.CopyFrom(typed_value(tpe, raw))

    def write_target(address: Any, target: str, id: str, keyword: str) -> None:
        if keyword == "received":  # the message the function got: addressed to it
            target, id = FUNCTION, "id"
        address.namespace, _, address.type = target.rpartition("/")
        address.id = id

    for command, *args in program:
        if command == "send":
            target, id, (keyword, value) = args
            item = result.outgoing_messages.add()
            write_target(item.target, target, id, keyword)
            write(item.argument, keyword, value)
        elif command == "send_after":
            target, id, (keyword, value), delay, token = args
            delay = int(timedelta(milliseconds=delay).total_seconds() * 1000.0)  # as send_after
            item = result.delayed_invocations.add(delay_in_ms=delay, cancellation_token=token)
            write_target(item.target, target, id, keyword)
            write(item.argument, keyword, value)
        elif command == "cancel":
            result.delayed_invocations.add(is_cancellation_request=True,
                                           cancellation_token=args[0])  # fmt: skip
        elif command in ("kafka", "kinesis", "egress"):
            egress = result.outgoing_egresses.add()
            egress.egress_namespace, egress.egress_type = "io", command
            if command == "egress":
                egress.egress_type = "out"
            if command == "kafka":
                topic, key, value = args
                record: Any = protocol.KafkaProducerRecord(topic=topic, key=key or "",
                                                           value_bytes=value.encode())  # fmt: skip
                typename = "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord"
            elif command == "kinesis":
                stream, key, value = args
                record = protocol.KinesisEgressRecord(stream=stream, partition_key=key,
                                                      value_bytes=value.encode())  # fmt: skip
                typename = "type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord"
            else:
                egress.argument.CopyFrom(typed_value(StringType, args[0]))
                continue
            egress.argument.typename = typename
            egress.argument.has_value = True
            egress.argument.value = record.SerializeToString()
        elif command == "set":
            final[args[0]] = args[1]
        else:
            final[args[0]] = None
    for name, tpe in STATES.items():  # declaration order
        if name not in final:
            continue
        mutation = result.state_mutations.add(state_name=name)
        if final[name] is not None:
            mutation.mutation_type = 1
            mutation.state_value.CopyFrom(typed_value(tpe, final[name]))
    return bytes(out.SerializeToString())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(commands, max_size=12))
def test_every_reply_is_what_protobuf_writes(program: list[tuple[Any, ...]]) -> None:
    run(program)


def test_a_function_with_no_effects_answers_an_empty_from_function() -> None:
    run([])


def test_long_values_and_many_effects() -> None:
    """Lengths of one, two and three varint bytes, at every level."""
    long_text = "ü" * 70_000
    run([("set", "text", long_text), ("set", "doc", list(range(5000))),
         ("send", "a/b", "x" * 200, ("str_value", long_text)), ("del", "count")]
        + [("send", "a/b", str(n), ("int_value", n)) for n in range(300)])  # fmt: skip


def test_every_length_around_the_one_byte_limit() -> None:
    """A message or a mutation whose outer length is just under 0x80 is written in one join,
    just over it field by field (``_message``, ``_modify``): both are protobuf's bytes."""
    for size in range(80, 140):
        run(
            [
                ("set", "text", "y" * size),
                ("send", "a/b", "x" * (size % 7 + 1), ("str_value", "z" * size)),
            ]
        )
        run([("send", "com.example.deep.namespace/fn", "i" * size, ("int_value", size))])


def test_varint_is_protobufs() -> None:
    for value in [*range(0, 70_000, 7), 2**14 - 1, 2**14, 2**21, 2**31, 2**63 - 1, -1, -(2**63)]:
        delayed = protocol.FromFunction().invocation_result.delayed_invocations.add()
        delayed.delay_in_ms = value  # an int64
        written = delayed.SerializeToString()
        assert written == (b"\x08" + varint(value) if value else b"")


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, "00"), (1, "01"), (0x7F, "7f"), (0x80, "8001"), (0x3FFF, "ff7f"), (0x4000, "808001"),
        (2**63, "80808080808080808001"), (2**64 - 1, "ffffffffffffffffff01"),  # as a uint64
    ],
)  # fmt: skip
def test_varint_is_minimal_at_each_size_boundary(value: int, encoded: str) -> None:
    assert varint(value).hex() == encoded


@pytest.mark.parametrize("number", range(1, 16))
def test_fields_and_elements_take_every_number_from_1_to_15(number: int) -> None:
    head = key(number, 2)
    assert head == varint(number << 3 | 2)
    assert field(number, b"ab") == head + b"\x02ab"
    assert field(number, b"") == b""  # proto3 leaves an empty field out
    assert element(number, b"") == head + b"\x00"  # a set submessage or an element: kept
    assert element(number, b"x" * 200) == head + b"\xc8\x01" + b"x" * 200


def reply_to(send: Any, argument: Any, id: str = "id") -> bytes:
    """The reply of a function that calls ``send(context, message)`` once."""
    functions = StatefulFunctions()
    functions.register(FUNCTION, send)
    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    return handler.handle_sync(to_function(FUNCTION, id, [argument]))


UNKNOWN_FIELD = b"\xa2\x06\x03abc"  # field 100, length-delimited: not in TypedValue


@pytest.mark.parametrize(
    "argument",
    [
        typed_value(StringType, "hello"),
        protocol.TypedValue(typename="com.example/nothing", has_value=False),
        protocol.TypedValue(),
        protocol.TypedValue.FromString(
            typed_value(StringType, "hello").SerializeToString() + UNKNOWN_FIELD
        ),
    ],
    ids=["value", "no value", "empty", "unknown field"],
)
@pytest.mark.parametrize("id", ["id", ""], ids=["id", "empty id"])
def test_a_received_message_is_sent_on_as_it_came(argument: Any, id: str) -> None:
    """Sent on, the message goes to the function itself, its TypedValue unchanged (unknown
    fields too); sent after a delay, the same."""
    reply = reply_to(lambda context, message: context.send(message), argument, id)
    out = protocol.FromFunction()
    item = out.invocation_result.outgoing_messages.add()
    item.target.namespace, item.target.type, item.target.id = "com.example", "program", id
    item.argument.CopyFrom(argument)
    assert reply == out.SerializeToString()
    assert UNKNOWN_FIELD not in argument.SerializeToString() or UNKNOWN_FIELD in reply

    def later(context: Context, message: Message) -> None:
        context.send_after(timedelta(seconds=1), message, "token")

    reply = reply_to(later, argument, id)
    out = protocol.FromFunction()
    delayed = out.invocation_result.delayed_invocations.add(delay_in_ms=1000)
    delayed.target.namespace, delayed.target.type, delayed.target.id = "com.example", "program", id
    delayed.argument.CopyFrom(argument)
    delayed.cancellation_token = "token"
    assert reply == out.SerializeToString()


def test_bytes_in_utf8_are_taken_for_a_string_field_as_protobuf_takes_them() -> None:
    def send(context: Context, message: Message) -> None:
        context.send_after(timedelta(0), message_builder("a/b", b"id", str_value="x"), b"tok")  # type: ignore[arg-type]
        context.cancel_delayed_message(b"tok")  # type: ignore[arg-type]

    out = protocol.FromFunction()
    delayed = out.invocation_result.delayed_invocations
    item = delayed.add(cancellation_token="tok")
    item.target.namespace, item.target.type, item.target.id = "a", "b", "id"
    item.argument.CopyFrom(typed_value(StringType, "x"))
    delayed.add(is_cancellation_request=True, cancellation_token="tok")
    assert reply_to(send, typed_value(StringType, "x")) == out.SerializeToString()


@pytest.mark.parametrize(
    "send, error",
    [
        (lambda c, m: c.send(message_builder("a/b", 42, str_value="x")), TypeError),
        (lambda c, m: c.send(message_builder("a/b", b"\xff", str_value="x")), UnicodeDecodeError),
        (lambda c, m: c.send(message_builder("a/b", "\ud800", str_value="x")), UnicodeEncodeError),
        (lambda c, m: c.cancel_delayed_message(7), TypeError),
    ],
    ids=["int id", "bytes not utf-8", "lone surrogate", "int token"],
)
def test_a_target_or_token_protobuf_would_refuse_fails_the_batch(send: Any, error: type) -> None:
    with pytest.raises(FunctionFailedError) as failed:
        reply_to(send, typed_value(StringType, "x"))
    assert isinstance(failed.value.__cause__, error)


def test_a_target_fails_before_the_value_of_the_same_message() -> None:
    """As protobuf's classes did: the target is written first."""
    send = lambda c, m: c.send(message_builder("a/b", 5, value=object()))  # noqa: E731
    with pytest.raises(FunctionFailedError) as failed:
        reply_to(send, typed_value(StringType, "x"))
    cause = failed.value.__cause__
    assert type(cause) is TypeError and "target_id 5" in str(cause), cause  # not UnknownTypeError


def test_an_int64_out_of_range_is_refused() -> None:
    for value in (2**64, -(2**63) - 1):
        with pytest.raises(ValueError, match="out of range"):
            varint(value)


@pytest.mark.parametrize("size", range(90, 140, 7))
@pytest.mark.parametrize(("tpe", "value"), [(IntType, -5), (LongType, 2**40), (BoolType, True)])
def test_a_kept_states_mutation_is_protobufs_whatever_the_length_of_its_name(
    tpe: Any, value: Any, size: int
) -> None:
    """An int or bool state's mutation is written as a head made once per state and the
    value's packed bytes: the head's lengths take one byte or two with the name's."""
    name = "n" * size
    functions = StatefulFunctions()
    functions.register(
        FUNCTION, lambda ctx, msg: setattr(ctx.storage, name, value), [ValueSpec(name, tpe)]
    )
    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    reply = handler.handle_sync(to_function(FUNCTION, "id", [1], state={name: None}))
    out = protocol.FromFunction()
    mutation = out.invocation_result.state_mutations.add(state_name=name, mutation_type=1)
    mutation.state_value.CopyFrom(typed_value(tpe, value))
    assert reply == out.SerializeToString()
