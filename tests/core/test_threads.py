"""One handler shared by many threads, as a threaded server (gunicorn ``--threads``, waitress)
shares it: every thread's first requests find the handler fresh, with thread switches forced
between almost every bytecode (``sys.setswitchinterval``), and get the replies one thread gets."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, Callable, Optional

import pytest

from statefun_core import (
    Context,
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
from statefun_core.plugins import BatchEvent, InvocationLogContext, current_invocation
from statefun_core.testing.wire import to_function, typed_value

THREADS = 12
ROUNDS = 30


class Point:
    typename = "t/Point"

    def __init__(self, x: int) -> None:
        self.x = x


class Label(Point):
    typename = "t/Label"


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


class Batches:
    """What the plugins heard of each batch: its function, id, outcome and counts."""

    def __init__(self) -> None:
        self.finished: Counter[tuple[Any, ...]] = Counter()

    @hookimpl
    def statefun_batch_finished(self, batch: BatchEvent) -> None:
        self.finished[
            batch.function_type,
            batch.function_id,
            batch.outcome,
            batch.state_bytes_read,
            batch.state_bytes_written,
            batch.messages,
            batch.delayed_messages,
            batch.egress_records,
        ] += 1


JSON = make_json_type("t/json")


def threaded_functions() -> StatefulFunctions:
    """Each kind of function, each reading its argument and sending values by class (types
    looked up while requests run), writing its states."""
    functions = StatefulFunctions()

    @functions.bind("t/sync", specs=[ValueSpec("n", IntType)])
    def sync(context: Context, message: Message) -> None:
        point = message.as_type(Point)
        context.storage.n = (context.storage.n or 0) + point.x
        context.send(
            message_builder(target_typename="t/inbox", target_id=context.address.id, value=Label(1))
        )

    @functions.bind("t/step", specs=[ValueSpec("seen", JSON)])
    async def step(context: Context, message: Message) -> None:  # never awaits: no loop
        seen = context.storage.seen or []
        context.storage.seen = [*seen, message.as_type(Point).x]
        context.send(
            message_builder(target_typename="t/inbox", target_id=context.address.id, value=Point(2))
        )

    @functions.bind("t/await", specs=[ValueSpec("text", StringType)])
    async def awaiting(context: Context, message: Message) -> None:  # the thread's loop
        await asyncio.sleep(0)
        context.storage.text = f"{context.storage.text or ''}{message.as_type(Point).x},"
        later = message_builder(
            target_typename="t/inbox", target_id=context.address.id, value=Label(3)
        )
        context.send_after(timedelta(seconds=1), later)

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
    "t/blocking": {"last": None},
    "t/logged": {},
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
            to_function(
                typename,
                f"id-{thread}",
                [typed_value(point, Point(thread)), typed_value(point, Point(thread + 1))],
                STATES[typename],
            ),
        )
        for typename in typenames[start:] + typenames[:start]
    ]


def new_handler(batches: Batches, executor: ThreadPoolExecutor) -> RequestReplyHandler:
    plugins = make_plugin_manager(
        [FreshTypes(), InvocationLogContext(), batches], load_entrypoints=False
    )
    return RequestReplyHandler(threaded_functions(), plugins=plugins, executor=executor)


def drive(handler: RequestReplyHandler, driver: str) -> Callable[[bytes], bytes]:
    if driver == "handle_sync":
        return handler.handle_sync
    return lambda data: asyncio.run(handler.handle_async(data))  # a loop per server thread


def at_once(
    serve: Callable[[bytes], bytes],
) -> tuple[dict[tuple[str, str], bytes], list[BaseException]]:
    """Each thread's requests served, every thread's first one at once: the replies by
    function and id, and what was raised."""
    replies: dict[tuple[str, str], bytes] = {}
    failures: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(thread: int) -> None:
        start.wait()
        for typename, id, data in requests(thread):
            try:
                replies[typename, id] = serve(data)
            except BaseException as error:
                failures.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return replies, failures


@pytest.fixture
def switching_often() -> Iterator[None]:
    """A thread switch between almost any two bytecodes, where a race would show."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


@pytest.mark.parametrize("driver", ["handle_sync", "handle_async"])
def test_a_fresh_handler_shared_by_many_threads_replies_as_one_thread_does(
    driver: str, switching_often: None
) -> None:
    with ThreadPoolExecutor(4) as executor:
        alone = Batches()
        serve = drive(new_handler(alone, executor), driver)
        expected = {
            (typename, id): serve(data)
            for thread in range(THREADS)
            for typename, id, data in requests(thread)
        }
        answered = {reply for (typename, _), reply in expected.items() if typename != "t/missing"}
        assert len(answered) == len(expected) - THREADS  # each its own but the missing states'
        for _ in range(ROUNDS):
            batches = Batches()
            serve = drive(new_handler(batches, executor), driver)
            replies, failures = at_once(serve)
            assert [repr(failure.__cause__ or failure) for failure in failures] == []
            assert replies == expected
            assert batches.finished == alone.finished
