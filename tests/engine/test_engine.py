"""The engine's rules, driven with hand-built replies (protocol §4 to §8, §11)."""

from __future__ import annotations

import pytest

from statefun_core import protocol
from statefun_core.engine import (
    UNSET_TYPENAME,
    Address,
    Batch,
    CancellationTokenError,
    DiscoveryLoopError,
    Engine,
    ExpireMode,
    InvalidReplyError,
    ManualClock,
    MemoryStore,
    StaleBatchError,
    StateTypeError,
    TraceContext,
    TypedValue,
    UnknownEgressError,
    UnregisteredStateError,
)

from .replies import INT, STRING, Reply, arguments, missing, number, state_of, text

COUNTER = Address("example/counter", "a")
OTHER = Address("example/counter", "b")
SINK = Address("example/sink", "a")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_000)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def engine(store: MemoryStore, clock: ManualClock) -> Engine:
    return Engine(store, clock)


def only_batch(engine: Engine) -> Batch:
    batches = engine.next_batches()
    assert len(batches) == 1, batches
    return batches[0]


def registered(engine: Engine, address: Address, *specs: tuple) -> Batch:
    """Take the first batch for ``address`` and answer its discovery round with ``specs``."""
    batch = only_batch(engine)
    assert batch.address == address
    engine.complete(batch, missing(*specs))
    return only_batch(engine)


# --- requests and batching ------------------------------------------------------------------


def drain(engine: Engine) -> list[list[bytes]]:
    """Answer every batch with an empty reply until none is left; the arguments of each."""
    delivered = []
    while batches := engine.next_batches():
        for batch in batches:
            delivered.append(arguments(batch))
            engine.complete(batch, b"")
    return delivered


def test_a_batch_carries_the_target_the_arguments_as_sent_and_no_caller_for_ingress(engine):
    engine.send(COUNTER, text("busy"))
    busy = only_batch(engine)
    engine.send(COUNTER, TypedValue("example/opaque", b"", has_value=False))
    engine.send(COUNTER, text("hi"), caller=SINK)
    engine.complete(busy, b"")

    request = only_batch(engine).to_function().invocation

    assert (request.target.namespace, request.target.type, request.target.id) == (
        "example",
        "counter",
        "a",
    )
    first, second = request.invocations
    assert not first.HasField("caller")
    assert (first.argument.typename, first.argument.has_value) == ("example/opaque", False)
    assert second.caller.type == "sink"
    assert second.argument == text("hi").to_proto()
    assert len(request.state) == 0


def test_a_batch_is_handed_out_from_its_taking_until_its_reply_or_failure(engine):
    engine.send(COUNTER, text("a"))
    assert not engine.is_handed_out(COUNTER)  # queued only
    batch = only_batch(engine)
    assert engine.is_handed_out(COUNTER) and not engine.is_handed_out(OTHER)
    engine.fail(batch)
    assert not engine.is_handed_out(COUNTER)  # in flight still, to be taken again
    engine.complete(only_batch(engine), b"")
    assert not engine.is_handed_out(COUNTER)


def test_a_typename_splits_at_its_last_slash_as_the_runtime_splits_it(engine):
    nested = Address("a.b/c/d", "x")
    engine.send(COUNTER, text("go"))
    engine.complete(only_batch(engine), Reply().send(nested, text("hi")).bytes())

    batch = only_batch(engine)
    target = batch.to_function().invocation.target
    assert batch.address == nested
    assert (target.namespace, target.type, target.id) == ("a.b/c", "d", "x")
    assert Address.from_proto(target) == nested


def test_one_batch_in_flight_per_address_and_the_whole_buffer_is_the_next_batch(engine):
    engine.send(COUNTER, text("1"))
    first = only_batch(engine)
    for value in ("2", "3", "4"):
        engine.send(COUNTER, text(value))

    assert engine.next_batches() == []
    engine.complete(first, b"")

    assert arguments(only_batch(engine)) == [b"2", b"3", b"4"]


def test_an_idle_address_is_sent_its_first_message_alone_and_the_rest_next(engine):
    # protocol §4.3: what is queued behind the first message is buffered, as if it had
    # arrived while that one was in flight
    engine.send(COUNTER, text("1"))
    engine.send(COUNTER, text("2"), caller=SINK)
    engine.send(COUNTER, text("3"))

    first = only_batch(engine)
    assert arguments(first) == [b"1"]
    assert engine.next_batches() == []
    engine.complete(first, b"")
    assert arguments(only_batch(engine)) == [b"2", b"3"]


