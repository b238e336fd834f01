"""End to end: a real function server, the local runtime, a real SQLite file."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from statefun_local import LocalRuntime, make_value, parse_module

from statefun_core import (
    Context,
    IntType,
    Message,
    StatefulFunctions,
    StringType,
    ValueSpec,
    kafka_egress_message,
    message_builder,
    protocol,
)
from statefun_core.engine import Address, Batch, ExpireMode, ManualClock

from .conftest import FunctionServer, module_yaml, run, serving


def greeter_functions() -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind("com.example/greeter", specs=[ValueSpec("seen_count", IntType)])
    def greeter(context: Context, message: Message) -> None:
        name = message.as_string()
        seen = (context.storage.seen_count or 0) + 1
        context.storage.seen_count = seen
        context.send(
            message_builder(
                "com.example/inbox", name, str_value=f"Hello {name} for the {seen}th time!"
            )
        )

    @functions.bind("com.example/inbox")
    def inbox(context: Context, message: Message) -> None:
        context.send_egress(
            kafka_egress_message(
                "com.example/out",
                topic="greetings",
                key=context.address.id,
                value=message.as_string(),
            )
        )

    return functions


def string(text: str):
    return make_value("string", text)


def test_greeter_end_to_end(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(greeter_functions(), tmp_path / "db.sqlite") as (_, runtime):
            for name in ["Ann", "Bob", "Ann"]:
                await runtime.send(Address("com.example/greeter", name), string(name))
            await runtime.wait_until_idle()
            records = [r["record"]["kafka"] for r in runtime.egress_records()]
            assert sorted((r["key"], r["value"]) for r in records) == [
                ("Ann", "Hello Ann for the 1th time!"),
                ("Ann", "Hello Ann for the 2th time!"),
                ("Bob", "Hello Bob for the 1th time!"),
            ]
            assert {r["topic"] for r in records} == {"greetings"}
            state = runtime.inspect(Address("com.example/greeter", "Ann"))["state"]
            assert state["seen_count"]["value"] == 2
            assert state["seen_count"]["type"] == "io.statefun.types/int"

    run(scenario())


def test_each_reply_is_parsed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The transport parses a reply (a bad one is retried), and hands the message on to the
    runtime's own checks and to the engine: one ``FromFunction`` parse per reply."""
    parses = 0
    from_string = protocol.FromFunction.FromString
    parse_from_string = protocol.FromFunction.ParseFromString

    def counted_from_string(data: bytes) -> Any:
        nonlocal parses
        parses += 1
        return from_string(data)

    def counted_parse_from_string(self: Any, data: bytes) -> int:
        nonlocal parses
        parses += 1
        return int(parse_from_string(self, data))

    monkeypatch.setattr(protocol.FromFunction, "FromString", staticmethod(counted_from_string))
    monkeypatch.setattr(protocol.FromFunction, "ParseFromString", counted_parse_from_string)

    async def scenario() -> None:
        async with serving(greeter_functions(), tmp_path / "db.sqlite") as (server, runtime):
            for name in ["Ann", "Bob", "Ann"]:
                await runtime.send(Address("com.example/greeter", name), string(name))
            await runtime.wait_until_idle()
            assert len(runtime.egress_records()) == 3
            # discovery rounds, greetings and the inbox's egress: every reply, once each
            assert server.requests >= 6
            assert parses == server.requests

    run(scenario())


def test_state_discovery_registers_specs_and_resends(tmp_path: Path) -> None:
    functions = StatefulFunctions()
    seen: list[str] = []

    @functions.bind("com.example/fn", specs=[ValueSpec("a", StringType), ValueSpec("b", IntType)])
    def fn(context: Context, message: Message) -> None:
        seen.append(message.as_string())
        context.storage.a = message.as_string()
        context.storage.b = len(seen)

    async def scenario() -> None:
        async with serving(functions, tmp_path / "db.sqlite") as (server, runtime):
            await runtime.send(Address("com.example/fn", "x"), string("first"))
            await runtime.wait_until_idle()
            # one discovery round trip, then the same message again with both states
            assert server.requests == 2
            assert seen == ["first"]
            assert sorted(runtime.store.specs_get("com.example/fn")) == ["a", "b"]
            await runtime.send(Address("com.example/fn", "x"), string("second"))
            await runtime.wait_until_idle()
            assert server.requests == 3
            state = runtime.inspect(Address("com.example/fn", "x"))["state"]
            assert state["a"]["value"] == "second"
            assert state["b"]["value"] == 2

    run(scenario())


