"""The functions the dead-letter tests serve: a counter with every kind of effect and a writer of
every kind of state, each bound three ways (sync, async that never awaits, async that awaits),
and a reader of unreadable input."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from statefun_core import (
    BoolType,
    Context,
    DeadLetterEgress,
    FinalFailure,
    FloatType,
    IntType,
    Message,
    StatefulFunctions,
    StringType,
    ValueSpec,
    kafka_egress_message,
    make_json_type,
    make_protobuf_type,
    message_builder,
    protocol,
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

SYNC_KINDS = "test/sync-kinds"
ASYNC_KINDS = "test/async-kinds"
AWAITING_KINDS = "test/awaiting-kinds"
KINDS = (SYNC_KINDS, ASYNC_KINDS, AWAITING_KINDS)
COMMAND = make_json_type("test/command")
DOC = make_json_type("test/doc")
PLACE = make_protobuf_type(protocol.Address)
#: name -> type of the states of the kinds functions: an int and a bool kept as they are until
#: the reply, a string, a float (encoded when assigned), a JSON and a protobuf state
KIND_STATES = {
    "count": IntType,
    "flag": BoolType,
    "name": StringType,
    "ratio": FloatType,
    "doc": DOC,
    "place": PLACE,
}

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


def place(id: str) -> Any:
    return protocol.Address(namespace="test", type="place", id=id)


def apply(context: Context, message: Message) -> None:
    """Run a command's steps in order: ``["write", {name: value}]`` (``place`` given by its
    id), ``["delete", [names]]``, ``["report"]`` (send what the storage holds to ``OUT``) and
    ``["fail"]`` (a final failure)."""
    storage: Any = context.storage
    for step, *argument in message.as_type(COMMAND):
        if step == "write":
            for name, value in argument[0].items():
                setattr(storage, name, place(value) if name == "place" else value)
        elif step == "delete":
            for name in argument[0]:
                delattr(storage, name)
        elif step == "report":
            held = {name: getattr(storage, name) for name in KIND_STATES}
            if held["place"] is not None:
                held["place"] = held["place"].id
            context.send(message_builder(OUT, "report", str_value=json.dumps(held)))
        else:
            raise FinalFailure("the command fails")


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

    kinds = [ValueSpec(name, tpe) for name, tpe in KIND_STATES.items()]

    @functions.bind(SYNC_KINDS, kinds, dead_letters=DEAD_LETTERS)
    def sync_kinds(context: Context, message: Message) -> None:
        apply(context, message)

    @functions.bind(ASYNC_KINDS, kinds, dead_letters=DEAD_LETTERS)
    async def async_kinds(context: Context, message: Message) -> None:
        apply(context, message)

    @functions.bind(AWAITING_KINDS, kinds, dead_letters=DEAD_LETTERS)
    async def awaiting_kinds(context: Context, message: Message) -> None:
        await asyncio.sleep(0)
        apply(context, message)

    @functions.bind(STRICT, [ValueSpec("last", ORDER)], final_unreadable=True)
    def strict(context: Context, message: Message) -> None:
        previous = context.storage.last
        context.storage.last = message.as_type(ORDER)
        context.send(message_builder(OUT, "strict", str_value=str(previous)))

    return functions
