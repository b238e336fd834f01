"""Replies the runtime refuses, and replies the database can not take for a while: nothing of
the reply is applied, the failure is visible, and the batch is sent again until it goes
through (protocol §8, §11). Real function servers, real SQLite files, a real process holding
the database's write lock."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest
from aiohttp import web
from statefun_local import make_value, parse_module
from statefun_local.replies import MAX_DELAY_MS, check_reply
from statefun_local.values import KAFKA_RECORD, KINESIS_RECORD, PLAYGROUND_RECORD

from statefun_core import (
    CONTENT_TYPE,
    Context,
    IntType,
    Message,
    StatefulFunctions,
    ValueSpec,
    message_builder,
    protocol,
)
from statefun_core.engine import Address, InvalidReplyError

from .conftest import module_yaml, run, serving

TARGET = Address("com.example/fn", "x")
KINESIS = """
---
kind: io.statefun.kinesis.v1/egress
spec:
  id: com.example/stream
  awsRegion: {type: specific, id: us-east-1}
"""


async def until(condition: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.02)


def egress(response: Any, egress_id: str, typename: str, value: bytes) -> None:
    namespace, name = egress_id.split("/")
    message = response.invocation_result.outgoing_egresses.add(
        egress_namespace=namespace, egress_type=name
    )
    message.argument.CopyFrom(protocol.TypedValue(typename=typename, has_value=True, value=value))


def kafka_record(**fields: Any) -> bytes:
    return bytes(protocol.KafkaProducerRecord(**fields).SerializeToString())


def message_to(typename: str, delayed: bool = False, delay_in_ms: int = 0) -> Any:
    def add(response: Any) -> None:
        result = response.invocation_result
        sent = (
            result.delayed_invocations.add(delay_in_ms=delay_in_ms)
            if delayed
            else (result.outgoing_messages.add())
        )
        namespace, name = typename.split("/")
        sent.target.CopyFrom(protocol.Address(namespace=namespace, type=name, id="1"))
        sent.argument.CopyFrom(make_value("string", "hi").to_proto())

    return add


def missing_state_with_mode(mode: int) -> Any:
    def add(response: Any) -> None:
        spec = response.incomplete_invocation_context.missing_values.add(
            state_name="seen", type_typename="io.statefun.types/int"
        )
        spec.expiration_spec.mode = mode
        spec.expiration_spec.expire_after_millis = 1000

    return add


STRING = bytes(protocol.StringWrapper(value="hi").SerializeToString())


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (lambda r: egress(r, "com.example/out", "io.statefun.types/string", STRING),
         "'io.statefun.types/string' to egress com.example/out, which takes " + KAFKA_RECORD),
        (lambda r: egress(r, "com.example/out", KAFKA_RECORD, b"\xff\xff\xff"),
         "a " + KAFKA_RECORD + " that does not parse"),
        (lambda r: egress(r, "com.example/out", KAFKA_RECORD, kafka_record(value_bytes=b"v")),
         "egress com.example/out a record without topic"),
        (lambda r: egress(r, "com.example/stream", KAFKA_RECORD, kafka_record(topic="t")),
         "to egress com.example/stream, which takes " + KINESIS_RECORD),
        (lambda r: egress(r, "com.example/stream", KINESIS_RECORD, bytes(
            protocol.KinesisEgressRecord(stream="s", value_bytes=b"v").SerializeToString())),
         "egress com.example/stream a record without partition_key"),
        (message_to("com.other/fn"), "a message to function type 'com.other/fn', which no "),
        (message_to("com.other/fn", delayed=True), "to function type 'com.other/fn', which no "),
        (message_to("com.example/fn", delayed=True, delay_in_ms=2**63 - 1),
         f"sent a delay of {2**63 - 1} ms"),
        (missing_state_with_mode(5), "declared state 'seen' with expiration mode 5"),
    ],
    ids=["string-to-kafka", "kafka-unparsable", "kafka-no-topic", "kafka-to-kinesis",
         "kinesis-no-partition-key", "unknown-function", "delayed-to-unknown-function",
         "delay-overflows", "unknown-expiration-mode"],
)  # fmt: skip
def test_a_refused_reply_applies_nothing_and_is_sent_again(
    tmp_path: Path, bad: Callable[[Any], None], error: str
) -> None:
    """Each bad reply also holds a good egress record: it must not be stored. Once the
    function answers well, the same message goes through."""
    fixed = False

    def reply(request: int) -> web.Response:
        response = protocol.FromFunction()
        good = kafka_record(topic="t", value_bytes=b"ok")
        egress(response, "com.example/out", KAFKA_RECORD, good)
        if not fixed:
            bad(response)
        return web.Response(body=response.SerializeToString(), content_type=CONTENT_TYPE)

    async def scenario() -> None:
        nonlocal fixed
        async with serving(StatefulFunctions(), tmp_path / "db.sqlite", fault=reply,
                           extra=KINESIS) as (_, runtime):  # fmt: skip
            await runtime.send(TARGET, make_value("string", "go"))
            await until(lambda: len(runtime.failures) >= 2)  # refused, and refused again
            assert {f.address for f in runtime.failures} == {str(TARGET)}
            assert error in runtime.failures[0].error, runtime.failures[0].error
            assert runtime.failures[0].error.startswith("InvalidReplyError: ")
            assert runtime.egress_records() == []
            assert runtime.engine.pending_timers() == []
            assert runtime.store.all_specs() == {}
            assert runtime.store.queue_depths() == {TARGET: 1}  # still there, nothing else
            assert [entry["address"] for entry in runtime.stuck()] == [str(TARGET)]
            fixed = True
            await runtime.wait_until_idle()
            records = [r["record"]["kafka"]["value"] for r in runtime.egress_records()]
            assert records == ["ok"]
            assert runtime.stuck() == []

    run(scenario())


def test_a_refused_reply_parks_its_batch_and_is_no_internal_error(
    tmp_path: Path, caplog: Any
) -> None:
    """A reply the engine refuses is the address' failure (parked, sent again after a pause),
    not an error in handling the batch: nothing after the refusal runs."""
    refusals = 2

    def reply(request: int) -> web.Response:
        response = protocol.FromFunction()
        if request <= refusals:
            egress(response, "com.example/nowhere", "io.statefun.types/string", STRING)
        else:
            egress(response, "com.example/out", KAFKA_RECORD, kafka_record(topic="t"))
        return web.Response(body=response.SerializeToString(), content_type=CONTENT_TYPE)

    async def scenario() -> None:
        db = tmp_path / "db.sqlite"
        async with serving(StatefulFunctions(), db, fault=reply) as (server, runtime):
            await runtime.send(TARGET, make_value("string", "go"))
            await runtime.wait_until_idle()
            assert server.requests == refusals + 1
            assert [f.error.split(":")[0] for f in runtime.failures] == ["UnknownEgressError"] * 2
            assert runtime.stuck() == []
        assert "handling the batch failed" not in caplog.text

    run(scenario())


LOCK_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@contextlib.asynccontextmanager
async def database_locked(db: Path) -> AsyncIterator[None]:
    """Another process holds ``db``'s write lock for the block (and lets it go at its end)."""
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LOCK_HOLDER, str(db),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert await holder.stdout.readline() == b"locked\n"
        yield
        holder.stdin.write(b"release\n")
        await holder.stdin.drain()
        assert await holder.wait() == 0
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()