def test_state_expires_after_write(tmp_path: Path) -> None:
    functions = StatefulFunctions()
    counts: list[int] = []

    @functions.bind(
        "com.example/fn",
        specs=[ValueSpec("count", IntType, expire_after_write=timedelta(milliseconds=300))],
    )
    def fn(context: Context, message: Message) -> None:
        count = (context.storage.count or 0) + 1
        context.storage.count = count
        counts.append(count)

    async def scenario() -> None:
        clock = ManualClock(1_000_000)
        async with serving(functions, tmp_path / "db.sqlite", clock=clock) as (_, runtime):
            target = Address("com.example/fn", "x")
            await runtime.send(target, string("1"))
            await runtime.wait_until_idle()
            clock.advance(200)
            await runtime.send(target, string("2"))  # written again: 300 ms from here
            await runtime.wait_until_idle()
            clock.advance(299)
            assert runtime.inspect(target)["state"]["count"]["expired"] is False
            clock.advance(1)
            assert runtime.inspect(target)["state"]["count"]["expired"] is True
            await runtime.send(target, string("3"))
            await runtime.wait_until_idle()
            assert counts == [1, 2, 1]

    run(scenario())


def test_delayed_message_delivered_and_cancelled_one_not(tmp_path: Path) -> None:
    functions = StatefulFunctions()
    received: list[str] = []

    @functions.bind("com.example/fn")
    def fn(context: Context, message: Message) -> None:
        text = message.as_string()
        if text == "start":
            for word, token in (("kept", "t-kept"), ("cancelled", "t-cancelled")):
                context.send_after(
                    timedelta(seconds=1),
                    message_builder("com.example/fn", "x", str_value=word),
                    cancellation_token=token,
                )
        elif text == "cancel":
            context.cancel_delayed_message("t-cancelled")
        else:
            received.append(f"{text} from {context.caller.id if context.caller else None}")

    async def scenario() -> None:
        async with serving(functions, tmp_path / "db.sqlite") as (_, runtime):
            target = Address("com.example/fn", "x")
            await runtime.send(target, string("start"))
            await runtime.wait_until_idle()
            timers = runtime.inspect(target)["timers"]
            assert sorted(t["cancellation_token"] for t in timers) == ["t-cancelled", "t-kept"]
            await runtime.send(target, string("cancel"))
            await runtime.wait_until_idle(timers=True)
            assert received == ["kept from x"]
            assert runtime.inspect(target)["timers"] == []

    run(scenario())


def test_delayed_messages_due_together_reach_an_idle_address_one_at_a_time(
    tmp_path: Path,
) -> None:
    """Two senders' delayed messages fire at the same instant: the first goes alone, so the
    second's failure does not take it down (protocol.md §4.3)."""
    functions = StatefulFunctions()

    @functions.bind("com.example/sender")
    def sender(context: Context, message: Message) -> None:
        context.send_after(
            timedelta(milliseconds=100),
            message_builder("com.example/counter", "c", str_value=context.address.id),
        )

    @functions.bind("com.example/counter", specs=[ValueSpec("n", IntType)])
    def counter(context: Context, message: Message) -> None:
        if message.as_string() == "bad":
            raise RuntimeError("bad message")
        context.storage.n = (context.storage.n or 0) + 1

    async def scenario() -> None:
        clock = ManualClock(1_000_000)
        async with serving(
            functions, tmp_path / "db.sqlite", clock=clock, call="100ms", failure_pause=30
        ) as (_, runtime):
            target = Address("com.example/counter", "c")
            await runtime.send(target, string("warm-up"))  # the state discovered
            for sender_id in ("a", "bad"):  # one after the other: a's timer is the older
                await runtime.send(Address("com.example/sender", sender_id), string("go"))
                await runtime.wait_until_idle()
            assert [t.due_ms for t in runtime.engine.pending_timers()] == [1_000_100] * 2
            clock.advance(100)
            for _ in range(1000):  # ten seconds at most
                if runtime.failures:
                    break
                await asyncio.sleep(0.01)
            (failure,) = runtime.failures
            assert (failure.address, failure.messages) == ("com.example/counter/c", 1)
            assert runtime.inspect(target)["state"]["n"]["value"] == 2  # a's message applied

    run(scenario())