def test_a_restart_resends_only_the_message_in_flight_of_an_idle_address(store, clock):
    engine = Engine(store, clock)
    engine.send(COUNTER, text("1"))
    engine.send(COUNTER, text("2"))
    assert arguments(only_batch(engine)) == [b"1"]

    assert drain(Engine(store, clock)) == [[b"1"], [b"2"]]


def test_messages_sent_while_applying_a_reply_come_after_the_batch_it_releases(engine):
    engine.send(COUNTER, text("1"))
    first = only_batch(engine)
    engine.send(COUNTER, text("2"))

    engine.complete(first, Reply().send(COUNTER, text("to self")).bytes())
    released = only_batch(engine)
    assert arguments(released) == [b"2"]
    engine.complete(released, b"")

    after = only_batch(engine)
    assert arguments(after) == [b"to self"]
    assert Address.from_proto(after.to_function().invocation.invocations[0].caller) == COUNTER


def test_addresses_are_batched_independently_and_limit_caps_the_batches_taken(engine):
    engine.send(COUNTER, text("a"))
    engine.send(OTHER, text("b"))
    engine.send(SINK, text("c"))

    taken = engine.next_batches(limit=2)
    assert [batch.address for batch in taken] == [COUNTER, OTHER]
    assert [batch.address for batch in engine.next_batches()] == [SINK]


def test_limit_also_caps_the_batches_sent_again_after_a_restart(store, clock):
    engine = Engine(store, clock)
    for address in (COUNTER, OTHER, SINK):
        engine.send(address, text("x"))
    assert len(engine.next_batches()) == 3

    restarted = Engine(store, clock)
    assert [batch.address for batch in restarted.next_batches(limit=2)] == [COUNTER, OTHER]
    assert [batch.address for batch in restarted.next_batches(limit=2)] == [SINK]


def test_a_marker_whose_messages_were_consumed_is_dropped_and_the_address_served(store, clock):
    # a store restored from an old copy: the marker of a batch whose reply was applied since
    engine = Engine(store, clock)
    engine.send(COUNTER, text("1"))
    batch = only_batch(engine)
    with store.transaction():
        marker = store.in_flight_get(COUNTER)
    engine.complete(batch, b"")
    with store.transaction():
        store.in_flight_set(COUNTER, marker)
    engine.send(COUNTER, text("2"))

    restarted = Engine(store, clock)
    assert arguments(only_batch(restarted)) == [b"2"]


def test_an_empty_reply_consumes_the_batch_without_effects(engine):
    engine.send(COUNTER, text("x"))
    completion = engine.complete(only_batch(engine), b"")

    assert completion.sent == () and completion.mutated == ()
    assert engine.is_idle()


def test_backpressure_counts_the_messages_buffered_behind_the_batch_in_flight(store, clock):
    engine = Engine(store, clock, backpressure_threshold=2)
    engine.send(COUNTER, text("in flight"))
    only_batch(engine)
    engine.send(COUNTER, text("1"))
    assert not engine.is_backpressured(COUNTER)

    engine.send(COUNTER, text("2"))
    assert engine.is_backpressured(COUNTER)
    assert not engine.is_backpressured(OTHER)
    assert not Engine(store, clock, backpressure_threshold=0).is_backpressured(COUNTER)


def test_by_default_backpressure_starts_at_1000_buffered_messages(engine):
    # protocol §4.3: maxNumBatchRequests, 1000 by default
    engine.send(COUNTER, text("in flight"))
    only_batch(engine)
    for _ in range(999):
        engine.send(COUNTER, text("buffered"))
    assert not engine.is_backpressured(COUNTER)

    engine.send(COUNTER, text("buffered"))
    assert engine.is_backpressured(COUNTER)


def test_a_threshold_of_one_is_reached_by_one_buffered_message(engine):
    engine.send(COUNTER, text("in flight"))
    only_batch(engine)
    assert not engine.is_backpressured(COUNTER, threshold=1)

    engine.send(COUNTER, text("buffered"))
    assert engine.is_backpressured(COUNTER, threshold=1)
    assert not engine.is_backpressured(COUNTER, threshold=2)
    assert engine.is_backpressured(COUNTER, threshold=0) is False