def test_a_database_locked_by_another_process_delays_a_reply_and_a_timer_but_loses_neither(
    tmp_path: Path,
) -> None:
    """Another process holds the write lock for longer than the busy timeout while a reply
    comes back, a queued message is to be sent and a delayed message falls due: the reply is
    rolled back and shown as a failure, and all three go through, once each, when the lock is
    gone."""
    functions = StatefulFunctions()
    db = tmp_path / "db.sqlite"

    async def scenario() -> None:
        held = asyncio.Event()

        @functions.bind("com.example/fn", specs=[ValueSpec("count", IntType)])
        async def fn(context: Context, message: Message) -> None:
            text = message.as_string()
            if text == "hold":
                await held.wait()
            if text == "schedule":
                tick = message_builder("com.example/fn", context.address.id, str_value="tick")
                context.send_after(timedelta(seconds=1), tick)
            context.storage.count = (context.storage.count or 0) + 1

        async with serving(functions, db) as (_, runtime):
            runtime.store.conn.execute("PRAGMA busy_timeout = 100")
            x, y, z = (Address("com.example/fn", name) for name in "xyz")
            await runtime.send(y, make_value("string", "schedule"))
            await runtime.send(x, make_value("string", "hold"))
            await until(lambda: runtime.engine.pending_timers() and runtime.inspect(x)["in_flight"])
            runtime.engine.send(z, make_value("string", "queued"))  # the dispatcher not woken
            async with database_locked(db):
                runtime._wake.set()  # the dispatcher takes z's message while the lock is held
                held.set()  # the reply for x comes back while the lock is held
                await until(lambda: any("database is locked" in f.error for f in runtime.failures))
                (timer,) = runtime.engine.pending_timers()
                await until(lambda: runtime.clock.now_ms() > timer.due_ms + 200)
            await runtime.wait_until_idle(timeout=10, timers=True)
            failure = next(f for f in runtime.failures if "locked" in f.error)
            assert (failure.address, failure.error) == (
                str(x),
                "OperationalError: database is locked",
            )
            assert runtime.inspect(x)["state"]["count"]["value"] == 1
            assert runtime.inspect(y)["state"]["count"]["value"] == 2  # schedule, then tick
            assert runtime.inspect(z)["state"]["count"]["value"] == 1
            assert runtime.stuck() == []

    run(scenario())