def test_retries_after_two_500s_without_losing_or_reordering(tmp_path: Path) -> None:
    functions = StatefulFunctions()
    received: list[str] = []

    @functions.bind("com.example/fn")
    def fn(context: Context, message: Message) -> None:
        received.append(message.as_string())

    def fail_twice(n: int) -> web.Response | None:
        return web.Response(status=500, text="boom") if n <= 2 else None

    async def scenario() -> None:
        async with serving(functions, tmp_path / "db.sqlite", fault=fail_twice) as (
            server,
            runtime,
        ):
            target = Address("com.example/fn", "x")
            for i in range(5):
                await runtime.send(target, string(str(i)))
            await runtime.wait_until_idle()
            assert received == ["0", "1", "2", "3", "4"]
            assert server.requests >= 3
            assert list(runtime.failures) == []

    run(scenario())


def test_a_call_that_finally_fails_is_a_visible_failure(tmp_path: Path) -> None:
    """Listed with its error, its message kept in flight; wait_until_idle gives up on it."""
    functions = StatefulFunctions()

    @functions.bind("com.example/fn")
    def fn(context: Context, message: Message) -> None:
        pass

    def always_500(n: int) -> web.Response:
        return web.Response(status=503, text="down for maintenance")

    async def scenario() -> None:
        async with serving(
            functions, tmp_path / "db.sqlite", fault=always_500, call="100ms", failure_pause=30
        ) as (_, runtime):
            target = Address("com.example/fn", "x")
            await runtime.send(target, string("lost?"))
            while not runtime.failures:
                await asyncio.sleep(0.02)
            failure = runtime.failures[0]
            assert failure.address == "com.example/fn/x"
            assert "HTTP 503" in failure.error and "down for maintenance" in failure.error
            assert runtime.status()["failures"][0]["address"] == "com.example/fn/x"
            # not dropped: the message is still in flight, to be sent again
            assert [m["value"] for m in runtime.inspect(target)["in_flight"]] == ["lost?"]
            with pytest.raises(TimeoutError, match=r"did not go idle within 0\.3 s"):
                # bounded: a runtime that never gives up fails here instead of hanging
                await asyncio.wait_for(runtime.wait_until_idle(timeout=0.3), 20)

    run(scenario())


def test_per_address_order_under_concurrency(tmp_path: Path) -> None:
    functions = StatefulFunctions()
    seen: dict[str, list[int]] = {}

    @functions.bind("com.example/fn", specs=[ValueSpec("last", IntType)])
    async def fn(context: Context, message: Message) -> None:
        await asyncio.sleep(0.001)  # let other addresses' batches interleave
        value = int(message.as_string())
        seen.setdefault(context.address.id, []).append(value)
        context.storage.last = value

    async def scenario() -> None:
        async with serving(functions, tmp_path / "db.sqlite") as (_, runtime):

            async def producer(address_id: str) -> None:
                for i in range(40):
                    await runtime.send(Address("com.example/fn", address_id), string(str(i)))
                    if i % 7 == 0:
                        await asyncio.sleep(0)

            await asyncio.gather(*(producer(f"a{k}") for k in range(10)))
            await runtime.wait_until_idle()
        assert seen == {f"a{k}": list(range(40)) for k in range(10)}

    run(scenario())


def test_unknown_egress_is_a_failure_not_a_drop(tmp_path: Path) -> None:
    functions = StatefulFunctions()

    @functions.bind("com.example/fn")
    def fn(context: Context, message: Message) -> None:
        context.send_egress(kafka_egress_message("com.example/nope", topic="t", value="v"))

    async def scenario() -> None:
        async with serving(functions, tmp_path / "db.sqlite", failure_pause=30) as (_, runtime):
            await runtime.send(Address("com.example/fn", "x"), string("go"))
            while not runtime.failures:
                await asyncio.sleep(0.02)
            assert "com.example/nope" in runtime.failures[0].error
            assert runtime.egress_records() == []

    run(scenario())


def test_state_and_mailbox_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"

    async def scenario() -> None:
        async with serving(greeter_functions(), db) as (_, runtime):
            await runtime.send(Address("com.example/greeter", "Ann"), string("Ann"))
            await runtime.wait_until_idle()
        async with serving(greeter_functions(), db) as (_, runtime):
            await runtime.send(Address("com.example/greeter", "Ann"), string("Ann"))
            await runtime.wait_until_idle()
            values = [r["record"]["kafka"]["value"] for r in runtime.egress_records()]
            assert values == ["Hello Ann for the 1th time!", "Hello Ann for the 2th time!"]

    run(scenario())


