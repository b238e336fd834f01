"""The user guide's greeter: ``greeter`` counts visits and asks ``inbox`` to deliver a greeting;
``inbox`` writes it to the Kafka egress ``com.example/greets`` (topic ``greetings``, key = name).
"""

from __future__ import annotations

from statefun_core import (
    Context,
    IntType,
    Message,
    StatefulFunctions,
    ValueSpec,
    kafka_egress_message,
    message_builder,
)

functions = StatefulFunctions()


@functions.bind(
    typename="com.example.fns/greeter", specs=[ValueSpec(name="seen_count", type=IntType)]
)
def greeter(context: Context, message: Message) -> None:
    name = message.as_string() or ""  # None only for a message without a value
    seen = context.storage.seen_count or 0
    context.storage.seen_count = seen + 1
    context.send(
        message_builder(
            target_typename="com.example.fns/inbox",
            target_id=name,
            str_value=f"Hello {name} for the {seen}th time!",
        )
    )


@functions.bind(typename="com.example.fns/inbox")
def inbox(context: Context, message: Message) -> None:
    context.send_egress(
        kafka_egress_message(
            typename="com.example/greets",
            topic="greetings",
            key=context.address.id,
            value=message.as_string() or "",  # None only for a message without a value
        )
    )
