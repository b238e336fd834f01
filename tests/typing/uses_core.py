"""What users' code sees of the API. The files here are type-checked in the ``typecheck``
session by ``mypy --strict`` and by pyright in strict mode (``pyrightconfig.json``; VS Code's
Pylance is pyright), never run: ``assert_type`` fails both on any other type, and pyright
strict fails on whatever the library leaves partially unknown.

This file: every name of ``statefun_core.__all__``, and the examples of the official SDK guide
with ``from statefun import *`` replaced by the names they use. Where the guide's code itself
does not type-check (it passes ``message.as_string()``, an ``Optional[str]``, as a target id,
reads ``ctx.caller`` after printing that it is None, and ``user.name`` of
``message.as_type(UserType)``, which is None for a message without a value), this is the
corrected code."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Optional, Union

from google.protobuf.wrappers_pb2 import StringValue
from typing_extensions import assert_type

import statefun_core
import statefun_core.testing
from statefun_core import (
    CONTENT_TYPE,
    AsyncFunctionInSyncContextError,
    BoolType,
    Context,
    DeadLetterEgress,
    DeadLetterRecord,
    DoubleType,
    EgressMessage,
    FinalFailure,
    FloatType,
    FunctionFailedError,
    FunctionNotFoundError,
    IntType,
    LimitExceededError,
    Limits,
    LongType,
    MalformedRequestError,
    Message,
    RequestReplyHandler,
    RequestTooLargeError,
    SdkAddress,
    StatefulFunction,
    StatefulFunctions,
    StatefunError,
    StringType,
    Type,
    TypeSerializer,
    ValueSpec,
    __version__,
    egress_message_builder,
    error_response,
    hookimpl,
    kafka_egress_message,
    kinesis_egress_message,
    make_json_type,
    make_plugin_manager,
    make_protobuf_type,
    message_builder,
    simple_type,
    status_for,
)

functions = StatefulFunctions()


# --- the guide: Defining A Stateful Function -------------------------------------------------
@functions.bind(
    typename="com.example.fns/greeter", specs=[ValueSpec(name="seen_count", type=IntType)]
)
async def greet(ctx: Context, message: Message) -> None:
    name = message.as_string() or ""
    storage = ctx.storage
    seen = storage.seen_count or 0
    storage.seen_count = seen + 1
    ctx.send(
        message_builder(
            target_typename="com.example.fns/inbox",
            target_id=name,
            str_value=f"Hello {name} for the {seen}th time!",
        )
    )


async def bind_keeps_the_function_type(context: Context, message: Message) -> None:
    assert_type(await greet(context, message), None)
    assert_type(sync_function(context, message), None)


# --- the guide: Types -------------------------------------------------------------------------
class User:
    def __init__(self, name: str, favorite_color: str) -> None:
        self.name = name
        self.favorite_color = favorite_color


UserType = simple_type(
    typename="com.example/User",
    serialize_fn=lambda user: json.dumps(user.__dict__),
    deserialize_fn=lambda serialized: User(**json.loads(serialized)),
)
assert_type(UserType, Type[User])

# --- the guide: State -------------------------------------------------------------------------
ValueSpec(name="seen_count", type=IntType)
ValueSpec(name="user", type=UserType)
ValueSpec(name="seen_count", type=IntType, expire_after_call=timedelta(minutes=30))
ValueSpec(name="seen_count", type=IntType, expire_after_write=timedelta(minutes=30))
ValueSpec("user_object", User)  # a class: a type plugin gives its type


@functions.bind(typename="com.example.fns/counter", specs=[ValueSpec("seen_count", IntType)])
async def count(ctx: Context, message: Message) -> None:
    storage = ctx.storage
    count: int = storage.seen_count or 0
    count += 1
    storage.seen_count = count
    if count > 10:
        del storage.seen_count


# --- the guide: Sending Delayed Messages ------------------------------------------------------
@functions.bind(typename="com.example.fns/delayed")
async def delayed(ctx: Context, message: Message) -> None:
    caller = ctx.caller
    if caller is None:
        print("Message has no known caller meaning it was sent directly from an ingress")
        return
    assert_type(caller, SdkAddress)
    ctx.send_after(
        duration=timedelta(minutes=30),
        message=message_builder(
            target_typename=caller.typename, target_id=caller.id, str_value="Hello from the future!"
        ),
    )
    ctx.send_after(timedelta(seconds=1), message, cancellation_token="token")
    ctx.cancel_delayed_message("token")


# --- the guide: Egress ------------------------------------------------------------------------
@functions.bind(typename="com.example.fns/kafka", specs=[ValueSpec("seen_count", IntType)])
async def to_kafka(context: Context, message: Message) -> None:
    if not message.is_type(UserType):
        raise ValueError("Unknown type")
    user = message.as_type(UserType)
    if user is None:
        raise ValueError("No user")
    name = user.name
    storage = context.storage
    seen = storage.seen_count or 0
    storage.seen_count = seen + 1
    context.send_egress(
        kafka_egress_message(
            typename="com.example/greets",
            topic="greetings",
            key=name,
            value=f"Hello {name} for the {seen}th time!",
        )
    )
    context.send_egress(
        kinesis_egress_message(
            typename="com.example/greets",
            stream="greetings",
            partition_key=name,
            value=f"Hello {name} for the {seen}th time!",
        )
    )


# --- a synchronous function, blocking, final errors, dead letters ----------------------------
class Rejected(Exception):
    pass


dead_letters = DeadLetterEgress("com.example/dead-letters", topic="dead-letters")


@functions.bind(
    "com.example.fns/sync",
    blocking=True,
    final_errors=[Rejected],
    final_unreadable=True,
    dead_letters=dead_letters,
)
def sync_function(context: Context, message: Message) -> None:
    assert_type(context.address, SdkAddress)
    assert_type(context.address.typename, str)
    assert_type(context.address.namespace, str)
    assert_type(context.address.name, str)
    assert_type(context.address.id, str)
    if message.is_int():
        assert_type(message.as_int(), Optional[int])
    if message.is_bool():
        assert_type(message.as_bool(), Optional[bool])
    if message.is_long():
        assert_type(message.as_long(), Optional[int])
    if message.is_float():
        assert_type(message.as_float(), Optional[float])
    if message.is_double():
        assert_type(message.as_double(), Optional[float])
    if message.is_string():
        assert_type(message.as_string(), Optional[str])
    assert_type(message.value_typename(), str)
    assert_type(message.raw_value(), Optional[bytes])
    assert_type(message.as_type(User), Optional[User])
    assert_type(message.as_type(UserType), Optional[User])
    raise FinalFailure("give up")


def registered(context: Context, message: Message) -> None:
    pass


functions.register("com.example.fns/registered", registered, [ValueSpec("x", StringType)])
functions.register("com.example.fns/registered", registered, (ValueSpec("x", StringType),))
# what register refuses at run time, refused before it runs (an unused ignore fails both)
functions.register("com.example.fns/registered", registered, ValueSpec("x", StringType))  # type: ignore[arg-type]


# The sends check what they are given at run time (their implementation takes Any, which a
# compiled build does not check): Context's own signatures still refuse it before it runs.
def refused(context: Context, message: Message) -> None:
    context.send(kafka_egress_message("com.example/out", "topic", "v"))  # type: ignore[arg-type]
    context.send_egress(message)  # type: ignore[arg-type]
    context.send_after(30, message)  # type: ignore[arg-type]
    context.send_after(timedelta(seconds=1), message, None)  # type: ignore[arg-type]
    context.cancel_delayed_message(None)  # type: ignore[arg-type]
    # a str, or what its builder was given; not Any, which a strict checker would not return
    assert_type(message.target_id, Union[str, Any])


# --- the other names ----------------------------------------------------------------------
function: StatefulFunction = functions.for_typename("com.example.fns/greeter")
assert_type(function.typename, str)
assert_type("com.example.fns/greeter" in functions, bool)
assert_type(len(functions), int)
for each in functions:
    assert_type(each, StatefulFunction)

types: list[Type[Any]] = [BoolType, IntType, LongType, FloatType, DoubleType, StringType]
assert_type(StringType.typename, str)
json_type = make_json_type("com.example/Json")
protobuf_type = make_protobuf_type(StringValue, namespace="com.example")
assert_type(json_type, Type[Any])
assert_type(protobuf_type, Type[StringValue])


class UpperSerializer(TypeSerializer[Any]):
    def serialize(self, value: Any) -> bytes:
        return str(value).upper().encode()

    def deserialize(self, byte: bytes) -> Any:
        return byte.decode()


class UpperType(Type[Any]):
    def __init__(self) -> None:
        super().__init__("com.example/Upper")

    def serializer(self) -> TypeSerializer[Any]:
        return UpperSerializer()


assert_type(UpperType().serializer().serialize("a"), bytes)

built = message_builder("com.example.fns/greeter", "ann", str_value="Ann")
assert_type(built, Message)
assert_type(message_builder("t/t", "i", int_value=1), Message)
assert_type(message_builder("t/t", "i", value=User("a", "b")), Message)
assert_type(message_builder("t/t", "i", value="a", value_type=StringType), Message)
# what message_builder refuses at run time, refused before it runs (an unused ignore fails both)
message_builder("t/t", "i", str_value=built.as_string())  # type: ignore[arg-type]
message_builder("t/t", "i", int_value="1")  # type: ignore[call-overload]
message_builder("t/t", "i", str_valeu="typo")  # type: ignore[call-overload]
message_builder("t/t", "i", value_type=StringType)  # type: ignore[call-overload]
egress: EgressMessage = egress_message_builder("com.example/out", "value", StringType)
assert_type(kafka_egress_message(typename="a/b", topic="t", key="k", value=b"v"), EgressMessage)
assert_type(kinesis_egress_message(typename="a/b", stream="s", partition_key="k", value="1"),
            EgressMessage)  # fmt: skip

limits = Limits(request_bytes=1024, reply_bytes=None)
assert_type(limits.request_bytes, Optional[int])
plugins = make_plugin_manager(load_entrypoints=False)
handler = RequestReplyHandler(functions, plugins=plugins, limits=limits, dead_letters=dead_letters)
assert_type(handler.functions, StatefulFunctions)
reply_headers: dict[str, str] = {}
assert_type(handler.handle_sync(b"", {"x-request-id": "1"}, reply_headers), bytes)


async def serve(body: bytes) -> bytes:
    reply = await handler.handle_async(body)
    assert_type(reply, bytes)
    return reply


record = DeadLetterRecord(
    function_type="com.example.fns/sync",
    function_id="ann",
    caller_type=None,
    caller_id=None,
    message_typename="io.statefun.types/string",
    message_value=b"ann",
    error_class="builtins.ValueError",
    error_message="no",
    time=datetime.now(timezone.utc),
)
assert_type(DeadLetterRecord.from_json(record.to_json()), DeadLetterRecord)
assert_type(record.to_egress(dead_letters), EgressMessage)

errors: list[type[BaseException]] = [
    StatefunError,
    MalformedRequestError,
    FunctionNotFoundError,
    FunctionFailedError,
    LimitExceededError,
    RequestTooLargeError,
    AsyncFunctionInSyncContextError,
    FinalFailure,
]
try:
    handler.handle_sync(b"\xff")
except StatefunError as error:
    assert_type(status_for(error), int)
    status, text = error_response(error)
    assert_type(status, int)
    assert_type(text, str)

content_type: str = CONTENT_TYPE
version: str = __version__
# each package's __all__ a literal, which a type checker reads as it reads the names
exported: list[str] = [*statefun_core.__all__, *statefun_core.testing.__all__]


class Plugin:
    @hookimpl
    def statefun_batch_started(self) -> None:
        pass


plugins.register(Plugin())