def test_a_restart_forgets_the_state_specs_and_keeps_the_values(tmp_path: Path) -> None:
    """Protocol §5: registered specs are lost on restart, so a new expiration takes effect;
    the stored value is sent again once its name is registered with the same type, and
    refused under another type (§6)."""
    db = tmp_path / "db.sqlite"
    clock = ManualClock(1_000_000)
    target = Address("com.example/fn", "x")
    seen: list[object] = []

    def counter(spec: ValueSpec) -> StatefulFunctions:
        functions = StatefulFunctions()

        @functions.bind("com.example/fn", specs=[spec])
        def fn(context: Context, message: Message) -> None:
            seen.append(context.storage.count)
            context.storage.count = (context.storage.count or 0) + 1

        return functions

    async def scenario() -> None:
        expiring = ValueSpec("count", IntType, expire_after_write=timedelta(seconds=1))
        async with serving(counter(expiring), db, clock=clock) as (_, runtime):
            await runtime.send(target, string("1"))
            await runtime.wait_until_idle()
        # the function's new version keeps the count for good
        async with serving(counter(ValueSpec("count", IntType)), db, clock=clock) as (
            server,
            runtime,
        ):
            assert runtime.store.all_specs() == {}
            await runtime.send(target, string("2"))
            await runtime.wait_until_idle()
            assert server.requests == 2  # discovery again, then the message
            clock.advance(5000)
            await runtime.send(target, string("3"))
            await runtime.wait_until_idle()
            spec = runtime.store.specs_get("com.example/fn")["count"]
            assert spec.expire_mode == ExpireMode.NONE
        async with serving(counter(ValueSpec("count", StringType)), db, clock=clock,
                           failure_pause=30) as (_, runtime):  # fmt: skip
            await runtime.send(target, string("4"))
            while not runtime.failures:
                await asyncio.sleep(0.02)
            assert runtime.failures[0].error == (
                "StateTypeError: state 'count' of com.example/fn has values stored as "
                "io.statefun.types/int; it can not become io.statefun.types/string"
            )
            assert runtime.store.all_specs() == {}
        assert seen == [None, 1, 2]

    run(scenario())


def test_ingress_waits_while_an_address_has_max_num_batch_requests_buffered(
    tmp_path: Path,
) -> None:
    functions = StatefulFunctions()
    received: list[str] = []

    async def scenario() -> None:
        gate = asyncio.Event()

        @functions.bind("com.example/slow")
        async def slow(context: Context, message: Message) -> None:
            await gate.wait()
            received.append(message.as_string())

        async with serving(functions, tmp_path / "db.sqlite", max_batch=2) as (_, runtime):
            target = Address("com.example/slow", "x")
            await runtime.send(target, string("0"))
            while not runtime.inspect(target)["in_flight"]:
                await asyncio.sleep(0.01)
            for i in (1, 2):  # buffered behind the batch in flight: the threshold
                await runtime.send(target, string(str(i)))
            blocked = asyncio.ensure_future(runtime.send(target, string("3")))
            await asyncio.sleep(0.3)
            if blocked.done():
                gate.set()
            assert not blocked.done()
            assert len(runtime.inspect(target)["queued"]) == 2
            gate.set()
            await blocked
            await runtime.wait_until_idle()
        assert received == ["0", "1", "2", "3"]

    run(scenario())


def test_egress_jsonl_sink_resumes_without_repeating(tmp_path: Path) -> None:
    sink = tmp_path / "egress.jsonl"

    async def greet(name: str, expected_lines: int) -> None:
        async with serving(greeter_functions(), tmp_path / "db.sqlite", egress_jsonl=sink) as (
            _,
            runtime,
        ):
            await runtime.send(Address("com.example/greeter", name), string(name))
            await runtime.wait_until_idle()
            for _ in range(500):
                if sink.exists() and len(sink.read_text().splitlines()) >= expected_lines:
                    break
                await asyncio.sleep(0.01)

    run(greet("Ann", 1))
    run(greet("Bob", 2))
    lines = [json.loads(line) for line in sink.read_text().splitlines()]
    assert [line["record"]["kafka"]["value"] for line in lines] == [
        "Hello Ann for the 1th time!",
        "Hello Bob for the 1th time!",
    ]
    assert [line["seq"] for line in lines] == sorted({line["seq"] for line in lines})


