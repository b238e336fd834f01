"""The harness runs real functions through the real handler with the runtime's semantics."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta

import pytest

from statefun_core import (
    Context,
    FunctionFailedError,
    IntType,
    Message,
    StatefulFunctions,
    StringType,
    ValueSpec,
    egress_message_builder,
    hookimpl,
    kafka_egress_message,
    kinesis_egress_message,
    make_json_type,
    make_plugin_manager,
    message_builder,
    protocol,
    simple_type,
)
from statefun_core.engine import (
    Address,
    CancellationTokenError,
    DiscoveryLoopError,
    StateTypeError,
    TypedValue,
    UnregisteredStateError,
)
from statefun_core.testing import (
    EgressOutput,
    Harness,
    HarnessError,
    KafkaRecord,
    KinesisRecord,
    SentMessage,
)

LOG = make_json_type("example/log")


def arguments(batch) -> list[str]:
    return [
        Message("t/t", "t", invocation.argument).as_string()
        for invocation in batch.to_function().invocation.invocations
    ]


# --- the user guide's greeter ---------------------------------------------------------------

greeter_functions = StatefulFunctions()


@greeter_functions.bind("com.example.fns/greeter", specs=[ValueSpec("seen_count", IntType)])
def greeter(context: Context, message: Message) -> None:
    name = message.as_string()
    seen = (context.storage.seen_count or 0) + 1
    context.storage.seen_count = seen
    context.send(
        message_builder(
            "com.example.fns/inbox", name, str_value=f"Hello {name} for the {seen}th time!"
        )
    )


@greeter_functions.bind("com.example.fns/inbox")
def inbox(context: Context, message: Message) -> None:
    context.send_egress(
        kafka_egress_message(
            "com.example/greets",
            topic="greetings",
            key=context.address.id,
            value=message.as_string(),
        )
    )


def test_the_greeter_counts_visits_and_greets_through_kafka():
    harness = Harness(greeter_functions)

    harness.send("com.example.fns/greeter", "ann", str_value="ann").run()
    harness.send("com.example.fns/greeter", "ann", str_value="ann").run()

    harness.assert_state("com.example.fns/greeter", "ann", seen_count=2)
    sent = harness.assert_sent(
        "com.example.fns/inbox", "ann", str_value="Hello ann for the 2th time!"
    )
    assert sent.caller == Address("com.example.fns/greeter", "ann")
    assert harness.egress == [
        KafkaRecord("com.example/greets", "greetings", "ann", b"Hello ann for the 1th time!"),
        KafkaRecord("com.example/greets", "greetings", "ann", b"Hello ann for the 2th time!"),
    ]
    harness.assert_egress("com.example/greets", key="ann", value="Hello ann for the 2th time!")


def test_the_harness_shows_its_functions_clock_and_counts():
    """What a notebook cell ending in ``harness.send(...)`` shows."""
    harness = Harness(greeter_functions, start_ms=5)
    shown = (
        "Harness(StatefulFunctions(['com.example.fns/greeter', 'com.example.fns/inbox']), now_ms=5"
    )
    harness.send("com.example.fns/greeter", "ann", str_value="ann")
    assert repr(harness) == f"{shown}, batches=0, sent=0)"
    harness.run()  # the greeter's discovery round and call, then the inbox (no state)
    assert repr(harness) == f"{shown}, batches=3, sent=1)"


def test_a_recorded_message_equals_one_built_by_hand_and_its_repr_leaves_the_types_out():
    harness = Harness(greeter_functions)
    harness.send("com.example.fns/greeter", "ann", str_value="ann").run()

    hello = message_builder("com.example.fns/inbox", "ann", str_value="Hello ann for the 1th time!")
    expected = SentMessage(
        Address("com.example.fns/inbox", "ann"),
        TypedValue.from_proto(hello.typed_value),
        Address("com.example.fns/greeter", "ann"),
    )
    assert harness.sent == [expected]
    assert len({expected, *harness.sent}) == 1
    assert repr(harness.sent[0]) == repr(expected)


def test_assertions_explain_what_was_there_instead():
    harness = Harness(greeter_functions)
    harness.send("com.example.fns/greeter", "ann", str_value="ann").run()

    with pytest.raises(AssertionError, match=r"found \{'seen_count': 1\}"):
        harness.assert_state("com.example.fns/greeter", "ann", seen_count=5)
    with pytest.raises(AssertionError, match="Hello ann for the 1th time"):
        harness.assert_egress("com.example/greets", value="Bye")
    with pytest.raises(
        AssertionError, match=re.escape("no sent message to com.example.fns/inbox/bob")
    ):
        harness.assert_sent("com.example.fns/inbox", "bob")
    sent_instead = (
        "\n  com.example.fns/inbox/ann from com.example.fns/greeter/ann: "
        "'Hello ann for the 1th time!' (io.statefun.types/string)"
    )
    with pytest.raises(AssertionError, match=re.escape(sent_instead)):
        harness.assert_sent("com.example.fns/inbox", "ann", str_value="Hello ann!")


RAW = simple_type("example/raw", serialize_fn=bytes, deserialize_fn=bytes)


def test_assertions_say_none_when_nothing_was_there_and_show_other_types_raw():
    functions = StatefulFunctions()

    @functions.bind("example/logger")
    def logger(context, message):
        context.send(message_builder("example/sink", "k", value=[1], value_type=LOG))
        context.send(message_builder("example/sink", "k", value=b"\x08\x05", value_type=RAW))

    harness = Harness(functions)
    with pytest.raises(AssertionError, match=r"with \{\}; sent: none$"):
        harness.assert_sent("example/sink", "k")
    with pytest.raises(AssertionError, match=r"; captured: none$"):
        harness.assert_captured("example/sink", "k")
    with pytest.raises(AssertionError, match=r"records sent: none$"):
        harness.assert_egress("example/out")
    with pytest.raises(AssertionError, match=r"dead letters: none$"):
        harness.assert_dead_lettered("example/logger", "1")

    harness.send("example/logger", "1", str_value="go").run()
    sent = harness.assert_sent("example/sink", "k")  # any value
    assert sent.message.as_type(LOG) == [1]
    raw = (
        "\n  example/sink/k from example/logger/1: b'[1]' (example/log)"
        "\n  example/sink/k from example/logger/1: b'\\x08\\x05' (example/raw)"  # not an int
    )
    with pytest.raises(AssertionError, match=re.escape(f"; sent: {raw}")):
        harness.assert_sent("example/sink", "k", value=[2], value_type=LOG)
    assert harness.assert_captured("example/sink", "k", value=[1], value_type=LOG) == sent


def test_state_of_an_unknown_function_type_is_an_error():
    with pytest.raises(KeyError):
        Harness(greeter_functions).state("com.example.fns/nope", "ann")


# --- discovery, batching and ordering -------------------------------------------------------


def test_state_is_discovered_once_per_type_and_the_function_runs_once_per_message():
    functions = StatefulFunctions()
    calls = []

    @functions.bind("example/counter", specs=[ValueSpec("count", IntType)])
    def counter(context, message):
        calls.append(context.address.id)
        context.storage.count = (context.storage.count or 0) + 1

    harness = Harness(functions)
    harness.send("example/counter", "a", int_value=1).run()
    harness.send("example/counter", "b", int_value=1).run()

    assert calls == ["a", "b"]
    assert [batch.discovery_round for batch in harness.batches] == [0, 1, 0]
    assert harness.engine.registered_specs("example/counter")["count"].typename == IntType.typename
    harness.assert_state("example/counter", "b", count=1)


def test_messages_queued_while_a_batch_is_in_flight_form_the_next_batch():
    functions = StatefulFunctions()

    @functions.bind("example/a")
    def a(context, message):
        if message.as_string() == "go":
            context.send(message_builder("example/a", "1", str_value="to self"))

    @functions.bind("example/b")
    def b(context, message):
        context.send(message_builder("example/a", "1", str_value="from b 1"))
        context.send(message_builder("example/a", "1", str_value="from b 2"))

    harness = Harness(functions)
    harness.send("example/b", "1", str_value="go").send("example/a", "1", str_value="go")
    harness.run()

    to_a = [arguments(batch) for batch in harness.batches if batch.address.typename == "example/a"]
    assert to_a == [["go"], ["from b 1", "from b 2"], ["to self"]]


def test_messages_from_one_sender_arrive_in_send_order():
    functions = StatefulFunctions()

    @functions.bind("example/sender")
    def sender(context, message):
        for index in range(3):
            context.send(message_builder("example/receiver", "r", int_value=index))

    @functions.bind("example/receiver", specs=[ValueSpec("seen", LOG)])
    def receiver(context, message):
        context.storage.seen = [*(context.storage.seen or []), message.as_int()]

    harness = Harness(functions)
    harness.send("example/sender", "s", str_value="1").run()
    harness.send("example/sender", "s", str_value="2").run()

    harness.assert_state("example/receiver", "r", seen=[0, 1, 2, 0, 1, 2])


def test_a_function_that_never_goes_quiet_is_reported():
    functions = StatefulFunctions()

    @functions.bind("example/echo")
    def echo(context, message):
        context.send(message_builder("example/echo", "1", str_value="again"))

    harness = Harness(functions, max_batches=20)
    with pytest.raises(HarnessError, match="example/echo/1"):
        harness.send("example/echo", "1", str_value="go").run()


# --- delayed messages -----------------------------------------------------------------------

timers = StatefulFunctions()


@timers.bind("example/timer")
def timer(context, message):
    command = message.as_string()
    later = message_builder("example/alarm", context.address.id, str_value="ring")
    if command == "schedule":
        context.send_after(timedelta(seconds=5), later, cancellation_token="alarm")
    elif command == "schedule then cancel":
        context.send_after(timedelta(seconds=5), later, cancellation_token="alarm")
        context.cancel_delayed_message("alarm")
    elif command == "cancel then schedule":
        context.cancel_delayed_message("alarm")
        context.send_after(timedelta(seconds=5), later, cancellation_token="alarm")
    elif command == "cancel":
        context.cancel_delayed_message("alarm")
    elif command == "schedule twice":
        context.send_after(timedelta(seconds=5), later, cancellation_token="alarm")
        context.send_after(timedelta(seconds=6), later, cancellation_token="alarm")


def test_a_delayed_message_arrives_when_its_time_comes_with_the_scheduler_as_caller():
    harness = Harness(timers, start_ms=1_000)
    harness.send("example/timer", "t", str_value="schedule").run()

    [pending] = harness.pending
    assert (pending.due_ms, pending.cancellation_token) == (6_000, "alarm")
    assert pending.message.as_string() == "ring"
    harness.advance(4_999)
    assert harness.captured == []

    harness.advance(1)
    [alarm] = harness.captured
    assert alarm.target == Address("example/alarm", "t")
    assert alarm.caller == Address("example/timer", "t")
    assert harness.pending == []


def test_advance_delivers_chained_delays_at_their_own_due_times():
    functions = StatefulFunctions()

    @functions.bind("example/ticker", specs=[ValueSpec("ticks", LOG)])
    def ticker(context, message):
        ticks = context.storage.ticks or []
        context.storage.ticks = [*ticks, harness.now_ms]
        if len(ticks) < 3:
            context.send_after(
                timedelta(seconds=1), message_builder("example/ticker", "t", str_value="tick")
            )

    harness = Harness(functions)
    harness.send("example/ticker", "t", str_value="start").run()
    harness.advance(timedelta(minutes=1))

    harness.assert_state("example/ticker", "t", ticks=[0, 1_000, 2_000, 3_000])
    assert harness.now_ms == 60_000


def test_schedule_then_cancel_in_one_reply_cancels():
    harness = Harness(timers)
    harness.send("example/timer", "t", str_value="schedule then cancel").run()

    assert harness.pending == []


def test_cancel_then_schedule_in_one_reply_leaves_the_message_scheduled():
    harness = Harness(timers)
    harness.send("example/timer", "t", str_value="cancel then schedule").run()

    harness.advance(timedelta(seconds=5))
    harness.assert_captured("example/alarm", "t", str_value="ring")


def test_a_later_message_cancels_a_pending_one():
    harness = Harness(timers)
    harness.send("example/timer", "t", str_value="schedule").run()
    harness.advance(1_000)
    harness.send("example/timer", "t", str_value="cancel").run()

    harness.advance(timedelta(hours=1))
    assert harness.captured == []


def test_scheduling_a_pending_token_again_is_an_error_and_nothing_is_applied():
    harness = Harness(timers)
    with pytest.raises(CancellationTokenError, match="alarm"):
        harness.send("example/timer", "t", str_value="schedule twice").run()

    assert harness.pending == []


# --- TTL ------------------------------------------------------------------------------------


def ttl_functions(**expiry: timedelta) -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind("example/session", specs=[ValueSpec("user", StringType, **expiry)])
    def session(context, message):
        if message.as_string() != "touch":
            context.storage.user = message.as_string()

    return functions


def test_expire_after_write_counts_from_the_last_write_only():
    harness = Harness(ttl_functions(expire_after_write=timedelta(seconds=10)))
    harness.send("example/session", "s", str_value="ann").run()

    harness.advance(timedelta(seconds=9))
    harness.send("example/session", "s", str_value="touch").run()
    harness.assert_state("example/session", "s", user="ann")
    harness.advance(timedelta(seconds=1))
    harness.assert_state("example/session", "s", user=None)


def test_expire_after_call_is_refreshed_by_every_message():
    harness = Harness(ttl_functions(expire_after_call=timedelta(seconds=10)))
    harness.send("example/session", "s", str_value="ann").run()

    for _ in range(3):
        harness.advance(timedelta(seconds=9))
        harness.send("example/session", "s", str_value="touch").run()
    harness.assert_state("example/session", "s", user="ann")
    harness.advance(timedelta(seconds=10))
    harness.assert_state("example/session", "s", user=None)


# --- egress and captured messages -----------------------------------------------------------


def test_egress_records_are_decoded():
    functions = StatefulFunctions()

    @functions.bind("example/out")
    def out(context, message):
        context.send_egress(kafka_egress_message("example/kafka", "topic-a", "no key"))
        context.send_egress(
            kinesis_egress_message(
                "example/kinesis", "stream-a", b"\x01", "pk", explicit_hash_key="7"
            )
        )
        context.send_egress(egress_message_builder("example/custom", 5, IntType))

    harness = Harness(functions)
    harness.send("example/out", "1", str_value="go").run()

    assert harness.egress == [
        KafkaRecord("example/kafka", "topic-a", None, b"no key"),
        KinesisRecord("example/kinesis", "stream-a", "pk", b"\x01", "7"),
        EgressOutput("example/custom", IntType.typename, b"\x0d\x05\x00\x00\x00"),
    ]
    harness.assert_egress(stream="stream-a", partition_key="pk")
    assert harness.assert_egress("example/kafka", topic="topic-a", key=None) == harness.egress[0]
    with pytest.raises(AssertionError, match="no egress record matches"):
        harness.assert_egress("example/kinesis", value="no key")  # the value of the Kafka one
    assert len(set(harness.egress + harness.egress)) == 3  # records are values: hashable
    for record in harness.egress:
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.egress = "example/elsewhere"  # type: ignore[misc]


def test_kafka_headers_are_decoded_in_order_an_empty_value_apart_from_a_null_one():
    functions = StatefulFunctions()

    @functions.bind("example/out")
    def out(context, message):
        headers = [("h", "a"), ("empty", b""), ("null", None), ("h", b"\x00")]
        context.send_egress(kafka_egress_message("example/kafka", "t", "v", headers=headers))

    harness = Harness(functions)
    harness.send("example/out", "1", str_value="go").run()

    headers = (("h", b"a"), ("empty", b""), ("null", None), ("h", b"\x00"))
    assert harness.egress == [KafkaRecord("example/kafka", "t", None, b"v", headers)]
    harness.assert_egress("example/kafka", headers=headers)


def test_messages_to_types_the_harness_does_not_run_are_captured_in_order():
    harness = Harness(greeter_functions)
    harness.send("example/elsewhere", "x", int_value=1, caller=("com.example.fns/greeter", "ann"))
    harness.send("example/elsewhere", "x", int_value=2)
    harness.run()

    first = harness.assert_captured("example/elsewhere", "x", int_value=1)
    assert first.caller == Address("com.example.fns/greeter", "ann")
    assert [message.message.as_int() for message in harness.captured] == [1, 2]
    assert harness.batches == []


def test_assert_captured_on_a_type_the_harness_runs_points_at_assert_sent():
    harness = Harness(greeter_functions)
    harness.send("com.example.fns/greeter", "ann", str_value="Ann").run()
    with pytest.raises(AssertionError) as runs:
        harness.assert_captured("com.example.fns/greeter", "ann")
    assert str(runs.value).endswith(
        "com.example.fns/greeter is a function the harness runs: its messages are delivered, "
        "not captured (assert_sent finds them)"
    )
    with pytest.raises(AssertionError) as elsewhere:
        harness.assert_captured("example/elsewhere", "x")
    assert "is a function the harness runs" not in str(elsewhere.value)


def test_capture_tests_a_function_without_the_ones_it_messages():
    harness = Harness(greeter_functions, capture=["com.example.fns/inbox"])
    harness.send("com.example.fns/greeter", "ann", str_value="ann").run()

    sent = harness.assert_captured(
        "com.example.fns/inbox", "ann", str_value="Hello ann for the 1th time!"
    )
    assert sent == harness.sent[0]
    assert harness.egress == []  # the inbox did not run
    assert {batch.address.typename for batch in harness.batches} == {"com.example.fns/greeter"}
    harness.assert_state("com.example.fns/greeter", "ann", seen_count=1)
    with pytest.raises(AssertionError) as missing:
        harness.assert_captured("com.example.fns/inbox", "bob")
    assert "is a function the harness runs" not in str(missing.value)


def test_capture_takes_one_typename_and_refuses_a_type_the_functions_do_not_run():
    harness = Harness(greeter_functions, capture="com.example.fns/inbox")
    assert harness.capture == {"com.example.fns/inbox"}
    with pytest.raises(ValueError, match=r"run; not com.example.fns/inbx \(messages to a type"):
        Harness(greeter_functions, capture=["com.example.fns/inbox", "com.example.fns/inbx"])


# --- failures -------------------------------------------------------------------------------


def test_a_raising_function_fails_its_batch_and_the_messages_are_retried_later():
    functions = StatefulFunctions()
    broken = [True]

    @functions.bind("example/flaky", specs=[ValueSpec("seen", LOG)])
    def flaky(context, message):
        if broken[0]:
            raise RuntimeError("database is down")
        context.storage.seen = [*(context.storage.seen or []), message.as_string()]

    harness = Harness(functions)
    harness.send("example/flaky", "1", str_value="a").send("example/flaky", "1", str_value="b")
    with pytest.raises(FunctionFailedError) as failure:
        harness.run()
    assert "database is down" in str(failure.value.__cause__)
    assert "example/flaky" in str(failure.value)

    broken[0] = False
    harness.send("example/flaky", "1", str_value="c").run()
    harness.assert_state("example/flaky", "1", seen=["a", "b", "c"])


def test_changing_the_type_of_a_state_is_an_error():
    harness = Harness(ttl_functions())
    harness.send("example/session", "s", str_value="ann").run()
    retyped = StatefulFunctions()

    @retyped.bind("example/session", specs=[ValueSpec("user", IntType)])
    def session(context, message):
        context.storage.user = 1

    harness.redeploy(retyped).send("example/session", "s", str_value="bob")
    with pytest.raises(StateTypeError, match=re.escape("registered as io.statefun.types/string")):
        harness.run()
    harness.redeploy(ttl_functions()).assert_state("example/session", "s", user="ann")


def test_a_mutation_of_an_unregistered_state_is_an_error():
    functions = StatefulFunctions()
    functions.register("example/plain", lambda context, message: None)
    harness = Harness(functions)
    harness.send("example/plain", "1", str_value="go")
    [batch] = harness.engine.next_batches()
    reply = protocol.FromFunction()
    mutation = reply.invocation_result.state_mutations.add()
    mutation.mutation_type = 1
    mutation.state_name = "ghost"
    with pytest.raises(UnregisteredStateError, match="ghost"):
        harness.engine.complete(batch, reply.SerializeToString())


def asks_for_state_forever(harness: Harness, rounds: int) -> None:
    """Answer ``rounds`` requests of example/plain with "state 'ghost' is missing"."""
    reply = protocol.FromFunction()
    missing = reply.incomplete_invocation_context.missing_values.add()
    missing.state_name, missing.type_typename = "ghost", IntType.typename
    for _ in range(rounds):
        [batch] = harness.engine.next_batches()
        harness.engine.complete(batch, reply.SerializeToString())


@pytest.mark.parametrize("limit", [None, 2])
def test_max_discovery_rounds_bounds_a_function_that_keeps_missing_state(limit):
    functions = StatefulFunctions()
    functions.register("example/plain", lambda context, message: None)
    options = {} if limit is None else {"max_discovery_rounds": limit}
    harness = Harness(functions, **options).restart()  # a restart keeps the bound
    harness.send("example/plain", "1", str_value="go")
    asks_for_state_forever(harness, 10 if limit is None else limit)
    with pytest.raises(DiscoveryLoopError, match="ghost"):
        asks_for_state_forever(harness, 1)


# --- plugins, redeploys and restarts --------------------------------------------------------


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


POINT = simple_type(
    "example/point",
    serialize_fn=lambda p: f"{p.x},{p.y}".encode(),
    deserialize_fn=lambda data: Point(*map(int, data.decode().split(","))),
)


class PointTypes:
    @hookimpl
    def statefun_register_types(self, registry):
        registry.register(Point, POINT)


def test_classes_a_type_plugin_knows_are_sent_and_decoded_by_class():
    functions = StatefulFunctions()

    @functions.bind("example/shapes", specs=[ValueSpec("last", Point)])
    def shapes(context, message):
        context.storage.last = message.as_type(Point)

    plugins = make_plugin_manager([PointTypes()], load_entrypoints=False)
    harness = Harness(functions, plugins=plugins)
    harness.send("example/shapes", "s", value=Point(1, 2)).run()

    harness.assert_state("example/shapes", "s", last=Point(1, 2))


def test_a_recorded_message_decodes_a_class_a_type_plugin_knows():
    functions = StatefulFunctions()

    @functions.bind("example/mirror")
    def mirror(context, message):
        point = message.as_type(Point)
        context.send(message_builder("example/sink", "k", value=Point(point.y, point.x)))
        context.send_after(
            timedelta(hours=1), message_builder("example/sink", "k", value=Point(0, 0))
        )

    plugins = make_plugin_manager([PointTypes()], load_entrypoints=False)
    harness = Harness(functions, plugins=plugins)
    harness.send("example/mirror", "m", value=Point(1, 2)).run()

    [sent] = harness.captured
    assert sent.message.as_type(Point) == Point(2, 1)
    assert sent.message.is_type(Point)
    [pending] = harness.pending
    assert pending.message.as_type(Point) == Point(0, 0)


def test_a_redeploy_that_adds_a_state_discovers_it_and_keeps_the_old_one():
    harness = Harness(ttl_functions())
    harness.send("example/session", "s", str_value="ann").run()
    grown = StatefulFunctions()

    @grown.bind(
        "example/session", specs=[ValueSpec("user", StringType), ValueSpec("visits", IntType)]
    )
    def session(context, message):
        context.storage.visits = (context.storage.visits or 0) + 1

    harness.redeploy(grown).send("example/session", "s", str_value="again").run()

    harness.assert_state("example/session", "s", user="ann", visits=1)
    assert [batch.discovery_round for batch in harness.batches] == [0, 1, 0, 1]


def test_a_restart_resends_the_batches_that_were_in_flight():
    harness = Harness(ttl_functions())
    harness.send("example/session", "s", str_value="ann")
    [in_flight] = harness.engine.next_batches()

    harness.restart().run()

    harness.assert_state("example/session", "s", user="ann")
    assert arguments(harness.batches[0]) == arguments(in_flight) == ["ann"]


# --- trace headers --------------------------------------------------------------------------

TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
GREETER_SPAN = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"


class TraceResponder:
    """Answers as statefun-opentelemetry does: the greeter's batch reports its span in a
    ``traceresponse``; the headers of every request are kept."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []

    @hookimpl
    def statefun_batch_started(self, batch) -> None:
        self.headers.append(dict(batch.headers))
        if batch.function_type == "com.example.fns/greeter":
            batch.reply_headers["traceresponse"] = GREETER_SPAN


