"""The HTTP API's answers pinned down field by field, and the inspection views they serve
(found missing by mutation testing of ``server.py`` and ``inspection.py``): real HTTP on
127.0.0.1, real SQLite files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Optional

import aiohttp
import pytest
from aiohttp import web
from statefun_local import make_value

from statefun_core import Context, Message, StatefulFunctions
from statefun_core.engine import Address, TypedValue

from .conftest import kafka_ingress, run, serving
from .test_edges import JSON
from .test_server_and_cli import echo_functions, serve_runtime

# --- what the inspection views show ------------------------------------------------------------

STRING = "io.statefun.types/string"
INT = "io.statefun.types/int"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _string(text: str) -> Any:
    from statefun_core.engine import TypedValue

    return TypedValue(STRING, b"\n" + bytes([len(text)]) + text.encode())


def test_parse_address_wants_three_parts_the_id_alone_may_be_empty() -> None:
    from statefun_local.inspection import parse_address

    assert parse_address("com.example/fn/a/b") == Address("com.example/fn", "a/b")
    assert parse_address("com.example/fn/") == Address("com.example/fn", "")
    for text in ["com.example/fn", "com.example//x", "/fn/x", "x"]:
        with pytest.raises(ValueError) as caught:
            parse_address(text)
        assert str(caught.value) == f"expected an address 'namespace/type/id', got {text!r}"


def test_address_view_shows_state_messages_in_flight_queued_and_timers(tmp_path: Path) -> None:
    """Every field of an address' view, read from a real database file: state decoded, expired
    and undeclared values marked, declared states without a value listed; the batch in flight
    apart from the messages queued behind it; the delayed messages for this address only,
    overdue ones due in 0 ms."""
    from statefun_local.inspection import address_view
    from statefun_local.store import SqliteStore

    from statefun_core.engine import (
        Envelope,
        ExpireMode,
        StateEntry,
        StateSpec,
        Timer,
        TraceContext,
    )

    fn = Address("com.example/fn", "a")
    other = Address("com.example/fn", "b")
    caller = Address("com.example/caller", "c")
    store = SqliteStore.open(tmp_path / "db.sqlite")
    try:
        with store.transaction():
            store.spec_add("com.example/fn", StateSpec("kept", INT))
            store.spec_add("com.example/fn", StateSpec("brief", INT, ExpireMode.AFTER_WRITE, 100))
            store.spec_add("com.example/fn", StateSpec("unset", STRING))
            store.mark_called("com.example/fn")
            seven = make_value("int", 7).value
            store.state_put(fn, "kept", StateEntry(INT, seven, 1_000, 1_000))
            store.state_put(fn, "brief", StateEntry(INT, seven, 1_000, 1_000))
            store.state_put(fn, "gone", StateEntry(STRING, _string("old").value, 1_000, 1_000))
            first = store.mailbox_append(
                Envelope(fn, _string("one"), caller=caller, trace=TraceContext(TRACEPARENT))
            )
            second = store.mailbox_append(Envelope(fn, _string("two")))
            store.in_flight_set(fn, first)
            store.timer_add(Timer(5_000, fn, _string("later"), caller, token="t", scope="c"))
            store.timer_add(Timer(1_050, fn, _string("overdue"), caller))
            store.timer_add(Timer(5_000, other, _string("elsewhere"), caller))
        view = address_view(store, fn, 1_100)
        timers = sorted(view.pop("timers"), key=lambda timer: timer["due_in_ms"])
    finally:
        store.close()
    assert view == {
        "address": "com.example/fn/a",
        "state": {
            "brief": {"type": INT, "value": 7, "expired": True, "declared": True},
            "gone": {"type": STRING, "value": "old", "expired": False, "declared": False},
            "kept": {"type": INT, "value": 7, "expired": False, "declared": True},
        },
        "without_value": {"unset": {"type": STRING}},
        "in_flight": [
            {
                "seq": first,
                "caller": "com.example/caller/c",
                "type": STRING,
                "value": "one",
                "traceparent": TRACEPARENT,
            }
        ],
        "queued": [
            {"seq": second, "caller": None, "type": STRING, "value": "two", "traceparent": None}
        ],
        "totals": {"in_flight": 1, "queued": 1, "timers": 2},
    }
    assert [list(timer) for timer in timers] == [
        ["seq", "target", "due_in_ms", "caller", "cancellation_token", "type", "value"]
    ] * 2
    assert [{key: value for key, value in timer.items() if key != "seq"} for timer in timers] == [
        {
            "target": "com.example/fn/a",
            "due_in_ms": 0,
            "caller": "com.example/caller/c",
            "cancellation_token": None,
            "type": STRING,
            "value": "overdue",
        },
        {
            "target": "com.example/fn/a",
            "due_in_ms": 3_900,
            "caller": "com.example/caller/c",
            "cancellation_token": "t",
            "type": STRING,
            "value": "later",
        },
    ]
    assert all(isinstance(timer["seq"], int) and timer["seq"] > 0 for timer in timers)


def test_address_view_with_no_batch_in_flight_shows_every_message_queued(tmp_path: Path) -> None:
    from statefun_local.inspection import address_view
    from statefun_local.store import SqliteStore

    from statefun_core.engine import Envelope

    fn = Address("com.example/fn", "a")
    store = SqliteStore.open(tmp_path / "db.sqlite")
    try:
        with store.transaction():
            for text in ("one", "two"):
                store.mailbox_append(Envelope(fn, _string(text)))
        view = address_view(store, fn, 0)
    finally:
        store.close()
    assert view["in_flight"] == [] and view["state"] == {} and view["timers"] == []
    assert [message["value"] for message in view["queued"]] == ["one", "two"]


def test_egress_view_shows_the_trace_context_only_where_there_is_one() -> None:
    from statefun_local.inspection import egress_view

    from statefun_core.engine import EgressRecord, TraceContext

    plain = EgressRecord("com.example/out", _string("a"), seq=3)
    traced = EgressRecord("com.example/out", _string("b"), seq=4, trace=TraceContext(TRACEPARENT))
    with_state = EgressRecord(
        "com.example/out", _string("c"), seq=5, trace=TraceContext(TRACEPARENT, "k=v")
    )
    assert egress_view(plain) == {
        "seq": 3,
        "egress": "com.example/out",
        "type": STRING,
        "record": "a",
        "traceparent": None,
        "tracestate": None,
    }
    assert egress_view(traced) == {
        "seq": 4,
        "egress": "com.example/out",
        "type": STRING,
        "record": "b",
        "traceparent": TRACEPARENT,
        "tracestate": None,
    }
    assert (egress_view(with_state)["traceparent"], egress_view(with_state)["tracestate"]) == (
        TRACEPARENT,
        "k=v",
    )


def test_address_ids_pages_the_ids_with_state_messages_or_timers(tmp_path: Path) -> None:
    """The ids of a function type in order, from the state, the mailbox and the timers (each
    once), after ``after``; 100 at most unless told."""
    from statefun_local.inspection import address_ids
    from statefun_local.store import SqliteStore

    from statefun_core.engine import Envelope, StateEntry, Timer

    fn = "com.example/fn"
    caller = Address("com.example/caller", "c")
    store = SqliteStore.open(tmp_path / "db.sqlite")
    try:
        with store.transaction():
            for n in range(101):
                store.mailbox_append(Envelope(Address(fn, f"m{n:03}"), _string("x")))
            store.state_put(Address(fn, "s"), "v", StateEntry(STRING, b"", 0, 0))
            store.state_put(Address(fn, "m000"), "v", StateEntry(STRING, b"", 0, 0))
            store.timer_add(Timer(0, Address(fn, "t"), _string("x"), caller))
            # an id before any letter: the first page starts at the very first id
            store.state_put(Address(fn, "0"), "v", StateEntry(STRING, b"", 0, 0))
            store.mailbox_append(Envelope(Address("com.example/other", "o"), _string("x")))
        first = address_ids(store, fn)
        rest = address_ids(store, fn, first[-1])
        assert address_ids(store, fn, "m050", limit=3) == ["m051", "m052", "m053"]
    finally:
        store.close()
    assert len(first) == 100 and first[:2] == ["0", "m000"] and first[-1] == "m098"
    assert rest == ["m099", "m100", "s", "t"]


# --- the HTTP API's answers --------------------------------------------------------------------


async def _until(condition: Any, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition did not hold in time")


def test_stuck_actions_answer_what_was_done_and_who_did_it(tmp_path: Path) -> None:
    """A retry while the runtime waits, a skip while the retried call is in progress (202,
    pending, done when the call fails), a retry during that call: each answer and the audit
    log's ``by`` (at most 40 characters of ``?by=``, ``api`` without one)."""
    from statefun_local import LocalRuntime, parse_module

    from .conftest import FunctionServer, module_yaml

    functions = StatefulFunctions()
    target = "com.example/fragile/a"

    def refuse_but_the_second(n: int) -> Optional[web.StreamResponse]:
        return None if n == 2 else web.Response(status=400, text="refused")

    async def scenario() -> tuple[list[tuple[int, Any]], list[Any]]:
        gate = asyncio.Event()

        @functions.bind("com.example/fragile")
        async def fragile(context: Context, message: Message) -> None:
            await gate.wait()
            raise RuntimeError("cannot digest")

        answers: list[tuple[int, Any]] = []
        async with FunctionServer(functions, refuse_but_the_second) as server:
            # OkHttp's transport: a 400 is not retried, each of those calls fails at once
            module = module_yaml(server.url, call="60s").replace(
                "call: 60s", "type: io.statefun.transports.v1/okhttp"
            )
            runtime = LocalRuntime(
                parse_module(module), tmp_path / "db.sqlite", offline=True, failure_pause=60
            )
            await runtime.start()
            runner, url = await serve_runtime(runtime)
            try:
                async with aiohttp.ClientSession() as session:

                    async def act(path: str) -> None:
                        async with session.post(f"{url}/api/stuck/{path}") as response:
                            if response.status in (200, 202):
                                answers.append((response.status, await response.json()))
                            else:
                                answers.append((response.status, await response.text()))

                    address = Address("com.example/fragile", "a")
                    await runtime.send(address, make_value("string", "x"))
                    await _until(lambda: address in runtime._waiting)
                    await act(f"retry/{target}")
                    await _until(lambda: server.requests == 2)  # the retry is in progress
                    await act(f"skip/{target}?by={'o' * 50}")
                    await act(f"retry/{target}?by=")
                    await act(f"burn/{target}")
                    gate.set()
                    await _until(lambda: not runtime.stuck())
                    await act(f"skip/{target}")
                    async with session.get(f"{url}/api/audit") as response:
                        audit = (await response.json())["audit"]
            finally:
                gate.set()
                await runner.cleanup()
                await runtime.stop()
        return answers, audit

    answers, audit = run(scenario())
    pending = answers[1]
    assert pending[0] == 202
    assert pending[1]["done"] == "pending" and pending[1]["address"] == target
    assert pending[1]["detail"].startswith(f"a call to {target} is in progress")
    assert answers[:1] + answers[2:] == [
        (200, {"address": target, "done": "retrying"}),
        (200, {"address": target, "done": "retrying", "detail": "a call was in progress already"}),
        (404, "no action 'burn'; use retry, skip, dead-letter\n"),
        (404, f"{target} is not stuck: no failing message to act on\n"),
    ]
    assert [(entry["action"], entry["by"]) for entry in reversed(audit)] == [
        ("retry", "api"),
        ("retry", "api"),
        ("skip", "o" * 40),
    ]


