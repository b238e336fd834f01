"""The user guide's greeter, shared by every example app.

``com.example.fns/greeter`` counts how often it has seen each name (state ``seen_count``) and
sends a greeting to ``com.example.fns/inbox`` under the same id ("Hello Ann for the 0th time!"
the first time, as in the guide); the inbox logs what it gets.
"""

from __future__ import annotations

import logging

from statefun_core import (
    Context,
    IntType,
    Message,
    StatefulFunctions,
    ValueSpec,
    message_builder,
)

logger = logging.getLogger(__name__)

functions = StatefulFunctions()


@functions.bind(
    typename="com.example.fns/greeter", specs=[ValueSpec(name="seen_count", type=IntType)]
)
async def greeter(context: Context, message: Message) -> None:
    name = message.as_string() or ""  # None only for a message without a value
    storage = context.storage
    seen = storage.seen_count or 0
    storage.seen_count = seen + 1
    context.send(
        message_builder(
            target_typename="com.example.fns/inbox",
            target_id=name,
            str_value=f"Hello {name} for the {seen}th time!",
        )
    )


@functions.bind(typename="com.example.fns/inbox")
def inbox(context: Context, message: Message) -> None:
    logger.info("inbox %s got: %s", context.address.id, message.as_string())