def test_without_a_batch_in_flight_every_queued_message_counts(engine):
    engine.send(COUNTER, text("1"))
    assert engine.is_backpressured(COUNTER, threshold=1)

    engine.send(COUNTER, text("2"))
    assert engine.is_backpressured(COUNTER, threshold=2)


def test_an_engine_is_idle_only_with_nothing_queued_and_nothing_in_flight(engine):
    assert engine.is_idle()
    engine.send(COUNTER, text("1"))
    assert not engine.is_idle()

    batch = only_batch(engine)
    assert not engine.is_idle()
    engine.complete(batch, b"")
    assert engine.is_idle()


def test_a_batch_can_be_larger_than_the_backpressure_threshold(store, clock):
    engine = Engine(store, clock, backpressure_threshold=2)
    engine.send(COUNTER, text("0"))
    first = only_batch(engine)
    for index in range(5):
        engine.send(COUNTER, text(str(index)))
    engine.complete(first, b"")

    assert len(only_batch(engine).messages) == 5


# --- state discovery ------------------------------------------------------------------------


def test_discovery_registers_the_specs_and_resends_the_same_invocations(engine):
    engine.send(COUNTER, text("1"), caller=SINK)
    first = only_batch(engine)
    engine.send(COUNTER, text("2"))

    completion = engine.complete(first, missing(("seen", INT), ("name", STRING)))
    retry = only_batch(engine)

    assert completion.incomplete
    assert [spec.name for spec in completion.registered] == ["seen", "name"]
    assert retry.to_function().invocation.invocations == first.to_function().invocation.invocations
    assert state_of(retry) == {"seen": None, "name": None}
    assert retry.discovery_round == 1


def test_specs_belong_to_the_function_type_so_other_ids_get_them_at_once(engine):
    engine.send(COUNTER, text("x"))
    registered(engine, COUNTER, ("seen", INT))
    engine.send(OTHER, text("x"))

    assert state_of(only_batch(engine)) == {"seen": None}
    assert engine.registered_specs("example/counter")["seen"].typename == INT


def test_specs_only_grow_and_a_changed_expiration_is_ignored(engine):
    engine.send(COUNTER, text("1"))
    retry = registered(engine, COUNTER, ("seen", INT, ExpireMode.AFTER_WRITE, 10))
    engine.complete(retry, missing(("seen", INT), ("other", STRING)))

    specs = engine.registered_specs("example/counter")
    assert set(specs) == {"seen", "other"}
    assert specs["seen"].expire_mode == ExpireMode.AFTER_WRITE


def test_an_empty_state_type_is_recorded_as_unset(engine):
    engine.send(COUNTER, text("1"))
    registered(engine, COUNTER, ("blob", ""))

    assert engine.registered_specs("example/counter")["blob"].typename == UNSET_TYPENAME


def test_a_state_named_twice_in_one_discovery_reply_is_registered_once(engine):
    engine.send(COUNTER, text("1"))
    reply = missing(("seen", INT, ExpireMode.AFTER_WRITE, 10), ("seen", INT))

    completion = engine.complete(only_batch(engine), reply)

    assert [spec.name for spec in completion.registered] == ["seen"]
    assert engine.registered_specs("example/counter")["seen"].expire_mode == ExpireMode.AFTER_WRITE


def test_a_state_named_twice_with_two_types_in_one_discovery_reply_is_an_error(engine):
    engine.send(COUNTER, text("1"))
    with pytest.raises(StateTypeError, match="seen"):
        engine.complete(only_batch(engine), missing(("seen", INT), ("seen", STRING)))


def test_registering_a_known_state_with_another_type_is_an_error(engine):
    engine.send(COUNTER, text("1"))
    retry = registered(engine, COUNTER, ("seen", INT))

    with pytest.raises(StateTypeError, match="seen"):
        engine.complete(retry, missing(("seen", STRING)))


@pytest.mark.parametrize("typename", ["noslash", "a/b/c"])
def test_a_state_type_must_be_namespace_slash_name(engine, typename):
    engine.send(COUNTER, text("1"))
    with pytest.raises(InvalidReplyError):
        engine.complete(only_batch(engine), missing(("seen", typename)))


