"""Messages to functions and to egresses, and the builders users make them with."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, Optional, Union

from . import protocol
from .types import (
    BoolType,
    DoubleType,
    FloatType,
    IntType,
    LongType,
    StringType,
    Type,
    to_bytes,
)

if TYPE_CHECKING:
    from .registry import TypeRegistry

__all__ = [
    "EgressMessage",
    "Message",
    "egress_message_builder",
    "kafka_egress_message",
    "kinesis_egress_message",
    "message_builder",
]

KAFKA_PRODUCER_RECORD = "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord"
KINESIS_EGRESS_RECORD = "type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord"


def typed_value(tpe: Type, value: Any) -> Any:
    """The wire ``TypedValue`` for ``value`` of type ``tpe``."""
    data = to_bytes(tpe.serializer().serialize(value), tpe.typename)
    return protocol.TypedValue(typename=tpe.typename, has_value=True, value=data)


class Message:
    """A message to a function: its target and a typed value.

    A message received by a function targets that function; a message built with
    :func:`message_builder` targets the function it is sent to.
    """

    __slots__ = ("_types", "_value", "target_id", "target_typename", "typed_value")

    def __init__(self, target_typename: str, target_id: str, typed_value: Any) -> None:
        if not target_typename:
            raise ValueError("target_typename can not be missing")
        if not target_id:
            raise ValueError("target_id can not be missing")
        if not typed_value:
            raise ValueError("typed_value can not be missing")
        self.target_typename = target_typename
        self.target_id = target_id
        self.typed_value = typed_value
        self._value: Any = None
        self._types: Optional[TypeRegistry] = None

    @classmethod
    def _deferred(cls, target_typename: str, target_id: str, value: Any) -> Message:
        """A message whose type is found from the value's class by the handler's plugins."""
        message = cls.__new__(cls)
        message.target_typename = target_typename
        message.target_id = target_id
        message.typed_value = None
        message._value = value
        message._types = None
        return message

    def is_int(self) -> bool:
        return self.is_type(IntType)

    def as_int(self) -> Optional[int]:
        return self.as_type(IntType)  # type: ignore[no-any-return]

    def is_bool(self) -> bool:
        return self.is_type(BoolType)

    def as_bool(self) -> Optional[bool]:
        return self.as_type(BoolType)  # type: ignore[no-any-return]

    def is_long(self) -> bool:
        return self.is_type(LongType)

    def as_long(self) -> Optional[int]:
        return self.as_type(LongType)  # type: ignore[no-any-return]

    def is_string(self) -> bool:
        return self.is_type(StringType)

    def as_string(self) -> Optional[str]:
        return self.as_type(StringType)  # type: ignore[no-any-return]

    def is_float(self) -> bool:
        return self.is_type(FloatType)

    def as_float(self) -> Optional[float]:
        return self.as_type(FloatType)  # type: ignore[no-any-return]

    def is_double(self) -> bool:
        return self.is_type(DoubleType)

    def as_double(self) -> Optional[float]:
        return self.as_type(DoubleType)  # type: ignore[no-any-return]

    def _resolve(self, tpe: Union[Type, type]) -> Type:
        if isinstance(tpe, Type):
            return tpe
        if self._types is None:
            raise TypeError(f"{tpe!r} is not a StateFun Type")
        return self._types.for_class(tpe)

    def is_type(self, tpe: Union[Type, type]) -> bool:
        """Whether the value's typename is that of ``tpe`` (a Type, or a class a plugin knows)."""
        return bool(self.typed_value.typename == self._resolve(tpe).typename)

    def value_typename(self) -> str:
        return str(self.typed_value.typename)

    def raw_value(self) -> Optional[bytes]:
        tv = self.typed_value
        return bytes(tv.value) if tv.has_value else None

    def as_type(self, tpe: Union[Type, type]) -> Any:
        """The value decoded by ``tpe``'s serializer, or ``None`` when the message has no value."""
        tv = self.typed_value
        if not tv.has_value:
            return None
        return self._resolve(tpe).serializer().deserialize(tv.value)

    def __repr__(self) -> str:
        typename = self.typed_value.typename if self.typed_value is not None else "?"
        return f"Message(target={self.target_typename}/{self.target_id}, type={typename})"


class EgressMessage:
    """A record for an egress, identified by the egress's typename."""

    __slots__ = ("typed_value", "typename")

    def __init__(self, typename: str, typed_value: Any) -> None:
        if not typename:
            raise ValueError("typename is missing")
        if not typed_value:
            raise ValueError("value is missing")
        self.typename = typename
        self.typed_value = typed_value

    def value_typename(self) -> str:
        return str(self.typed_value.typename)

    def raw_value(self) -> Optional[bytes]:
        tv = self.typed_value
        return bytes(tv.value) if tv.has_value else None

    def __repr__(self) -> str:
        return f"EgressMessage(egress={self.typename}, type={self.typed_value.typename})"