def test_records_and_ingress_answer_with_their_messages(tmp_path: Path) -> None:
    """``POST /records`` for a Kafka and a Kinesis ingress, ``POST /ingress``: what each
    answers, and a refused record's reason."""
    from statefun_core.types import StringType

    kinesis = """
---
kind: io.statefun.kinesis.v1/ingress
spec:
  id: com.example/stream
  awsRegion: {type: specific, id: us-west-1}
  streams:
    - {stream: names, valueType: io.statefun.types/string, targets: [com.example/echo]}
"""
    extra = kafka_ingress("io.statefun.types/string", "com.example/echo") + kinesis
    value = StringType.serializer().serialize("Ann")

    async def scenario() -> tuple[list[tuple[int, Any]], list[Any]]:
        answers: list[tuple[int, Any]] = []
        async with serving(echo_functions(), tmp_path / "db.sqlite", extra=extra) as (_, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                async with aiohttp.ClientSession() as session:
                    for path, data in [
                        ("records/com.example/names?topic=names&key=k1", value),
                        ("records/com.example/stream?stream=names&partition_key=k2", value),
                        ("ingress/com.example/echo/k3?typename=com.example/Raw", b"raw"),
                        ("records/com.example/stream?stream=other&partition_key=k2", value),
                    ]:
                        async with session.post(f"{url}/{path}", data=data) as response:
                            answers.append(
                                (
                                    response.status,
                                    await response.json()
                                    if response.status == 202
                                    else await response.text(),
                                )
                            )
                await runtime.wait_until_idle()
            finally:
                await runner.cleanup()
            return answers, runtime.egress_records()

    answers, records = run(scenario())
    assert answers[:3] == [
        (202, {"ingress": "com.example/names", "messages": [1]}),
        (202, {"ingress": "com.example/stream", "messages": [2]}),
        (202, {"target": "com.example/echo/k3", "type": "com.example/Raw", "seq": 3}),
    ]
    assert answers[3] == (
        400,
        "ingress 'com.example/stream' does not read 'other' (it reads names)\n",
    )
    assert sorted(r["record"]["kafka"]["key"] for r in records) == ["k1", "k2", "k3"]


def test_addresses_pages_by_limit_and_names_the_function(tmp_path: Path) -> None:
    from .test_runtime import greeter_functions

    async def scenario() -> list[tuple[int, Any]]:
        answers: list[tuple[int, Any]] = []
        async with serving(greeter_functions(), tmp_path / "db.sqlite") as (_, runtime):
            for name in ["Cy", "Ann", "Bob"]:
                await runtime.send(Address("com.example/greeter", name), make_value("string", name))
            await runtime.wait_until_idle()
            runner, url = await serve_runtime(runtime)
            try:
                async with aiohttp.ClientSession() as session:
                    for query in [
                        "",
                        "?limit=0",
                        "?limit=1",
                        "?limit=1000&after=Ann",
                        "?limit=1001",
                        "?limit=3",
                    ]:
                        async with session.get(
                            f"{url}/api/addresses/com.example/greeter{query}"
                        ) as response:
                            answers.append(
                                (
                                    response.status,
                                    await response.json()
                                    if response.status == 200
                                    else await response.text(),
                                )
                            )
            finally:
                await runner.cleanup()
        return answers

    assert run(scenario()) == [
        (200, {"function": "com.example/greeter", "ids": ["Ann", "Bob", "Cy"], "next": None}),
        (400, "limit must be an integer from 1 to 1000, not '0'\n"),
        (200, {"function": "com.example/greeter", "ids": ["Ann"], "next": "Ann"}),
        (200, {"function": "com.example/greeter", "ids": ["Bob", "Cy"], "next": None}),
        (400, "limit must be an integer from 1 to 1000, not '1001'\n"),
        # exactly a page left: no next page
        (200, {"function": "com.example/greeter", "ids": ["Ann", "Bob", "Cy"], "next": None}),
    ]


def test_an_address_s_id_may_be_given_as_a_query(tmp_path: Path) -> None:
    """``?id=`` names the id a path can not carry: '.' and '..', which a browser or URL library
    removes from a path, and the empty id (a Kafka record's empty key); none is a 400."""
    from .test_runtime import greeter_functions

    async def scenario() -> list[tuple[int, str]]:
        answers: list[tuple[int, str]] = []
        async with serving(greeter_functions(), tmp_path / "db.sqlite") as (_, runtime):
            for id_ in [".", "..", ""]:
                await runtime.send(Address("com.example/greeter", id_), make_value("string", "x"))
            await runtime.wait_until_idle()
            runner, url = await serve_runtime(runtime)
            try:
                async with aiohttp.ClientSession() as session:
                    for query in ["?id=.", "?id=..", "?id=", ""]:
                        async with session.get(
                            f"{url}/api/state/com.example/greeter{query}"
                        ) as response:
                            body = await response.text()
                            answers.append((response.status, body if response.status != 200
                                            else json.loads(body)["address"]))  # fmt: skip
            finally:
                await runner.cleanup()
        return answers

    assert run(scenario()) == [
        (200, "com.example/greeter/."),
        (200, "com.example/greeter/.."),
        (200, "com.example/greeter/"),
        (400, "no id: give the address as <namespace>/<type>/<id>, or ?id=<id>\n"),
    ]


def test_a_query_parameter_given_twice_is_refused_and_nothing_is_done(tmp_path: Path) -> None:
    """``?id=a&id=b`` named the address ``a`` (the first): a skip so meant for ``b`` dropped
    ``a``'s message. Which one is meant is not known: every parameter given twice, or an id
    given in the path and as ``?id=``, is a 400 saying so, and nothing is done."""
    from .test_stuck import FRAGILE, POISON, fragile_functions
    from .test_stuck_page import until_waiting

    a, b = Address(FRAGILE, "a"), Address(FRAGILE, "b")

    async def scenario() -> list[tuple[int, str]]:
        answers: list[tuple[int, str]] = []
        async with serving(fragile_functions(), tmp_path / "db.sqlite", call="300ms",
                           failure_pause=30) as (_, runtime):  # fmt: skip
            for target in (a, b):
                await runtime.send(target, make_value("string", POISON))
            await until_waiting(runtime, a, b)
            runner, url = await serve_runtime(runtime)
            try:
                async with aiohttp.ClientSession() as session:
                    for method, path in [
                        ("POST", f"api/stuck/skip/{FRAGILE}?id=a&id=b"),
                        ("POST", f"api/stuck/dead-letter/{FRAGILE}/a?id=b"),
                        ("POST", f"api/stuck/retry/{FRAGILE}?id=a&by=me&by=you"),
                        ("GET", f"api/state/{FRAGILE}?id=b&id=a"),
                        ("GET", f"api/addresses/{FRAGILE}?limit=1&limit=2"),
                        ("GET", "api/egress?after=0&after=1"),
                        ("POST", f"ingress/{FRAGILE}/c?typename=a/b&typename=c/d"),
                    ]:
                        async with session.request(
                            method, f"{url}/{path}", data=b"x",
                            headers={"Content-Type": "application/octet-stream"},
                        ) as response:  # fmt: skip
                            answers.append((response.status, await response.text()))
            finally:
                await runner.cleanup()
            assert sorted(e["address"] for e in runtime.stuck()) == [str(a), str(b)]
            assert runtime.audit_log() == []
            assert runtime.inspect(Address(FRAGILE, "c"))["queued"] == []
        return answers

    assert run(scenario()) == [
        (400, "?id= is given 2 times: give it once\n"),
        (400, "the id is given twice, in the path and as ?id=: give it once\n"),
        (400, "?by= is given 2 times: give it once\n"),
        (400, "?id= is given 2 times: give it once\n"),
        (400, "?limit= is given 2 times: give it once\n"),
        (400, "?after= is given 2 times: give it once\n"),
        (400, "?typename= is given 2 times: give it once\n"),
    ]


def test_addresses_gives_100_ids_a_page_unless_told(tmp_path: Path) -> None:
    from statefun_core.engine import Envelope

    async def scenario() -> list[Any]:
        pages = []
        async with serving(echo_functions(), tmp_path / "db.sqlite") as (_, runtime):
            # queued for a function type no endpoint serves: they stay in the mailbox
            with runtime.store.transaction():
                for n in range(101):
                    runtime.store.mailbox_append(
                        Envelope(Address("com.other/fn", f"{n:03}"), make_value("string", "x"))
                    )
            runner, url = await serve_runtime(runtime)
            try:
                async with aiohttp.ClientSession() as session:
                    after = ""
                    while after is not None:
                        async with session.get(
                            f"{url}/api/addresses/com.other/fn", params={"after": after}
                        ) as response:
                            page = await response.json()
                        pages.append((len(page["ids"]), page["next"]))
                        after = page["next"]
            finally:
                await runner.cleanup()
        return pages

    assert run(scenario()) == [(100, "099"), (1, None)]


# --- a long poll's life ------------------------------------------------------------------------


def _tasks_running(qualname: str) -> int:
    """Tasks of this loop still running the coroutine function ``qualname``."""
    coroutines = [task.get_coro() for task in asyncio.all_tasks() if not task.done()]
    return sum(1 for coroutine in coroutines if coroutine.__qualname__ == qualname)  # type: ignore[union-attr]


def test_a_long_poll_answers_with_the_record_that_arrives_while_it_waits(tmp_path: Path) -> None:
    """The poll waits for a record (not for its client to leave), answers with it, and leaves
    nothing of itself running once answered."""

    async def scenario() -> list[dict[str, Any]]:
        async with serving(echo_functions(), tmp_path / "db.sqlite") as (_, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                # the session keeps its connection open (longer than the 30 s allowed below):
                # only the handler can end its watch on it
                async with aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(keepalive_timeout=120),
                    timeout=aiohttp.ClientTimeout(total=60),
                ) as session:

                    async def poll() -> Any:
                        async with session.get(f"{url}/api/egress?wait=30") as response:
                            assert response.status == 200, await response.text()
                            return await response.json()

                    polling = asyncio.ensure_future(poll())
                    await _until(
                        lambda: polling.done() or _tasks_running("LocalRuntime.wait_egress") == 1
                    )
                    assert not polling.done(), polling.result()
                    await runtime.send(
                        Address("com.example/echo", "x"),
                        TypedValue("io.statefun.types/string", b"\n\x02hi"),
                    )
                    records = (await polling)["records"]
                    await _until(
                        lambda: (
                            _tasks_running("_client_gone")
                            + _tasks_running("LocalRuntime.wait_egress")
                            == 0
                        )
                    )
            finally:
                await runner.cleanup()
        return records

    (record,) = run(scenario())
    assert (record["seq"], record["egress"], record["record"]["kafka"]["key"]) == (
        1,
        "com.example/out",
        "x",
    )


def test_a_long_poll_answers_at_once_when_the_server_stops(tmp_path: Path) -> None:
    """Stopping the web application ends a waiting poll with what there is (nothing), well
    before its wait or the runner's 60 s shutdown timeout."""

    async def scenario() -> tuple[int, Any]:
        async with serving(echo_functions(), tmp_path / "db.sqlite") as (_, runtime):
            runner, url = await serve_runtime(runtime)
            cleaned = False
            try:
                async with aiohttp.ClientSession() as session:

                    async def poll() -> tuple[int, Any]:
                        async with session.get(
                            f"{url}/api/egress?wait=60", timeout=aiohttp.ClientTimeout(total=30)
                        ) as r:
                            return r.status, await r.json()

                    polling = asyncio.ensure_future(poll())
                    await _until(
                        lambda: polling.done() or _tasks_running("LocalRuntime.wait_egress") == 1
                    )
                    cleaned = True
                    stopping = asyncio.ensure_future(runner.cleanup())
                    answer = await polling
                    await stopping
            finally:
                if not cleaned:
                    await runner.cleanup()
        return answer

    assert run(scenario()) == (200, {"records": []})


def test_egress_starts_after_record_0_and_waits_fractions_of_a_second(tmp_path: Path) -> None:
    async def scenario() -> list[Any]:
        async with serving(echo_functions(), tmp_path / "db.sqlite") as (_, runtime):
            for name in ("a", "b"):
                await runtime.send(
                    Address("com.example/echo", name),
                    TypedValue("io.statefun.types/string", b"\n\x02hi"),
                )
            await runtime.wait_until_idle()
            runner, url = await serve_runtime(runtime)
            answers = []
            try:
                async with aiohttp.ClientSession() as session:
                    for query in ["", "?wait=0.25", "?after=1&wait=0.5"]:
                        async with session.get(f"{url}/api/egress{query}") as response:
                            assert response.status == 200, await response.text()
                            answers.append([r["seq"] for r in (await response.json())["records"]])
            finally:
                await runner.cleanup()
        return answers

    assert run(scenario()) == [[1, 2], [1, 2], [2]]


# --- what a refused request is told ------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("wait=x", "wait must be a finite number, 0 or more, not 'x'\n"),
        ("wait=-1", "wait must be a finite number, 0 or more, not '-1'\n"),
        ("after=1.5", f"after must be an integer from 0 to {2**63 - 1}, not '1.5'\n"),
    ],
)
def test_a_refused_egress_query_says_what_it_must_be(
    tmp_path: Path, query: str, message: str
) -> None:
    async def scenario() -> tuple[int, str]:
        async with serving(echo_functions(), tmp_path / "db.sqlite") as (_, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"{url}/api/egress?{query}") as response,
                ):
                    return response.status, await response.text()
            finally:
                await runner.cleanup()

    assert run(scenario()) == (400, message)


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (b"[" * 200_000, JSON, "the body is not JSON this runtime reads: nested too deeply\n"),
        (b'{"type": ', JSON, "the body is not JSON: Expecting value: line 1 column 10 (char 9)\n"),
        (
            b'{"value": 1}',
            JSON,
            'expected {"type": "string", "value": ...} or {"type": "ns/name", "base64": "..."}\n',
        ),
        (
            b"raw",
            {"Content-Type": "application/octet-stream"},
            "send JSON (Content-Type: application/json), or raw bytes with "
            "?typename=namespace/name\n",
        ),
        (
            b'{"type": "com.example/\\ud800", "value": 1}',
            JSON,
            "'com.example/\\ud800' is not valid Unicode (a lone surrogate)\n",
        ),
    ],
)
def test_refused_ingress_input_is_told_why(
    tmp_path: Path, body: bytes, headers: dict[str, str], message: str
) -> None:
    async def scenario() -> tuple[int, str, int]:
        async with serving(echo_functions(), tmp_path / "db.sqlite") as (_, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(
                        f"{url}/ingress/com.example/echo/x", data=body, headers=headers
                    ) as response,
                ):
                    answer = response.status, await response.text()
            finally:
                await runner.cleanup()
            return (*answer, sum(runtime.store.queue_depths().values()) + runtime.delivered)

    assert run(scenario()) == (400, message, 0)


