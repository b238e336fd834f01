"""Build ``ToFunction`` requests and read ``FromFunction`` replies, as the StateFun runtime does.

For tests that talk to a function endpoint directly (a handler, or a deployed HTTP
endpoint) rather than through the :class:`~statefun_core.testing.Harness`::

    from statefun_core import IntType
    from statefun_core.testing import wire

    body = wire.to_function("example/greeter", "ann", ["Ann"], state={"seen_count": None})
    reply = handler.handle_sync(body)
    assert wire.mutations(reply) == {"seen_count": wire.typed_value(IntType, 1)}
    (sent,) = wire.messages(reply)
    assert sent.message.as_string() == "Hello Ann!"

Values are given as a ``protocol.TypedValue`` (:func:`typed_value` builds one for any
:class:`~statefun_core.Type`) or as a plain ``str``, ``int`` or ``bool``, which are sent as
StateFun's string, int and boolean types.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Optional, TypeVar

from .. import protocol
from ..engine import Address, EgressRecord, ExpireMode, StateSpec, TypedValue
from ..registry import TypeRegistry
from ..types import BoolType, IntType, StringType, Type, to_bytes
from .records import AnyEgress, SentMessage, decode_egress

__all__ = [
    "Value",
    "delayed",
    "egress",
    "from_function",
    "invocation_result",
    "messages",
    "missing_states",
    "mutations",
    "to_function",
    "typed_value",
]

#: A value for a request: a ``protocol.TypedValue``, or a ``str``, ``int`` or ``bool``.
Value = Any

_T = TypeVar("_T")

_MODIFY = 1


def typed_value(tpe: Type[_T], value: _T) -> Any:
    """``value`` serialized by ``tpe``, as a ``protocol.TypedValue``."""
    data = to_bytes(tpe.serializer().serialize(value), tpe.typename)  # as the handler takes it
    return protocol.TypedValue(typename=tpe.typename, has_value=True, value=data)


def to_function(
    typename: str,
    id: str,
    arguments: Iterable[Value] = (),
    state: Optional[Mapping[str, Optional[Value]]] = None,
    *,
    caller: Optional[tuple[str, str]] = None,
) -> bytes:
    """The bytes of a ``ToFunction`` batch for ``typename``/``id``: one invocation per
    argument, in order.

    ``state`` maps each state the runtime has registered to its value, or to ``None`` for
    "registered, no value yet" (what the runtime sends for a new address). A state left out
    is one the runtime does not know, so the function answers with the specs it misses.
    ``caller`` (a ``(typename, id)`` pair) is set on every invocation; without it they arrive
    as from an ingress.
    """
    request = protocol.ToFunction()
    batch = request.invocation
    batch.target.CopyFrom(Address(typename, id).to_proto())
    for name, value in (state or {}).items():
        persisted = batch.state.add(state_name=name)
        if value is not None:
            persisted.state_value.CopyFrom(_typed(value))
    for argument in arguments:
        invocation = batch.invocations.add()
        invocation.argument.CopyFrom(_typed(argument))
        if caller is not None:
            invocation.caller.CopyFrom(Address(*caller).to_proto())
    return bytes(request.SerializeToString())


def from_function(reply: bytes) -> Any:
    """The reply, parsed as a ``protocol.FromFunction``."""
    return protocol.FromFunction.FromString(reply)


def invocation_result(reply: bytes) -> Any:
    """The ``InvocationResponse`` of a reply; fails if the reply asks for missing state."""
    from_function_ = from_function(reply)
    if from_function_.HasField("incomplete_invocation_context"):
        raise AssertionError(f"the reply asks for missing state: {missing_states(reply)}")
    return from_function_.invocation_result


def mutations(reply: bytes) -> dict[str, Optional[Any]]:
    """The state changes by name: the new ``protocol.TypedValue``, or ``None`` for a delete."""
    return {
        mutation.state_name: (mutation.state_value if mutation.mutation_type == _MODIFY else None)
        for mutation in invocation_result(reply).state_mutations
    }


def messages(reply: bytes, types: Optional[TypeRegistry] = None) -> list[SentMessage]:
    """The messages the function sent, in order (``caller`` is None: a reply does not say);
    with a handler's ``types``, ``sent.message.as_type(Model)`` finds a plugin's type."""
    return [
        SentMessage(
            Address.from_proto(message.target), TypedValue.from_proto(message.argument), None, types
        )
        for message in invocation_result(reply).outgoing_messages
    ]


def delayed(reply: bytes) -> list[Any]:
    """The delayed messages and cancellations, as ``FromFunction.DelayedInvocation``."""
    return list(invocation_result(reply).delayed_invocations)


def egress(reply: bytes) -> list[AnyEgress]:
    """The egress records, in order; Kafka and Kinesis records decoded."""
    return [
        decode_egress(
            EgressRecord(
                f"{record.egress_namespace}/{record.egress_type}",
                TypedValue.from_proto(record.argument),
            )
        )
        for record in invocation_result(reply).outgoing_egresses
    ]


def missing_states(reply: bytes) -> list[StateSpec]:
    """The state specs a discovery reply asks for (empty for any other reply)."""
    context = from_function(reply).incomplete_invocation_context
    return [
        StateSpec(
            missing.state_name,
            missing.type_typename,
            ExpireMode(missing.expiration_spec.mode),
            missing.expiration_spec.expire_after_millis,
        )
        for missing in context.missing_values
    ]


def _typed(value: Value) -> Any:
    if isinstance(value, bool):
        return typed_value(BoolType, value)
    if isinstance(value, int):
        return typed_value(IntType, value)
    if isinstance(value, str):
        return typed_value(StringType, value)
    return value
