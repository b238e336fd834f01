"""The functions of the e2e application, one per scenario (``module.yaml`` beside this file).

Every scenario starts from a record on a Kafka ingress topic and ends in records on Kafka egress
topics, so a test sees only what a user of the real runtime sees. Commands are JSON
(``e2e/command``): ``{"op": ..., ...}``.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Optional

from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel
from statefun_msgpack import msgpack_dataclass

from statefun_core import (
    BoolType,
    Context,
    DeadLetterEgress,
    DoubleType,
    FloatType,
    IntType,
    LongType,
    Message,
    StatefulFunctions,
    StringType,
    ValueSpec,
    kafka_egress_message,
    kinesis_egress_message,
    make_json_type,
    make_protobuf_type,
    message_builder,
)

from . import programs

#: The ``topic`` of every egress record is ``TOPIC_PREFIX`` + a scenario's topic name, so that
#: each run of the application writes topics of its own.
TOPIC_PREFIX = os.environ.get("E2E_TOPIC_PREFIX", "")
EGRESS = "e2e/out"
COMMAND = make_json_type("e2e/command")

functions = StatefulFunctions()


def emit(topic: str, key: str, value: str, **options: Any) -> Any:
    return kafka_egress_message(EGRESS, TOPIC_PREFIX + topic, value, key=key, **options)


# --- the guide's greeter: state kept across messages, a chain of two function types ----------


@functions.bind("e2e.fns/greeter", specs=[ValueSpec("seen_count", IntType)])
def greeter(context: Context, message: Message) -> None:
    name = message.as_string()
    seen = context.storage.seen_count or 0
    context.storage.seen_count = seen + 1
    context.send(
        message_builder("e2e.fns/inbox", name, str_value=f"Hello {name} for the {seen}th time!")
    )


@functions.bind("e2e.fns/inbox")
def inbox(context: Context, message: Message) -> None:
    context.send_egress(emit("greetings", context.address.id, message.as_string()))


# --- fan-out across function types, and replies to the caller ------------------------------


@functions.bind("e2e.fns/fanout", specs=[ValueSpec("replies", make_json_type("e2e/replies"))])
def fanout(context: Context, message: Message) -> None:
    if message.is_type(COMMAND):  # {"op": "fanout", "n": N}: ask N workers
        count = message.as_type(COMMAND)["n"]
        context.storage.replies = {"expected": count, "from": []}
        for index in range(count):
            context.send(message_builder("e2e.fns/worker", f"{context.address.id}-{index}",
                                         str_value=context.address.id))  # fmt: skip
        return
    replies = context.storage.replies
    replies["from"].append(message.as_string())
    context.storage.replies = replies
    if len(replies["from"]) == replies["expected"]:
        done = ",".join(sorted(replies["from"]))
        context.send_egress(emit("fanned", context.address.id, done))


@functions.bind("e2e.fns/worker", specs=[ValueSpec("calls", IntType)])
def worker(context: Context, message: Message) -> None:
    """Replies to whoever called it, through a second hop (``e2e.fns/relay``)."""
    context.storage.calls = (context.storage.calls or 0) + 1
    caller = context.caller
    assert caller is not None and caller.typename == "e2e.fns/fanout"
    context.send(message_builder("e2e.fns/relay", caller.id, str_value=context.address.id))


@functions.bind("e2e.fns/relay")
def relay(context: Context, message: Message) -> None:
    context.send(message_builder("e2e.fns/fanout", context.address.id,
                                 str_value=message.as_string()))  # fmt: skip


# --- delayed messages and their cancellation -------------------------------------------------


@functions.bind("e2e.fns/delay")
def delay(context: Context, message: Message) -> None:
    if message.is_type(COMMAND):
        command = message.as_type(COMMAND)
        if command["op"] == "cancel":
            context.cancel_delayed_message(command["token"])
            return
        later = message_builder("e2e.fns/delay", context.address.id, str_value=command["label"])
        context.send_after(timedelta(milliseconds=command["after_ms"]), later,
                           cancellation_token=command.get("token"))  # fmt: skip
        return
    context.send_egress(emit("delays", context.address.id, message.as_string()))


# --- the rules of cancellation tokens, across two function types of one id -------------------


@functions.bind("e2e.fns/timer")
def timer(context: Context, message: Message) -> None:
    """A command's ``steps``, in order, in one reply: ``["send", label, after_ms, token]``,
    ``["cancel", token]`` or ``["peer-cancel", token]`` (a message to ``e2e.fns/timer-peer`` at
    this id); a delivered label goes to the egress with who scheduled it."""
    if not message.is_type(COMMAND):
        caller = context.caller
        assert caller is not None
        delivered = f"{message.as_string()} from {caller.typename}/{caller.id}"
        context.send_egress(emit("timers", context.address.id, delivered))
        return
    for step in message.as_type(COMMAND)["steps"]:
        if step[0] == "cancel":
            context.cancel_delayed_message(step[1])
        elif step[0] == "peer-cancel":
            peer = message_builder("e2e.fns/timer-peer", context.address.id, str_value=step[1])
            context.send(peer)
        else:
            _, label, after_ms, token = step
            later = message_builder("e2e.fns/timer", context.address.id, str_value=label)
            context.send_after(timedelta(milliseconds=after_ms), later, cancellation_token=token)


@functions.bind("e2e.fns/timer-peer")
def timer_peer(context: Context, message: Message) -> None:
    """Cancels a token of another function type, at the same id."""
    context.cancel_delayed_message(message.as_string())


# --- a function that fails its first attempts --------------------------------------------------

#: Attempts per (id, payload) in this server process. The runtime retries a failed batch, so the
#: count lives outside the state, which a failed batch never changes.
_attempts: dict[tuple[str, str], int] = {}


@functions.bind("e2e.fns/flaky", specs=[ValueSpec("successes", IntType)])
def flaky(context: Context, message: Message) -> None:
    command = message.as_type(COMMAND)
    attempt_key = (context.address.id, command["payload"])
    attempt = _attempts[attempt_key] = _attempts.get(attempt_key, 0) + 1
    context.storage.successes = (context.storage.successes or 0) + 1
    context.send_egress(emit("attempts", context.address.id, f"{command['payload']}:{attempt}"))
    if attempt <= command["fail"]:
        raise RuntimeError(f"attempt {attempt} of {command['payload']} fails on purpose")
    context.send_egress(
        emit("attempts", context.address.id, f"successes={context.storage.successes}")
    )


# --- a message that can never succeed goes to a dead-letter topic ---------------------------


@functions.bind(
    "e2e.fns/poison",
    specs=[ValueSpec("kept", IntType)],
    final_errors=(ValueError,),
    dead_letters=DeadLetterEgress(EGRESS, topic=TOPIC_PREFIX + "dead-letters"),
)
def poison(context: Context, message: Message) -> None:
    """``{"payload": ..., "poison": bool}``: counts and reports each payload; a poisoned one
    fails for good, after writing its state and its record (both dropped)."""
    command = message.as_type(COMMAND)
    context.storage.kept = (context.storage.kept or 0) + 1
    kept = f"{command['payload']}:kept={context.storage.kept}"
    context.send_egress(emit("survivors", context.address.id, kept))
    if command.get("poison"):
        raise ValueError(f"{command['payload']} can never succeed")


# --- per-id counters (the crash scenario) ----------------------------------------------------


@functions.bind("e2e.fns/counter", specs=[ValueSpec("count", LongType)])
def counter(context: Context, message: Message) -> None:
    count = (context.storage.count or 0) + 1
    context.storage.count = count
    context.send_egress(emit("counts", context.address.id, str(count)))


# --- an ingress without a startupPosition (module.yaml's e2e/unpositioned) ------------------


@functions.bind("e2e.fns/unpositioned")
def unpositioned(context: Context, message: Message) -> None:
    """Reports each record that ingress took, by its key."""
    context.send_egress(emit("unpositioned-taken", context.address.id, message.as_string()))


@functions.bind("e2e.fns/positioned")
def positioned(context: Context, message: Message) -> None:
    """Reports each record the ``dated`` and ``specific`` ingresses took, by its key."""
    context.send_egress(emit("positioned-taken", context.address.id, message.as_string()))


# --- record keys: the empty key and one not UTF-8 (module.yaml's keys topic) ---------------


@functions.bind("e2e.fns/keys")
def keys(context: Context, message: Message) -> None:
    """Reports the id each record reached, as JSON (ASCII), keyed by the id (an empty key is
    no key: the egress writes a record without one)."""
    id = context.address.id
    if message.as_string() == "beyond-ascii":  # on to a type named so, at the same id
        context.send(message_builder(BEYOND_ASCII, id, str_value="hi"))
        return
    context.send_egress(emit("keys-seen", id, f"{json.dumps(id)} {message.as_string()}"))


#: a function type, and its state, named beyond ASCII (a space, right-to-left text, an emoji)
BEYOND_ASCII = "e2e.fns/ünï \u05e9\U0001f600"


@functions.bind(BEYOND_ASCII, specs=[ValueSpec("größe", IntType)])
def beyond_ascii(context: Context, message: Message) -> None:
    """Counts its messages in its state; each count goes to the egress with its typename."""
    context.storage.größe = (context.storage.größe or 0) + 1
    seen = f"{context.address.typename} größe={context.storage.größe}"
    context.send_egress(emit("beyond-ascii", context.address.id, seen))


# --- every type through state and messages -------------------------------------------------


class Profile(BaseModel):
    name: str
    tags: list[str]


@msgpack_dataclass("e2e/point")
@dataclass
class Point:
    x: int
    y: float


#: (state name, spec type, value): written to state, then sent as a message.
TYPED_VALUES: list[tuple[str, Any, Any]] = [
    ("b", BoolType, True),
    ("i", IntType, -2_147_483_648),
    ("l", LongType, 9_007_199_254_740_993),
    ("f", FloatType, 1.5),
    ("d", DoubleType, -0.1),
    ("s", StringType, "héllo ✓"),
    ("p", Profile, Profile(name="Ann", tags=["a", "b"])),
    ("m", Point, Point(x=3, y=0.25)),
]


#: Each type's zero: a built-in type's is written as no bytes at all, yet is there (has_value).
ZEROS: dict[str, Any] = {"b": False, "i": 0, "l": 0, "f": 0.0, "d": 0.0, "s": "",
                         "p": Profile(name="", tags=[]), "m": Point(x=0, y=0.0)}  # fmt: skip


@functions.bind("e2e.fns/types", specs=[ValueSpec(name, type) for name, type, _ in TYPED_VALUES])
def types(context: Context, message: Message) -> None:
    """``write``: every value to state (``"zeros": true``: each type's zero); ``read``: each
    state sent as a message to ``e2e.fns/echo``, which writes what it received to the egress."""
    command = message.as_type(COMMAND)
    for name, type_, value in TYPED_VALUES:
        if command["op"] == "write":
            setattr(context.storage, name, ZEROS[name] if command.get("zeros") else value)
        else:
            stored = getattr(context.storage, name)
            target = f"{context.address.id}.{name}"
            if isinstance(type_, type):  # a plugin's type: value= alone
                context.send(message_builder("e2e.fns/echo", target, value=stored))
            else:
                context.send(message_builder("e2e.fns/echo", target, value=stored,
                                             value_type=type_))  # fmt: skip


@functions.bind("e2e.fns/echo")
def echo(context: Context, message: Message) -> None:
    name = context.address.id.rsplit(".", 1)[1]
    _, type_, _ = next(entry for entry in TYPED_VALUES if entry[0] == name)
    value = message.as_type(type_)
    shown = value.model_dump_json() if isinstance(value, BaseModel) else repr(value)
    context.send_egress(emit("typed", context.address.id, f"{message.value_typename()} {shown}"))


# --- functions of the official Java and JavaScript SDKs (java/, js/) -----------------------

#: The custom types every side declares: a JSON document, and a protobuf message all have.
JAVA_PROFILE = make_json_type("e2e/profile")
TIMESTAMP = make_protobuf_type(Timestamp)
#: kind: (type, value, zero), each sent to e2e.java/mixed or e2e.js/mixed, which answers with a
#: value of the same type computed from it.
TO_OTHER_SDK: dict[str, tuple[Any, Any, Any]] = {
    "int": (IntType, -2_147_483_648, 0),
    "long": (LongType, 9_007_199_254_740_993, 0),
    "float": (FloatType, 1.5, 0.0),
    "double": (DoubleType, -0.1, 0.0),
    "bool": (BoolType, True, False),
    "string": (StringType, "héllo ✓ 𝄞", ""),
    "json": (JAVA_PROFILE, {"name": "Ånn", "tags": ["a", "b", "c"]}, {"name": "", "tags": []}),
    "protobuf": (TIMESTAMP, Timestamp(seconds=1_700_000_000, nanos=5), Timestamp()),
}


@functions.bind("e2e.fns/mixed")
def mixed(context: Context, message: Message) -> None:
    """A command (``"to"``: ``java`` or ``js``; ``"zeros": true``: each type's zero) sends
    e2e.<to>/mixed a value of each type of TO_OTHER_SDK; each answer goes to the egress topic
    ``from-<to>``, keyed ``<id>.<kind>``."""
    if message.is_type(COMMAND):
        command = message.as_type(COMMAND)
        zeros, target = command.get("zeros", False), f"e2e.{command['to']}/mixed"
        for type_, value, zero in TO_OTHER_SDK.values():
            sent = zero if zeros else value
            context.send(message_builder(target, context.address.id, value=sent, value_type=type_))
        return
    kind, type_ = next((kind, type_) for kind, (type_, _, _) in TO_OTHER_SDK.items()
                       if message.is_type(type_))  # fmt: skip
    value = message.as_type(type_)
    if kind == "json":
        shown = json.dumps(value, sort_keys=True, ensure_ascii=False)
    elif kind == "protobuf":
        shown = f"seconds={value.seconds} nanos={value.nanos}"
    else:
        shown = repr(value)
    caller = context.caller
    assert caller is not None
    answer = f"{message.value_typename()} {shown} from {caller.typename}/{caller.id}"
    topic = f"from-{caller.namespace.removeprefix('e2e.')}"
    context.send_egress(emit(topic, f"{context.address.id}.{kind}", answer))


# --- egress records with keys and headers ---------------------------------------------------


@functions.bind("e2e.fns/egress")
def egress(context: Context, message: Message) -> None:
    command = message.as_type(COMMAND)
    headers = [("h", "1"), ("h", b"\x00\x02"), ("null", None), ("empty", "")]
    context.send_egress(emit("records", context.address.id, command["value"], headers=headers))


# --- state with a time to live --------------------------------------------------------------


@functions.bind(
    "e2e.fns/ttl",
    specs=[
        ValueSpec("after_write", IntType, expire_after_write=timedelta(seconds=4)),
        ValueSpec("after_call", IntType, expire_after_call=timedelta(seconds=4)),
    ],
)
def ttl(context: Context, message: Message) -> None:
    """Reports both states; on the first message (``after_call`` unset) writes both. Later
    messages only read them: ``after_write`` expires 4 s after that write however often it is
    read, ``after_call`` 4 s after the last message."""
    storage = context.storage
    context.send_egress(
        emit("expiry", context.address.id, f"{storage.after_write} {storage.after_call}")
    )
    if storage.after_call is None:
        storage.after_write = 1
        storage.after_call = 1


# --- a state added between two runs -----------------------------------------------------------

#: Set when the function server is redeployed with the ``added`` state.
EVOLVED = os.environ.get("E2E_EVOLVED") == "1"


@functions.bind(
    "e2e.fns/evolving",
    specs=[ValueSpec("kept", IntType), *([ValueSpec("added", IntType)] if EVOLVED else [])],
)
def evolving(context: Context, message: Message) -> None:
    kept = context.storage.kept = (context.storage.kept or 0) + 1
    added = None
    if EVOLVED:
        added = context.storage.added = (context.storage.added or 0) + 1
    context.send_egress(emit("evolved", context.address.id, f"kept={kept} added={added}"))


# --- where a keyed egress record goes ------------------------------------------------------


@functions.bind("e2e.fns/placed")
def placed(context: Context, message: Message) -> None:
    """``{"keys": [...]}``: a record per key on ``placed``, keyed by it; the broker says which
    partition the egress' producer put it in."""
    for key in message.as_type(COMMAND)["keys"]:
        context.send_egress(emit("placed", key, key))


# --- one call at a time per address, the messages that wait sent as one batch ----------------

#: Invocations of ``e2e.fns/batched`` under way, per id, and the ids released (see below).
_under_way: dict[str, int] = {}
_released: set[str] = set()


@functions.bind("e2e.fns/batched")
async def batched(context: Context, message: Message) -> None:
    """``{"n": n}``: reports ``n@<place in its batch>`` (``!`` if another invocation for this
    id was under way). ``"hold": id`` first waits until ``{"release": id}`` came, to another
    id, then 2 s more (while the runtime buffers what comes for this id: through its network
    buffers, from another subtask, on a loaded machine).

    The place in the batch is how many records this batch sent before: one per invocation
    (``outbox`` is the batch's, kept by the context)."""
    command = message.as_type(COMMAND)
    id = context.address.id
    if "release" in command:
        _released.add(command["release"])
        context.send_egress(emit("batched", id, f"released {command['release']}"))
        return
    place = len(context.outbox)  # type: ignore[attr-defined]
    _under_way[id] = _under_way.get(id, 0) + 1
    try:
        overlap = "!" if _under_way[id] > 1 else ""
        held = ""
        if "hold" in command:
            for _ in range(300):  # 30 s at most: a runtime that serves one address at a time
                if command["hold"] in _released:
                    break
                await asyncio.sleep(0.1)
            held = " after release" if command["hold"] in _released else " never released"
            await asyncio.sleep(2)
        context.send_egress(emit("batched", id, f"{command['n']}@{place}{overlap}{held}"))
    finally:
        _under_way[id] -= 1


# --- a function slower than its endpoint's call timeout ------------------------------------

#: Attempts per payload in this server process (a timed-out attempt leaves no state).
_slow_attempts: dict[str, int] = {}


@functions.bind("e2e.fns/slow", specs=[ValueSpec("done", IntType)])
async def slow(context: Context, message: Message) -> None:
    """``{"payload": p, "slow": k}``: the first ``k`` attempts take 3 s, more than the 2 s call
    timeout of this function's endpoint; then it reports the attempt and its ``done`` count."""
    command = message.as_type(COMMAND)
    payload = command["payload"]
    attempt = _slow_attempts[payload] = _slow_attempts.get(payload, 0) + 1
    if attempt <= command["slow"]:
        await asyncio.sleep(3)
    done = context.storage.done = (context.storage.done or 0) + 1
    context.send_egress(emit("slowed", context.address.id, f"{payload}:{attempt} done={done}"))


# --- Kinesis in, Kinesis out (statefun-local's Kinesis connectors) ---------------------------


@functions.bind("e2e.fns/kinesis-counter", specs=[ValueSpec("count", LongType)])
def kinesis_counter(context: Context, message: Message) -> None:
    count = (context.storage.count or 0) + 1
    context.storage.count = count
    context.send_egress(kinesis_egress_message(
        "e2e/kinesis-out", TOPIC_PREFIX + "kinesis-counts", str(count),
        partition_key=context.address.id,
    ))  # fmt: skip


# --- random programs, interpreted (programs.py; the randomized differential scenario) -------

#: Attempts per ``fail`` step in this server process (a failed batch leaves no state).
_program_attempts: dict[str, int] = {}


class _ProgramState:
    """programs.State over a function's storage."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage

    def get(self, name: str) -> Any:
        return getattr(self.storage, name)

    def set(self, name: str, value: Any) -> None:
        setattr(self.storage, name, value)

    def delete(self, name: str) -> None:
        delattr(self.storage, name)


class _ProgramOutbox:
    """programs.Outbox over a function's context."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def send(self, typename: str, id: str, steps: list[Any]) -> None:
        self.context.send(message_builder(typename, id, value=steps, value_type=COMMAND))

    def send_after(
        self, typename: str, id: str, delay_ms: float, token: Optional[str], steps: list[Any]
    ) -> None:
        later = message_builder(typename, id, value=steps, value_type=COMMAND)
        self.context.send_after(timedelta(milliseconds=delay_ms), later,
                                cancellation_token=token or "")  # fmt: skip

    def cancel(self, token: str) -> None:
        self.context.cancel_delayed_message(token)

    def emit(self, key: str, value: str) -> None:
        self.context.send_egress(emit(programs.EGRESS_TOPIC, key, value))


def _fail(tag: str, times: int) -> None:
    attempt = _program_attempts[tag] = _program_attempts.get(tag, 0) + 1
    if attempt <= times:
        raise RuntimeError(f"attempt {attempt} of step {tag} fails on purpose")


#: The interpreters' states, two with a time to live of an hour: never reached in a test, but
#: the runtime keeps them as states that expire.
PROGRAM_SPECS = [
    ValueSpec("log", make_json_type("e2e/log"), expire_after_write=timedelta(hours=1)),
    ValueSpec("count", LongType, expire_after_call=timedelta(hours=1)),
    ValueSpec("emitted", IntType),
]


PROGRAM_DEAD_LETTERS = DeadLetterEgress(EGRESS, topic=TOPIC_PREFIX + programs.DEAD_LETTER_TOPIC)


@functions.bind(programs.INTERP, specs=PROGRAM_SPECS, final_errors=(ValueError,),
                dead_letters=PROGRAM_DEAD_LETTERS)  # fmt: skip
def interpret(context: Context, message: Message) -> None:
    """Runs the program the message carries (programs.py)."""
    address, caller = context.address, context.caller
    programs.run(
        programs.steps_of(message.as_type(COMMAND), address.typename),
        (address.typename, address.id),
        None if caller is None else (caller.typename, caller.id),
        _ProgramState(context.storage),
        _ProgramOutbox(context),
        _fail,
    )


@functions.bind(programs.INTERP_B, specs=PROGRAM_SPECS, final_errors=(ValueError,),
                dead_letters=PROGRAM_DEAD_LETTERS)  # fmt: skip
async def interpret_async(context: Context, message: Message) -> None:
    """The same, as a coroutine that lets the server's other calls run first."""
    await asyncio.sleep(0)
    interpret(context, message)