def test_a_database_locked_while_taking_batches_sends_no_batch_a_second_time(
    tmp_path: Path, caplog: Any
) -> None:
    """Taking batches fails while another process holds the write lock: the dispatcher waits
    and tries again; the batch it took before (still in flight) is not sent again."""
    functions = StatefulFunctions()
    db = tmp_path / "db.sqlite"
    calls: list[str] = []

    async def scenario() -> None:
        gate = asyncio.Event()

        @functions.bind("com.example/fn")
        async def fn(context: Context, message: Message) -> None:
            calls.append(message.as_string())
            if message.as_string() == "hold":
                await gate.wait()

        async with serving(functions, db) as (server, runtime):
            runtime.store.conn.execute("PRAGMA busy_timeout = 100")
            x, z = Address("com.example/fn", "x"), Address("com.example/fn", "z")
            await runtime.send(x, make_value("string", "hold"))  # the last batch taken
            await until(lambda: calls == ["hold"])
            runtime.engine.send(z, make_value("string", "queued"))  # the dispatcher not woken
            async with database_locked(db):
                runtime._wake.set()  # taking z's message fails while the lock is held
                await until(lambda: caplog.text.count("taking batches failed") >= 3)
            gate.set()
            await runtime.wait_until_idle(timeout=10)
            assert sorted(calls) == ["hold", "queued"]
            assert server.requests == 2
            assert list(runtime.failures) == [] and runtime.stuck() == []

    run(scenario())


def _reply(*parts: Callable[[Any], None]) -> Any:
    response = protocol.FromFunction()
    for part in parts:
        part(response)
    return response


def cancel(token: str) -> Callable[[Any], None]:
    def add(response: Any) -> None:
        response.invocation_result.delayed_invocations.add(
            is_cancellation_request=True, cancellation_token=token
        )

    return add


