"""Builds real ToFunction request bytes and reads FromFunction replies."""

from __future__ import annotations

from typing import Optional

from statefun_core import protocol
from statefun_core.types import StringType

STRING = StringType.typename


def to_function(
    typename: str,
    id: str,
    *arguments: str,
    state: Optional[dict[str, tuple[str, bytes]]] = None,
) -> bytes:
    """A batch for ``typename``/``id`` with one string-argument invocation per argument."""
    request = protocol.ToFunction()
    batch = request.invocation
    batch.target.namespace, batch.target.type = typename.rsplit("/", 1)
    batch.target.id = id
    for name, (state_typename, value) in (state or {}).items():
        added = batch.state.add(state_name=name)
        added.state_value.typename = state_typename
        added.state_value.has_value = True
        added.state_value.value = value
    for argument in arguments:
        invocation = batch.invocations.add()
        invocation.argument.typename = STRING
        invocation.argument.has_value = True
        invocation.argument.value = StringType.serializer().serialize(argument)
    return request.SerializeToString()


def from_function(reply: bytes) -> protocol.FromFunction:
    return protocol.FromFunction.FromString(reply)