def test_batches_carry_the_trace_headers_and_a_traceresponse_is_the_origin_of_what_follows():
    responder = TraceResponder()
    plugins = make_plugin_manager([responder], load_entrypoints=False)
    harness = Harness(greeter_functions, plugins=plugins)
    harness.send("com.example.fns/greeter", "ann", str_value="ann", traceparent=TRACE).run()

    assert [batch.headers["traceparent"] for batch in harness.batches] == [
        TRACE,
        TRACE,
        GREETER_SPAN,
    ]
    assert all(h["Content-Type"] == "application/octet-stream" for h in responder.headers)
    assert [h["traceparent"] for h in responder.headers] == [TRACE, TRACE, GREETER_SPAN]
    [record] = harness.engine.egress_records()  # sent by the inbox, in the greeter's span
    assert record.trace is not None and record.trace.traceparent == GREETER_SPAN


def test_a_message_without_a_traceparent_carries_no_trace_headers():
    responder = TraceResponder()
    plugins = make_plugin_manager([responder], load_entrypoints=False)
    harness = Harness(timers, plugins=plugins)
    harness.send("example/timer", "t", str_value="cancel").run()

    assert [dict(batch.headers) for batch in harness.batches] == [{}]
    assert responder.headers == [{"Content-Type": "application/octet-stream"}]


