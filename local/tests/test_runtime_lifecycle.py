"""The runtime's lifecycle (start, stop, restart), the status the page polls, how records are
routed and the CLI's banner (found unguarded by mutation testing of ``runtime.py``): real
function servers on 127.0.0.1, real SQLite files."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from statefun_local import DeadLetterPolicy, LocalRuntime, make_value, parse_module
from statefun_local.guard import typename_problem
from statefun_local.runtime import (
    UnknownFunctionError,
    UnknownIngressError,
    describe_module,
    wait_event,
)
from statefun_local.stuck import NotStuckError, PolicyError
from statefun_local.transport import HttpTransport

from statefun_core import (
    Context,
    DeadLetterEgress,
    IntType,
    Message,
    StatefulFunctions,
    StringType,
    ValueSpec,
    kafka_egress_message,
    message_builder,
)
from statefun_core.engine import Address, ManualClock, TypedValue
from statefun_core.testing.endpoint import free_port

from .conftest import FunctionServer, kafka_ingress, module_yaml, run, serving
from .test_replies import database_locked

# --- the CLI's banner ------------------------------------------------------------------------

ALL_IO = """
kind: io.statefun.endpoints.v2/http
spec:
  functions: com.example/*
  urlPathTemplate: http://127.0.0.1:1/statefun
---
kind: io.statefun.endpoints.v2/http
spec:
  functions: com.other/fn
  urlPathTemplate: http://127.0.0.1:2/{function.name}
---
kind: io.statefun.kafka.v1/ingress
spec:
  id: com.example/names
  address: kafka:9092
  consumerGroupId: greeters
  startupPosition: {type: earliest}
  topics:
    - {topic: names, valueType: io.statefun.types/string, targets: [com.example/a, com.example/b]}
    - {topic: nicknames, valueType: io.statefun.types/string, targets: [com.example/a]}
---
kind: io.statefun.kinesis.v1/ingress
spec:
  id: com.example/clicks
  awsRegion: {type: custom-endpoint, id: us-east-1, endpoint: "http://kinesis:4566"}
  startupPosition: {type: earliest}
  streams:
    - {stream: clicks, valueType: io.statefun.types/string, targets: [com.example/a]}
---
kind: io.statefun.kinesis.v1/ingress
spec:
  id: com.example/views
  awsRegion: {type: specific, id: eu-west-1}
  streams:
    - {stream: views, valueType: io.statefun.types/string, targets: [com.example/b]}
---
kind: io.statefun.kinesis.v1/ingress
spec:
  id: com.example/taps
  awsRegion: {type: default}
  streams:
    - {stream: taps, valueType: io.statefun.types/string, targets: [com.example/b]}
---
kind: io.statefun.kafka.v1/egress
spec:
  id: com.example/out
  address: kafka:9092
  deliverySemantic: {type: exactly-once, transactionTimeout: 15min}
---
kind: io.statefun.kinesis.v1/egress
spec:
  id: com.example/s1
  awsRegion: {type: custom-endpoint, id: us-east-1, endpoint: "http://kinesis:4566"}
---
kind: io.statefun.kinesis.v1/egress
spec:
  id: com.example/s2
  awsRegion: {type: specific, id: eu-west-1}
---
kind: io.statefun.kinesis.v1/egress
spec:
  id: com.example/s3
  awsRegion: {type: default}
"""

FUNCTIONS_AND_ROUTES = [
    "  functions com.example/* -> http://127.0.0.1:1/statefun",
    "  functions com.other/fn -> http://127.0.0.1:2/{function.name}",
    "  ingress com.example/names topic names -> com.example/a, com.example/b"
    " (POST /records/com.example/names?topic=names&key=<id>)",
    "  ingress com.example/names topic nicknames -> com.example/a"
    " (POST /records/com.example/names?topic=nicknames&key=<id>)",
    "  ingress com.example/clicks stream clicks -> com.example/a"
    " (POST /records/com.example/clicks?stream=clicks&partition_key=<id>)",
    "  ingress com.example/views stream views -> com.example/b"
    " (POST /records/com.example/views?stream=views&partition_key=<id>)",
    "  ingress com.example/taps stream taps -> com.example/b"
    " (POST /records/com.example/taps?stream=taps&partition_key=<id>)",
]


def doing_nothing() -> StatefulFunctions:
    """``com.example/fn``, which does nothing: its calls fail by HTTP (:func:`always_503`)."""
    functions = StatefulFunctions()

    @functions.bind("com.example/fn")
    def fn(context: Context, message: Message) -> None:
        pass

    return functions


def always_503(n: int) -> web.Response:
    return web.Response(status=503, text="down")


def test_the_banner_names_every_function_route_and_egress_and_how_to_reach_them() -> None:
    """Offline (the default), every route says how to post its records over HTTP and every
    egress that it is stored."""
    module = parse_module(ALL_IO)
    stored = " (stored; follow with 'statefun-local egress --follow')"
    expected = [
        *FUNCTIONS_AND_ROUTES,
        *(f"  egress com.example/{name}{stored}" for name in ["out", "s1", "s2", "s3"]),
    ]
    assert list(describe_module(module)) == expected
    assert list(describe_module(module, kafka=False)) == expected


def test_the_banner_with_kafka_says_what_each_ingress_and_egress_connects_to() -> None:
    """Each ingress after its routes: Kafka's address, group and start; Kinesis' endpoint, or
    region, or the default; each egress: Kafka's address and semantic, Kinesis' place."""
    lines = list(describe_module(parse_module(ALL_IO), kafka=True))
    routes = iter(FUNCTIONS_AND_ROUTES)
    assert lines == [
        next(routes), next(routes), next(routes), next(routes),
        "    reads Kafka kafka:9092, group greeters, from earliest",
        next(routes),
        "    reads Kinesis http://kinesis:4566, from earliest",
        next(routes),
        "    reads Kinesis eu-west-1, from latest",
        next(routes),
        "    reads Kinesis (default), from latest",
        "  egress com.example/out -> Kafka kafka:9092 (exactly-once), stored",
        "  egress com.example/s1 -> Kinesis http://kinesis:4566 (at-least-once), stored",
        "  egress com.example/s2 -> Kinesis eu-west-1 (at-least-once), stored",
        "  egress com.example/s3 -> Kinesis (default) (at-least-once), stored",
    ]  # fmt: skip


# --- routing records and checking targets, started or not ------------------------------------


def test_a_record_is_routed_to_each_target_of_its_topic_with_the_key_as_id() -> None:
    runtime = LocalRuntime(parse_module(ALL_IO), "unused.db", offline=True)
    routed = runtime.route_record("com.example/names", "names", "Ann", b"bytes")
    message = TypedValue("io.statefun.types/string", b"bytes", True)
    assert routed == [(Address("com.example/a", "Ann"), message),
                      (Address("com.example/b", "Ann"), message)]  # fmt: skip
    # the second topic of the same ingress, and a Kinesis stream: their own targets
    assert runtime.route_record("com.example/names", "nicknames", "", b"x") == [
        (Address("com.example/a", ""), TypedValue("io.statefun.types/string", b"x", True))
    ]
    assert [a for a, _ in runtime.route_record("com.example/views", "views", "k", b"")] == [
        Address("com.example/b", "k")
    ]


@pytest.mark.parametrize(
    ("module", "ingress", "source", "key", "says"),
    [
        (ALL_IO, "com.example/nope", "names", "k",
         "no ingress 'com.example/nope' in the module (known: com.example/clicks, "
         "com.example/names, com.example/taps, com.example/views)"),
        (module_yaml("http://127.0.0.1:1/statefun"), "com.example/names", "names", "k",
         "no ingress 'com.example/names' in the module (known: none)"),
        (ALL_IO, "com.example/names", "views", "k",
         "ingress 'com.example/names' does not read 'views' (it reads names, nicknames)"),
        (ALL_IO, "com.example/names", "names", None,
         "a record without a key can not be routed to an id"),
    ],
)  # fmt: skip
def test_a_record_no_route_takes_is_refused_saying_why(
    module: str, ingress: str, source: str, key: str | None, says: str
) -> None:
    runtime = LocalRuntime(parse_module(module), "unused.db", offline=True)
    with pytest.raises(UnknownIngressError) as refused:
        runtime.route_record(ingress, source, key, b"x")
    assert str(refused.value) == says


def test_a_target_is_served_by_its_endpoint_or_refused_saying_why() -> None:
    runtime = LocalRuntime(parse_module(ALL_IO), "unused.db", offline=True)
    first, second = runtime.module.endpoints
    assert runtime.check_target(Address("com.example/a", "x")) is first
    assert runtime.check_target(Address("com.other/fn", "x")) is second
    with pytest.raises(UnknownFunctionError) as refused:
        runtime.check_target(Address("com.other/gn", "x"))
    assert str(refused.value) == "no endpoint in the module serves function type 'com.other/gn'"
    # a typename no URL could name is refused before an endpoint is looked for
    with pytest.raises(UnknownFunctionError) as refused:
        runtime.check_target(Address("com.example/..", "x"))
    assert str(refused.value) == typename_problem("com.example/..")


def test_the_store_and_the_engine_are_there_only_once_started(tmp_path: Path) -> None:
    runtime = LocalRuntime(parse_module(ALL_IO), tmp_path / "db.sqlite", offline=True)
    assert runtime.messages_per_second() == 0.0  # nothing delivered yet
    with pytest.raises(NotStuckError):  # nothing failed yet
        runtime.skip(Address("com.example/a", "x"), "ann")
    for part in ["store", "engine"]:
        with pytest.raises(RuntimeError, match=r"^the runtime is not started$"):
            getattr(runtime, part)

    async def scenario() -> None:
        async with runtime:
            assert runtime.store.meta_get("nothing") is None
            assert runtime.engine.is_idle()
        with pytest.raises(RuntimeError, match=r"^the runtime is not started$"):
            runtime.store  # noqa: B018 - the property is what is tested

    run(scenario())


def test_a_runtime_shows_its_database_and_whether_it_runs(tmp_path: Path) -> None:
    """What a notebook cell that ends with the runtime shows."""
    db = tmp_path / "db.sqlite"
    runtime = LocalRuntime(parse_module(ALL_IO), db, offline=True)
    assert repr(runtime) == f"LocalRuntime({str(db)!r}, stopped, offline)"

    async def scenario() -> None:
        async with runtime:
            assert repr(runtime) == f"LocalRuntime({str(db)!r}, running, offline)"

    run(scenario())
    assert repr(runtime) == f"LocalRuntime({str(db)!r}, stopped, offline)"
    assert repr(LocalRuntime(parse_module(ALL_IO), "app.db")) == "LocalRuntime('app.db', stopped)"


def string(text: str) -> TypedValue:
    return make_value("string", text)


# --- what a runtime does unless told otherwise -------------------------------------------------


def test_a_runtime_connects_its_kafka_egress_unless_offline(tmp_path: Path) -> None:
    """By default the module's Kafka egress is connected (here to a port nothing listens on);
    offline, nothing is."""
    port = free_port()
    text = module_yaml("http://127.0.0.1:1/statefun").replace("kafka:9092", f"127.0.0.1:{port}")

    async def scenario() -> None:
        async with LocalRuntime(parse_module(text), tmp_path / "db.sqlite") as runtime:
            (connection,) = runtime.status()["connections"]
            assert {k: connection[k] for k in ["system", "kind", "id", "broker"]} == {
                "system": "kafka", "kind": "egress", "id": "com.example/out",
                "broker": f"127.0.0.1:{port}"}  # fmt: skip
            # the connector runs: it tries the broker, and says how that went
            await until(lambda: runtime.status()["connections"][0]["state"] != "connecting")
        offline = LocalRuntime(parse_module(text), tmp_path / "db.sqlite", offline=True)
        async with offline:
            assert offline.status()["connections"] == []

    run(scenario())


def test_a_failed_batch_is_retried_a_second_later_by_default(tmp_path: Path) -> None:
    functions = doing_nothing()

    async def scenario() -> None:
        clock = ManualClock(1_000_000)
        async with FunctionServer(functions, always_503) as server:
            module = parse_module(module_yaml(server.url, call="100ms"))
            async with LocalRuntime(module, tmp_path / "db.sqlite", clock=clock,
                                    offline=True) as runtime:  # fmt: skip
                await runtime.send(Address("com.example/fn", "x"), make_value("string", "a"))
                for _ in range(500):  # ten seconds at most
                    if any(e["attempts"] for e in runtime.stuck()):
                        break
                    await asyncio.sleep(0.02)
                (entry,) = runtime.stuck()
                assert (entry["attempts"], entry["next_retry_ms"]) == (1, 1_001_000)

    run(scenario())


# --- the status the page polls -----------------------------------------------------------------

FIXED = """
---
kind: io.statefun.endpoints.v2/http
spec:
  functions: com.other/fixed
  urlPathTemplate: http://127.0.0.1:1/{function.name}
"""


def status_functions() -> StatefulFunctions:
    """``greeter`` keeps a count and sends its name to the egress; ``later`` sends a message to
    ``fragile/g`` in an hour; ``fragile`` fails."""
    functions = StatefulFunctions()

    @functions.bind("com.example/greeter", specs=[ValueSpec("seen", IntType)])
    def greeter(context: Context, message: Message) -> None:
        context.storage.seen = (context.storage.seen or 0) + 1
        context.send_egress(kafka_egress_message(
            "com.example/out", topic="greetings", key=context.address.id,
            value=message.as_string()))  # fmt: skip

    @functions.bind("com.example/later")
    def later(context: Context, message: Message) -> None:
        context.send_after(
            timedelta(hours=1), message_builder("com.example/fragile", "g", str_value="late")
        )

    @functions.bind("com.example/fragile")
    def fragile(context: Context, message: Message) -> None:
        raise RuntimeError(f"cannot digest {message.as_string()}")

    return functions


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):  # twenty seconds at most
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition never held")


def test_the_status_shows_functions_addresses_egress_failures_and_the_module(
    tmp_path: Path,
) -> None:
    """Every part of the status, from a runtime with deliveries, state, egress records, a
    pending delayed message, and two failing addresses."""
    db = tmp_path / "db.sqlite"
    fragile_f, fragile_g = Address("com.example/fragile", "f"), Address("com.example/fragile", "g")

    async def scenario() -> None:
        async with FunctionServer(status_functions()) as server:
            extra = FIXED + kafka_ingress("io.statefun.types/string", "com.example/greeter")
            module = parse_module(module_yaml(server.url, call="100ms", extra=extra))
            before = time.monotonic()
            runtime = LocalRuntime(module, db, clock=ManualClock(1_000_000), failure_pause=60,
                                   offline=True, module_name="app.yaml")  # fmt: skip
            async with runtime:
                for name in ["Ann", "Bob", "Ann", *(f"c{n}" for n in range(8))]:
                    await runtime.send(Address("com.example/greeter", name), string(name))
                await runtime.send(Address("com.example/later", "x"), string("x"))
                await runtime.wait_until_idle()
                await runtime.send(fragile_f, string("f0"))
                await until(lambda: sum(1 for e in runtime.stuck() if e["attempts"]) == 1)
                for text in ["g0", "g1", "g2"]:
                    await runtime.send(fragile_g, string(text))
                await until(lambda: sum(1 for e in runtime.stuck() if e["attempts"]) == 2)
                status = runtime.status()
                uptime = time.monotonic() - before
                assert runtime.status(top=1, egress=1)["addresses"] == status["addresses"][:1]
                assert runtime.status(top=1, egress=1)["egress"] == status["egress"][:1]

        url = server.url
        assert status["module"] == "app.yaml"
        assert status["db"] == str(db)
        assert 0 <= status["uptime_s"] <= uptime
        assert status["totals"] == {"delivered": 12, "queued": 4, "in_flight": 2, "timers": 1,
                                    "egress": 11, "retrying": 0, "stuck": 2,
                                    "audit": 0}  # fmt: skip
        assert status["functions"] == [
            {"typename": "com.example/fragile", "endpoint": url, "endpoint_problem": None,
             "states": [], "delivered": 0, "addresses": 0, "queued": 4, "in_flight": 2},
            {"typename": "com.example/greeter", "endpoint": url, "endpoint_problem": None,
             "states": ["seen"], "delivered": 11, "addresses": 10, "queued": 0, "in_flight": 0},
            {"typename": "com.example/later", "endpoint": url, "endpoint_problem": None,
             "states": [], "delivered": 1, "addresses": 0, "queued": 0, "in_flight": 0},
            {"typename": "com.other/fixed", "endpoint": "http://127.0.0.1:1/fixed",
             "endpoint_problem": None, "states": [], "delivered": 0, "addresses": 0,
             "queued": 0, "in_flight": 0},
        ]  # fmt: skip
        # the busiest first: the failing head and the two behind it, with its delayed message
        assert status["addresses"] == [
            {"address": "com.example/fragile/g", "queued": 3, "in_flight": True, "timers": 1},
            {"address": "com.example/fragile/f", "queued": 1, "in_flight": True, "timers": 0},
        ]  # fmt: skip
        # the latest 10 egress records, newest first
        assert [r["seq"] for r in status["egress"]] == list(range(11, 1, -1))
        assert {r["record"]["kafka"]["topic"] for r in status["egress"]} == {"greetings"}
        # the failures of the addresses still failing, newest first
        assert [(f["address"], f["messages"]) for f in status["failures"]] == [
            ("com.example/fragile/g", 1),
            ("com.example/fragile/f", 1),
        ]
        assert all("HTTP 500" in f["error"] for f in status["failures"])
        assert [(s["address"], s["attempts"]) for s in status["stuck"]] == [
            ("com.example/fragile/f", 1),
            ("com.example/fragile/g", 1),
        ]
        assert status["audit"] == []
        assert status["connections"] == []
        assert status["ingresses"] == [
            {"id": "com.example/names", "kind": "kafka", "address": "kafka:9092",
             "routes": [{"source": "names", "type": "io.statefun.types/string",
                         "targets": ["com.example/greeter"]}]}]  # fmt: skip
        assert status["egresses"] == [
            {"id": "com.example/out", "kind": "kafka", "address": "kafka:9092",
             "semantic": "at-least-once"}]  # fmt: skip

    run(scenario())


def test_the_status_names_the_module_s_ingresses_and_egresses_and_where_they_are() -> None:
    """A Kafka one at its address; a Kinesis one at its endpoint, or else its region."""
    view = LocalRuntime(parse_module(ALL_IO), "unused.db", offline=True).module_view()
    string_type = "io.statefun.types/string"
    assert view["ingresses"] == [
        {"id": "com.example/names", "kind": "kafka", "address": "kafka:9092",
         "routes": [{"source": "names", "type": string_type,
                     "targets": ["com.example/a", "com.example/b"]},
                    {"source": "nicknames", "type": string_type,
                     "targets": ["com.example/a"]}]},
        {"id": "com.example/clicks", "kind": "kinesis", "address": "http://kinesis:4566",
         "routes": [{"source": "clicks", "type": string_type, "targets": ["com.example/a"]}]},
        {"id": "com.example/views", "kind": "kinesis", "address": "eu-west-1",
         "routes": [{"source": "views", "type": string_type, "targets": ["com.example/b"]}]},
        {"id": "com.example/taps", "kind": "kinesis", "address": "",
         "routes": [{"source": "taps", "type": string_type, "targets": ["com.example/b"]}]},
    ]  # fmt: skip
    assert view["egresses"] == [
        {"id": "com.example/out", "kind": "kafka", "address": "kafka:9092",
         "semantic": "exactly-once"},
        {"id": "com.example/s1", "kind": "kinesis", "address": "http://kinesis:4566",
         "semantic": "at-least-once"},
        {"id": "com.example/s2", "kind": "kinesis", "address": "eu-west-1",
         "semantic": "at-least-once"},
        {"id": "com.example/s3", "kind": "kinesis", "address": "", "semantic": "at-least-once"},
    ]  # fmt: skip


def test_the_status_shows_a_queued_type_the_restarted_module_has_no_endpoint_for(
    tmp_path: Path,
) -> None:
    db = tmp_path / "db.sqlite"
    functions = doing_nothing()

    async def scenario() -> None:
        target = Address("com.example/fn", "x")
        async with FunctionServer(functions, always_503) as server:
            module = parse_module(module_yaml(server.url, call="100ms"))
            async with LocalRuntime(module, db, failure_pause=60, offline=True) as runtime:
                await runtime.send(target, string("kept"))
                await until(lambda: bool(runtime.failures))
        module = parse_module(module_yaml("http://127.0.0.1:1/statefun", functions="com.other/*"))
        async with LocalRuntime(module, db, failure_pause=60, offline=True) as runtime:
            await until(lambda: bool(runtime.failures))
            status = runtime.status()
        assert status["functions"] == [
            {
                "typename": "com.example/fn",
                "endpoint": None,
                "endpoint_problem": "no endpoint",
                "states": [],
                "delivered": 0,
                "addresses": 0,
                "queued": 1,
                "in_flight": 1,
            }
        ]
        assert status["totals"] == {"delivered": 0, "queued": 1, "in_flight": 1, "timers": 0,
                                    "egress": 0, "retrying": 0, "stuck": 1, "audit": 0}  # fmt: skip
        assert status["egress"] == []
        assert [(f["address"], f["error"]) for f in status["failures"]] == [
            ("com.example/fn/x", "no endpoint in the module serves 'com.example/fn'")
        ]

    run(scenario())


def test_the_status_shows_the_latest_20_entries_of_the_audit_log_and_it_keeps_100(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        clock = ManualClock(1_000_000)
        async with FunctionServer(status_functions()) as server:
            module = parse_module(module_yaml(server.url, call="100ms"))
            async with LocalRuntime(module, tmp_path / "db.sqlite", clock=clock,
                                    failure_pause=60, offline=True) as runtime:  # fmt: skip
                fragile = Address("com.example/fragile", "f")
                await runtime.send(fragile, string("m0"))
                await until(lambda: any(e["attempts"] for e in runtime.stuck()))
                for n in range(101):
                    runtime.retry_now(fragile, f"user{n}")
                audit = runtime.status()["audit"]
                assert [entry["by"] for entry in runtime.audit_log()] == [
                    f"user{n}" for n in range(100, 0, -1)
                ]  # the latest 100, unless told
        assert [entry["by"] for entry in audit] == [f"user{n}" for n in range(100, 80, -1)]
        assert {entry["action"] for entry in audit} == {"retry"}

    run(scenario())


def test_the_counts_of_whole_tables_are_taken_again_only_once_they_are_old(
    tmp_path: Path,
) -> None:
    """Addresses with state per type and delayed messages per address: whole-table scans the
    page polls, so kept for ``max_age`` seconds."""

    async def scenario() -> None:
        async with FunctionServer(status_functions()) as server:
            module = parse_module(module_yaml(server.url))
            runtime = LocalRuntime(module, tmp_path / "db.sqlite", clock=ManualClock(1_000_000),
                                   offline=True)  # fmt: skip
            async with runtime:
                await runtime.send(Address("com.example/greeter", "Ann"), string("Ann"))
                await runtime.wait_until_idle()
                assert runtime._table_counts() == ({"com.example/greeter": 1}, {})
                await runtime.send(Address("com.example/greeter", "Bob"), string("Bob"))
                await runtime.send(Address("com.example/later", "x"), string("x"))
                await runtime.wait_until_idle()
                assert runtime._table_counts(max_age=3600) == ({"com.example/greeter": 1}, {})
                assert runtime._table_counts(max_age=0) == (
                    {"com.example/greeter": 2},
                    {Address("com.example/fragile", "g"): 1},
                )

    run(scenario())


def test_a_record_for_a_target_no_endpoint_serves_is_queued_for_none_of_its_targets(
    tmp_path: Path,
) -> None:
    extra = kafka_ingress("io.statefun.types/string", "com.example/fn, com.nothing/fn")

    async def scenario() -> None:
        module = parse_module(module_yaml("http://127.0.0.1:1/statefun", extra=extra))
        async with LocalRuntime(module, tmp_path / "db.sqlite", offline=True) as runtime:
            with pytest.raises(UnknownFunctionError) as refused:
                await runtime.send_record("com.example/names", "names", "k", b"\n\x01x")
            assert str(refused.value) == (
                "no endpoint in the module serves function type 'com.nothing/fn'"
            )
            assert runtime.store.queue_depths() == {}
            assert runtime.engine.is_idle()

    run(scenario())


def test_the_runtime_keeps_the_latest_100_failures(tmp_path: Path) -> None:
    functions = doing_nothing()

    async def scenario() -> None:
        async with serving(functions, tmp_path / "db.sqlite", fault=always_503, call="10ms",
                           failure_pause=60) as (_, runtime):  # fmt: skip
            for n in range(101):
                await runtime.send(Address("com.example/fn", f"a{n}"), string("x"))
                if n == 0:
                    await until(lambda: len(runtime.failures) == 1)  # the oldest failure
            await until(lambda: len(runtime.stuck()) == 101)
            failures = [failure.address for failure in runtime.failures]
            assert len(runtime.status()["addresses"]) == 20  # the 20 busiest, unless told
        assert len(failures) == 100
        assert "com.example/fn/a0" not in failures
        assert set(failures) == {f"com.example/fn/a{n}" for n in range(1, 101)}

    run(scenario())


# --- restarts ----------------------------------------------------------------------------------


def test_an_address_stuck_before_a_restart_is_no_longer_stuck_once_delivered_after_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="statefun_local")
    db = tmp_path / "db.sqlite"
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
        target = Address("com.example/fn", "x")
        async with FunctionServer(functions, down_until_healthy) as server:
            module = parse_module(module_yaml(server.url, call="100ms"))
            async with LocalRuntime(module, db, failure_pause=60, offline=True) as runtime:
                await runtime.send(target, string("first"))
                await until(lambda: any(e["attempts"] for e in runtime.stuck()))
            assert "resuming" not in caplog.text  # nothing was in flight at the first start
            healthy = True
            async with LocalRuntime(module, db, failure_pause=60, offline=True) as runtime:
                # the address is stuck from the start: it can be acted on before any call ends
                assert [entry["address"] for entry in runtime.stuck()] == [str(target)]
                await runtime.wait_until_idle()
                (rows,) = runtime.store.conn.execute("SELECT COUNT(*) FROM stuck").fetchone()
                assert rows == 0
                assert runtime.stuck() == []
        assert received == ["first"]

    run(scenario())
    assert "resuming: 1 batch(es) were in flight, sending them again" in caplog.messages


def test_a_skip_asked_for_right_after_a_restart_waits_for_the_call_in_progress(
    tmp_path: Path,
) -> None:
    """The stuck addresses are known from the start: a skip asked for before the batch sent
    again has failed is pending, and done when it fails."""
    db = tmp_path / "db.sqlite"
    fragile = Address("com.example/fragile", "f")

    async def scenario() -> None:
        async with FunctionServer(status_functions()) as server:
            module = parse_module(module_yaml(server.url, call="100ms"))
            async with LocalRuntime(module, db, failure_pause=60, offline=True) as runtime:
                await runtime.send(fragile, string("m0"))
                await until(lambda: any(e["attempts"] for e in runtime.stuck()))
                (entry,) = runtime.stuck()
            async with LocalRuntime(module, db, failure_pause=60, offline=True) as runtime:
                outcome = runtime.skip(fragile, "ann")
                assert outcome.done == "pending"
                await runtime.wait_until_idle()
                (skipped,) = runtime.audit_log()
                assert (skipped["action"], skipped["message_seq"], skipped["by"]) == (
                    "skip", entry["message_seq"], "ann")  # fmt: skip

    run(scenario())


def test_a_transport_given_to_the_runtime_is_the_one_it_calls_with_and_it_stays_open(
    tmp_path: Path,
) -> None:
    """A shared transport (its retries reported to its own listener) serves the runtime, and
    outlives it: a second runtime calls with it after the first has stopped."""
    functions = StatefulFunctions()
    received: list[str] = []
    retries: list[int] = []

    @functions.bind("com.example/fn")
    def fn(context: Context, message: Message) -> None:
        received.append(message.as_string())

    def fail_first(n: int) -> web.Response | None:
        return web.Response(status=500, text="boom") if n == 1 else None

    async def scenario() -> None:
        transport = HttpTransport(on_retry=lambda url, attempt, reason: retries.append(attempt))
        try:
            async with FunctionServer(functions, fail_first) as server:
                module = parse_module(module_yaml(server.url))
                for n, db in enumerate(["one.sqlite", "two.sqlite"]):
                    runtime = LocalRuntime(module, tmp_path / db, transport=transport,
                                           offline=True)  # fmt: skip
                    async with runtime:
                        await runtime.send(Address("com.example/fn", "x"), string(f"m{n}"))
                        await runtime.wait_until_idle()
                    sessions = list(transport._sessions.values())
                    assert sessions and not any(session.closed for session in sessions)
        finally:
            await transport.close()

    run(scenario())
    assert received == ["m0", "m1"]
    assert retries == [1]


def test_stop_lets_go_of_the_database_its_lock_and_its_own_transport_and_may_be_repeated(
    tmp_path: Path,
) -> None:
    db = tmp_path / "db.sqlite"

    async def scenario() -> None:
        async with FunctionServer(status_functions()) as server:
            module = parse_module(module_yaml(server.url))
            runtime = LocalRuntime(module, db, offline=True)
            await runtime.stop()  # never started: nothing to stop
            async with runtime:
                await runtime.send(Address("com.example/greeter", "Ann"), string("Ann"))
                await runtime.wait_until_idle()
                transport = runtime._transport
                assert transport is not None and transport._sessions
            assert transport._sessions == {}  # its connections closed
            # the database closed: its write-ahead log checkpointed and gone
            assert sorted(p.name for p in tmp_path.iterdir()) == ["db.sqlite"]
            with pytest.raises(RuntimeError, match=r"^the runtime is not started$"):
                runtime.store  # noqa: B018 - the property is what is tested
            with pytest.raises(RuntimeError, match=r"^the runtime is not started$"):
                runtime.engine  # noqa: B018 - nor an engine on the closed store
            await runtime.stop()  # stopped already: nothing more to do
            async with LocalRuntime(module, db, offline=True) as again:  # the lock is free
                assert again.inspect(Address("com.example/greeter", "Ann"))["state"]
            # and the first runtime starts again, on a transport of its own
            async with runtime:
                assert runtime._transport is not None and runtime._transport is not transport
                await runtime.send(Address("com.example/greeter", "Bob"), string("Bob"))
                await runtime.wait_until_idle()
                assert len(runtime.egress_records()) == 2

    run(scenario())


def test_a_dead_letter_policy_naming_an_egress_the_module_lacks_is_refused_at_once() -> None:
    policy = DeadLetterPolicy(DeadLetterEgress("com.example/nowhere", topic="dead"), after=3)
    with pytest.raises(PolicyError) as refused:
        LocalRuntime(parse_module(ALL_IO), "unused.db", offline=True, dead_letters=policy)
    assert str(refused.value) == (
        "dead letters: no egress 'com.example/nowhere' in the module (known: com.example/out, "
        "com.example/s1, com.example/s2, com.example/s3)"
    )


def test_a_skip_asked_for_during_a_call_that_delivers_the_message_is_not_done_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    functions = StatefulFunctions()
    received: list[str] = []
    entered: asyncio.Event  # made in the scenario, on its loop (Python 3.9 binds it when made)
    release: asyncio.Event
    healthy = False

    @functions.bind("com.example/fn")
    async def fn(context: Context, message: Message) -> None:
        entered.set()
        await release.wait()
        received.append(message.as_string())

    def down_until_healthy(n: int) -> web.Response | None:
        return None if healthy else web.Response(status=503, text="down")

    async def scenario() -> None:
        nonlocal healthy, entered, release
        entered, release = asyncio.Event(), asyncio.Event()
        target = Address("com.example/fn", "x")
        async with serving(functions, tmp_path / "db.sqlite", fault=down_until_healthy,
                           call="100ms", failure_pause=60) as (_, runtime):  # fmt: skip
            await runtime.send(target, string("first"))
            await until(lambda: any(e["attempts"] for e in runtime.stuck()))
            (entry,) = runtime.stuck()
            healthy = True
            assert runtime.retry_now(target, "bob").done == "retrying"
            await entered.wait()  # the retry is being called
            assert runtime.skip(target, "ann").done == "pending"
            release.set()
            await runtime.wait_until_idle()
            skip, retry = runtime.audit_log()
            seq = entry["message_seq"]
        assert received == ["first"]
        assert (retry["action"], retry["by"]) == ("retry", "bob")
        assert (skip["action"], skip["message_seq"], skip["by"], skip["detail"]) == (
            "skip", seq, "ann",
            f"not done: asked for while a call was in progress, which delivered message #{seq}",
        )  # fmt: skip
        assert (f"com.example/fn/x: the skip of message #{seq} by ann was not done: the call in "
                "progress delivered it") in caplog.messages  # fmt: skip

    run(scenario())


def test_a_runtime_refused_the_database_leaves_no_lock_file_open(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with FunctionServer(status_functions()) as server:
            module = parse_module(module_yaml(server.url))
            async with LocalRuntime(module, tmp_path / "db.sqlite", offline=True):
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ResourceWarning)
                    second = LocalRuntime(module, tmp_path / "db.sqlite", offline=True)
                    for _ in range(3):
                        with pytest.raises(RuntimeError, match="another statefun-local is running"):
                            await second.start()
                    gc.collect()
                assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []

    run(scenario())


def test_a_runtime_starting_while_the_cli_asks_whether_one_runs_waits_out_its_probe(
    tmp_path: Path,
) -> None:
    """``runtime_runs_on`` (the CLI's reading commands) holds a shared lock of the database for
    an instant: a runtime starting in that instant waits it out instead of being refused as if
    another runtime were running."""
    import fcntl

    db = tmp_path / "db.sqlite"
    db.touch()

    async def scenario() -> None:
        async with FunctionServer(status_functions()) as server:
            module = parse_module(module_yaml(server.url))
            probe = os.open(db, os.O_RDONLY)
            fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)  # as runtime_runs_on, held longer
            threading.Timer(0.05, os.close, (probe,)).start()
            async with LocalRuntime(module, db, offline=True) as runtime:
                await runtime.send(Address("com.example/greeter", "Ann"), string("Ann"))
                await runtime.wait_until_idle()

    run(scenario())


def test_a_database_on_a_file_system_without_flock_is_refused_saying_so_not_as_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An NFS mount without its lock service answers ``flock`` with ENOLCK ("No locks
    available"); no such file system can be mounted here (Linux's local ones all have flock),
    so ``fcntl.flock`` is made to fail as there, for the database file only. The runtime is
    refused saying that the file system has no flock and what to do, not that another runtime
    is running; it leaves no descriptor open, and runs once the lock can be had."""
    import errno
    import fcntl

    db = tmp_path / "db.sqlite"
    real_flock = fcntl.flock

    def nfs_flock(fd: int, operation: int) -> None:
        if os.path.samefile(f"/proc/self/fd/{fd}", db):
            raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
        real_flock(fd, operation)

    async def scenario() -> None:
        async with FunctionServer(status_functions()) as server:
            module = parse_module(module_yaml(server.url))
            runtime = LocalRuntime(module, db, offline=True)
            monkeypatch.setattr(fcntl, "flock", nfs_flock)
            opened = len(os.listdir("/proc/self/fd"))
            with pytest.raises(RuntimeError) as refused:
                await runtime.start()
            assert len(os.listdir("/proc/self/fd")) == opened
            assert str(refused.value) == (
                f"can not lock the database {db}: No locks available: its file system does "
                "not support flock, which keeps a second runtime off the database (a network "
                "or shared folder?); put the database on a local disk, which SQLite's WAL "
                "mode needs too (--db)"
            )
            monkeypatch.setattr(fcntl, "flock", real_flock)
            async with runtime:
                await runtime.send(Address("com.example/greeter", "Ann"), string("Ann"))
                await runtime.wait_until_idle()

    run(scenario())


def test_a_runtime_refused_the_database_in_the_same_process_keeps_the_first_ones_locks(
    tmp_path: Path,
) -> None:
    """The lock is the database file's own; a second runtime in the process, through a hard
    link, is refused without opening the file: closing a descriptor of it would drop the
    POSIX locks SQLite holds on it for the first runtime, and the next process to close a
    connection to it would take the write-ahead log for its own and delete it."""
    db = tmp_path / "db.sqlite"

    async def scenario() -> None:
        async with FunctionServer(status_functions()) as server:
            module = parse_module(module_yaml(server.url))
            async with LocalRuntime(module, db, offline=True) as first:
                os.link(db, tmp_path / "hard-link.sqlite")
                second = LocalRuntime(module, tmp_path / "hard-link.sqlite", offline=True)
                with pytest.raises(RuntimeError, match="another statefun-local is running"):
                    await second.start()
                # as when a notebook cell that started the first is run again
                again = LocalRuntime(module, db, offline=True)
                stop_it = r"running on .*db\.sqlite, in this process: stop it first \(await runtime"
                with pytest.raises(RuntimeError, match=stop_it):
                    await again.start()
                await first.send(Address("com.example/greeter", "Ann"), string("Ann"))
                await first.wait_until_idle()
                subprocess.run(
                    [sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                     "c.execute('SELECT COUNT(*) FROM sqlite_master').fetchall(); c.close()",
                     str(db)],
                    check=True, timeout=30, stdin=subprocess.DEVNULL,
                )  # fmt: skip
                assert (tmp_path / "db.sqlite-wal").exists()

    run(scenario())


def test_a_database_with_more_than_one_hard_link_is_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite names the write-ahead log after the path: after a kill -9, a run through another
    link opens the database without the log that holds its last transactions (seen: a table
    written through one name was not there through the other)."""
    db = tmp_path / "db.sqlite"

    async def scenario() -> None:
        async with FunctionServer(status_functions()) as server:
            module = parse_module(module_yaml(server.url))
            async with LocalRuntime(module, db, offline=True):
                pass
            os.link(db, tmp_path / "backup.sqlite")
            async with LocalRuntime(module, db, offline=True):
                pass

    with caplog.at_level(logging.WARNING, logger="statefun_local"):
        run(scenario())
    linked = [message for message in caplog.messages if "hard links" in message]
    assert linked == [
        f"the database {db} has 2 hard links: SQLite names its write-ahead log after the path, "
        "so a run through another link after a crash would not see the one this run leaves "
        "(its last transactions lost, the file damaged when both are replayed); run on one "
        "name only, and back it up with a copy, not a link"
    ]


def test_messages_no_endpoint_serves_are_logged_once_not_at_each_retry_of_each_address(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Messages queued for a function type the module no longer serves (the module changed
    between two runs) fail at every retry of every address: that was an error line each, a
    thousand addresses a thousand lines at every round; now one line for the type, and the
    addresses listed as stuck."""
    gone = [Address("com.gone/fn", name) for name in ("a", "b", "c")]

    async def scenario() -> list[dict[str, Any]]:
        async with FunctionServer(status_functions()) as server:
            module = parse_module(module_yaml(server.url))
            async with LocalRuntime(module, tmp_path / "db.sqlite", offline=True,
                                    failure_pause=0.01) as runtime:  # fmt: skip
                await runtime.send_all([(address, string("hi"), None) for address in gone])
                await until(lambda: len(runtime.stuck()) == 3
                            and all(e["attempts"] >= 3 for e in runtime.stuck()))  # fmt: skip
                return runtime.stuck()

    with caplog.at_level(logging.INFO, logger="statefun_local"):
        listed = run(scenario())
    assert sorted(entry["address"] for entry in listed) == [str(a) for a in gone]
    assert [entry["last_error"] for entry in listed] == [
        "no endpoint in the module serves 'com.gone/fn'"
    ] * 3
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO
            and "com.gone/fn" in r.getMessage()]  # fmt: skip
    assert said == [
        "com.gone/fn: no endpoint in the module serves it: its messages are kept and retried, "
        "its addresses listed as stuck, their failures not logged one by one"
    ]


def test_the_egress_records_come_100_at_a_time_unless_asked_for_more(tmp_path: Path) -> None:
    functions = StatefulFunctions()

    @functions.bind("com.example/fn")
    def fn(context: Context, message: Message) -> None:
        for n in range(101):
            context.send_egress(
                kafka_egress_message("com.example/out", topic="t", key="k", value=f"{n}")
            )

    async def scenario() -> None:
        async with serving(functions, tmp_path / "db.sqlite") as (_, runtime):
            await runtime.send(Address("com.example/fn", "x"), string("go"))
            await runtime.wait_until_idle()
            assert [r["seq"] for r in runtime.egress_records()] == list(range(1, 101))
            assert [r["seq"] for r in runtime.egress_records(100)] == [101]
            assert len(runtime.egress_records(limit=101)) == 101

    run(scenario())


def test_messages_per_second_counts_the_last_five_whole_seconds() -> None:
    """The deliveries of the five whole seconds before this one, over five seconds (fewer if
    the runtime has not run that long); those of this second are not over yet."""
    runtime = LocalRuntime(parse_module(ALL_IO), "unused.db", offline=True)
    while True:  # one whole second of the monotonic clock for the lot
        now = int(time.monotonic())
        runtime._started_at = now - 100.0
        runtime._throughput.extend([[now - 6, 600], [now - 5, 10], [now - 1, 5], [now, 7]])
        long_running = runtime.messages_per_second()
        runtime._started_at = now - 2.0
        just_started = runtime.messages_per_second()
        runtime._started_at = float(now)
        this_second = runtime.messages_per_second()
        if int(time.monotonic()) == now:
            break
        runtime._throughput.clear()
    assert long_running == (10 + 5) / 5
    assert just_started == (10 + 5) / 2
    assert this_second == (10 + 5) / 1


# --- failing batches ---------------------------------------------------------------------------


def test_a_failed_batch_of_several_messages_is_retried_with_its_head_alone(
    tmp_path: Path,
) -> None:
    functions = StatefulFunctions()
    entered: asyncio.Event  # made in the scenario, on its loop (Python 3.9 binds it when made)
    release: asyncio.Event

    @functions.bind("com.example/fn")
    async def fn(context: Context, message: Message) -> None:
        text = message.as_string()
        if text == "hold":
            entered.set()
            await release.wait()
        if text.startswith("poison"):
            raise RuntimeError(f"cannot digest {text}")

    async def scenario() -> None:
        nonlocal entered, release
        entered, release = asyncio.Event(), asyncio.Event()
        target = Address("com.example/fn", "x")
        async with serving(functions, tmp_path / "db.sqlite", call="100ms",
                           failure_pause=60) as (_, runtime):  # fmt: skip
            await runtime.send(target, string("hold"))
            await entered.wait()
            first = await runtime.send(target, string("poison 1"))
            await runtime.send(target, string("poison 2"))
            release.set()  # the two queued behind go as one batch, which fails
            await until(lambda: any(e["attempts"] for e in runtime.stuck()))
            (entry,) = runtime.stuck()
            view = runtime.inspect(target)
        assert (entry["message_seq"], entry["attempts"]) == (first, 1)
        assert [f.messages for f in runtime.failures] == [2]
        assert [m["value"] for m in view["in_flight"]] == ["poison 1"]  # retried alone
        assert [m["value"] for m in view["queued"]] == ["poison 2"]

    run(scenario())


def test_the_pause_before_a_retry_doubles_up_to_a_minute(tmp_path: Path) -> None:
    functions = status_functions()
    fragile = Address("com.example/fragile", "f")

    async def scenario() -> None:
        clock = ManualClock(1_000_000)
        async with FunctionServer(functions) as server:
            module = parse_module(module_yaml(server.url, call="100ms"))
            async with LocalRuntime(module, tmp_path / "db.sqlite", clock=clock,
                                    failure_pause=25, offline=True) as runtime:  # fmt: skip
                await runtime.send(fragile, string("m0"))
                await until(lambda: any(e["attempts"] for e in runtime.stuck()))
                assert runtime.stuck()[0]["next_retry_ms"] == 1_025_000
                runtime.retry_now(fragile, "ann")
                await until(lambda: runtime.stuck()[0]["attempts"] == 2)
                assert runtime.stuck()[0]["next_retry_ms"] == 1_050_000
                runtime.retry_now(fragile, "ann")
                await until(lambda: runtime.stuck()[0]["attempts"] == 3)
                assert runtime.stuck()[0]["next_retry_ms"] == 1_060_000  # not 100 s: a minute

    run(scenario())


def test_the_policy_dead_letters_a_message_at_its_nth_failed_attempt(tmp_path: Path) -> None:
    policy = DeadLetterPolicy(after=1)
    fragile = Address("com.example/fragile", "f")

    async def scenario() -> None:
        async with serving(status_functions(), tmp_path / "db.sqlite", call="100ms",
                           failure_pause=60, dead_letters=policy) as (_, runtime):  # fmt: skip
            seq = await runtime.send(fragile, string("m0"))
            await until(lambda: bool(runtime.failures))
            # done as the first attempt failed: not stuck, the message gone to the dead letters
            assert runtime.stuck() == []
            (entry,) = runtime.audit_log()
            (record,) = runtime.egress_records()
        assert (entry["action"], entry["message_seq"], entry["by"], entry["detail"]) == (
            "dead-letter",
            seq,
            "policy",
            "after 1 attempts, to statefun-local/dead-letters",
        )
        assert record["egress"] == "statefun-local/dead-letters"

    run(scenario())


def test_a_message_dead_lettered_by_hand_says_where_it_went(tmp_path: Path) -> None:
    fragile = Address("com.example/fragile", "f")

    async def scenario() -> None:
        async with serving(status_functions(), tmp_path / "db.sqlite", call="100ms",
                           failure_pause=60) as (_, runtime):  # fmt: skip
            seq = await runtime.send(fragile, string("m0"))
            await until(lambda: any(e["attempts"] for e in runtime.stuck()))
            assert runtime.dead_letter(fragile, "ann").done == "dead-lettered"
            (entry,) = runtime.audit_log()
        assert (entry["action"], entry["message_seq"], entry["by"], entry["detail"]) == (
            "dead-letter",
            seq,
            "ann",
            "to statefun-local/dead-letters",
        )

    run(scenario())


def test_a_call_that_fails_on_this_side_is_the_address_s_failure_and_nothing_more(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A message to a typename no URL can name (``com.example/..``) fails before any request
    is made, with an error that is not an HTTP failure: the address is stuck with it, and its
    retry is its next attempt. Once its pause is over the failed call is done with: it is
    not taken on to a reply it never had (which would fail again, a second attempt counted
    with an error of the runtime's own)."""
    caplog.set_level(logging.INFO, logger="statefun_local")
    functions = StatefulFunctions()

    @functions.bind("com.example/router")
    def router(context: Context, message: Message) -> None:
        context.send(message_builder("com.example/..", "x", str_value="lost"))

    dots = Address("com.example/..", "x")
    problem = "'com.example/..': '.' and '..' are not function names"

    async def scenario() -> str:
        db = tmp_path / "db.sqlite"
        async with serving(functions, db, failure_pause=60) as (server, runtime):
            await runtime.send(Address("com.example/router", "r"), string("go"))
            await until(lambda: any(e["attempts"] for e in runtime.stuck()))
            assert runtime.retry_now(dots, "ann").done == "retrying"
            await until(lambda: runtime.stuck()[0]["attempts"] >= 2)
            (entry,) = runtime.stuck()
            assert entry["attempts"] == 2
            assert (entry["address"], entry["last_error"]) == (str(dots), problem)
            assert [f.error for f in runtime.failures] == [problem, problem]
            assert server.requests == 1  # the router's: the two attempts posted nothing
        return server.url

    run(scenario())
    failed = [r.getMessage() for r in caplog.records
              if r.name.startswith("statefun_local") and r.levelno >= logging.ERROR]  # fmt: skip
    # said once, as for a type no endpoint serves, not with a traceback at each attempt
    assert failed == [
        f"{problem}: its messages are kept and retried, its addresses listed as stuck, their "
        "failures not logged one by one"
    ]
    assert not [m for m in caplog.messages if "reply was applied" in m]


def test_a_message_the_policy_dead_letters_ends_its_call_and_leaves_the_next_one_its_wait(
    tmp_path: Path,
) -> None:
    """Once the policy has dead-lettered a head message, nothing of its call is left: the
    message after it, failing in turn, waits for its retry as its own, and a skip asked for
    meanwhile is done at once, even after the pause the dead-lettered call was given would
    have ended (here the first failure after a restart: the shortest pause, two seconds).

    The skip comes within the second message's own pause (four seconds, after its second
    failure), past the two seconds since the dead letter; that the second message failed
    twice before those were over (three calls to 127.0.0.1) matters only to what this test
    would catch."""
    db = tmp_path / "db.sqlite"
    fragile = Address("com.example/fragile", "f")
    pause = 2.0

    async def scenario() -> None:
        async with FunctionServer(status_functions()) as server:
            module = parse_module(module_yaml(server.url, call="100ms"))

            def runtime_() -> LocalRuntime:
                return LocalRuntime(module, db, failure_pause=pause, offline=True,
                                    dead_letters=DeadLetterPolicy(after=3))  # fmt: skip

            async with runtime_() as runtime:
                first = await runtime.send(fragile, string("m0"))
                second = await runtime.send(fragile, string("m1"))
                await until(lambda: any(e["attempts"] for e in runtime.stuck()))
                runtime.retry_now(fragile, "ann")
                await until(lambda: runtime.stuck()[0]["attempts"] == 2)
            async with runtime_() as runtime:
                # m0's third attempt, sent again at the start, fails: the policy dead-letters it
                await until(lambda: [e["message_seq"] for e in runtime.stuck()] == [second])
                runtime.retry_now(fragile, "ann")
                await until(lambda: runtime.stuck()[0]["attempts"] == 2)
                await asyncio.sleep(pause)  # the dead-lettered call's pause is over
                outcome = runtime.skip(fragile, "bob")
                assert (outcome.done, outcome.detail) == ("skipped", "")
                await runtime.wait_until_idle()
                assert runtime.stuck() == []
                actions = [(e["action"], e["message_seq"], e["by"]) for e in runtime.audit_log()]
                (dead,) = runtime.egress_records()
        assert actions == [("skip", second, "bob"), ("retry", second, "ann"),
                           ("dead-letter", first, "policy"), ("retry", first, "ann")]  # fmt: skip
        assert dead["egress"] == "statefun-local/dead-letters"

    run(scenario())


def test_the_egress_jsonl_sink_writes_the_records_of_one_reply_once_each_and_resumes_after_them(
    tmp_path: Path,
) -> None:
    """A reply with three egress records: each is one line, once, and a restarted sink goes on
    after the last of them."""
    sink = tmp_path / "egress.jsonl"
    functions = StatefulFunctions()

    @functions.bind("com.example/fn")
    def fn(context: Context, message: Message) -> None:
        for n in range(3):
            value = f"{message.as_string()}{n}"
            context.send_egress(kafka_egress_message("com.example/out", topic="t", key="k",
                                                     value=value))  # fmt: skip

    def lines() -> list[dict[str, object]]:
        text = sink.read_text(encoding="utf-8") if sink.exists() else ""
        return [json.loads(line) for line in text.splitlines()]

    async def three_more(word: str, count: int) -> None:
        async with serving(functions, tmp_path / "db.sqlite", egress_jsonl=sink) as (_, runtime):
            await runtime.send(Address("com.example/fn", "x"), string(word))
            await runtime.wait_until_idle()
            await until(lambda: len(lines()) >= count)  # while the runtime runs
            assert [line["seq"] for line in lines()] == list(range(1, count + 1))

    run(three_more("a", 3))
    run(three_more("b", 6))
    values = [line["record"]["kafka"]["value"] for line in lines()]  # type: ignore[index]
    assert values == ["a0", "a1", "a2", "b0", "b1", "b2"]


def test_a_batch_whose_failure_could_not_be_written_is_sent_again_with_nothing_else_going_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process holds the database's write lock, for longer than the busy timeout, as
    the only reply there is comes back: neither the reply nor its failure can be written. The
    batch is offered again after the pause and sent, though no other message or timer comes
    to set the runtime going."""
    functions = StatefulFunctions()
    db = tmp_path / "db.sqlite"
    calls: list[str] = []

    async def scenario() -> None:
        held = asyncio.Event()  # made on the scenario's loop (Python 3.9 binds it when made)

        @functions.bind("com.example/fn", specs=[ValueSpec("count", IntType)])
        async def fn(context: Context, message: Message) -> None:
            calls.append(message.as_string())
            if len(calls) == 1:
                await held.wait()
            context.storage.count = (context.storage.count or 0) + 1

        async with serving(functions, db) as (_, runtime):
            runtime.store.conn.execute("PRAGMA busy_timeout = 100")
            target = Address("com.example/fn", "x")
            await runtime.send(target, string("m"))
            await until(lambda: calls == ["m"])
            async with database_locked(db):
                held.set()  # the reply comes back while the lock is held
                await until(lambda: "handling the batch failed" in caplog.text)
            await runtime.wait_until_idle(timeout=10)
            assert calls == ["m", "m"]
            assert runtime.inspect(target)["state"]["count"]["value"] == 1
            assert runtime.stuck() == []

    run(scenario())


def test_a_reply_the_database_has_no_room_for_is_the_address_s_failure_until_there_is_room(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A reply whose state does not fit in the database (its size capped, as a full disk
    would) is rolled back: the address is stuck with the database's error, and its retry,
    once there is room, delivers it. The failed batch is not also reported as the runtime's
    own failure to handle it, nor as one whose reply was applied."""
    caplog.set_level(logging.INFO, logger="statefun_local")
    functions = StatefulFunctions()
    big = "x" * 1_000_000
    full = "OperationalError: database or disk is full"

    async def scenario() -> None:
        held = asyncio.Event()  # made on the scenario's loop (Python 3.9 binds it when made)

        @functions.bind("com.example/fn", specs=[ValueSpec("text", StringType)])
        async def fn(context: Context, message: Message) -> None:
            await held.wait()
            context.storage.text = big

        target = Address("com.example/fn", "x")
        async with serving(functions, tmp_path / "db.sqlite", failure_pause=60) as (_, runtime):
            conn = runtime.store.conn
            await runtime.send(target, string("go"))
            await until(lambda: bool(runtime.inspect(target)["in_flight"]))
            (pages,) = conn.execute("PRAGMA page_count").fetchone()
            conn.execute(f"PRAGMA max_page_count = {pages}")  # no room for the state
            held.set()
            await until(lambda: any(e["attempts"] for e in runtime.stuck()))
            assert runtime.stuck()[0]["last_error"] == full
            assert [m["value"] for m in runtime.inspect(target)["in_flight"]] == ["go"]
            conn.execute("PRAGMA max_page_count = 1073741823")
            runtime.retry_now(target, "ann")
            await runtime.wait_until_idle()
            assert runtime.stuck() == []
            assert runtime.inspect(target)["state"]["text"]["value"] == big
        ours = [r for r in caplog.records if r.name.startswith("statefun_local")]
        failed = [r.getMessage() for r in ours if r.levelno >= logging.ERROR]
        assert failed == [
            f"{target}: applying the reply failed",
            f"{target}: batch of 1 message(s) failed: {full} (retrying in 60.0 s)",
        ]
        assert not [m for m in caplog.messages if "reply was applied" in m]

    run(scenario())


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_a_task_waiting_for_an_event_in_a_loop_ends_when_cancelled_as_the_event_is_set(
    turns: int,
) -> None:
    """What the runtime's loops wait with (the dispatcher's progress, a failure's pause, the
    timers): a cancellation that comes as the event is set, ``turns`` of the loop later, ends
    the task (``asyncio.wait_for`` before Python 3.12 loses it, and a stop then hangs)."""

    async def scenario() -> bool:
        event = asyncio.Event()

        async def waiting() -> None:
            while True:
                await wait_event(event, 10)
                event.clear()

        task = asyncio.create_task(waiting())
        await asyncio.sleep(0.01)
        event.set()
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2)
        return task in done and task.cancelled()

    assert run(scenario())
