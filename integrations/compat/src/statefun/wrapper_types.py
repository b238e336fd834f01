"""The official SDK's ``statefun.wrapper_types``: the six built-in types and their messages.

The built-in types are statefun_core's (the same typenames and bytes), not instances of
:class:`ProtobufWrappingType`, which is here for types of one's own made the same way.
"""

from __future__ import annotations

from typing import Any

from statefun_core.protocol import (
    BooleanWrapper,
    DoubleWrapper,
    FloatWrapper,
    IntWrapper,
    LongWrapper,
    StringWrapper,
)
from statefun_core.types import (
    BoolType,
    DoubleType,
    FloatType,
    IntType,
    LongType,
    StringType,
    Type,
    TypeSerializer,
)

__all__ = [
    "PY_TYPE_TO_WRAPPER_TYPE",
    "WRAPPER_TYPE_TO_PY_TYPE",
    "BoolType",
    "BooleanWrapper",
    "DoubleType",
    "DoubleWrapper",
    "FloatType",
    "FloatWrapper",
    "IntType",
    "IntWrapper",
    "LongType",
    "LongWrapper",
    "ProtobufWrappingType",
    "ProtobufWrappingTypeSerializer",
    "StringType",
    "StringWrapper",
    "Type",
    "TypeSerializer",
]


class ProtobufWrappingTypeSerializer(TypeSerializer[Any]):
    """Values as the ``value`` field of a one-field protobuf message class."""

    __slots__ = ("wrapper",)

    wrapper: Any  # a protobuf message class with one field, ``value``

    def __init__(self, wrapper: Any) -> None:
        self.wrapper = wrapper

    def serialize(self, value: Any) -> bytes:
        message = self.wrapper()
        message.value = value
        return bytes(message.SerializeToString())

    def deserialize(self, byte: bytes) -> Any:
        return self.wrapper.FromString(byte).value


class ProtobufWrappingType(Type[Any]):
    """A type whose values are the ``value`` field of ``wrapper_message_type``."""

    __slots__ = ("wrapper",)

    wrapper: Any  # a protobuf message class with one field, ``value``

    def __init__(self, typename: str, wrapper_message_type: Any) -> None:
        super().__init__(typename)
        self.wrapper = wrapper_message_type

    def serializer(self) -> TypeSerializer[Any]:
        return ProtobufWrappingTypeSerializer(self.wrapper)


PY_TYPE_TO_WRAPPER_TYPE: dict[type, Type[Any]] = {
    int: IntType,
    bool: BoolType,
    float: FloatType,
    str: StringType,
}
WRAPPER_TYPE_TO_PY_TYPE: dict[Type[Any], type] = {
    IntType: int,
    BoolType: bool,
    FloatType: float,
    StringType: str,
}
