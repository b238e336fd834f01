"""The functions the dead-letter tests serve: a counter with every kind of effect, bound three
ways (sync, async that never awaits, async that awaits), and a reader of unreadable input."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from statefun_core import (
    Context,
    DeadLetterEgress,
    FinalFailure,
    IntType,
    Message,
    StatefulFunctions,
    ValueSpec,
    kafka_egress_message,
    make_json_type,
    message_builder,
)

SYNC = "test/sync-counter"
ASYNC = "test/async-counter"
AWAITING = "test/awaiting-counter"
COUNTERS = (SYNC, ASYNC, AWAITING)
STRICT = "test/strict"
OUT = "test/out"
LATER = "test/later"
OUT_EGRESS = "test/out-egress"
DEAD_LETTERS = DeadLetterEgress("test/dead-letters", topic="dead-letters")
LOG = make_json_type("test/log")
ORDER = make_json_type("test/order")

#: The arguments that fail: 3 is a FinalFailure, 7 a KeyError (final by bind), 13 is not final.
FINAL, FINAL_BY_BIND, NOT_FINAL = 3, 7, 13


def count(context: Context, message: Message) -> None:
    """Write two states, send a message, a delayed message and an egress record; then fail
    for the arguments above. The log is changed in place before it is assigned."""
    n = message.as_int()
    storage: Any = context.storage
    storage.total = (storage.total or 0) + n
    log = storage.log or []
    log.append(n)
    storage.log = log
    context.send(message_builder(OUT, str(n), int_value=n))
    context.send_after(timedelta(seconds=n), message_builder(LATER, str(n), int_value=n))
    context.send_egress(kafka_egress_message(OUT_EGRESS, "out", str(n)))
    if n == FINAL:
        raise FinalFailure(f"{n} can never succeed")
    if n == FINAL_BY_BIND:
        raise KeyError(n)
    if n == NOT_FINAL:
        raise RuntimeError("an ordinary failure")


def make_functions() -> StatefulFunctions:
    functions = StatefulFunctions()
    specs = [ValueSpec("total", IntType), ValueSpec("log", LOG)]
    policy: dict[str, Any] = {"dead_letters": DEAD_LETTERS, "final_errors": (LookupError,)}

    @functions.bind(SYNC, specs, **policy)
    def sync_counter(context: Context, message: Message) -> None:
        count(context, message)

    @functions.bind(ASYNC, specs, **policy)
    async def async_counter(context: Context, message: Message) -> None:
        count(context, message)

    @functions.bind(AWAITING, specs, **policy)
    async def awaiting_counter(context: Context, message: Message) -> None:
        await asyncio.sleep(0)
        count(context, message)

    @functions.bind(STRICT, [ValueSpec("last", ORDER)], final_unreadable=True)
    def strict(context: Context, message: Message) -> None:
        previous = context.storage.last
        context.storage.last = message.as_type(ORDER)
        context.send(message_builder(OUT, "strict", str_value=str(previous)))

    return functions
