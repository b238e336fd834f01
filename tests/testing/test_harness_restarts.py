"""The harness as the runtime is across a restart, a redeploy and a clock moved by a
timedelta, and its dead letters beside other records on one egress (protocol.md §5, §8)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Callable, Optional

import pytest

from statefun_core import (
    Context,
    DeadLetterEgress,
    FinalFailure,
    FunctionFailedError,
    IntType,
    Message,
    StatefulFunctions,
    StringType,
    ValueSpec,
    kafka_egress_message,
    kinesis_egress_message,
    make_plugin_manager,
    message_builder,
)
from statefun_core.engine import StateTypeError

from .test_harness import Point, PointTypes

MakeHarness = Callable[..., Any]


def session(ttl_ms: int) -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind(
        "ex/session",
        specs=[ValueSpec("user", StringType, expire_after_write=timedelta(milliseconds=ttl_ms))],
    )
    def handle(context: Context, message: Message) -> None:
        context.storage.user = message.as_string()

    return functions


def test_the_first_request_after_a_restart_discovers_the_state_again(
    statefun_harness: MakeHarness,
) -> None:
    harness = statefun_harness(session(1_000))
    harness.send("ex/session", "s", str_value="ann").run()
    harness.restart()
    harness.send("ex/session", "s", str_value="bob").run()
    assert [batch.discovery_round for batch in harness.batches] == [0, 1, 0, 1]


def test_state_after_a_restart_is_the_state_the_next_request_carries(
    statefun_harness: MakeHarness,
) -> None:
    """A restart forgets the registered specs, not the values: the state is still shown, its
    expiration judged by the spec the next request registers again."""
    harness = statefun_harness(session(1_000))
    harness.send("ex/session", "s", str_value="ann").run()
    harness.restart()
    harness.assert_state("ex/session", "s", user="ann")
    harness.advance(999)
    harness.assert_state("ex/session", "s", user="ann")
    harness.advance(1)
    harness.assert_state("ex/session", "s", user=None)


def test_a_changed_expiration_takes_effect_after_a_restart(statefun_harness: MakeHarness) -> None:
    harness = statefun_harness(session(1_000))
    harness.send("ex/session", "s", str_value="ann").run()
    harness.redeploy(session(60_000)).restart()
    harness.send("ex/session", "s", str_value="bob").run()
    harness.advance(5_000)
    harness.assert_state("ex/session", "s", user="bob")


def test_advance_by_a_timedelta_moves_the_clock_by_exactly_it(
    statefun_harness: MakeHarness,
) -> None:
    harness = statefun_harness(StatefulFunctions())
    harness.advance(timedelta(milliseconds=1001))  # 1.001 s * 1000 is 1000.999... as a float
    assert harness.now_ms == 1001


def shapes() -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind("example/shapes", specs=[ValueSpec("last", Point)])
    def handle(context: Context, message: Message) -> None:
        context.storage.last = message.as_type(Point)

    return functions


def test_a_redeploy_keeps_the_harness_plugins(statefun_harness: MakeHarness) -> None:
    plugins = make_plugin_manager([PointTypes()], load_entrypoints=False)
    harness = statefun_harness(shapes(), plugins=plugins)
    harness.send("example/shapes", "s", value=Point(1, 2)).run()
    harness.redeploy(shapes())  # as docs/testing.md calls it
    harness.send("example/shapes", "s", value=Point(3, 4)).run()
    harness.assert_state("example/shapes", "s", last=Point(3, 4))


def orders(dead_letters: Optional[DeadLetterEgress] = None) -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind(
        "com.example/orders", specs=[ValueSpec("orders", IntType)], dead_letters=dead_letters
    )
    def handle(context: Context, message: Message) -> None:
        if message.as_string() == "bad":
            raise FinalFailure("order has no customer")
        context.storage.orders = (context.storage.orders or 0) + 1
        context.send_egress(
            kafka_egress_message(
                "com.example/out", topic="orders", key=context.address.id, value="accepted"
            )
        )

    return functions


def test_dead_letters_beside_other_records_on_their_egress(statefun_harness: MakeHarness) -> None:
    """docs/dead-letters.md's setup: the dead letters on their own topic of the egress the
    function writes its output to."""
    harness = statefun_harness(orders(DeadLetterEgress("com.example/out", topic="dead")))
    harness.send("com.example/orders", "17", str_value="ok").run()
    harness.send("com.example/orders", "17", str_value="bad").run()
    harness.assert_egress("com.example/out", topic="orders", value="accepted")
    harness.assert_dead_lettered("com.example/orders", "17", error=FinalFailure)
    assert len(harness.dead_letters) == 1


def test_dead_letters_sent_before_a_redeploy_stay_dead_letters(
    statefun_harness: MakeHarness,
) -> None:
    harness = statefun_harness(orders(DeadLetterEgress("com.example/out", topic="dead")))
    harness.send("com.example/orders", "17", str_value="bad").run()
    harness.redeploy(orders(DeadLetterEgress("com.example/elsewhere", topic="dead")))
    harness.assert_dead_lettered("com.example/orders", "17", error=FinalFailure)


def test_assert_state_refuses_a_state_the_function_does_not_declare(
    statefun_harness: MakeHarness,
) -> None:
    """A typo in an "is absent" check would pass otherwise."""
    harness = statefun_harness(session(1_000))
    with pytest.raises(AssertionError, match="declares no state 'usr'"):
        harness.assert_state("ex/session", "s", usr=None)


def fan_in(delay: Optional[timedelta] = None) -> StatefulFunctions:
    """Each ``ex/sender`` sends its id to ``ex/counter/c`` (after ``delay`` when given)."""
    functions = StatefulFunctions()

    @functions.bind("ex/sender")
    def sender(context: Context, message: Message) -> None:
        outgoing = message_builder("ex/counter", "c", str_value=context.address.id)
        if delay is None:
            context.send(outgoing)
        else:
            context.send_after(delay, outgoing)

    @functions.bind("ex/counter", specs=[ValueSpec("n", IntType)])
    def counter(context: Context, message: Message) -> None:
        if message.as_string() == "bad":
            raise RuntimeError("bad message")
        context.storage.n = (context.storage.n or 0) + 1

    return functions


def test_a_message_to_an_idle_address_is_sent_at_once_alone(statefun_harness: MakeHarness) -> None:
    """protocol.md §4.3: two senders message one idle address; the first message goes out as
    soon as its sender's reply is applied, the second is the next batch."""
    harness = statefun_harness(fan_in())
    harness.send("ex/counter", "c", str_value="warm-up").run()  # the specs discovered
    harness.send("ex/sender", "a", str_value="go").send("ex/sender", "b", str_value="go").run()
    sizes = [len(b.messages) for b in harness.batches if b.address.typename == "ex/counter"]
    assert sizes[2:] == [1, 1], sizes


