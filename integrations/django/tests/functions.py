"""The functions the tests serve: the guide's greeter (async) and one that fails."""

from __future__ import annotations

from statefun_core import (
    Context,
    IntType,
    Message,
    StatefulFunctions,
    ValueSpec,
    message_builder,
)

from .wire import GREETER, INBOX

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


#: For configuration by dotted path (``STATEFUN = {"FUNCTIONS": "tests.functions.functions"}``).
functions = make_functions()

#: Binds the greeter again: served together with ``functions``, a conflict (statefun.E004).
duplicate = make_functions()

#: Not a StatefulFunctions (statefun.E003).
not_functions = {"com.example.fns/greeter": None}