def test_a_ttl_spec_needs_a_positive_duration(engine):
    engine.send(COUNTER, text("1"))
    with pytest.raises(InvalidReplyError, match="positive"):
        engine.complete(only_batch(engine), missing(("seen", INT, ExpireMode.AFTER_WRITE, 0)))


def test_a_ttl_of_one_millisecond_is_accepted(engine, clock):
    engine.send(COUNTER, text("1"))
    retry = registered(engine, COUNTER, ("seen", INT, ExpireMode.AFTER_WRITE, 1))
    engine.complete(retry, Reply().modify("seen", number(7)).bytes())

    assert engine.state(COUNTER) == {"seen": number(7)}
    clock.advance(1)
    assert engine.state(COUNTER) == {}


def test_discovery_rounds_are_capped(store, clock):
    engine = Engine(store, clock, max_discovery_rounds=3)
    engine.send(COUNTER, text("1"))
    for _ in range(3):
        engine.complete(only_batch(engine), missing(("seen", INT)))

    with pytest.raises(DiscoveryLoopError, match="3 discovery rounds"):
        engine.complete(only_batch(engine), missing(("seen", INT)))


def test_by_default_ten_discovery_rounds_are_allowed(engine):
    engine.send(COUNTER, text("1"))
    for _ in range(10):
        engine.complete(only_batch(engine), missing(("seen", INT)))

    with pytest.raises(DiscoveryLoopError, match="10 discovery rounds"):
        engine.complete(only_batch(engine), missing(("seen", INT)))


# --- state ----------------------------------------------------------------------------------


def test_mutations_are_applied_and_the_next_batch_reads_them(engine):
    engine.send(COUNTER, text("1"))
    retry = registered(engine, COUNTER, ("seen", INT), ("name", STRING))
    engine.send(COUNTER, text("2"))

    engine.complete(retry, Reply().modify("seen", number(1)).modify("name", text("ann")).bytes())
    second = only_batch(engine)
    assert state_of(second) == {"seen": number(1).value, "name": b"ann"}
    assert engine.state(COUNTER) == {"seen": number(1), "name": text("ann")}

    engine.send(COUNTER, text("3"))
    engine.complete(second, Reply().delete("name").modify("seen", number(2)).bytes())
    assert state_of(only_batch(engine)) == {"seen": number(2).value, "name": None}


def test_the_last_mutation_of_a_state_wins(engine):
    engine.send(COUNTER, text("1"))
    retry = registered(engine, COUNTER, ("seen", INT))
    reply = Reply().modify("seen", number(1)).delete("seen").modify("seen", number(3))

    engine.complete(retry, reply.bytes())

    assert engine.state(COUNTER) == {"seen": number(3)}


def test_a_present_value_whose_encoding_is_empty_is_sent_as_a_value(engine):
    engine.send(COUNTER, text("1"))
    retry = registered(engine, COUNTER, ("seen", INT))
    engine.send(COUNTER, text("2"))
    engine.complete(retry, Reply().modify("seen", TypedValue(INT, b"")).bytes())

    persisted = only_batch(engine).to_function().invocation.state[0]
    assert persisted.state_value.has_value and persisted.state_value.value == b""


def test_mutating_an_unregistered_state_is_an_error_and_nothing_is_applied(engine):
    engine.send(COUNTER, text("1"))
    retry = registered(engine, COUNTER, ("seen", INT))
    reply = Reply().send(SINK, text("lost")).modify("seen", number(1)).modify("ghost", number(1))

    with pytest.raises(UnregisteredStateError, match="ghost"):
        engine.complete(retry, reply.bytes())

    assert engine.state(COUNTER) == {}
    assert [batch.address for batch in engine.next_batches()] == []
    engine.fail(retry)
    assert arguments(only_batch(engine)) == [b"1"]


def test_writing_a_state_with_another_type_is_an_error(engine):
    engine.send(COUNTER, text("1"))
    retry = registered(engine, COUNTER, ("seen", INT))

    with pytest.raises(StateTypeError, match=STRING):
        engine.complete(retry, Reply().modify("seen", text("one")).bytes())


# --- TTL ------------------------------------------------------------------------------------


