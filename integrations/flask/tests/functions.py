"""The functions the tests serve: the guide's greeter (async) and one that fails."""

from __future__ import annotations

from typing import Optional

from statefun_core import (
    Context,
    IntType,
    Message,
    StatefulFunctions,
    ValueSpec,
    message_builder,
)
from statefun_core.testing import wire

GREETER = "com.example.fns/greeter"
INBOX = "com.example.fns/inbox"
#: The greeter's state for a new address: registered, no value yet.
NEW = {"seen_count": None}
FAILING = "com.example.fns/failing"


def make_functions() -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind(GREETER, specs=[ValueSpec(name="seen_count", type=IntType)])
    async def greeter(context: Context, message: Message) -> None:
        name = message.as_string()
        seen = (context.storage.seen_count or 0) + 1
        context.storage.seen_count = seen
        context.send(
            message_builder(
                target_typename=INBOX,
                target_id=name,
                str_value=f"Hello {name} for the {seen}th time!",
            )
        )

    @functions.bind(FAILING)
    def failing(context: Context, message: Message) -> None:
        raise RuntimeError("the function broke on purpose")

    return functions


#: For configuration by dotted path (``STATEFUN_FUNCTIONS = "tests.functions:functions"``).
functions = make_functions()


def greetings(reply: bytes) -> tuple[Optional[int], list[tuple[str, str, str]]]:
    """``(seen_count written, [(target typename, target id, greeting)])`` of a reply."""
    seen = wire.mutations(reply).get("seen_count")
    sent = [(m.target.typename, m.target.id, m.message.as_string()) for m in wire.messages(reply)]
    return (None if seen is None else IntType.serializer().deserialize(seen.value)), sent