def test_a_failing_message_takes_no_earlier_batch_with_it(statefun_harness: MakeHarness) -> None:
    harness = statefun_harness(fan_in())
    harness.send("ex/counter", "c", str_value="warm-up").run()
    harness.send("ex/sender", "a", str_value="go").send("ex/sender", "bad", str_value="go")
    with pytest.raises(FunctionFailedError):
        harness.run()
    harness.assert_state("ex/counter", "c", n=2)  # a's message was its own batch, applied


def test_delayed_messages_due_together_reach_an_idle_address_one_at_a_time(
    statefun_harness: MakeHarness,
) -> None:
    """Two senders' delayed messages fire at the same instant: the first goes alone, so the
    second's failure does not take it down."""
    harness = statefun_harness(fan_in(delay=timedelta(seconds=1)))
    harness.send("ex/counter", "c", str_value="warm-up").run()
    harness.send("ex/sender", "a", str_value="go").send("ex/sender", "bad", str_value="go").run()
    assert [pending.due_ms for pending in harness.pending] == [1_000, 1_000]
    with pytest.raises(FunctionFailedError):
        harness.advance(timedelta(seconds=1))
    harness.assert_state("ex/counter", "c", n=2)  # a's message was applied
    sizes = [len(b.messages) for b in harness.batches if b.address.typename == "ex/counter"]
    assert sizes[2:] == [1, 1], sizes  # a alone; then bad, which failed


def test_messages_queued_before_run_go_first_alone_then_as_one_batch(
    statefun_harness: MakeHarness,
) -> None:
    harness = statefun_harness(fan_in())
    for value in ("warm-up", "x", "bad"):
        harness.send("ex/counter", "c", str_value=value)
    with pytest.raises(FunctionFailedError):
        harness.run()
    harness.assert_state("ex/counter", "c", n=1)  # warm-up was alone, and applied
    sizes = [len(b.messages) for b in harness.batches if b.address.typename == "ex/counter"]
    assert sizes == [1, 1, 2], sizes  # discovery round, warm-up, then x and bad together