def write_with_ttl(engine: Engine, mode: ExpireMode) -> None:
    engine.send(COUNTER, text("write"))
    retry = registered(engine, COUNTER, ("seen", INT, mode, 100))
    engine.complete(retry, Reply().modify("seen", number(7)).bytes())


def read(engine: Engine) -> bytes | None:
    engine.send(COUNTER, text("read"))
    batch = only_batch(engine)
    engine.complete(batch, b"")
    return state_of(batch)["seen"]


def test_after_write_expires_after_the_last_write_and_reads_do_not_extend_it(engine, clock):
    write_with_ttl(engine, ExpireMode.AFTER_WRITE)

    clock.advance(60)
    assert read(engine) == number(7).value
    clock.advance(39)
    assert engine.state(COUNTER) == {"seen": number(7)}
    clock.advance(1)
    assert engine.state(COUNTER) == {}
    assert read(engine) is None


def test_after_invoke_is_refreshed_by_every_batch_sent_to_the_address(engine, clock):
    write_with_ttl(engine, ExpireMode.AFTER_INVOKE)

    clock.advance(60)
    assert read(engine) == number(7).value
    clock.advance(60)
    assert read(engine) == number(7).value
    clock.advance(99)
    assert engine.state(COUNTER) == {"seen": number(7)}
    clock.advance(1)
    assert read(engine) is None


def test_an_expired_value_found_by_a_batch_is_removed_from_the_store(engine, store, clock):
    write_with_ttl(engine, ExpireMode.AFTER_WRITE)
    clock.advance(100)
    with store.transaction():
        assert set(store.state_get(COUNTER)) == {"seen"}  # expired, not yet found

    assert read(engine) is None
    with store.transaction():
        assert store.state_get(COUNTER) == {}


def test_a_write_restarts_the_ttl(engine, clock):
    write_with_ttl(engine, ExpireMode.AFTER_WRITE)
    clock.advance(90)
    engine.send(COUNTER, text("rewrite"))
    engine.complete(only_batch(engine), Reply().modify("seen", number(8)).bytes())

    clock.advance(90)
    assert engine.state(COUNTER) == {"seen": number(8)}


# --- delayed messages -----------------------------------------------------------------------


def reply_once(engine: Engine, reply: Reply, address: Address = COUNTER) -> None:
    engine.send(address, text("go"))
    batch = only_batch(engine)
    assert batch.address == address
    engine.complete(batch, reply.bytes())


def test_delayed_messages_fire_when_due_with_the_scheduler_as_caller(engine, clock):
    reply_once(engine, Reply().send_after(50, SINK, text("later")))
    assert engine.next_timer_due_ms() == 1_050

    clock.advance(49)
    assert engine.fire_due_timers() == 0
    assert engine.next_batches() == []
    clock.advance(1)
    assert engine.fire_due_timers() == 1

    batch = only_batch(engine)
    assert arguments(batch) == [b"later"]
    assert Address.from_proto(batch.to_function().invocation.invocations[0].caller) == COUNTER
    assert engine.next_timer_due_ms() is None


def test_timers_due_together_are_delivered_in_order(engine, clock):
    reply = Reply().send_after(20, SINK, text("1")).send_after(10, SINK, text("0"))
    reply.send_after(20, SINK, text("2"))
    reply_once(engine, reply)

    clock.advance(20)
    assert engine.fire_due_timers() == 3
    assert drain(engine) == [[b"0"], [b"1", b"2"]]


def test_schedule_then_cancel_in_one_reply_cancels(engine, clock):
    reply_once(engine, Reply().send_after(10, SINK, text("x"), token="t").cancel("t"))

    assert engine.pending_timers() == []


def test_cancel_then_schedule_in_one_reply_leaves_it_scheduled(engine, clock):
    reply_once(engine, Reply().cancel("t").send_after(10, SINK, text("x"), token="t"))

    assert [timer.token for timer in engine.pending_timers()] == ["t"]


def test_a_later_reply_cancels_a_pending_message(engine, clock):
    reply_once(engine, Reply().send_after(10, SINK, text("x"), token="t"))
    reply_once(engine, Reply().cancel("t"))

    clock.advance(100)
    assert engine.fire_due_timers() == 0