def test_a_redeploy_serves_with_the_plugins_it_is_given():
    harness = Harness(timers, plugins=make_plugin_manager(load_entrypoints=False))
    responder = TraceResponder()
    harness.redeploy(timers, plugins=make_plugin_manager([responder], load_entrypoints=False))
    harness.send("example/timer", "t", str_value="cancel").run()

    assert len(responder.headers) == 1


def test_a_malformed_traceparent_is_refused():
    harness = Harness(greeter_functions)
    with pytest.raises(ValueError, match="not a W3C traceparent: 'nope'"):
        harness.send("com.example.fns/greeter", "ann", str_value="ann", traceparent="nope")
    assert harness.run() == 0


# --- what run and advance return, and their bounds ------------------------------------------

countdown = StatefulFunctions()


@countdown.bind("example/countdown")
def count_down(context, message):
    if message.as_int() > 0:
        context.send(message_builder("example/countdown", "c", int_value=message.as_int() - 1))


def test_max_batches_bounds_one_run_and_the_undelivered_messages_stay_queued():
    harness = Harness(countdown, max_batches=3)
    assert harness.send("example/countdown", "c", int_value=2).run() == 3

    harness.send("example/countdown", "c", int_value=3)
    busy = r"still busy after 3 batches \(still messaging: example/countdown/c\)"
    with pytest.raises(HarnessError, match=busy):
        harness.run()
    assert harness.run() == 1  # the fourth message was given back, not lost
    counts = [batch.messages[0].argument for batch in harness.batches[3:]]
    assert [Message("t/t", "t", count.to_proto()).as_int() for count in counts] == [3, 2, 1, 0]


