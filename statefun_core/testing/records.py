"""What a test reads back from the harness: messages and egress records, decoded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Union

from .. import protocol
from ..engine import Address, EgressRecord, TypedValue
from ..messages import KAFKA_PRODUCER_RECORD, KINESIS_EGRESS_RECORD, Message
from ..registry import TypeRegistry

__all__ = [
    "EgressOutput",
    "KafkaRecord",
    "KinesisRecord",
    "PendingMessage",
    "SentMessage",
    "decode_egress",
]


@dataclass(frozen=True)
class SentMessage:
    """A message a function sent (``caller``), or one captured for a function type the
    harness does not run. ``message`` decodes it: ``sent.message.as_string()``, and
    ``sent.message.as_type(Model)`` for a class a type plugin knows (``types``: the harness
    handler's, set by the harness)."""

    target: Address
    argument: TypedValue
    caller: Optional[Address]
    types: Optional[TypeRegistry] = field(default=None, compare=False, repr=False)

    @property
    def message(self) -> Message:
        message = Message(self.target.typename, self.target.id, self.argument.to_proto())
        message._types = self.types
        return message


@dataclass(frozen=True)
class PendingMessage(SentMessage):
    """A delayed message not delivered yet: due at ``due_ms`` on the harness clock."""

    due_ms: int = 0
    cancellation_token: Optional[str] = None


@dataclass(frozen=True)
class EgressOutput:
    """A record sent to an egress that is neither Kafka nor Kinesis: its raw typed value."""

    egress: str
    typename: str
    value: bytes


@dataclass(frozen=True)
class KafkaRecord:
    """A Kafka egress record: ``key`` is None for a key-less record; ``value`` as written;
    ``headers`` in order, a null header's value None."""

    egress: str
    topic: str
    key: Optional[str]
    value: bytes
    headers: tuple[tuple[str, Optional[bytes]], ...] = ()


@dataclass(frozen=True)
class KinesisRecord:
    """A Kinesis egress record; ``explicit_hash_key`` is None when not set."""

    egress: str
    stream: str
    partition_key: str
    value: bytes
    explicit_hash_key: Optional[str] = None


AnyEgress = Union[KafkaRecord, KinesisRecord, EgressOutput]


def decode_egress(record: EgressRecord) -> AnyEgress:
    """Read a Kafka or Kinesis record out of its ``TypedValue``; other records stay raw."""
    argument = record.argument
    if argument.typename == KAFKA_PRODUCER_RECORD:
        kafka: Any = protocol.KafkaProducerRecord.FromString(argument.value)
        headers = tuple(
            (header.key, bytes(header.value) if header.has_value else None)
            for header in kafka.headers
        )
        return KafkaRecord(
            record.egress, kafka.topic, kafka.key or None, bytes(kafka.value_bytes), headers
        )
    if argument.typename == KINESIS_EGRESS_RECORD:
        kinesis: Any = protocol.KinesisEgressRecord.FromString(argument.value)
        return KinesisRecord(
            record.egress,
            kinesis.stream,
            kinesis.partition_key,
            bytes(kinesis.value_bytes),
            kinesis.explicit_hash_key or None,
        )
    return EgressOutput(record.egress, argument.typename, argument.value)
