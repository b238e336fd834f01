"""Real ToFunction request bytes for the test functions, and their FromFunction replies."""

from __future__ import annotations

from typing import Optional

from statefun_core import protocol
from statefun_core.types import IntType, StringType

GREETER = "com.example.fns/greeter"
INBOX = "com.example.fns/inbox"


def to_function(
    typename: str,
    id: str,
    *names: str,
    seen_count: Optional[int] = None,
    with_state: bool = True,
) -> bytes:
    """A batch for ``typename``/``id``: one string invocation per name.

    ``with_state=False`` leaves ``seen_count`` out of the batch (a discovery round);
    ``seen_count=None`` sends it without a value, as the runtime does for a new address.
    """
    request = protocol.ToFunction()
    batch = request.invocation
    batch.target.namespace, batch.target.type = typename.rsplit("/", 1)
    batch.target.id = id
    if with_state:
        state = batch.state.add(state_name="seen_count")
        if seen_count is not None:
            state.state_value.typename = IntType.typename
            state.state_value.has_value = True
            state.state_value.value = IntType.serializer().serialize(seen_count)
    for name in names:
        invocation = batch.invocations.add()
        invocation.argument.typename = StringType.typename
        invocation.argument.has_value = True
        invocation.argument.value = StringType.serializer().serialize(name)
    return request.SerializeToString()


def greetings(reply: bytes) -> tuple[Optional[int], list[tuple[str, str, str]]]:
    """``(seen_count written, [(target typename, target id, greeting)])`` of a reply."""
    result = protocol.FromFunction.FromString(reply).invocation_result
    seen = None
    for mutation in result.state_mutations:
        assert mutation.state_name == "seen_count"
        seen = IntType.serializer().deserialize(mutation.state_value.value)
    sent = [
        (
            f"{message.target.namespace}/{message.target.type}",
            message.target.id,
            StringType.serializer().deserialize(message.argument.value),
        )
        for message in result.outgoing_messages
    ]
    return seen, sent


def missing_states(reply: bytes) -> list[tuple[str, str]]:
    """``[(state name, typename)]`` a discovery reply asks for (empty for any other reply)."""
    context = protocol.FromFunction.FromString(reply).incomplete_invocation_context
    return [(missing.state_name, missing.type_typename) for missing in context.missing_values]
