"""Failures that never succeed: final failures, the dead-letter egress and its record.

The runtime retries every failed batch, so a message that fails the same way every time blocks
its address for good. A function declares which of its failures are final (a
:class:`FinalFailure`, the exception classes named at ``bind(..., final_errors=...)``, and with
``final_unreadable=True`` a state or argument its type cannot read); given a
:class:`DeadLetterEgress`, the handler then drops the failed invocation's effects, keeps the
rest of the batch, and sends a :class:`DeadLetterRecord` to that egress instead of failing.

The record is JSON (UTF-8), one object, written as the value of a Kafka or Kinesis record or
of a typed value ``statefun_core/dead-letter`` for any other egress::

    {"version": 1,
     "address": {"namespace": "com.example", "type": "greeter", "id": "ann"},
     "caller": null,
     "message": {"typename": "io.statefun.types/string", "value": "<base64>"},
     "error": {"class": "builtins.ValueError", "message": "..."},
     "time": "2026-12-04T19:42:26.123Z",
     "attempts": 1}

``caller`` is ``null`` for a message from an ingress, else an address like ``address``;
``message.value`` is ``null`` for a message without a value; ``time`` is UTC with
milliseconds; ``attempts`` is how many times the message was tried (1 from the SDK, which
dead-letters a final failure on its first try; N from ``statefun-local``'s policy).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

from .core import parse_typename
from .errors import FinalFailure, error_text, is_unreadable, mark_unreadable
from .messages import (
    EgressMessage,
    egress_message_builder,
    kafka_egress_message,
    kinesis_egress_message,
)
from .types import simple_type

__all__ = [
    "DEAD_LETTER_TYPENAME",
    "DeadLetterEgress",
    "DeadLetterRecord",
    "FinalFailure",
    "is_unreadable",
    "mark_unreadable",
]

#: The typename of a dead-letter record sent to an egress that is neither Kafka nor Kinesis.
DEAD_LETTER_TYPENAME = "statefun_core/dead-letter"


@dataclass(frozen=True)
class DeadLetterEgress:
    """Where dead-letter records go: the egress id of ``module.yaml`` (``typename``), with a
    Kafka ``topic`` or a Kinesis ``stream`` when the egress is one of those.

    Kafka records are keyed, and Kinesis records partitioned, by the function's address
    (``namespace/type/id``), so the records of one address stay in order.
    """

    typename: str
    topic: Optional[str] = None
    stream: Optional[str] = None

    def __post_init__(self) -> None:
        parse_typename(self.typename)
        if self.topic is not None and self.stream is not None:
            raise ValueError("a dead-letter egress has a Kafka topic or a Kinesis stream, not both")
        if self.topic == "" or self.stream == "":
            raise ValueError("a dead-letter egress' topic or stream must not be empty")


_RECORD_TYPE = simple_type(DEAD_LETTER_TYPENAME, serialize_fn=bytes, deserialize_fn=bytes)


@dataclass(frozen=True)
class DeadLetterRecord:
    """Why a message left its address: what the dead-letter egress receives (as JSON)."""

    function_type: str
    """The typename of the function the message was for, ``namespace/type``."""
    function_id: str
    caller_type: Optional[str]
    """The sending function's typename, or None for a message from an ingress."""
    caller_id: Optional[str]
    message_typename: str
    message_value: Optional[bytes]
    """The message's bytes as sent, or None for a message without a value."""
    error_class: str
    """The exception's class, ``module.QualifiedName``."""
    error_message: str
    time: datetime
    """When the message was dead-lettered (UTC)."""
    attempts: int = 1

    @classmethod
    def for_error(
        cls,
        function_type: str,
        function_id: str,
        caller: Optional[tuple[str, str]],
        argument: Any,
        error: BaseException,
    ) -> DeadLetterRecord:
        """The record of ``error``, raised handling ``argument`` (a protobuf ``TypedValue``)."""
        kind = type(error)
        return cls(
            function_type=function_type,
            function_id=function_id,
            caller_type=None if caller is None else caller[0],
            caller_id=None if caller is None else caller[1],
            message_typename=argument.typename,
            message_value=bytes(argument.value) if argument.has_value else None,
            error_class=f"{kind.__module__}.{kind.__qualname__}",
            error_message=error_text(error),
            time=_now_ms(),
        )

    @property
    def address(self) -> str:
        """``namespace/type/id``: the Kafka key and the Kinesis partition key."""
        return f"{self.function_type}/{self.function_id}"

    def to_json(self) -> bytes:
        caller = None
        if self.caller_type is not None:
            caller = _address_json(self.caller_type, self.caller_id or "")
        value = self.message_value
        record = {
            "version": 1,
            "address": _address_json(self.function_type, self.function_id),
            "caller": caller,
            "message": {
                "typename": self.message_typename,
                "value": None if value is None else base64.b64encode(value).decode("ascii"),
            },
            "error": {"class": self.error_class, "message": self.error_message},
            "time": self.time.astimezone(timezone.utc).isoformat(timespec="milliseconds")[:-6]
            + "Z",
            "attempts": self.attempts,
        }
        return json.dumps(record, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> DeadLetterRecord:
        """Read a record written by :meth:`to_json` (by the SDK or by ``statefun-local``)."""
        record = json.loads(data)
        address, caller, message, error = (
            record["address"],
            record["caller"],
            record["message"],
            record["error"],
        )
        value = message["value"]
        return cls(
            function_type=f"{address['namespace']}/{address['type']}",
            function_id=address["id"],
            caller_type=None if caller is None else f"{caller['namespace']}/{caller['type']}",
            caller_id=None if caller is None else caller["id"],
            message_typename=message["typename"],
            message_value=None if value is None else base64.b64decode(value),
            error_class=error["class"],
            error_message=error["message"],
            time=datetime.fromisoformat(record["time"].replace("Z", "+00:00")),
            attempts=record.get("attempts", 1),
        )

    def to_egress(self, egress: DeadLetterEgress) -> EgressMessage:
        """The record as a message for ``egress``."""
        data = self.to_json()
        if egress.topic is not None:
            return kafka_egress_message(egress.typename, egress.topic, data, key=self.address)
        if egress.stream is not None:
            return kinesis_egress_message(egress.typename, egress.stream, data, self.address)
        return egress_message_builder(egress.typename, data, _RECORD_TYPE)


def _now_ms() -> datetime:
    """The time now, to the millisecond (what the JSON holds)."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _address_json(typename: str, id: str) -> dict[str, str]:
    namespace, type = parse_typename(typename)
    return {"namespace": namespace, "type": type, "id": id}


class DeadLetterPolicy:
    """What a function's final failures are and where they go (made by the handler)."""

    __slots__ = ("egress", "final", "unreadable")

    egress: DeadLetterEgress
    unreadable: bool

    def __init__(
        self,
        egress: DeadLetterEgress,
        final_errors: tuple[type[BaseException], ...],
        unreadable: bool,
    ) -> None:
        self.egress = egress
        self.final: tuple[type[BaseException], ...] = (FinalFailure, *final_errors)
        self.unreadable = unreadable

    def is_final(self, error: BaseException) -> bool:
        return isinstance(error, self.final) or (self.unreadable and is_unreadable(error))
