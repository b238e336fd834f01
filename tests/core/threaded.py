"""Functions of every kind, a type plugin and the requests of many threads: what a handler
shared by the threads of a server is tried with (tests/core/test_threads.py in one process,
tests/apps/test_threaded.py under gunicorn and waitress, serving tests/apps/threaded_app.py)."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Executor
from datetime import timedelta
from typing import Any, Optional

from statefun_core import (
    Context,
    DeadLetterEgress,
    IntType,
    LongType,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    StringType,
    Type,
    ValueSpec,
    hookimpl,
    kafka_egress_message,
    make_json_type,
    make_plugin_manager,
    message_builder,
    simple_type,
)
from statefun_core.plugins import InvocationLogContext, current_invocation
from statefun_core.testing import wire

#: Server threads, and client threads sending at once.
THREADS = 12
DEAD_LETTERS = DeadLetterEgress("t/dead-letters", topic="dead-letters")


class Point:
    typename = "t/Point"

    def __init__(self, x: int) -> None:
        self.x = x


#: Classes whose types are first looked up while requests run: each function sends one of each.
KINDS = tuple(type(f"Kind{i}", (Point,), {"typename": f"t/Kind{i}"}) for i in range(8))


def type_of(cls: type) -> Type:
    return simple_type(
        vars(cls)["typename"],
        serialize_fn=lambda value: str(value.x).encode(),
        deserialize_fn=lambda data: cls(int(data)),
    )


class FreshTypes:
    """A type plugin answering with a new ``Type`` each time it is asked (as one that makes
    its types from the class may): the handler asks it once per class."""

    @hookimpl
    def statefun_type_for_class(self, cls: type) -> Optional[Type]:
        return type_of(cls) if "typename" in vars(cls) else None


JSON = make_json_type("t/json")


def send_kinds(context: Context, x: int) -> None:
    for kind in KINDS:
        context.send(
            message_builder(target_typename="t/inbox", target_id=context.address.id, value=kind(x))
        )


def threaded_functions() -> StatefulFunctions:
    """Each kind of function, each reading its argument and sending values by class (types
    looked up while requests run), writing its states."""
    functions = StatefulFunctions()

    @functions.bind("t/sync", specs=[ValueSpec("n", IntType)])
    def sync(context: Context, message: Message) -> None:
        point = message.as_type(Point)
        context.storage.n = (context.storage.n or 0) + point.x
        send_kinds(context, point.x)

    @functions.bind("t/step", specs=[ValueSpec("seen", JSON)])
    async def step(context: Context, message: Message) -> None:  # never awaits: no loop
        seen = context.storage.seen or []
        context.storage.seen = [*seen, message.as_type(Point).x]
        send_kinds(context, 2)

    @functions.bind("t/await", specs=[ValueSpec("text", StringType)])
    async def awaiting(context: Context, message: Message) -> None:  # the thread's loop
        await asyncio.sleep(0)
        context.storage.text = f"{context.storage.text or ''}{message.as_type(Point).x},"
        for kind in reversed(KINDS):
            later = message_builder(
                target_typename="t/inbox", target_id=context.address.id, value=kind(3)
            )
            context.send_after(timedelta(seconds=1), later)

    @functions.bind("t/asks-loop", specs=[ValueSpec("n", IntType)])
    async def asks_loop(context: Context, message: Message) -> None:  # run again as a task
        asyncio.get_running_loop()
        context.storage.n = (context.storage.n or 0) + message.as_type(Point).x
        send_kinds(context, 4)

    @functions.bind("t/blocking", specs=[ValueSpec("last", Point)], blocking=True)
    def blocking(context: Context, message: Message) -> None:  # the executor, when async
        context.storage.last = message.as_type(Point)
        record = kafka_egress_message(
            typename="t/egress", topic="out", key=context.address.id, value=context.address.id
        )
        context.send_egress(record)

    @functions.bind("t/logged")
    def logged(context: Context, message: Message) -> None:  # the log context's own request
        running = current_invocation.get()
        assert running is not None
        text = f"{running.function} {running.id} for {context.address.typename}"
        context.send(
            message_builder(target_typename="t/inbox", target_id=context.address.id, str_value=text)
        )

    @functions.bind("t/dead", specs=[ValueSpec("n", IntType)], final_errors=(KeyError,))
    def dead(context: Context, message: Message) -> None:  # an odd one is dead-lettered
        x = message.as_type(Point).x
        if x % 2:
            raise KeyError(x)
        context.storage.n = x

    @functions.bind(
        "t/missing", specs=[ValueSpec("big", LongType, expire_after_call=timedelta(minutes=1))]
    )
    def missing(context: Context, message: Message) -> None:  # asked without its state
        raise AssertionError("called without its state")

    return functions


STATES: dict[str, dict[str, Any]] = {
    "t/sync": {"n": 5},
    "t/step": {"seen": None},
    "t/await": {"text": "x"},
    "t/asks-loop": {"n": 1},
    "t/blocking": {"last": None},
    "t/logged": {},
    "t/dead": {"n": None},
    "t/missing": {},
}


def requests(thread: int) -> list[tuple[str, str, bytes]]:
    """A thread's requests: one batch of two invocations for each function, the first one a
    different function in each thread, so that threads meet on every first use."""
    point = type_of(Point)
    typenames = list(STATES)
    start = thread % len(typenames)
    return [
        (
            typename,
            f"id-{thread}",
            wire.to_function(
                typename,
                f"id-{thread}",
                [
                    wire.typed_value(point, Point(thread)),
                    wire.typed_value(point, Point(thread + 1)),
                ],
                STATES[typename],
            ),
        )
        for typename in typenames[start:] + typenames[:start]
    ]


def new_handler(*plugins: Any, executor: Optional[Executor] = None) -> RequestReplyHandler:
    """A handler of the functions with the type plugin, the log context and ``plugins``."""
    manager = make_plugin_manager(
        [FreshTypes(), InvocationLogContext(), *plugins], load_entrypoints=False
    )
    return RequestReplyHandler(
        threaded_functions(), plugins=manager, executor=executor, dead_letters=DEAD_LETTERS
    )


def comparable(reply: bytes) -> Any:
    """The reply, as bytes, but for a dead-letter record's time (when it was made)."""
    if wire.missing_states(reply):
        return reply
    records = [
        record
        for record in wire.egress(reply)
        if getattr(record, "topic", None) == DEAD_LETTERS.topic
    ]
    if not records:
        return reply
    return wire.mutations(reply), [{**json.loads(record.value), "time": None} for record in records]
