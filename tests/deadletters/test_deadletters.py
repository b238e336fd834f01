"""Failures that never succeed: a final failure drops only its own invocation's effects and
sends a dead-letter record; every other failure still fails the batch (500)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from statefun_core import (
    BoolType,
    Context,
    DeadLetterEgress,
    DeadLetterRecord,
    FinalFailure,
    FunctionFailedError,
    IntType,
    LimitExceededError,
    Limits,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    StringType,
    ValueSpec,
    make_json_type,
    make_plugin_manager,
    message_builder,
)
from statefun_core.testing import endpoint, wire
from statefun_core.testing.records import EgressOutput, KafkaRecord

from .functions import (
    ASYNC,
    AWAITING,
    COMMAND,
    COUNTERS,
    DEAD_LETTERS,
    FINAL,
    FINAL_BY_BIND,
    KIND_STATES,
    KINDS,
    LATER,
    LOG,
    NOT_FINAL,
    ORDER,
    OUT,
    OUT_EGRESS,
    STRICT,
    SYNC,
    make_functions,
    place,
)

ROOT = Path(__file__).resolve().parents[2]
NEW = {"total": None, "log": None}


@pytest.fixture(scope="module", params=["sync", "async"])
def server(request: Any) -> Iterator[int]:
    """The port of a real server: Flask (handle_sync) or aiohttp (handle_async)."""
    port = endpoint.free_port()
    command = [sys.executable, "-m", "tests.deadletters.server", str(port), request.param]
    with endpoint.running(command, port, cwd=ROOT):
        yield port


def post(port: int, body: bytes) -> tuple[int, bytes]:
    status, _, reply = endpoint.request(port, "/statefun", body)
    return status, reply


def ints(values: list[Any]) -> list[int]:
    return [IntType.serializer().deserialize(value.value) for value in values]


@pytest.mark.parametrize("typename", COUNTERS)
@pytest.mark.parametrize("failing", [FINAL, FINAL_BY_BIND])
def test_a_final_failure_mid_batch_keeps_the_other_four_invocations(
    server: int, typename: str, failing: int
) -> None:
    arguments = [1, 2, failing, 4, 5]
    caller = ("test/caller", "c1")
    status, reply = post(server, wire.to_function(typename, "a", arguments, NEW, caller=caller))
    assert status == 200, reply

    kept = [1, 2, 4, 5]
    state = wire.mutations(reply)
    assert IntType.serializer().deserialize(state["total"].value) == sum(kept)
    # the failed invocation appended to the log in place before it failed: not kept either
    assert LOG.serializer().deserialize(state["log"].value) == kept
    assert [(m.target.typename, m.target.id) for m in wire.messages(reply)] == [
        (OUT, str(n)) for n in kept
    ]
    assert [(d.target.type, d.delay_in_ms) for d in wire.delayed(reply)] == [
        (LATER.split("/")[1], n * 1000) for n in kept
    ]
    records = wire.egress(reply)
    assert [r.value for r in records if r.egress == OUT_EGRESS] == [b"1", b"2", b"4", b"5"]

    (dead,) = [r for r in records if r.egress == DEAD_LETTERS.typename]
    assert isinstance(dead, KafkaRecord)
    assert (dead.topic, dead.key) == ("dead-letters", f"{typename}/a")
    record = DeadLetterRecord.from_json(dead.value)
    assert (record.function_type, record.function_id) == (typename, "a")
    assert (record.caller_type, record.caller_id) == caller
    assert record.message_typename == IntType.typename
    assert record.message_value == IntType.serializer().serialize(failing)
    if failing == FINAL:
        assert record.error_class == "statefun_core.errors.FinalFailure"
        assert record.error_message == "3 can never succeed"
    else:
        assert record.error_class == "builtins.KeyError"
        assert record.error_message == "7"
    # the record comes in send order: after the second invocation's effects
    assert [r.egress for r in records].index(DEAD_LETTERS.typename) == 2


@pytest.mark.parametrize("typename", COUNTERS)
def test_any_other_failure_still_fails_the_batch(server: int, typename: str) -> None:
    body = wire.to_function(typename, "a", [1, FINAL, NOT_FINAL, 4], NEW)
    status, reply = post(server, body)
    assert status == 500
    assert b"FromFunction" not in reply and b"Traceback" not in reply


def test_unreadable_input_is_final_when_the_function_opts_in(server: int) -> None:
    good = wire.typed_value(ORDER, {"id": 1})
    unreadable = wire.typed_value(ORDER, {"id": 2})
    unreadable.value = b"{not json"
    body = wire.to_function(STRICT, "s", [good, unreadable], {"last": None})
    status, reply = post(server, body)
    assert status == 200, reply
    assert ORDER.serializer().deserialize(wire.mutations(reply)["last"].value) == {"id": 1}
    (dead,) = [r for r in wire.egress(reply) if r.egress == DEAD_LETTERS.typename]
    record = DeadLetterRecord.from_json(dead.value)
    assert record.error_class == "json.decoder.JSONDecodeError"
    assert record.message_value == b"{not json"


def test_a_state_of_another_type_is_unreadable(server: int) -> None:
    stale = wire.typed_value(IntType, 5)  # written by an older version, as an int
    body = wire.to_function(STRICT, "s", [wire.typed_value(ORDER, {"id": 1})], {"last": stale})
    status, reply = post(server, body)
    assert status == 200, reply
    assert wire.mutations(reply) == {}
    (dead,) = wire.egress(reply)
    record = DeadLetterRecord.from_json(dead.value)
    assert record.error_class == "builtins.TypeError"
    assert "Type mismatch" in record.error_message


@pytest.mark.parametrize("typename", KINDS)
def test_a_final_failure_after_writes_of_every_kind_of_state_leaves_them_as_they_were(
    server: int, typename: str
) -> None:
    # values are encoded when assigned, but for ints and bools kept as they are until the
    # reply; a read decodes or keeps: each is put back as it was before the failed invocation
    received = {
        "count": 10, "flag": True, "name": "ann", "ratio": 0.5, "doc": {"v": 1},
        "place": place("home"),
    }  # fmt: skip
    every_kind = {
        "count": 99, "flag": False, "name": "zed", "ratio": 0.1, "doc": {"v": 2}, "place": "away",
    }  # fmt: skip
    commands = [
        [["write", {"count": 11, "name": "bob"}], ["report"]],
        [["write", every_kind], ["report"], ["fail"]],
        [["report"], ["write", {"doc": {"v": 3}}]],
        # True for an int: encoded when assigned, not kept as is
        [["write", {"count": True}], ["delete", list(KIND_STATES)], ["report"], ["fail"]],
        [["report"]],
    ]
    state = {name: wire.typed_value(KIND_STATES[name], value) for name, value in received.items()}
    arguments = [wire.typed_value(COMMAND, command) for command in commands]
    status, reply = post(server, wire.to_function(typename, "k", arguments, state))
    assert status == 200, reply

    seen = {**received, "count": 11, "name": "bob", "place": "home"}
    reports = [json.loads(m.argument.value[2:]) for m in wire.messages(reply)]
    assert reports == [seen, seen, {**seen, "doc": {"v": 3}}]
    state_after = {
        name: KIND_STATES[name].serializer().deserialize(value.value)
        for name, value in wire.mutations(reply).items()
        if value is not None
    }
    assert state_after == {"count": 11, "name": "bob", "doc": {"v": 3}}
    assert set(wire.mutations(reply)) == {"count", "name", "doc"}  # no delete, nothing else
    dead = [DeadLetterRecord.from_json(r.value) for r in wire.egress(reply)]
    assert [COMMAND.serializer().deserialize(r.message_value or b"") for r in dead] == [
        commands[1],
        commands[3],
    ]


# --- the record ------------------------------------------------------------------------------


def handler(functions: StatefulFunctions, **kwargs: Any) -> RequestReplyHandler:
    return RequestReplyHandler(
        functions, plugins=make_plugin_manager(load_entrypoints=False), **kwargs
    )


def test_the_record_is_json_with_every_field() -> None:
    before = datetime.now(timezone.utc)
    body = wire.to_function(SYNC, "a/b", [FINAL], NEW, caller=("test/caller", "c1"))
    (dead,) = wire.egress(handler(make_functions(), dead_letters=DEAD_LETTERS).handle_sync(body))
    assert isinstance(dead, KafkaRecord)
    document = json.loads(dead.value)
    assert document.keys() == {
        "version",
        "address",
        "caller",
        "message",
        "error",
        "time",
        "attempts",
    }
    assert document["version"] == 1
    assert document["address"] == {"namespace": "test", "type": "sync-counter", "id": "a/b"}
    assert document["caller"] == {"namespace": "test", "type": "caller", "id": "c1"}
    value = base64.b64encode(IntType.serializer().serialize(FINAL)).decode()
    assert document["message"] == {"typename": IntType.typename, "value": value}
    assert document["error"] == {
        "class": "statefun_core.errors.FinalFailure",
        "message": "3 can never succeed",
    }
    assert document["attempts"] == 1
    assert document["time"].endswith("Z")
    time = datetime.fromisoformat(document["time"].replace("Z", "+00:00"))
    assert before - timedelta(milliseconds=1) <= time <= datetime.now(timezone.utc)
    record = DeadLetterRecord.from_json(dead.value)
    assert DeadLetterRecord.from_json(record.to_json()) == record


def test_a_record_made_for_an_error_is_timed_now_to_the_millisecond_as_its_json() -> None:
    argument = wire.typed_value(IntType, 1)
    for _ in range(5):  # at several points of a second: a wrong rounding shows at most
        before = datetime.now(timezone.utc)
        record = DeadLetterRecord.for_error("test/f", "x", None, argument, ValueError("no"))
        after = datetime.now(timezone.utc)
        assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= record.time
        assert record.time <= after and record.time.microsecond % 1000 == 0
        assert DeadLetterRecord.from_json(record.to_json()) == record
        time.sleep(0.05)


def test_a_record_without_attempts_reads_as_tried_once() -> None:
    when = datetime(2026, 12, 4, 19, 42, 26, 123000, tzinfo=timezone.utc)
    record = DeadLetterRecord("test/f", "x", None, None, "test/m", None, "a.B", "no", when, 3)
    document = json.loads(record.to_json())
    del document["attempts"]
    assert DeadLetterRecord.from_json(json.dumps(document).encode()).attempts == 1


def test_a_message_from_an_ingress_has_no_caller_and_kinesis_and_plain_egresses() -> None:
    functions = StatefulFunctions()

    @functions.bind("test/fails", dead_letters=DeadLetterEgress("test/dlq", stream="dead"))
    def fails(context: Context, message: Message) -> None:
        raise FinalFailure("no")

    @functions.bind("test/fails-plain")
    def fails_plain(context: Context, message: Message) -> None:
        raise FinalFailure("no")

    served = handler(functions, dead_letters=DeadLetterEgress("test/plain"))
    (kinesis,) = wire.egress(served.handle_sync(wire.to_function("test/fails", "x", [1])))
    assert (kinesis.stream, kinesis.partition_key) == ("dead", "test/fails/x")  # type: ignore[union-attr]
    assert json.loads(kinesis.value)["caller"] is None
    (plain,) = wire.egress(served.handle_sync(wire.to_function("test/fails-plain", "x", [1])))
    assert isinstance(plain, EgressOutput)
    assert plain.typename == "statefun_core/dead-letter"
    assert DeadLetterRecord.from_json(plain.value).function_type == "test/fails-plain"


def test_a_dead_letter_egress_needs_a_typename_and_at_most_one_non_empty_topic_or_stream() -> None:
    with pytest.raises(ValueError):
        DeadLetterEgress("no-namespace")
    with pytest.raises(ValueError, match="not both"):
        DeadLetterEgress("test/dlq", topic="dead", stream="dead")
    for empty in ({"topic": ""}, {"stream": ""}):
        with pytest.raises(ValueError, match="must not be empty"):
            DeadLetterEgress("test/dlq", **empty)


def test_final_failure_without_a_dead_letter_egress_fails_the_batch() -> None:
    functions = StatefulFunctions()

    @functions.bind("test/fails")
    def fails(context: Context, message: Message) -> None:
        raise FinalFailure("no egress to go to")

    with pytest.raises(FunctionFailedError) as failed:
        handler(functions).handle_sync(wire.to_function("test/fails", "x", [1]))
    assert isinstance(failed.value.__cause__, FinalFailure)


def test_declaring_final_failures_without_an_egress_fails_when_the_handler_is_made() -> None:
    functions = StatefulFunctions()
    functions.register("test/strict", lambda context, message: None, final_unreadable=True)
    with pytest.raises(ValueError, match="test/strict declares final failures"):
        handler(functions)
    with pytest.raises(TypeError, match="must be Exception classes"):
        functions.register("test/x", lambda c, m: None, final_errors=[KeyboardInterrupt])


def test_a_function_bound_to_served_functions_is_checked_alike() -> None:
    functions = StatefulFunctions()
    served = handler(functions)
    with pytest.raises(ValueError, match="test/late declares final failures"):
        functions.register("test/late", lambda context, message: None, final_errors=[KeyError])
    assert "test/late" not in [f.typename for f in served.functions]


def test_a_function_bound_to_functions_two_handlers_serve_is_checked_by_both() -> None:
    functions = StatefulFunctions()
    strict = handler(functions)
    lenient = handler(functions, dead_letters=DEAD_LETTERS)
    with pytest.raises(ValueError, match="test/late declares final failures"):
        functions.register("test/late", lambda context, message: None, final_errors=[KeyError])
    assert "test/late" not in functions
    assert strict.functions is lenient.functions is functions


def test_with_the_opt_in_only_unreadable_input_is_final() -> None:
    functions = StatefulFunctions()

    @functions.bind("test/reads", dead_letters=DEAD_LETTERS, final_unreadable=True)
    def reads(context: Context, message: Message) -> None:
        raise RuntimeError("a bug, not unreadable input")

    with pytest.raises(FunctionFailedError) as failed:
        handler(functions).handle_sync(wire.to_function("test/reads", "x", [1]))
    assert isinstance(failed.value.__cause__, RuntimeError)


def test_unreadable_input_is_an_ordinary_failure_without_the_opt_in() -> None:
    functions = StatefulFunctions()

    @functions.bind("test/reads", dead_letters=DEAD_LETTERS)
    def reads(context: Context, message: Message) -> None:
        message.as_type(ORDER)

    bad = wire.typed_value(ORDER, {})
    bad.value = b"{"
    with pytest.raises(FunctionFailedError):
        handler(functions).handle_sync(wire.to_function("test/reads", "x", [bad]))


@pytest.mark.parametrize("driver", ["handle_sync", "handle_async"])
def test_a_bad_write_fails_at_the_assignment_caught_or_dead_lettered(driver: str) -> None:
    # as in the official SDK, a value its type cannot encode raises at the assignment, where
    # the function may catch it (nothing stored); not caught, a final class dead-letters it
    functions = StatefulFunctions()
    specs = [ValueSpec("flag", BoolType), ValueSpec("seen", IntType)]

    @functions.bind("test/flags", specs, final_errors=(TypeError,), dead_letters=DEAD_LETTERS)
    def flags(context: Context, message: Message) -> None:
        n = message.as_int()
        storage: Any = context.storage
        if n == 3:
            context.send(message_builder(OUT, "seen", str_value=f"{storage.flag} {storage.seen}"))
            return
        storage.seen = n
        if n == 1:
            with contextlib.suppress(TypeError):
                storage.flag = 1.5
        else:
            storage.flag = 1.5

    served = handler(functions)
    body = wire.to_function("test/flags", "f", [1, 2, 3], {"flag": False, "seen": None})
    if driver == "handle_sync":
        reply = served.handle_sync(body)
    else:
        reply = asyncio.run(served.handle_async(body))
    (report,) = wire.messages(reply)
    assert StringType.serializer().deserialize(report.argument.value) == "False 1"
    assert {name: ints([value])[0] for name, value in wire.mutations(reply).items()} == {"seen": 1}
    (dead,) = wire.egress(reply)
    record = DeadLetterRecord.from_json(dead.value)
    assert record.message_value == IntType.serializer().serialize(2)
    assert record.error_class == "builtins.TypeError"


@pytest.mark.parametrize(
    ("state_type", "received", "written"),
    [(IntType, None, 99), (IntType, 7, 99), (StringType, "a", "b")],
)
def test_a_state_a_dead_lettered_invocation_wrote_first_reads_as_received_after_it(
    state_type: Any, received: Any, written: Any
) -> None:
    # the invocation's write is undone for the reads of the invocations after it, not only
    # left out of the reply, though the batch had not read that state before
    functions = StatefulFunctions()

    @functions.bind(
        "test/first",
        [ValueSpec("v", state_type)],
        final_errors=(KeyError,),
        dead_letters=DEAD_LETTERS,
    )
    def first(context: Context, message: Message) -> None:
        storage: Any = context.storage
        if message.as_int() == 1:
            storage.v = written
            raise KeyError("final")
        context.send(message_builder(OUT, "v", str_value=repr(storage.v)))

    reply = handler(functions).handle_sync(
        wire.to_function("test/first", "f", [1, 2], {"v": received})
    )
    (report,) = wire.messages(reply)
    assert StringType.serializer().deserialize(report.argument.value) == repr(received)
    assert wire.mutations(reply) == {}
    assert len(wire.egress(reply)) == 1


@pytest.mark.parametrize("state_type", [StringType, make_json_type("test/note")])
def test_a_state_over_the_limit_fails_at_the_assignment_caught_or_dead_lettered(
    state_type: Any,
) -> None:
    """A value over Limits.state_value_bytes raises LimitExceededError where it is assigned:
    the function may catch it, or name it final, so it never fails every retry of its batch."""
    functions = StatefulFunctions()
    spec = ValueSpec("note", state_type)

    @functions.bind(
        "test/notes", [spec], final_errors=(LimitExceededError,), dead_letters=DEAD_LETTERS
    )
    def notes(context: Context, message: Message) -> None:
        n = message.as_int()
        storage: Any = context.storage
        if n == 1:
            with contextlib.suppress(LimitExceededError):
                storage.note = "x" * 100
            return
        storage.note = "y" * (100 if n == 2 else 10)

    served = handler(functions, limits=Limits(state_value_bytes=64))
    reply = served.handle_sync(wire.to_function("test/notes", "n", [1, 2, 3], {"note": None}))
    assert state_type.serializer().deserialize(wire.mutations(reply)["note"].value) == "y" * 10
    (dead,) = wire.egress(reply)
    record = DeadLetterRecord.from_json(dead.value)
    assert record.message_value == IntType.serializer().serialize(2)
    assert record.error_class == "statefun_core.errors.LimitExceededError"
    assert "state_value_bytes of 'note'" in record.error_message


def test_handle_async_in_process_for_every_kind_of_function() -> None:
    served = handler(make_functions(), dead_letters=DEAD_LETTERS)

    async def run() -> list[bytes]:
        return [
            await served.handle_async(wire.to_function(t, "a", [1, FINAL, 2], NEW))
            for t in (SYNC, ASYNC, AWAITING)
        ]

    for reply in asyncio.run(run()):
        assert IntType.serializer().deserialize(wire.mutations(reply)["total"].value) == 3
        assert ints([m.argument for m in wire.messages(reply)]) == [1, 2]


class Unprintable(FinalFailure):
    """An exception whose ``__str__`` raises (an attribute it reads was never set)."""

    def __str__(self) -> str:
        raise AttributeError("detail")


def test_a_final_failure_whose_str_raises_is_still_dead_lettered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its record says its message could not be had, instead of failing the batch (retried
    for ever); and a function that raises one without a dead-letter egress is logged so."""
    functions = StatefulFunctions()

    @functions.bind("test/fails", dead_letters=DeadLetterEgress("test/dlq", topic="dead"))
    def fails(context: Context, message: Message) -> None:
        raise Unprintable()

    @functions.bind("test/fails-plain")
    def fails_plain(context: Context, message: Message) -> None:
        raise Unprintable()

    served = handler(functions)
    (record,) = wire.egress(served.handle_sync(wire.to_function("test/fails", "x", [1])))
    error = json.loads(record.value)["error"]
    assert error["message"] == "<Unprintable object: str() failed>"
    assert error["class"].endswith(".Unprintable")
    with pytest.raises(FunctionFailedError):
        served.handle_sync(wire.to_function("test/fails-plain", "x", [1]))
    (line,) = [r.getMessage() for r in caplog.records if r.name == "statefun_core"]
    assert line.endswith("Unprintable: <Unprintable object: str() failed>")