def test_a_json_body_is_read_as_utf8_whatever_charset_it_names(tmp_path: Path) -> None:
    """JSON is UTF-8 (RFC 8259; application/json defines no charset): a charset that names no
    text encoding (``nope``, ``base64``) was a 500 with a traceback in the log, and one that
    names another (UTF-7, Latin-1) had the body read otherwise. Each is read as without one."""
    body = '{"type": "com.example/Note", "value": "+AEE- \u00e9"}'.encode()
    charsets = ["", "; charset=nope", "; charset=base64", "; charset=utf-7", "; charset=latin-1"]

    async def scenario() -> tuple[list[int], list[Any]]:
        statuses = []
        async with serving(echo_functions(), tmp_path / "db.sqlite") as (_, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                async with aiohttp.ClientSession() as session:
                    for charset in charsets:
                        async with session.post(
                            f"{url}/ingress/com.example/echo/x",
                            data=body,
                            headers={"Content-Type": f"application/json{charset}"},
                        ) as response:
                            statuses.append(response.status)
                    records: list[Any] = []
                    while len(records) < statuses.count(202):
                        after = records[-1]["seq"] if records else 0
                        async with session.get(
                            f"{url}/api/egress?after={after}&wait=5"
                        ) as response:
                            records += (await response.json())["records"]
            finally:
                await runner.cleanup()
        return statuses, [r["record"]["kafka"]["value"] for r in records]

    statuses, values = run(scenario())
    assert statuses == [202] * len(charsets)
    assert values == [values[0]] * len(charsets)


def test_a_typename_no_url_can_name_is_refused_by_every_route(tmp_path: Path) -> None:
    """Not only ingress: the state, address and stuck routes refuse such a typename too,
    saying why, rather than answer for a function type no endpoint can serve."""
    why = "'com.example/a#b': a typename holds no '?', '#' or control characters\n"

    async def scenario() -> list[tuple[int, str]]:
        answers = []
        async with serving(echo_functions(), tmp_path / "db.sqlite") as (_, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                async with aiohttp.ClientSession() as session:
                    for method, path in [
                        ("GET", "api/state/com.example/a%23b/x"),
                        ("GET", "api/addresses/com.example/a%23b"),
                        ("POST", "api/stuck/skip/com.example/a%23b/x"),
                        ("POST", "ingress/com.example/a%23b/x"),
                    ]:
                        async with session.request(
                            method, f"{url}/{path}", json={"type": "string", "value": "x"}
                        ) as response:
                            answers.append((response.status, await response.text()))
            finally:
                await runner.cleanup()
        return answers

    assert run(scenario()) == [(400, why)] * 4


def test_the_page_is_html(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, str, str]:
        async with serving(echo_functions(), tmp_path / "db.sqlite") as (_, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                async with aiohttp.ClientSession() as session, session.get(f"{url}/") as response:
                    return response.status, response.content_type, await response.text()
            finally:
                await runner.cleanup()

    status, content_type, page = run(scenario())
    assert (status, content_type) == (200, "text/html")
    assert "<title>statefun-local</title>" in page