def test_cancelling_an_unknown_token_is_a_no_op(engine):
    reply_once(engine, Reply().cancel("never").send(SINK, text("still sent")))

    assert arguments(only_batch(engine)) == [b"still sent"]


def test_a_pending_token_can_not_be_scheduled_twice_in_its_scope(engine):
    reply_once(engine, Reply().send_after(10, SINK, text("x"), token="t"))
    engine.send(COUNTER, text("again"))
    batch = only_batch(engine)

    with pytest.raises(CancellationTokenError, match="'t'"):
        engine.complete(batch, Reply().send_after(10, SINK, text("y"), token="t").bytes())
    assert len(engine.pending_timers()) == 1


def test_a_token_can_be_reused_once_its_message_was_delivered(engine, clock):
    reply_once(engine, Reply().send_after(10, SINK, text("x"), token="t"))
    clock.advance(10)
    engine.fire_due_timers()
    engine.complete(only_batch(engine), b"")
    reply_once(engine, Reply().send_after(10, SINK, text("y"), token="t"))

    assert [timer.token for timer in engine.pending_timers()] == ["t"]


def test_the_token_scope_is_the_id_of_the_sending_address(engine):
    same_id_other_type = Address("example/other", COUNTER.id)
    reply_once(engine, Reply().send_after(10, SINK, text("x"), token="t"))
    reply_once(engine, Reply().cancel("t"), address=OTHER)
    assert len(engine.pending_timers()) == 1

    reply_once(engine, Reply().cancel("t"), address=same_id_other_type)
    assert engine.pending_timers() == []


def test_a_cancellation_needs_a_token(engine):
    engine.send(COUNTER, text("go"))
    with pytest.raises(InvalidReplyError, match="token"):
        engine.complete(only_batch(engine), Reply().cancel("").bytes())


def test_a_delay_can_not_be_negative(engine):
    engine.send(COUNTER, text("go"))
    with pytest.raises(InvalidReplyError, match="negative"):
        engine.complete(only_batch(engine), Reply().send_after(-1, SINK, text("x")).bytes())


# --- egress and the order of effects ---------------------------------------------------------


def test_egress_records_are_logged_in_order_with_their_egress_id(engine):
    reply_once(engine, Reply().egress("example/out", text("1")).egress("example/log", text("2")))

    records = engine.egress_records()
    assert [(r.egress, r.argument) for r in records] == [
        ("example/out", text("1")),
        ("example/log", text("2")),
    ]
    assert engine.egress_records(after_seq=records[0].seq) == records[1:]


def test_an_egress_the_engine_does_not_know_is_an_error(store, clock):
    engine = Engine(store, clock, egress_ids={"example/out", "example/log"})
    engine.send(COUNTER, text("go"))
    # a typo in an egress id: the ids there are, to compare it with
    says = r"unknown egress example/nope \(known egresses: example/log, example/out\)"
    with pytest.raises(UnknownEgressError, match=says):
        engine.complete(only_batch(engine), Reply().egress("example/nope", text("x")).bytes())


def test_messages_are_applied_before_delayed_messages(engine, clock):
    reply_once(engine, Reply().send_after(0, SINK, text("delayed")).send(SINK, text("direct")))
    engine.fire_due_timers()

    assert drain(engine) == [[b"direct"], [b"delayed"]]


def test_the_completion_lists_the_effects(engine):
    engine.send(COUNTER, text("go"))
    retry = registered(engine, COUNTER, ("seen", INT))
    reply = Reply().send(SINK, text("m")).send_after(5, SINK, text("d"), token="t").cancel("u")
    reply.egress("example/out", text("e")).modify("seen", number(1))

    completion = engine.complete(retry, reply.bytes())

    assert [(m.target, m.caller) for m in completion.sent] == [(SINK, COUNTER)]
    assert [(t.due_ms, t.token, t.scope) for t in completion.scheduled] == [(1_005, "t", "a")]
    assert completion.cancelled == ("u",)
    assert [r.egress for r in completion.egress] == ["example/out"]
    assert completion.mutated == ("seen",)


# --- failures and recovery ------------------------------------------------------------------


def test_a_failed_batch_is_offered_again_with_the_same_messages_first(engine):
    engine.send(COUNTER, text("1"))
    batch = only_batch(engine)
    engine.send(COUNTER, text("2"))

    engine.fail(batch)
    retry = only_batch(engine)
    assert arguments(retry) == [b"1"]
    engine.complete(retry, b"")
    assert arguments(only_batch(engine)) == [b"2"]


