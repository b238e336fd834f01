"""What a type checker knows of typed values: a ``Type`` is generic in the Python class of its
values, and what reads or takes a value of a ``Type`` is typed by it. Checked by ``mypy
--strict`` and pyright strict in the ``typecheck`` session (see ``uses_core.py``), never run.

Each ``# type: ignore`` marks a call refused at run time (or a value read as the wrong class),
which both checkers must refuse too: an unused ignore fails both."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Optional

from google.protobuf.wrappers_pb2 import StringValue
from typing_extensions import assert_type

from statefun_core import (
    BoolType,
    Context,
    DoubleType,
    EgressMessage,
    FloatType,
    IntType,
    LongType,
    Message,
    StringType,
    Type,
    TypeSerializer,
    egress_message_builder,
    kafka_egress_message,
    kinesis_egress_message,
    make_json_type,
    make_protobuf_type,
    message_builder,
    simple_type,
)
from statefun_core.registry import TypeRegistry
from statefun_core.testing import wire

assert_type(IntType, Type[int])
assert_type(LongType, Type[int])
assert_type(BoolType, Type[bool])
assert_type(FloatType, Type[float])
assert_type(DoubleType, Type[float])
assert_type(StringType, Type[str])
assert_type(StringType.serializer(), TypeSerializer[str])
assert_type(StringType.serializer().deserialize(b""), str)
assert_type(IntType.serializer().serialize(1), bytes)


@dataclass
class User:
    name: str


# simple_type's values are what deserialize_fn returns; serialize_fn must take them
UserType = simple_type(
    typename="com.example/User",
    serialize_fn=lambda user: json.dumps({"name": user.name}),
    deserialize_fn=lambda data: User(**json.loads(data)),
)
assert_type(UserType, Type[User])
DECIMAL = simple_type("example.types/decimal", str, lambda data: Decimal(data.decode("ascii")))
assert_type(DECIMAL, Type[Decimal])


def user_bytes(user: User) -> bytes:
    return user.name.encode()


simple_type("com.example/User", user_bytes, lambda data: Decimal(1))  # type: ignore[misc]
assert_type(make_json_type("com.example/Json"), Type[Any])
assert_type(make_protobuf_type(StringValue), Type[StringValue])
assert_type(make_protobuf_type(StringValue, namespace="com.example"), Type[StringValue])


def handle(context: Context, message: Message) -> None:
    # as_type: None for a message without a value, as as_int() and the official SDK's are
    assert_type(message.as_type(IntType), Optional[int])
    assert_type(message.as_type(BoolType), Optional[bool])
    assert_type(message.as_type(DoubleType), Optional[float])
    assert_type(message.as_type(StringType), Optional[str])
    wider: object = message.as_type(StringType)  # read into a wider annotation: fine
    print(wider)
    assert_type(message.as_type(UserType), Optional[User])
    assert_type(message.as_type(User), Optional[User])  # a class a type plugin knows
    assert_type(message.as_type(make_json_type("com.example/Json")), Optional[Any])
    user = message.as_type(UserType)
    if user is not None:
        context.send(message_builder("com.example/fn", user.name, value=user, value_type=UserType))
    name: str = message.as_type(StringType)  # type: ignore[assignment]

    # a value with its Type: the value must be of the Type's class
    message_builder("t/t", name, value=1, value_type=IntType)
    message_builder("t/t", name, value=True, value_type=IntType)  # a bool is an int
    message_builder("t/t", name, value=1, value_type=DoubleType)  # an int is taken as a float
    message_builder("t/t", name, value={"a": [1]}, value_type=make_json_type("a/b"))
    message_builder("t/t", name, value="1", value_type=IntType)  # type: ignore[misc]
    message_builder("t/t", name, value=User("a"), value_type=DECIMAL)  # type: ignore[misc]
    message_builder("t/t", name, value=message.as_string(), value_type=StringType)  # type: ignore[misc]
    message_builder("t/t", name, value=User("a"))  # no Type: a type plugin's class

    context.send_egress(egress_message_builder("a/egress", User("a"), UserType))
    egress_message_builder("a/egress", "a", UserType)  # type: ignore[misc]
    kafka_egress_message("a/kafka", "topic", User("a"), UserType, key="k")
    kafka_egress_message("a/kafka", "topic", value=User("a"), value_type=UserType)
    kafka_egress_message("a/kafka", "topic", value=b"v", key="k", headers={"h": "v"})
    kafka_egress_message("a/kafka", "topic", value=1.5)
    kafka_egress_message("a/kafka", "topic", "a", UserType)  # type: ignore[misc]
    kafka_egress_message("a/kafka", "topic", User("a"))  # type: ignore[call-overload]
    kinesis_egress_message("a/kinesis", "stream", User("a"), "key", UserType)
    kinesis_egress_message("a/kinesis", "stream", value="v", partition_key="key")
    kinesis_egress_message("a/kinesis", "stream", 1, "key")  # type: ignore[call-overload]
    kinesis_egress_message("a/kinesis", "stream", 1, "key", value_type=UserType)  # type: ignore[misc]


def forward(value: Any, value_type: Optional[Type[Any]] = None) -> EgressMessage:
    """A Type or None passed on: each checker tries each overload with each (mypy's union
    math, pyright's argument expansion)."""
    kinesis_egress_message("a/kinesis", "stream", value, "key", value_type)
    return kafka_egress_message("a/kafka", "topic", value, value_type, key="k")


def registered(types: TypeRegistry) -> None:
    types.register(User, UserType)
    # not checked against the class: mypy would refuse an abstract base class (Money in
    # uses_plugins.py), which stands for its subclasses
    types.register(User, DECIMAL)
    assert_type(types.for_class(User), Type[User])


assert_type(wire.typed_value(IntType, 1), Any)
wire.typed_value(IntType, "1")  # type: ignore[misc]


# a Type of one's own: a Type[X] whose serializer is a TypeSerializer[X]
class UpperSerializer(TypeSerializer[str]):
    def serialize(self, value: str) -> bytes:
        return value.upper().encode()

    def deserialize(self, byte: bytes) -> str:
        return byte.decode()


class UpperType(Type[str]):
    def __init__(self) -> None:
        super().__init__("com.example/Upper")

    def serializer(self) -> TypeSerializer[str]:
        return UpperSerializer()


class WrongType(Type[str]):
    def serializer(self) -> TypeSerializer[int]:  # type: ignore[override]
        raise NotImplementedError


assert_type(UpperType(), UpperType)
types: list[Type[Any]] = [BoolType, IntType, StringType, UpperType(), UserType]
int_type: Type[int] = BoolType  # type: ignore[assignment]