def test_one_runtime_per_database(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(greeter_functions(), tmp_path / "db.sqlite") as (_, runtime):
            second = LocalRuntime(runtime.module, tmp_path / "db.sqlite", offline=True)
            with pytest.raises(RuntimeError, match="another statefun-local is running"):
                await second.start()

    run(scenario())


def test_a_failed_batch_is_delivered_once_the_function_is_back(tmp_path: Path) -> None:
    functions = StatefulFunctions()
    received: list[str] = []
    healthy = False

    @functions.bind("com.example/fn")
    def fn(context: Context, message: Message) -> None:
        received.append(message.as_string())

    def down_until_healthy(n: int) -> web.Response | None:
        return None if healthy else web.Response(status=503, text="down")

    async def scenario() -> None:
        nonlocal healthy
        async with serving(
            functions,
            tmp_path / "db.sqlite",
            fault=down_until_healthy,
            call="100ms",
            failure_pause=0.05,
        ) as (_, runtime):
            target = Address("com.example/fn", "x")
            await runtime.send(target, string("first"))
            await runtime.send(target, string("second"))
            while not runtime.failures:
                await asyncio.sleep(0.01)
            healthy = True
            await runtime.wait_until_idle()
            assert runtime.failures[0].address == "com.example/fn/x"
        assert received == ["first", "second"]

    run(scenario())


def test_send_all_queues_the_messages_and_the_read_position_together_or_neither(
    tmp_path: Path,
) -> None:
    """A connector's read position (``also``'s store writes) commits with its records: both
    are there after ``send_all``, and neither when ``also`` fails."""
    functions = StatefulFunctions()
    received: list[str] = []

    @functions.bind("com.example/fn")
    def fn(context: Context, message: Message) -> None:
        received.append(f"{context.address.id}:{message.as_string()}")

    async def scenario() -> None:
        async with serving(functions, tmp_path / "db.sqlite") as (_, runtime):
            x, y = Address("com.example/fn", "x"), Address("com.example/fn", "y")

            def position(value: int) -> Any:
                return lambda: runtime.store.meta_put("position", value)

            await runtime.send_all([(x, string("1"), None), (y, string("2"), None)],
                                   position(7))  # fmt: skip
            assert runtime.store.meta_get("position") == 7

            def position_then_crash() -> None:
                position(8)()
                raise RuntimeError("crash after the position")

            with pytest.raises(RuntimeError, match="crash after the position"):
                await runtime.send_all([(x, string("3"), None)], position_then_crash)
            assert runtime.store.meta_get("position") == 7
            await runtime.wait_until_idle()
            assert runtime.inspect(x)["queued"] == [] and runtime.inspect(x)["in_flight"] == []
        assert sorted(received) == ["x:1", "y:2"]

    run(scenario())


def test_finished_calls_are_not_kept(tmp_path: Path) -> None:
    """A long-running runtime keeps only the calls in progress, not every call it made."""

    async def scenario() -> None:
        async with serving(greeter_functions(), tmp_path / "db.sqlite") as (_, runtime):
            for i in range(20):
                await runtime.send(Address("com.example/greeter", f"g{i}"), string(f"g{i}"))
            await runtime.wait_until_idle()
            assert len(runtime.egress_records()) == 20
            for _ in range(500):  # the last call's task ends just after the runtime is idle
                if not runtime._calls:
                    break
                await asyncio.sleep(0.01)
            assert runtime._calls == set()

    run(scenario())


def test_a_message_for_a_function_type_the_module_no_longer_serves_is_a_visible_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch left in flight for a function type the restarted module has no endpoint for
    is not sent anywhere: the address fails, saying so, and keeps its message."""
    db = tmp_path / "db.sqlite"
    functions = StatefulFunctions()

    @functions.bind("com.example/fn")
    def fn(context: Context, message: Message) -> None:
        pass

    def always_503(n: int) -> web.Response:
        return web.Response(status=503, text="down")

    async def scenario() -> None:
        target = Address("com.example/fn", "x")
        down = serving(functions, db, fault=always_503, call="100ms", failure_pause=30)
        async with down as (_, runtime):
            await runtime.send(target, string("kept"))
            while not runtime.failures:
                await asyncio.sleep(0.02)
        async with FunctionServer(functions) as server:
            module = parse_module(module_yaml(server.url, functions="com.other/*"))
            async with LocalRuntime(module, db, failure_pause=0.05, offline=True) as runtime:
                for _ in range(500):  # ten seconds at most
                    if len(runtime.failures) >= 3:
                        break
                    await asyncio.sleep(0.02)
                assert len(runtime.failures) >= 3  # and again, after each pause
                assert {f.error for f in runtime.failures} == {
                    "no endpoint in the module serves 'com.example/fn'"}  # fmt: skip
                assert [m["value"] for m in runtime.inspect(target)["in_flight"]] == ["kept"]
                assert [entry["address"] for entry in runtime.stuck()] == [str(target)]
            assert server.requests == 0

    run(scenario())
    assert "handling the batch failed" not in caplog.text


def test_every_delivery_counts_towards_the_throughput(tmp_path: Path) -> None:
    """The page's messages per second: the deliveries of one second are counted together, and
    each of them once."""

    async def scenario() -> None:
        async with serving(greeter_functions(), tmp_path / "db.sqlite") as (_, runtime):
            for name in ["Ann", "Bob", "Cid", "Dan", "Eve", "Fay", "Gus", "Hal", "Ida", "Jo"]:
                await runtime.send(Address("com.example/greeter", name), string(name))
            await runtime.wait_until_idle()
            assert runtime.delivered == 20  # a greeting and its inbox message each
            assert sum(count for _, count in runtime._throughput) == 20
            # deliveries in a later second count for that second
            first = int(time.monotonic())
            while int(time.monotonic()) == first:
                await asyncio.sleep(0.05)
            later = int(time.monotonic())
            for name in ["Kim", "Lea", "Max"]:
                await runtime.send(Address("com.example/greeter", name), string(name))
            await runtime.wait_until_idle()
            assert sum(count for second, count in runtime._throughput if second >= later) == 6
            assert sum(count for _, count in runtime._throughput) == runtime.delivered == 26
            for _ in range(300):  # once the second of the deliveries is over
                if runtime.messages_per_second() > 0:
                    break
                await asyncio.sleep(0.05)
            assert runtime.messages_per_second() > 0

    run(scenario())


def test_an_address_that_recovers_is_no_longer_stuck_and_its_deliveries_count(
    tmp_path: Path, caplog: Any
) -> None:
    functions = StatefulFunctions()
    healthy = False

    @functions.bind("com.example/fn")
    def fn(context: Context, message: Message) -> None:
        pass

    def down_until_healthy(n: int) -> web.Response | None:
        return None if healthy else web.Response(status=503, text="down")

    async def scenario() -> None:
        nonlocal healthy
        async with serving(functions, tmp_path / "db.sqlite", fault=down_until_healthy,
                           call="100ms") as (_, runtime):  # fmt: skip
            target = Address("com.example/fn", "x")
            await runtime.send(target, string("first"))
            await runtime.send(target, string("second"))
            while not any(entry["attempts"] for entry in runtime.stuck()):  # a failed call
                await asyncio.sleep(0.01)
            healthy = True
            await runtime.wait_until_idle()
            assert runtime.delivered == 2
            assert runtime.delivered_by_type == {"com.example/fn": 2}
            assert all("HTTP 503: down" in f.error for f in runtime.failures)
            (stuck_rows,) = runtime.store.conn.execute("SELECT COUNT(*) FROM stuck").fetchone()
            assert stuck_rows == 0
            assert runtime.status()["failures"] == []  # recovered: no longer shown
        assert "handling the batch failed" not in caplog.text

    run(scenario())


def test_egress_jsonl_sink_writes_each_record_as_it_comes_in_utf_8(tmp_path: Path) -> None:
    sink = tmp_path / "egress.jsonl"

    async def lines(count: int) -> list[str]:
        for _ in range(500):  # ten seconds at most
            if sink.exists() and len(sink.read_text(encoding="utf-8").splitlines()) >= count:
                break
            await asyncio.sleep(0.02)
        return sink.read_text(encoding="utf-8").splitlines()

    async def scenario() -> None:
        db = tmp_path / "db.sqlite"
        async with serving(greeter_functions(), db, egress_jsonl=sink) as (_, runtime):
            for expected, name in enumerate(["Zoë", "Åsa"], start=1):
                await runtime.send(Address("com.example/greeter", name), string(name))
                await runtime.wait_until_idle()
                written = await lines(expected)  # while the runtime runs, not once it stops
                assert len(written) == expected
            assert "Hello Zoë for the 1th time!" in written[0]  # as UTF-8, not escaped
            assert "Hello Åsa for the 1th time!" in written[1]

    run(scenario())


def test_an_egress_jsonl_path_that_can_not_be_written_fails_the_start(tmp_path: Path) -> None:
    async def scenario() -> None:
        db, unwritable = tmp_path / "db.sqlite", tmp_path / "no" / "such" / "egress.jsonl"
        with pytest.raises(FileNotFoundError):
            async with serving(greeter_functions(), db, egress_jsonl=unwritable):
                pass

    run(scenario())


def test_the_log_reports_the_first_failed_attempt_of_a_call_and_every_tenth(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    functions = StatefulFunctions()
    received: list[str] = []

    @functions.bind("com.example/fn")
    def fn(context: Context, message: Message) -> None:
        received.append(message.as_string())

    def fail_ten_times(n: int) -> web.Response | None:
        return web.Response(status=500, text="boom") if n <= 10 else None

    async def scenario() -> None:
        async with serving(functions, tmp_path / "db.sqlite", fault=fail_ten_times,
                           call="60s") as (server, runtime):  # fmt: skip
            await runtime.send(Address("com.example/fn", "x"), string("at last"))
            await runtime.wait_until_idle()
            assert server.requests == 11
            assert list(runtime.failures) == []  # retried within the call, not a failure

    run(scenario())
    assert received == ["at last"]
    reported = [re.search(r"^(.*): POST .*: attempt (\d+) failed \(", m) for m in caplog.messages]
    # each names the address: an endpoint of "com.example/*" has one URL for every function
    assert [(found[1], int(found[2])) for found in reported if found] == [
        ("com.example/fn/x", 1),
        ("com.example/fn/x", 10),
    ]


def test_while_a_function_s_calls_fail_one_address_s_attempts_are_logged_and_the_rest_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A function server down while many addresses wait (a restart, a deploy) logged the 1st
    and every 10th failed attempt of every address: two warnings per address for one outage
    (1,000 addresses, 3 s down: 2,000 lines). One address's attempts are logged, saying how
    many others fail too, and when the server answers again, how many had failed."""
    functions = StatefulFunctions()
    received: list[str] = []

    @functions.bind("com.example/fn")
    def fn(context: Context, message: Message) -> None:
        received.append(context.address.id)

    ids = [f"id{n}" for n in range(5)]
    failed: set[str] = set()

    class DownUntilEveryAddressFailed(FunctionServer):
        """Answers 503 (a proxy's, for a server gone) until a call of each of ``ids`` failed."""

        async def _handle(self, request: web.Request) -> web.StreamResponse:
            if len(failed) < len(ids):
                target = protocol.ToFunction.FromString(await request.read()).invocation.target
                failed.add(target.id)
                return web.Response(status=503, text="down")
            return await super()._handle(request)

    async def scenario() -> str:
        async with DownUntilEveryAddressFailed(functions) as server:
            module = parse_module(module_yaml(server.url, call="60s"))
            async with LocalRuntime(module, tmp_path / "db.sqlite", offline=True) as runtime:
                await runtime.send_all([(Address("com.example/fn", id_), string("x"), None)
                                        for id_ in ids])  # fmt: skip
                await runtime.wait_until_idle()
                assert sorted(received) == ids
                assert list(runtime.failures) == []  # retried within the call
                return server.url

    caplog.set_level(logging.INFO, logger="statefun_local")
    url = run(scenario())
    warned = [re.search(r"^com.example/fn/(id\d): POST .*: attempt \d+ failed \(HTTP 503: down\); "
                        r"retrying", m) for m in caplog.messages]  # fmt: skip
    assert len({found[1] for found in warned if found}) == 1
    assert (
        f"com.example/fn: POST {url} answered again; the calls of 4 other address(es) had "
        "failed meanwhile (retried, not logged one by one)"
    ) in caplog.messages


def test_while_a_function_server_stays_down_the_calls_counted_are_parked_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Down longer than a call's budget, every address's batch failed and was parked: an
    error per address and cycle (200 addresses, 10 s: 600 lines), and an info line for each
    delivered again. The calls counted while another address's attempts are logged are
    parked at debug level too, and delivered again at debug level."""
    functions = StatefulFunctions()
    received: list[str] = []

    @functions.bind("com.example/fn")
    def fn(context: Context, message: Message) -> None:
        received.append(context.address.id)

    ids = [f"id{n}" for n in range(8)]
    down = True

    def fault(_: int) -> Any:
        return web.Response(status=503, text="down") if down else None

    async def scenario() -> int:
        nonlocal down
        async with serving(functions, tmp_path / "db.sqlite", fault=fault, call="200ms",
                           failure_pause=0.05) as (_, runtime):  # fmt: skip
            await runtime.send_all([(Address("com.example/fn", id_), string("x"), None)
                                    for id_ in ids])  # fmt: skip
            while len({failure.address for failure in runtime.failures}) < len(ids):
                await asyncio.sleep(0.05)
            down = False
            await runtime.wait_until_idle()
            assert sorted(received) == ids
            return len(runtime.failures)

    caplog.set_level(logging.INFO, logger="statefun_local")
    parked = run(scenario())
    errors = [m for m in caplog.messages if re.match(r"com.example/fn/id\d: batch of", m)]
    again = [m for m in caplog.messages if m.endswith("delivered again after failing")]
    assert parked >= len(ids)
    assert 1 <= len(errors) < len(ids) and len(again) < len(ids), (parked, errors, again)


def test_a_function_that_fails_for_each_address_is_logged_for_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A function's own failure (its 500: a message it cannot take) is each address's: not
    counted under another address's attempts as a server that is down is."""
    functions = StatefulFunctions()

    @functions.bind("com.example/fn")
    def fn(context: Context, message: Message) -> None:
        raise ValueError("cannot take it")

    ids = ["id0", "id1", "id2"]

    async def scenario() -> None:
        async with serving(functions, tmp_path / "db.sqlite", call="300ms",
                           failure_pause=0.05) as (_, runtime):  # fmt: skip
            await runtime.send_all([(Address("com.example/fn", id_), string("x"), None)
                                    for id_ in ids])  # fmt: skip
            while len({failure.address for failure in runtime.failures}) < len(ids):
                await asyncio.sleep(0.05)

    caplog.set_level(logging.INFO, logger="statefun_local")
    run(scenario())
    first = {
        found[1]
        for m in caplog.messages
        if (found := re.match(r"com.example/fn/(id\d): POST .*: attempt 1 failed", m))
    }
    parked = {
        found[1]
        for m in caplog.messages
        if (found := re.match(r"com.example/fn/(id\d): batch of 1 message", m))
    }
    assert first == parked == set(ids)


def test_a_wait_until_idle_that_times_out_says_what_keeps_the_runtime_busy(
    tmp_path: Path,
) -> None:
    """Here a greeting sent to a function the server does not bind: its address, and why its
    call has not gone through."""

    async def scenario() -> None:
        functions = StatefulFunctions()

        @functions.bind("com.example/greeter")
        def greeter(context: Context, message: Message) -> None:
            context.send(message_builder("com.example/inbox", "Ann", str_value="hi"))

        async with serving(functions, tmp_path / "db.sqlite", call="60s") as (_, runtime):
            await runtime.send(Address("com.example/greeter", "Ann"), string("Ann"))
            with pytest.raises(TimeoutError) as waited:
                await runtime.wait_until_idle(timeout=1.0)
        assert str(waited.value).startswith(
            "the runtime did not go idle within 1.0 s: 1 address(es) in flight "
            "(com.example/inbox/Ann ("
        )
        assert "attempt(s) failed, the last: HTTP 404: " in str(waited.value)
        assert str(waited.value).endswith("1 message(s) queued (in flight included), 0 delayed")

    run(scenario())


def test_wait_egress_waits_its_whole_timeout_for_a_record(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(greeter_functions(), tmp_path / "db.sqlite") as (_, runtime):
            waiting = asyncio.ensure_future(runtime.wait_egress(0, timeout=0.5))
            await asyncio.sleep(0)  # its first look: nothing yet, so it waits
            assert not waiting.done()
            assert await asyncio.wait_for(waiting, 30) == []  # half a second later: nothing
            waiting = asyncio.ensure_future(runtime.wait_egress(0, timeout=30))
            await runtime.send(Address("com.example/greeter", "Ann"), string("Ann"))
            (record,) = await asyncio.wait_for(waiting, 30)
            assert record["record"]["kafka"]["value"] == "Hello Ann for the 1th time!"

    run(scenario())


def test_an_idle_runtime_keeps_no_batch_it_called_with(tmp_path: Path) -> None:
    """A call's connection, kept in the pool for the next call, holds the context of the task
    that opened it: the batch that task called with (its request, state included) must not be
    in it, or each pooled connection keeps a request alive while the runtime is idle."""
    functions = StatefulFunctions()

    @functions.bind("com.example/echo")
    def echo(context: Context, message: Message) -> None:
        pass

    def batches() -> set[int]:
        gc.collect()
        return {id(o) for o in gc.get_objects() if type(o) is Batch}

    async def scenario() -> None:
        earlier = batches()  # what other tests in this process left
        async with serving(functions, tmp_path / "db.sqlite") as (_, runtime):
            # sent together: called at once, over as many connections
            for number in range(60):
                await runtime.send(Address("com.example/echo", f"id{number}"), string("x"))
            await runtime.wait_until_idle()
            kept = batches() - earlier
            # (60 before: each held in the context of the connection its call opened)
            assert not kept, f"{len(kept)} batches kept by an idle runtime"

    run(scenario())