def test_max_batches_is_10_000_by_default():
    harness = Harness(countdown).send("example/countdown", "c", int_value=10_000)
    with pytest.raises(HarnessError, match="still busy after 10000 batches"):
        harness.run()


def test_advance_delivers_what_is_queued_before_it_moves_the_clock_and_counts_batches():
    functions = StatefulFunctions()

    @functions.bind("example/ticker", specs=[ValueSpec("ticks", LOG)])
    def ticker(context, message):
        ticks = context.storage.ticks or []
        context.storage.ticks = [*ticks, harness.now_ms]
        if len(ticks) < 2:
            context.send_after(
                timedelta(seconds=1), message_builder("example/ticker", "t", str_value="tick")
            )

    harness = Harness(functions)
    harness.send("example/ticker", "t", str_value="start")
    assert harness.advance(timedelta(seconds=5)) == 4  # discovery, start, two ticks

    harness.assert_state("example/ticker", "t", ticks=[0, 1_000, 2_000])
    assert (harness.now_ms, harness.advance(0), harness.now_ms) == (5_000, 0, 5_000)
    for backwards in (-1, timedelta(milliseconds=-1)):
        with pytest.raises(ValueError, match=r"time only moves forward; got -1 ms$"):
            harness.advance(backwards)
    assert harness.now_ms == 5_000
