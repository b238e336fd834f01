"""``statefun_core.testing`` as a user's typed test suite uses it: the harness and its pytest
fixture, ``wire``, the endpoint checks, the Lambda events. Type-checked in the ``typecheck``
session (see ``uses_core.py``), never run: pytest does not collect this file."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import Any, Callable, Optional, Union

import pytest
from typing_extensions import assert_type

from statefun_core import (
    Context,
    DeadLetterEgress,
    DeadLetterRecord,
    IntType,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    StringType,
    ValueSpec,
    kafka_egress_message,
    make_plugin_manager,
    message_builder,
)
from statefun_core.aws_lambda import LambdaHandler
from statefun_core.engine import Address, StateSpec
from statefun_core.testing import (
    EgressOutput,
    Harness,
    HarnessError,
    HarnessFactory,
    KafkaRecord,
    KinesisRecord,
    PendingMessage,
    SentMessage,
    aws_lambda,
    decode_egress,
    endpoint,
    packaging,
    wire,
)
from statefun_core.testing.aws_lambda import GATEWAYS, LambdaResponse, gateway_event, invoke
from statefun_core.testing.endpoint import (
    ENDPOINT_CHECKS,
    check_endpoint,
    check_request_limit,
    free_port,
    make_functions,
    running,
)

functions = StatefulFunctions()


@functions.bind("com.example.fns/greeter", specs=[ValueSpec("seen_count", IntType)])
def greeter(context: Context, message: Message) -> None:
    name = message.as_string() or ""
    seen = context.storage.seen_count or 0
    context.storage.seen_count = seen + 1
    context.send(message_builder("com.example.fns/inbox", name, str_value=f"Hello {name}"))
    context.send_egress(
        kafka_egress_message("com.example/greets", topic="greetings", key=name, value="hi")
    )


def test_greets_every_visit(statefun_harness: HarnessFactory) -> None:
    harness = statefun_harness(functions)
    assert_type(harness, Harness)
    statefun_harness(functions, start_ms="1000")  # type: ignore[arg-type]
    assert_type(harness.send("com.example.fns/greeter", "ann", str_value="ann"), Harness)
    assert_type(harness.run(), int)
    harness.assert_state("com.example.fns/greeter", "ann", seen_count=1)
    sent = harness.assert_sent("com.example.fns/inbox", "ann", str_value="Hello ann")
    assert_type(sent, SentMessage)
    assert_type(sent.caller, Optional[Address])
    assert sent.caller == Address("com.example.fns/greeter", "ann")
    assert_type(sent.message.as_string(), Optional[str])
    record = harness.assert_egress("com.example/greets", topic="greetings", key="ann")
    assert isinstance(record, KafkaRecord)
    assert_type(record.key, Optional[str])
    assert harness.egress[0] == KafkaRecord("com.example/greets", "greetings", "ann", b"hi")
    for each in harness.egress:
        if isinstance(each, KinesisRecord):
            assert_type(each.partition_key, str)
        elif isinstance(each, EgressOutput):
            assert_type(each.value, bytes)
    pending: list[PendingMessage] = harness.pending
    captured: list[SentMessage] = harness.captured
    assert_type(harness.state("com.example.fns/greeter", "ann"), dict[str, Any])
    assert_type(harness.advance(1000), int)
    assert_type(harness.now_ms, int)
    assert_type(harness.restart(), Harness)
    assert_type(harness.set_state("com.example.fns/greeter", "ann", seen_count=41), Harness)
    assert_type(harness.dead_letters, list[DeadLetterRecord])
    assert pending == [] and captured == []
    with pytest.raises(HarnessError):
        harness.assert_state("com.example.fns/greeter", "ann", seen_count=5)


def test_options() -> None:
    harness = Harness(
        functions,
        plugins=make_plugin_manager(load_entrypoints=False),
        start_ms=1_000,
        max_batches=10,
        max_discovery_rounds=2,
        dead_letters=DeadLetterEgress("com.example/dead"),
        capture=["com.example.fns/inbox"],
    )
    assert_type(harness.capture, frozenset[str])
    harness.redeploy(functions)


def test_async_greeter() -> None:
    async def scenario() -> Harness:
        harness = Harness(functions)
        harness.send("com.example.fns/greeter", "ann", str_value="ann")
        assert_type(await harness.run_async(), int)
        return harness

    asyncio.run(scenario()).assert_state("com.example.fns/greeter", "ann", seen_count=1)


def test_one_request_at_a_time() -> None:
    handler = RequestReplyHandler(functions)
    reply = handler.handle_sync(wire.to_function("com.example.fns/greeter", "ann", ["ann"]))
    assert wire.missing_states(reply) == [StateSpec("seen_count", IntType.typename)]
    assert_type(wire.missing_states(reply), list[StateSpec])
    reply = handler.handle_sync(
        wire.to_function(
            "com.example.fns/greeter",
            "ann",
            ["ann"],
            {"seen_count": 1},
            caller=("com.example.fns/other", "bob"),
        )
    )
    assert wire.mutations(reply) == {"seen_count": wire.typed_value(IntType, 2)}
    (sent,) = wire.messages(reply, handler.types)
    assert_type(sent, SentMessage)
    assert sent.message.as_string() == "Hello ann"
    for record in wire.egress(reply):
        assert_type(record, Union[KafkaRecord, KinesisRecord, EgressOutput])
    assert wire.delayed(reply) == []
    wire.typed_value(StringType, "x")


def test_decode_egress() -> None:
    decoded = [decode_egress(record) for record in Harness(functions).engine.egress_records()]
    assert decoded == []


statefun = LambdaHandler(functions)


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_greets_behind_every_gateway(gateway: str) -> None:
    request = wire.to_function("com.example.fns/greeter", "ann", ["ann"], {"seen_count": 1})
    response = invoke(statefun, gateway_event(request, gateway=gateway))
    assert_type(response, LambdaResponse)
    assert response.status == 200
    assert_type(response.body, bytes)
    assert_type(aws_lambda.documented_event(gateway), dict[str, Any])


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "myapp:app"]
    with running(command, port) as process:
        assert_type(process.pid, int)
        yield port


@pytest.mark.parametrize("check", ENDPOINT_CHECKS.values(), ids=list(ENDPOINT_CHECKS))
def test_endpoint(port: int, check: Callable[[int, str], None]) -> None:
    check(port, "/statefun")


def test_all_checks(port: int) -> None:
    check_endpoint(port, "/statefun", request_limit=64 * 1024)
    check_request_limit(port, "/statefun", 64 * 1024)
    status, headers, body = endpoint.request(port, "/statefun", b"")
    assert_type(status, int)
    assert_type(headers, dict[str, str])
    assert_type(body, bytes)
    assert_type(
        endpoint.greetings(body), tuple[Optional[int], list[tuple[str, str, Optional[str]]]]
    )


def test_make_functions() -> None:
    assert_type(make_functions(interleave=True, blocking=True), StatefulFunctions)
    recorder = endpoint.FailureRecorder()
    headers = endpoint.HeaderRecorder("X-Request-Id")
    plugins = make_plugin_manager([recorder, headers, endpoint.PingEndpoints()])
    assert recorder.failures == [] and headers.headers == [] and plugins


def test_packaging_helpers() -> None:
    packaging.check_import_guard("statefun_flask", missing="flask", distribution="statefun-flask")