@pytest.mark.parametrize(
    "good",
    [
        # the longest delay (2**62 ms: now + delay fits SQLite's 64-bit integers), and a
        # cancellation (it names no target)
        message_to("com.example/fn", delayed=True, delay_in_ms=2**62),
        cancel("t"),
        # an unknown egress is for the engine to refuse; the modes that exist
        lambda r: egress(r, "com.example/nowhere", "io.statefun.types/string", STRING),
        missing_state_with_mode(0),
        missing_state_with_mode(1),
        missing_state_with_mode(2),
        lambda r: egress(r, "com.example/stream", KINESIS_RECORD, bytes(
            protocol.KinesisEgressRecord(stream="s", partition_key="p").SerializeToString())),
    ],
    ids=["longest-delay", "cancellation", "unknown-egress", "mode-none", "mode-after-write",
         "mode-after-invoke", "kinesis-record"],
)  # fmt: skip
def test_check_reply_passes_what_the_runtime_takes(good: Callable[[Any], None]) -> None:
    module = parse_module(module_yaml("http://127.0.0.1:1/statefun", extra=KINESIS))
    check_reply(TARGET, _reply(message_to("com.example/fn"), good), module)


def test_check_reply_refuses_a_delay_one_past_the_longest() -> None:
    module = parse_module(module_yaml("http://127.0.0.1:1/statefun"))
    assert MAX_DELAY_MS == 2**62
    too_long = message_to("com.example/fn", delayed=True, delay_in_ms=2**62 + 1)
    with pytest.raises(InvalidReplyError, match=f"sent a delay of {2**62 + 1} ms"):
        check_reply(TARGET, _reply(too_long), module)


def test_a_refused_egress_record_is_named_whole_with_its_sender() -> None:
    """The failure as it is reported and logged (found unchecked by mutation testing)."""
    module = parse_module(module_yaml("http://127.0.0.1:1/statefun"))
    string = _reply(lambda r: egress(r, "com.example/out", "io.statefun.types/string", STRING))
    with pytest.raises(InvalidReplyError) as caught:
        check_reply(TARGET, string, module)
    assert str(caught.value) == (f"{TARGET} sent a 'io.statefun.types/string' to egress "
                                 f"com.example/out, which takes {KAFKA_RECORD} only")  # fmt: skip
    garbled = _reply(lambda r: egress(r, "com.example/out", KAFKA_RECORD, b"\xff\xff\xff"))
    with pytest.raises(InvalidReplyError) as caught:
        check_reply(TARGET, garbled, module)
    assert str(caught.value).startswith(
        f"{TARGET} sent egress com.example/out a {KAFKA_RECORD} that does not parse: "
    )


PLAYGROUND = """
---
kind: io.statefun.playground.v1/egress
spec: {port: 8091, topics: [greetings]}
"""
PLAYGROUND_EGRESS = "io.statefun.playground/egress"


@pytest.mark.parametrize(
    ("typename", "value", "problem"),
    [
        ("io.statefun.types/string", STRING,
         "a 'io.statefun.types/string' to egress io.statefun.playground/egress, which takes "
         "io.statefun.playground/EgressRecord only"),
        (PLAYGROUND_RECORD, b"\xff", 'a record that is not JSON {"topic": ..., "payload": ...}'),
        (PLAYGROUND_RECORD, b'["greetings", "hi"]',
         "a record that is not a JSON object {\"topic\": ..., \"payload\": ...}: "
         "['greetings', 'hi']"),
        (PLAYGROUND_RECORD, b'{"topic": "greetings", "payload": 1}',
         "a record that needs a string topic and a string payload, got "
         "{'topic': 'greetings', 'payload': 1}"),
    ],
)  # fmt: skip
def test_check_reply_refuses_what_the_playground_egress_can_not_give(
    typename: str, value: bytes, problem: str
) -> None:
    """The image fails its job on each; here the reply is refused, and says why."""
    module = parse_module(module_yaml("http://127.0.0.1:1/statefun", extra=PLAYGROUND))
    good = b'{"topic": "greetings", "payload": "hi"}'
    check_reply(TARGET, _reply(lambda r: egress(r, PLAYGROUND_EGRESS, PLAYGROUND_RECORD, good)),
                module)  # fmt: skip
    with pytest.raises(InvalidReplyError) as refused:
        check_reply(TARGET, _reply(lambda r: egress(r, PLAYGROUND_EGRESS, typename, value)), module)
    assert str(refused.value).endswith(problem), refused.value