def test_a_redeploy_keeps_the_handler_dead_letter_egress(statefun_harness: MakeHarness) -> None:
    dead_letters = DeadLetterEgress("com.example/out", topic="dead")
    harness = statefun_harness(
        orders(), dead_letters=dead_letters
    )  # the handler's, not the function's
    harness.redeploy(orders())
    harness.send("com.example/orders", "17", str_value="bad").run()
    record = harness.assert_dead_lettered("com.example/orders", "17", error=FinalFailure)
    assert harness.dead_letters == [record]
    assert record.error_message == "order has no customer"


def test_state_and_assert_state_follow_the_states_the_deployed_function_declares(
    statefun_harness: MakeHarness,
) -> None:
    harness = statefun_harness(session(60_000))
    harness.send("ex/session", "s", str_value="ann").run()
    renamed = StatefulFunctions()

    @renamed.bind("ex/session", specs=[ValueSpec("name", StringType)])
    def handle(context: Context, message: Message) -> None:
        context.storage.name = message.as_string()

    harness.redeploy(renamed).send("ex/session", "s", str_value="bob").run()
    assert harness.state("ex/session", "s") == {"name": "bob"}  # "user" is still stored
    with pytest.raises(AssertionError, match=r"declares no state 'user'; its states: name$"):
        harness.assert_state("ex/session", "s", user="ann")
    harness.assert_state("ex/session", "s", name="bob")

    stateless = StatefulFunctions()
    stateless.register("ex/session", lambda context, message: None)
    with pytest.raises(AssertionError, match="declares no state 'name', 'user'; its states: none"):
        harness.redeploy(stateless).assert_state("ex/session", "s", user=None, name=None)


def test_dead_letters_on_a_kinesis_stream_beside_other_records(
    statefun_harness: MakeHarness,
) -> None:
    functions = StatefulFunctions()

    @functions.bind(
        "com.example/orders",
        dead_letters=DeadLetterEgress("com.example/kinesis", stream="dead"),
    )
    def handle(context: Context, message: Message) -> None:
        context.send_egress(
            kinesis_egress_message("com.example/kinesis", "orders", "accepted", "17")
        )
        if message.as_string() == "bad":
            raise FinalFailure("order has no customer")

    harness = statefun_harness(functions)
    harness.send("com.example/orders", "17", str_value="ok").run()
    harness.send("com.example/orders", "17", str_value="bad").run()
    record = harness.assert_dead_lettered("com.example/orders", "17", error=FinalFailure)
    assert harness.dead_letters == [record]
    harness.assert_egress("com.example/kinesis", stream="orders", value="accepted")


def test_state_refuses_a_value_stored_as_another_type_as_the_function_does(
    statefun_harness: MakeHarness,
) -> None:
    harness = statefun_harness(session(60_000))
    harness.send("ex/session", "s", str_value="ann").run()
    retyped = StatefulFunctions()

    @retyped.bind("ex/session", specs=[ValueSpec("user", IntType)])
    def handle(context: Context, message: Message) -> None:
        context.storage.user = (context.storage.user or 0) + 1

    harness.redeploy(retyped)
    stored_as = "'user' of ex/session/s is stored as io.statefun.types/string, but the deployed"
    with pytest.raises(TypeError, match=stored_as + r" function declares it as .+/int$"):
        harness.state("ex/session", "s")
    with pytest.raises(FunctionFailedError) as failed:
        harness.send("ex/session", "s", str_value="bob").run()
    assert "Type mismatch: the runtime sent state 'user'" in str(failed.value.__cause__)


def test_a_restart_does_not_let_a_state_change_its_type(statefun_harness: MakeHarness) -> None:
    """The restart forgets the spec, not the value: the function would read the value stored
    as a string labelled as an int. The runtime fails instead (protocol.md §6), as
    statefun-local does; the harness too, and applies nothing."""
    harness = statefun_harness(session(60_000))
    harness.send("ex/session", "s", str_value="ann").run()
    retyped = StatefulFunctions()
    read = []

    @retyped.bind("ex/session", specs=[ValueSpec("user", IntType)])
    def handle(context: Context, message: Message) -> None:
        read.append(context.storage.user)

    harness.redeploy(retyped).restart()
    with pytest.raises(
        StateTypeError, match=r"'user' of ex/session has values stored as .+/string"
    ):
        harness.send("ex/session", "s", str_value="bob").run()
    assert read == []
    assert harness.engine.registered_specs("ex/session") == {}