def test_a_batch_that_is_not_in_flight_is_refused(engine):
    engine.send(COUNTER, text("1"))
    batch = only_batch(engine)
    engine.fail(batch)
    retry = only_batch(engine)

    with pytest.raises(StaleBatchError):
        engine.complete(batch, b"")
    engine.complete(retry, b"")
    with pytest.raises(StaleBatchError):
        engine.complete(retry, b"")


def test_failing_a_batch_that_is_not_in_flight_is_refused(engine):
    engine.send(COUNTER, text("1"))
    batch = only_batch(engine)
    engine.fail(batch)
    with pytest.raises(StaleBatchError):
        engine.fail(batch)

    retry = only_batch(engine)
    with pytest.raises(StaleBatchError):
        engine.fail(batch)
    engine.complete(retry, b"")  # still in flight


def test_a_reply_that_is_not_a_from_function_is_refused(engine):
    engine.send(COUNTER, text("1"))
    batch = only_batch(engine)
    with pytest.raises(InvalidReplyError):
        engine.complete(batch, b"\xff\xff\xff")


def test_a_parsed_reply_is_applied_as_its_bytes_are_and_not_parsed_again(engine, monkeypatch):
    engine.send(COUNTER, text("1"))
    retry = registered(engine, COUNTER, ("seen", INT))
    reply = Reply().modify("seen", number(3)).send(SINK, text("on")).message

    def no_parsing(data: bytes) -> None:
        raise AssertionError("a parsed reply was parsed again")

    monkeypatch.setattr(protocol.FromFunction, "FromString", staticmethod(no_parsing))
    completion = engine.complete(retry, reply)

    assert completion.mutated == ("seen",)
    assert [(m.target, m.argument) for m in completion.sent] == [(SINK, text("on"))]
    assert engine.state(COUNTER) == {"seen": number(3)}


def test_after_a_restart_the_batches_in_flight_are_sent_again(store, clock):
    engine = Engine(store, clock)
    engine.send(COUNTER, text("1"))
    engine.send(OTHER, text("done"))
    _in_flight, done = engine.next_batches()
    engine.complete(done, b"")
    engine.send(COUNTER, text("2"))

    restarted = Engine(store, clock)
    resent = only_batch(restarted)
    assert (resent.address, arguments(resent)) == (COUNTER, [b"1"])
    restarted.complete(resent, b"")
    assert arguments(only_batch(restarted)) == [b"2"]


def test_a_crash_while_applying_a_reply_leaves_the_store_as_it_was(store, clock):
    engine = Engine(store, clock)
    engine.send(COUNTER, text("1"))
    batch = only_batch(engine)

    class Crash(Exception):
        pass

    def crash(*args):
        raise Crash

    store.egress_append = crash  # the last effect before state; every earlier one must vanish
    with pytest.raises(Crash):
        engine.complete(
            batch, Reply().send(SINK, text("m")).egress("example/out", text("e")).bytes()
        )
    del store.egress_append

    restarted = Engine(store, clock)
    assert arguments(only_batch(restarted)) == [b"1"]
    assert store.mailbox_peek(SINK) == []


def test_the_request_is_a_to_function(engine):
    engine.send(COUNTER, text("1"))
    batch = only_batch(engine)
    assert protocol.ToFunction.FromString(batch.request) == batch.to_function()


