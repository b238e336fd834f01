"""The benchmarked functions, written once against the official SDK's public API.

``statefun_core`` is a superset of ``statefun``, so the same code runs on both: ``bind(sdk)``
takes whichever module the worker imported.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from .payloads import FANOUT, GREETER, INBOX, KAFKA_EGRESS, KAFKA_TOPIC, STATE10, STATE10_NAMES


def bind(sdk: ModuleType) -> Any:
    """A ``StatefulFunctions`` of ``sdk`` with the greeter, state10 and fanout functions."""
    functions = sdk.StatefulFunctions()
    message_builder = sdk.message_builder

    @functions.bind(GREETER, specs=[sdk.ValueSpec(name="seen_count", type=sdk.IntType)])
    async def greet(context: Any, message: Any) -> None:
        # the user guide's greeter
        name = message.as_string()
        storage = context.storage
        seen = storage.seen_count or 0
        storage.seen_count = seen + 1
        context.send(
            message_builder(
                target_typename=INBOX,
                target_id=name,
                str_value=f"Hello {name} for the {seen}th time!",
            )
        )

    @functions.bind(
        STATE10, specs=[sdk.ValueSpec(name=n, type=sdk.StringType) for n in STATE10_NAMES]
    )
    async def rotate(context: Any, message: Any) -> None:
        shift = message.as_int()
        storage = context.storage
        for name in STATE10_NAMES:
            value = getattr(storage, name)
            setattr(storage, name, value[shift:] + value[:shift])

    @functions.bind(FANOUT)
    async def fanout(context: Any, message: Any) -> None:
        name = message.as_string()
        for i in range(10):
            context.send(
                message_builder(target_typename=INBOX, target_id=f"{name}-{i}", str_value=f"Hi {i}")
            )
        context.send_egress(
            sdk.kafka_egress_message(
                typename=KAFKA_EGRESS, topic=KAFKA_TOPIC, key=name, value=f"greeted {name}"
            )
        )

    return functions
