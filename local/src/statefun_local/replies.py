"""What the runtime refuses in a function's reply, checked before the engine applies it.

The engine checks a reply against the rules it knows. These checks need the module, or stop
a value that would fail inside the engine's transaction with an error other than an
:class:`~statefun_core.engine.EngineError` (protocol §8, §11):

- a message or delayed message to a function type no endpoint of the module serves;
- an egress record that is not its egress' record type, does not parse, or names no topic
  (Kafka) or no stream or partition key (Kinesis), or is no JSON topic and payload, or names a
  topic the egress does not have (playground): its egress could never produce it;
- a delay whose due time would not fit in a 64-bit integer;
- a discovery reply with an expiration mode that does not exist.

A refused reply is treated as one the engine rejects: nothing of it is applied, the failure
is reported and the batch is sent again later.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError, Message

from statefun_core import protocol
from statefun_core.engine import Address, ExpireMode, InvalidReplyError

from .module import KAFKA_EGRESS, KINESIS_EGRESS, PLAYGROUND_EGRESS, Egress, Module
from .values import KAFKA_RECORD, KINESIS_RECORD, PLAYGROUND_RECORD, playground_record

__all__ = ["MAX_DELAY_MS", "check_reply"]

#: The longest delay: now + delay stays within SQLite's 64-bit integers.
MAX_DELAY_MS = 2**62

#: Each egress kind's record: its typename, its message and the fields it can not do without.
_RECORDS: dict[str, tuple[str, Any, tuple[str, ...]]] = {
    KAFKA_EGRESS: (KAFKA_RECORD, protocol.KafkaProducerRecord, ("topic",)),
    KINESIS_EGRESS: (KINESIS_RECORD, protocol.KinesisEgressRecord, ("stream", "partition_key")),
}

_EXPIRE_MODES = frozenset(int(mode) for mode in ExpireMode)


def check_reply(address: Address, reply: Message, module: Module) -> None:
    """Raise :class:`InvalidReplyError` if the reply of ``address`` (a parsed
    ``FromFunction``) holds something the runtime refuses."""
    response: Any = reply  # its fields are not typed
    for missing in response.incomplete_invocation_context.missing_values:
        mode = missing.expiration_spec.mode
        if mode not in _EXPIRE_MODES:
            raise InvalidReplyError(
                f"{address} declared state {missing.state_name!r} with expiration mode "
                f"{mode}; the modes are NONE (0), AFTER_WRITE (1) and AFTER_INVOKE (2)"
            )
    result = response.invocation_result
    for message in result.outgoing_messages:
        _check_target(address, message.target, module)
    for delayed in result.delayed_invocations:
        if delayed.is_cancellation_request:
            continue
        _check_target(address, delayed.target, module)
        if delayed.delay_in_ms > MAX_DELAY_MS:
            raise InvalidReplyError(
                f"{address} sent a delay of {delayed.delay_in_ms} ms; at most {MAX_DELAY_MS}"
            )
    for message in result.outgoing_egresses:
        _check_egress_record(address, message, module)


def _check_target(address: Address, target: Any, module: Module) -> None:
    typename = Address.from_proto(target).typename
    if module.endpoint_for(typename) is None:
        raise InvalidReplyError(
            f"{address} sent a message to function type {typename!r}, which no endpoint in "
            f"the module serves"
        )


def _check_egress_record(address: Address, message: Any, module: Module) -> None:
    egress = module.egresses.get(f"{message.egress_namespace}/{message.egress_type}")
    if egress is None:  # the engine refuses an unknown egress
        return
    if egress.kind == PLAYGROUND_EGRESS:
        _check_playground_record(address, message, egress)
        return
    typename, record_type, required = _RECORDS[egress.kind]
    argument = message.argument
    if argument.typename != typename:
        raise InvalidReplyError(
            f"{address} sent a {argument.typename!r} to egress {egress.id}, which takes "
            f"{typename} only"
        )
    try:
        record = record_type.FromString(argument.value)
    except DecodeError as error:
        raise InvalidReplyError(
            f"{address} sent egress {egress.id} a {typename} that does not parse: {error}"
        ) from None
    for field in required:
        if not getattr(record, field):
            raise InvalidReplyError(f"{address} sent egress {egress.id} a record without {field}")


def _check_playground_record(address: Address, message: Any, egress: Egress) -> None:
    """As the playground image's egress, which fails the job on anything else."""
    argument = message.argument
    if argument.typename != PLAYGROUND_RECORD:
        raise InvalidReplyError(
            f"{address} sent a {argument.typename!r} to egress {egress.id}, which takes "
            f"{PLAYGROUND_RECORD} only"
        )
    try:
        topic, _ = playground_record(argument.value)
    except ValueError as error:
        problem = f"{address} sent egress {egress.id} a record that {error}"
        raise InvalidReplyError(problem) from None
    if topic not in egress.topics:
        raise InvalidReplyError(
            f"{address} sent egress {egress.id} a record to topic {topic!r}, which is not one of "
            f"its topics ({', '.join(egress.topics)})"
        )