SENT = TraceContext("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "vendor=value")


@pytest.mark.parametrize(
    "traceresponse, origin",
    [
        # the function's span in the batch's trace: the batch's tracestate goes on with it
        ("00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01",
         TraceContext("00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01", "vendor=value")),
        # a span of another trace: the batch's vendors' state is not that trace's
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
         TraceContext("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "")),
        # no traceresponse (no tracing plugin): the batch's own context
        (None, SENT),
    ],
)  # fmt: skip
def test_a_replys_effects_get_the_reported_span_and_the_batchs_tracestate(
    engine, traceresponse, origin
):
    engine.send(COUNTER, text("go"), trace=SENT)
    batch = only_batch(engine)
    assert batch.trace == SENT
    reply = Reply().send(SINK, text("on")).egress("example/out", text("out")).bytes()
    engine.complete(batch, reply, TraceContext.parse(traceresponse))
    (record,) = engine.egress_records()
    assert record.trace == origin
    assert only_batch(engine).trace == origin


OTHER_TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SAME_TRACE = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    "sent, reported",
    [
        # a batch of no known origin: the reported span is the origin
        (None, TraceContext(OTHER_TRACE)),
        # a reported context with its own tracestate keeps it, even in the batch's trace
        (SENT, TraceContext(SAME_TRACE, "mine=1")),
        # a batch without tracestate has none to pass on
        (TraceContext(SENT.traceparent), TraceContext(SAME_TRACE)),
    ],
)
def test_a_replys_effects_get_the_reported_context_as_it_is(engine, sent, reported):
    engine.send(COUNTER, text("go"), trace=sent)
    batch = only_batch(engine)
    reply = Reply().send(SINK, text("on")).egress("example/out", text("out")).bytes()
    engine.complete(batch, reply, reported)

    (record,) = engine.egress_records()
    assert record.trace == reported
    assert only_batch(engine).trace == reported


def test_a_batch_carries_the_trace_headers_of_its_first_known_origin(engine):
    engine.send(COUNTER, text("0"))
    first = only_batch(engine)
    assert (first.trace, dict(first.headers)) == (None, {})
    engine.send(COUNTER, text("1"))
    engine.send(COUNTER, text("2"), trace=SENT)
    engine.send(COUNTER, text("3"), trace=TraceContext(OTHER_TRACE))
    engine.complete(first, b"")

    batch = only_batch(engine)
    assert batch.trace == SENT
    assert dict(batch.headers) == {
        "traceparent": SENT.traceparent,
        "tracestate": "vendor=value",
        "statefun-origins": f",{SENT.traceparent},{OTHER_TRACE}",
    }


def test_a_batch_whose_first_origin_has_no_tracestate_sends_none(engine):
    engine.send(COUNTER, text("0"), trace=TraceContext(OTHER_TRACE))

    assert dict(only_batch(engine).headers) == {
        "traceparent": OTHER_TRACE,
        "statefun-origins": OTHER_TRACE,
    }


def test_the_retry_of_a_discovery_round_of_no_known_origin_goes_on_in_its_reported_span(engine):
    engine.send(COUNTER, text("go"))
    first = only_batch(engine)
    engine.complete(first, missing(("seen", INT)), TraceContext(OTHER_TRACE))

    retry = only_batch(engine)
    assert (retry.trace, dict(retry.headers)) == (
        TraceContext(OTHER_TRACE),
        {"traceparent": OTHER_TRACE},
    )
    engine.complete(retry, Reply().egress("example/out", text("out")).bytes())
    (record,) = engine.egress_records()
    assert record.trace == TraceContext(OTHER_TRACE)

    engine.send(COUNTER, text("later"))
    later = only_batch(engine)
    assert (later.trace, dict(later.headers)) == (None, {})


def test_a_message_dropped_mid_discovery_takes_its_rounds_and_span_with_it(engine):
    """A driver that drops a batch's head message (statefun-local's skip or dead-letter of a
    stuck message) after discovery rounds: the next message's batch starts at round 0 and in
    no trace of the dropped message's."""
    engine.send(COUNTER, text("poison"))
    engine.send(COUNTER, text("next"))
    for _ in range(3):
        engine.complete(only_batch(engine), missing(("seen", INT)), TraceContext(OTHER_TRACE))
    poison = only_batch(engine)
    assert (poison.discovery_round, poison.trace) == (3, TraceContext(OTHER_TRACE))
    engine.fail(poison)
    engine.store.mailbox_remove(COUNTER, poison.last_seq)
    engine.store.in_flight_clear(COUNTER)

    following = only_batch(engine)
    assert arguments(following) == [b"next"]
    assert (following.discovery_round, following.trace, dict(following.headers)) == (0, None, {})


def test_a_discovery_round_of_a_known_origin_is_retried_with_its_own_headers(engine):
    engine.send(COUNTER, text("go"), trace=SENT)
    first = only_batch(engine)
    engine.complete(first, missing(("seen", INT)), TraceContext(OTHER_TRACE))

    assert only_batch(engine).headers == first.headers
