"""Hand-built ``FromFunction`` replies for driving the engine without an SDK."""

from __future__ import annotations

from typing import Any

from statefun_core import protocol
from statefun_core.engine import Address, ExpireMode, TypedValue

STRING = "io.statefun.types/string"
INT = "io.statefun.types/int"


def text(value: str) -> TypedValue:
    return TypedValue(STRING, value.encode())


def number(value: int) -> TypedValue:
    return TypedValue(INT, value.to_bytes(4, "little"))


class Reply:
    """An ``InvocationResponse``, built in the order the calls are made."""

    def __init__(self) -> None:
        self.message: Any = protocol.FromFunction()
        self.result = self.message.invocation_result

    def send(self, target: Address, value: TypedValue) -> Reply:
        outgoing = self.result.outgoing_messages.add()
        outgoing.target.CopyFrom(target.to_proto())
        outgoing.argument.CopyFrom(value.to_proto())
        return self

    def send_after(
        self, delay_ms: int, target: Address, value: TypedValue, token: str = ""
    ) -> Reply:
        delayed = self.result.delayed_invocations.add()
        delayed.delay_in_ms = delay_ms
        delayed.target.CopyFrom(target.to_proto())
        delayed.argument.CopyFrom(value.to_proto())
        delayed.cancellation_token = token
        return self

    def cancel(self, token: str) -> Reply:
        delayed = self.result.delayed_invocations.add()
        delayed.is_cancellation_request = True
        delayed.cancellation_token = token
        return self

    def egress(self, egress_id: str, value: TypedValue) -> Reply:
        namespace, _, name = egress_id.rpartition("/")
        message = self.result.outgoing_egresses.add()
        message.egress_namespace = namespace
        message.egress_type = name
        message.argument.CopyFrom(value.to_proto())
        return self

    def modify(self, name: str, value: TypedValue) -> Reply:
        mutation = self.result.state_mutations.add()
        mutation.mutation_type = 1
        mutation.state_name = name
        mutation.state_value.CopyFrom(value.to_proto())
        return self

    def delete(self, name: str) -> Reply:
        mutation = self.result.state_mutations.add()
        mutation.mutation_type = 0
        mutation.state_name = name
        return self

    def bytes(self) -> bytes:
        return bytes(self.message.SerializeToString())


def missing(*specs: tuple[str, str] | tuple[str, str, ExpireMode, int]) -> bytes:
    """An ``IncompleteInvocationContext`` naming ``(name, typename[, mode, ttl_ms])`` specs."""
    reply: Any = protocol.FromFunction()
    for spec in specs:
        value = reply.incomplete_invocation_context.missing_values.add()
        value.state_name = spec[0]
        value.type_typename = spec[1]
        if len(spec) == 4:
            value.expiration_spec.mode = int(spec[2])
            value.expiration_spec.expire_after_millis = spec[3]
    return bytes(reply.SerializeToString())


def arguments(batch: Any) -> list[bytes]:
    return [
        bytes(invocation.argument.value)
        for invocation in batch.to_function().invocation.invocations
    ]


def state_of(batch: Any) -> dict[str, Any]:
    """The request's state list: name -> value bytes, or None when sent without a value."""
    return {
        persisted.state_name: (
            bytes(persisted.state_value.value) if persisted.HasField("state_value") else None
        )
        for persisted in batch.to_function().invocation.state
    }
