"""The official SDK's ``statefun.utils``: typed values to and from the wire's ``TypedValue``."""

from __future__ import annotations

from typing import Any, Optional, Union

from statefun_core.messages import encode, typed_value
from statefun_core.protocol import TypedValue
from statefun_core.types import Type, make_json_type, make_protobuf_type, simple_type

__all__ = [
    "Type",
    "TypedValue",
    "from_typed_value",
    "make_json_type",
    "make_protobuf_type",
    "simple_type",
    "to_typed_value",
    "to_typed_value_deduce",
]


def to_typed_value(type: Type[Any], value: Any) -> Any:
    """``value`` as a ``TypedValue`` of ``type``; None gives one without a value."""
    if value is None:
        return TypedValue(typename=type.typename, has_value=False)
    return typed_value(type, value)


def from_typed_value(tpe: Type[Any], typed_value: Optional[Any]) -> Any:
    """The value ``typed_value`` holds, read by ``tpe`` (None when it has none); a
    ``TypeError`` when it is of another type."""
    if not typed_value or not typed_value.has_value:
        return None
    if typed_value.typename != tpe.typename:
        raise TypeError(
            f"Type mismatch: the value is of type {typed_value.typename}, but it is read as "
            f"{tpe.typename}"
        )
    return tpe.serializer().deserialize(typed_value.value)


def to_typed_value_deduce(
    value: Union[str, bytes, bytearray], value_type: Optional[Type[Any]] = None
) -> bytes:
    """``value``'s bytes: serialized by ``value_type`` when given, else UTF-8 for a ``str``
    and as they are for bytes."""
    if value_type:
        return encode(value_type, value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(
        f"Unable to convert {type(value).__name__} to bytes: give a str, bytes, or a value_type"
    )