_PRIMITIVE_KEYWORDS = {
    "int_value": IntType,
    "float_value": FloatType,
    "long_value": LongType,
    "str_value": StringType,
    "double_value": DoubleType,
    "bool_value": BoolType,
}


def message_builder(target_typename: str, target_id: str, **kwargs: Any) -> Message:
    """Build a message for the function ``target_typename`` with id ``target_id``.

    Give the value as exactly one of ``int_value=``, ``float_value=``, ``long_value=``,
    ``str_value=``, ``double_value=``, ``bool_value=``, or as ``value=`` with
    ``value_type=<Type>``. ``value=`` alone works for classes a type plugin knows.
    """
    if len(kwargs) == 2 and kwargs.keys() == {"value", "value_type"}:
        value, value_type = kwargs["value"], kwargs["value_type"]
    elif len(kwargs) == 1:
        keyword, value = next(iter(kwargs.items()))
        if keyword == "value":
            if value is None:
                raise ValueError("value can not be missing")
            return Message._deferred(target_typename, target_id, value)
        value_type = _PRIMITIVE_KEYWORDS.get(keyword)
    else:
        raise TypeError(
            f"Wrong value keywords given: {sorted(kwargs)}; give exactly one of "
            f"{', '.join(_PRIMITIVE_KEYWORDS)}, or value= with value_type="
        )
    if value is None:
        raise ValueError("value can not be missing")
    if not value_type:
        raise ValueError(
            "Could not deduce the value type, please specify the type explicitly "
            "with value=<the value>, value_type=<the type>"
        )
    return Message(target_typename, target_id, typed_value(value_type, value))


def egress_message_builder(target_typename: str, value: Any, value_type: Type) -> EgressMessage:
    """A generic egress record; see :func:`kafka_egress_message` and
    :func:`kinesis_egress_message` for those egresses."""
    if not target_typename:
        raise ValueError("target typename is missing")
    if value is None:
        raise ValueError("value can not be missing")
    return EgressMessage(target_typename, typed_value(value_type, value))


def _record_bytes(value: Any, value_type: Optional[Type], kafka: bool) -> bytes:
    if value_type:
        return to_bytes(value_type.serializer().serialize(value), value_type.typename)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if kafka and isinstance(value, int):
        return struct.pack(">i", value)  # Kafka's IntegerSerializer
    if kafka and isinstance(value, float):
        return struct.pack(">d", value)  # Kafka's DoubleSerializer
    raise TypeError(f"Unable to convert a value of type {type(value).__name__} to bytes.")


def kafka_egress_message(
    typename: str,
    topic: str,
    value: Union[str, bytes, bytearray, int, float, Any],
    value_type: Optional[Type] = None,
    key: Optional[str] = None,
) -> EgressMessage:
    """A record for a Kafka egress (``typename`` is the egress id in ``module.yaml``).

    Without ``value_type``, ``str`` is UTF-8, bytes are as-is, ``int`` and ``float`` use
    Kafka's big-endian Integer and Double serializers.
    """
    if not topic:
        raise ValueError("A destination Kafka topic is missing")
    if value is None:
        raise ValueError("Missing value")
    record = protocol.KafkaProducerRecord(
        topic=topic, value_bytes=_record_bytes(value, value_type, kafka=True)
    )
    if key is not None:
        record.key = key
    return EgressMessage(
        typename,
        protocol.TypedValue(
            typename=KAFKA_PRODUCER_RECORD, has_value=True, value=record.SerializeToString()
        ),
    )


def kinesis_egress_message(
    typename: str,
    stream: str,
    value: Union[str, bytes, bytearray, Any],
    partition_key: str,
    value_type: Optional[Type] = None,
    explicit_hash_key: Optional[str] = None,
) -> EgressMessage:
    """A record for a Kinesis egress (``typename`` is the egress id in ``module.yaml``)."""
    if not stream:
        raise ValueError("Missing destination Kinesis stream")
    if value is None:
        raise ValueError("Missing value")
    if partition_key is None:
        raise ValueError("Missing partition key")
    record = protocol.KinesisEgressRecord(
        stream=stream,
        partition_key=partition_key,
        value_bytes=_record_bytes(value, value_type, kafka=False),
    )
    if explicit_hash_key is not None:
        record.explicit_hash_key = explicit_hash_key
    return EgressMessage(
        typename,
        protocol.TypedValue(
            typename=KINESIS_EGRESS_RECORD, has_value=True, value=record.SerializeToString()
        ),
    )
