"""The harness's async driver: the handler's ``handle_async``, from plain asyncio."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from statefun_core import (
    AsyncFunctionInSyncContextError,
    IntType,
    StatefulFunctions,
    ValueSpec,
    message_builder,
)
from statefun_core.engine import Address
from statefun_core.testing import Harness

functions = StatefulFunctions()


@functions.bind("example/async", specs=[ValueSpec("count", IntType)])
async def counter(context, message):
    await asyncio.sleep(0)
    context.storage.count = (context.storage.count or 0) + message.as_int()
    if message.as_int() == 1:
        context.send_after(
            timedelta(seconds=1), message_builder("example/async", context.address.id, int_value=10)
        )


@functions.bind("example/sync")
def forward(context, message):
    context.send(message_builder("example/async", "a", int_value=message.as_int()))


def test_run_async_drives_async_and_sync_functions_on_the_running_loop():
    async def scenario() -> Harness:
        loop = asyncio.get_running_loop()
        harness = Harness(functions)
        harness.send("example/sync", "s", int_value=1).send("example/async", "a", int_value=5)
        assert await harness.run_async() == 4  # sync; async's discovery, 5, then 1
        assert asyncio.get_running_loop() is loop
        return harness

    harness = asyncio.run(scenario())
    harness.assert_state("example/async", "a", count=6)
    assert [pending.due_ms for pending in harness.pending] == [1_000]


def test_advance_async_fires_delayed_messages():
    async def scenario() -> Harness:
        harness = Harness(functions)
        harness.send("example/async", "a", int_value=1)
        assert await harness.advance_async(timedelta(seconds=1)) == 3  # discovery, 1, then 10
        assert await harness.run_async() == 0
        return harness

    harness = asyncio.run(scenario())
    harness.assert_state("example/async", "a", count=11)
    assert harness.pending == []


def test_run_async_captures_messages_to_types_it_does_not_run():
    async def scenario() -> Harness:
        harness = Harness(functions)
        harness.send("example/elsewhere", "x", int_value=1, caller=("example/sync", "s"))
        assert await harness.run_async() == 1
        return harness

    harness = asyncio.run(scenario())
    captured = harness.assert_captured("example/elsewhere", "x", int_value=1)
    assert captured.caller == Address("example/sync", "s")
    assert harness.batches == []


def test_run_inside_a_running_loop_names_run_async_and_keeps_the_message():
    """As in a notebook cell, where the kernel's loop runs: run() can not await the function,
    and says what to call instead; the message stays queued for it."""

    async def scenario() -> Harness:
        harness = Harness(functions)
        harness.send("example/async", "a", int_value=5)
        with pytest.raises(AsyncFunctionInSyncContextError, match=r"await harness\.run_async\(\)"):
            harness.run()
        assert await harness.run_async() == 2  # discovery, 5
        return harness

    harness = asyncio.run(scenario())
    harness.assert_state("example/async", "a", count=5)


def test_run_inside_a_running_loop_runs_sync_functions():
    sync_only = StatefulFunctions()
    sync_only.register("example/sync", forward)

    async def scenario() -> Harness:
        harness = Harness(sync_only)
        harness.send("example/sync", "s", int_value=1)
        assert harness.run() == 2  # forward, and the message it sends captured
        return harness

    harness = asyncio.run(scenario())
    harness.assert_captured("example/async", "a", int_value=1)
