"""Well-formed requests for the fuzz functions, built with the protocol classes."""

from __future__ import annotations

from typing import Optional

from statefun_core import IntType, Type, protocol

from .fuzz_target import COUNTER

Value = tuple[Type, object]


def request(typename: str, id: str, states: dict[str, Optional[Value]], args: list[Value]) -> bytes:
    """A ToFunction for ``typename``/``id``: each state a value or None (sent without a value)
    and one invocation per argument."""
    to_function = protocol.ToFunction()
    batch = to_function.invocation
    batch.target.namespace, batch.target.type = typename.split("/")
    batch.target.id = id
    for name, value in states.items():
        state = batch.state.add(state_name=name)
        if value is not None:
            _write(state.state_value, value)
    for value in args:
        _write(batch.invocations.add().argument, value)
    data: bytes = to_function.SerializeToString()
    return data


def _write(typed_value: object, value: Value) -> None:
    tpe, python_value = value
    typed_value.typename = tpe.typename  # type: ignore[attr-defined]
    typed_value.has_value = True  # type: ignore[attr-defined]
    typed_value.value = tpe.serializer().serialize(python_value)  # type: ignore[attr-defined]


def counter_request(id: str, count: Optional[int], invocations: int, value: int = 1) -> bytes:
    """``invocations`` messages ``value`` to the counter ``id``, whose state is ``count``."""
    state = None if count is None else (IntType, count)
    return request(COUNTER, id, {"count": state}, [(IntType, value)] * invocations)


def result_of(reply: bytes) -> object:
    return protocol.FromFunction.FromString(reply).invocation_result


def count_of(reply: bytes) -> int:
    (mutation,) = protocol.FromFunction.FromString(reply).invocation_result.state_mutations
    return int(IntType.serializer().deserialize(mutation.state_value.value))
