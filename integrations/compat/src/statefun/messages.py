"""The official SDK's ``statefun.messages``: messages to functions and egresses."""

from __future__ import annotations

from typing import Any

from statefun_core.messages import EgressMessage, Message, egress_message_builder, message_builder
from statefun_core.protocol import TypedValue
from statefun_core.types import Type

from . import wrapper_types
from .utils import to_typed_value

__all__ = [
    "PRIMITIVE_GETTERS",
    "EgressMessage",
    "Message",
    "Type",
    "TypedValue",
    "egress_message_builder",
    "message_builder",
    "to_typed_value",
    "wrapper_types",
]

#: ``message_builder``'s value keywords, and the type each gives the value
PRIMITIVE_GETTERS: dict[str, Type[Any]] = {
    "int_value": wrapper_types.IntType,
    "float_value": wrapper_types.FloatType,
    "long_value": wrapper_types.LongType,
    "str_value": wrapper_types.StringType,
    "double_value": wrapper_types.DoubleType,
    "bool_value": wrapper_types.BoolType,
}
