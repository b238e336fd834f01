"""Build ToFunction requests and read FromFunction replies, as the StateFun runtime does."""

from __future__ import annotations

from typing import Any, Iterable, Optional

from statefun_core import protocol
from statefun_core.types import Type


def typed(tpe: Type, value: Any) -> Any:
    data = tpe.serializer().serialize(value)
    if isinstance(data, str):
        data = data.encode()
    return protocol.TypedValue(typename=tpe.typename, has_value=True, value=data)


def request(
    typename: str,
    id: str,
    arguments: Iterable[Any],
    state: Optional[dict[str, Any]] = None,
    caller: Optional[tuple[str, str, str]] = None,
) -> bytes:
    """A ToFunction for ``typename``/``id``: one invocation per TypedValue in ``arguments``.

    ``state`` maps a name to a TypedValue, or to None for "registered, no value" (the
    runtime omits state_value entirely then).
    """
    namespace, name = typename.rsplit("/", 1)
    to_function = protocol.ToFunction()
    batch = to_function.invocation
    batch.target.namespace, batch.target.type, batch.target.id = namespace, name, id
    for state_name, value in (state or {}).items():
        persisted = batch.state.add(state_name=state_name)
        if value is not None:
            persisted.state_value.CopyFrom(value)
    for argument in arguments:
        invocation = batch.invocations.add()
        invocation.argument.CopyFrom(argument)
        if caller:
            ns, tp, cid = caller
            invocation.caller.namespace, invocation.caller.type, invocation.caller.id = ns, tp, cid
    return bytes(to_function.SerializeToString())


def reply(data: bytes) -> Any:
    return protocol.FromFunction.FromString(data)


def result(data: bytes) -> Any:
    """The InvocationResponse of a reply (fails if the reply asks for state)."""
    from_function = reply(data)
    assert not from_function.HasField("incomplete_invocation_context"), from_function
    return from_function.invocation_result


def mutations(data: bytes) -> dict[str, Any]:
    """State mutations by name: a TypedValue for MODIFY, None for DELETE."""
    return {
        m.state_name: (m.state_value if m.mutation_type == 1 else None)
        for m in result(data).state_mutations
    }
