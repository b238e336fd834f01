"""Typed values in and out of the runtime: building them for ingress, decoding them for display."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any, Optional, cast

from statefun_core import protocol
from statefun_core.engine.model import TypedValue
from statefun_core.messages import KAFKA_PRODUCER_RECORD, KINESIS_EGRESS_RECORD
from statefun_core.types import (
    BoolType,
    DoubleType,
    FloatType,
    IntType,
    LongType,
    StringType,
    Type,
)

__all__ = ["BUILTIN_TYPES", "InvalidValueError", "describe", "make_value", "playground_record"]

#: Short names for the built-in types, as accepted by ingress and the CLI.
BUILTIN_TYPES: dict[str, Type[Any]] = {
    "string": StringType,
    "int": IntType,
    "long": LongType,
    "bool": BoolType,
    "float": FloatType,
    "double": DoubleType,
}
_BUILTIN_BY_TYPENAME = {tpe.typename: tpe for tpe in BUILTIN_TYPES.values()}

KAFKA_RECORD = KAFKA_PRODUCER_RECORD
KINESIS_RECORD = KINESIS_EGRESS_RECORD
#: what the playground egress takes: JSON ``{"topic": ..., "payload": "..."}``
PLAYGROUND_RECORD = "io.statefun.playground/EgressRecord"


class InvalidValueError(ValueError):
    """A value that can not be built from what the user gave (message says why)."""


def make_value(
    type_: str, value: Any = None, *, base64_data: Optional[str] = None, raw: Optional[bytes] = None
) -> TypedValue:
    """Build a typed value.

    ``type_`` is a built-in short name (``string``, ``int``, ...), a built-in typename, or any
    ``namespace/name``: then the value is ``raw`` bytes, ``base64_data``, or ``value`` encoded
    as JSON.
    """
    try:
        return _make_value(type_, value, base64_data, raw)
    except UnicodeEncodeError:
        raise InvalidValueError("a lone surrogate in a string: not valid Unicode") from None
    except RecursionError:
        raise InvalidValueError("the value is nested too deeply") from None


def _make_value(
    type_: str, value: Any, base64_data: Optional[str], raw: Optional[bytes]
) -> TypedValue:
    type_.encode("utf-8")  # a typename that is not valid Unicode can not be stored
    builtin = BUILTIN_TYPES.get(type_) or _BUILTIN_BY_TYPENAME.get(type_)
    if builtin is not None:
        if raw is not None or base64_data is not None:
            return TypedValue(builtin.typename, raw if raw is not None else _b64(base64_data))
        return TypedValue(builtin.typename, _encode_builtin(builtin, value))
    namespace, slash, name = type_.partition("/")
    if not namespace or not slash or not name or "/" in name:
        raise InvalidValueError(
            f"unknown type {type_!r}: use one of {', '.join(BUILTIN_TYPES)} "
            "or a typename 'namespace/name'"
        )
    if raw is not None:
        return TypedValue(type_, raw)
    if base64_data is not None:
        return TypedValue(type_, _b64(base64_data))
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except ValueError:  # Python's json would write NaN or Infinity, which JSON has not
        raise InvalidValueError(
            "NaN and infinities are not JSON: a function reading the value with Jackson (Java) "
            "or JSON.parse (JavaScript) would fail on it; send them as strings"
        ) from None
    return TypedValue(type_, text.encode("utf-8"))


def playground_record(data: bytes) -> tuple[str, str]:
    """The topic and payload of a playground egress record; ``ValueError`` says what is
    wrong with one that has none."""
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, RecursionError, ValueError):
        raise ValueError('is not JSON {"topic": ..., "payload": ...}') from None
    if not isinstance(record, dict):
        raise ValueError(f'is not a JSON object {{"topic": ..., "payload": ...}}: {record!r}')
    topic, payload = record.get("topic"), record.get("payload")
    if not isinstance(topic, str) or not isinstance(payload, str):
        raise ValueError(f"needs a string topic and a string payload, got {record!r}")
    return topic, payload


def _b64(data: Optional[str]) -> bytes:
    try:
        return base64.b64decode(data or "", validate=True)
    except ValueError as exc:
        raise InvalidValueError(f"not valid base64: {exc}") from None


def _encode_builtin(builtin: Any, value: Any) -> bytes:
    expected: tuple[type, ...] = {
        "string": (str,),
        "bool": (bool,),
        "int": (int,),
        "long": (int,),
        "float": (int, float),
        "double": (int, float),
    }[builtin.typename.rsplit("/", 1)[1]]
    if isinstance(value, str) and expected != (str,):
        value = _parse_text(builtin.typename, value)
    if not isinstance(value, expected) or (expected != (bool,) and isinstance(value, bool)):
        raise InvalidValueError(f"{value!r} is not a valid {builtin.typename}")
    value = cast(Any, value)
    if builtin is StringType:
        value.encode("utf-8")  # a lone surrogate raises here, whatever protobuf would do
    if builtin is IntType and not -(2**31) <= value < 2**31:
        raise InvalidValueError(f"{value} does not fit io.statefun.types/int (32 bits); use long")
    if builtin is LongType and not -(2**63) <= value < 2**63:
        raise InvalidValueError(f"{value} does not fit io.statefun.types/long (64 bits)")
    if builtin in (FloatType, DoubleType):
        try:
            value = float(value)
        except OverflowError:
            raise InvalidValueError(f"the number is too large for {builtin.typename}") from None
        if builtin is FloatType:
            try:  # protobuf would write infinity for it: a number that big is a mistake
                struct.pack("<f", value)
            except OverflowError:
                raise InvalidValueError(
                    f"{value} does not fit io.statefun.types/float (32 bits); use double"
                ) from None
    return bytes(builtin.serializer().serialize(value))


def _parse_text(typename: str, text: str) -> Any:
    try:
        if typename.endswith("/bool"):
            if text.lower() in ("true", "1", "yes"):
                return True
            if text.lower() in ("false", "0", "no"):
                return False
            raise ValueError(text)
        if typename.endswith(("/int", "/long")):
            return int(text)
        return float(text)
    except ValueError:
        raise InvalidValueError(f"{text!r} is not a valid {typename}") from None


def describe(typename: str, data: bytes) -> Any:
    """A JSON-friendly rendering of a value: built-ins decoded, JSON parsed, Kafka and Kinesis
    records opened, anything else as base64."""
    builtin = _BUILTIN_BY_TYPENAME.get(typename)
    if builtin is not None:
        try:
            return builtin.serializer().deserialize(data)
        except Exception:
            pass
    elif typename in (KAFKA_RECORD, KINESIS_RECORD):
        try:
            return _describe_egress(typename, data)
        except Exception:
            pass
    else:
        try:
            return {"json": json.loads(data.decode("utf-8"))} if data else {"json": None}
        except (UnicodeDecodeError, ValueError):
            pass
    return {"base64": base64.b64encode(data).decode("ascii")}


def _describe_egress(typename: str, data: bytes) -> dict[str, Any]:
    """Open a Kafka or Kinesis egress record: where it goes, its key and its value."""
    if typename == KAFKA_RECORD:
        record = protocol.KafkaProducerRecord.FromString(data)
        kafka = {"topic": record.topic, "key": record.key or None,
                 "value": _text_or_b64(bytes(record.value_bytes))}  # fmt: skip
        if record.headers:
            kafka["headers"] = [
                [header.key, _text_or_b64(bytes(header.value)) if header.has_value else None]
                for header in record.headers
            ]
        return {"kafka": kafka}
    if typename == KINESIS_RECORD:
        record = protocol.KinesisEgressRecord.FromString(data)
        out = {
            "stream": record.stream,
            "partition_key": record.partition_key,
            "value": _text_or_b64(bytes(record.value_bytes)),
        }
        if record.explicit_hash_key:
            out["explicit_hash_key"] = record.explicit_hash_key
        return {"kinesis": out}
    raise ValueError(f"{typename!r} is not a Kafka or Kinesis egress record")


def _text_or_b64(data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}
    return text if text.isprintable() or not text else {"base64": base64.b64encode(data).decode()}
