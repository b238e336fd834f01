"""Every example of the official SDK's user guide runs with only the import changed.

The snippets are the guide's (``shared/seeds/python-sdk.md``) with ``from statefun import *``
turned into ``from statefun_core import *``; each is then served through the handler.
"""

from __future__ import annotations

import asyncio
from typing import Any

from statefun_core import IntType, RequestReplyHandler, StringType, make_plugin_manager, protocol
from statefun_core.testing.wire import invocation_result, mutations, to_function, typed_value

GREETER = """
from statefun_core import *

functions = StatefulFunctions()


@functions.bind(
    typename='com.example.fns/greeter',
    specs=[ValueSpec(name='seen_count', type=IntType)])
async def greet(ctx: Context, message: Message):
    name = message.as_string()

    storage = ctx.storage
    seen = storage.seen_count or 0
    storage.seen_count = seen + 1

    ctx.send(
        message_builder(target_typename='com.example.fns/inbox',
                        target_id=name,
                        str_value=f"Hello {name} for the {seen}th time!"))
"""

USER_TYPE = """
from statefun_core import *
import json


class User:
    def __init__(self, name, favorite_color):
        self.name = name
        self.favorite_color = favorite_color


UserType = simple_type(
    typename="com.example/User",
    serialize_fn=lambda user: json.dumps(user.__dict__),
    deserialize_fn=lambda serialized: User(**json.loads(serialized)))
"""

STATE = """
from datetime import timedelta
functions = StatefulFunctions()

# Value specification for a state named `seen`
# with the primitive integer type
ValueSpec(name='seen_count', type=IntType)

# Value specification with a custom type
ValueSpec(name='user', type=UserType)

ValueSpec(name='seen_count', type=IntType, expire_after_call=timedelta(minutes=30))
ValueSpec(name='seen_count', type=IntType, expire_after_write=timedelta(minutes=30))


@functions.bind(
    typename='com.example.fns/greeter',
    specs=[ValueSpec(name='seen_count', type=IntType)])
async def greet(ctx: Context, message: Message):
    storage = ctx.storage

    # Read the current value of the state
    # or None if no value is set
    count = storage.seen_count or 0
    count += 1

    # Update the state which will
    # be made persistent by the runtime
    storage.seen_count = count

    print(f"the current count is {count}")

    if count > 10:

        # Delete the state value
        del storage.seen_count
"""

DELAYED = """
from statefun_core import *

from datetime import timedelta

functions = StatefulFunctions()


@functions.bind(typename='com.example.fns/delayed')
async def delayed(ctx: Context, message: Message):
    if ctx.caller is None:
        print('Message has no known caller meaning it was sent directly from an ingress')

    ctx.send_after(
        duration=timedelta(minutes=30),
        message=message_builder(
            target_typename=ctx.caller.typename,
            target_id=ctx.caller.id,
            str_value='Hello from the future!'))
"""

KAFKA = """
from statefun_core import *

functions = StatefulFunctions()


@functions.bind(
    typename='com.example.fns/greeter',
    specs=[ValueSpec(name='seen_count', type=IntType)])
async def greet(context, message):
    if not message.is_type(UserType):
        raise ValueError('Unknown type')

    user = message.as_type(UserType)
    name = user.name

    storage = context.storage
    seen = storage.seen_count or 0
    storage.seen_count = seen + 1

    context.send_egress(kafka_egress_message(
        typename='com.example/greets',
        topic='greetings',
        key=name,
        value=f"Hello {name} for the {seen}th time!"))
"""

KINESIS = KAFKA.replace(
    """kafka_egress_message(
        typename='com.example/greets',
        topic='greetings',
        key=name,""",
    """kinesis_egress_message(
        typename='com.example/greets',
        stream='greetings',
        partition_key=name,""",
)

SERVING = """
from statefun_core import *

functions = StatefulFunctions()


@functions.bind(
    typename='com.example.fns/greeter',
    specs=[ValueSpec(name='seen_count', type=IntType)])
async def greet(ctx: Context, message: Message):
    pass


handler = RequestReplyHandler(functions)
"""


def run(*snippets: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    for snippet in snippets:
        exec(compile(snippet, "<guide>", "exec"), namespace)
    return namespace


def handler(namespace: dict[str, Any]) -> RequestReplyHandler:
    return RequestReplyHandler(
        namespace["functions"], plugins=make_plugin_manager(load_entrypoints=False)
    )


def test_defining_a_function() -> None:
    data = handler(run(GREETER)).handle_sync(
        to_function(
            "com.example.fns/greeter", "Ann", [typed_value(StringType, "Ann")], {"seen_count": None}
        )
    )
    (sent,) = invocation_result(data).outgoing_messages
    assert StringType.serializer().deserialize(sent.argument.value) == "Hello Ann for the 0th time!"


def test_state_example_deletes_after_ten(capsys: Any) -> None:
    namespace = run(USER_TYPE, STATE)
    data = handler(namespace).handle_sync(
        to_function(
            "com.example.fns/greeter",
            "x",
            [typed_value(StringType, "x")],
            {"seen_count": typed_value(IntType, 10)},
        )
    )
    assert mutations(data) == {"seen_count": None}
    assert "the current count is 11" in capsys.readouterr().out


def test_delayed_message_example() -> None:
    data = handler(run(DELAYED)).handle_sync(
        to_function(
            "com.example.fns/delayed",
            "1",
            [typed_value(StringType, "x")],
            caller=("com.example.fns/user", "u1"),
        )
    )
    (delayed,) = invocation_result(data).delayed_invocations
    assert (delayed.target.type, delayed.target.id, delayed.delay_in_ms) == (
        "user",
        "u1",
        1_800_000,
    )


def test_kafka_and_kinesis_examples_with_the_user_type() -> None:
    for snippet, record_type in (
        (KAFKA, protocol.KafkaProducerRecord),
        (KINESIS, protocol.KinesisEgressRecord),
    ):
        namespace = run(USER_TYPE, snippet)
        user = namespace["User"]("Ann", "red")
        argument = typed_value(namespace["UserType"], user)
        data = asyncio.run(
            handler(namespace).handle_async(
                to_function(
                    "com.example.fns/greeter",
                    "Ann",
                    [argument],
                    {"seen_count": typed_value(IntType, 2)},
                )
            )
        )
        (egress,) = invocation_result(data).outgoing_egresses
        record = record_type.FromString(egress.argument.value)
        assert record.value_bytes == b"Hello Ann for the 2th time!"


def test_serving_example_builds_a_handler() -> None:
    namespace = run(SERVING)
    data = namespace["handler"].handle_sync(
        to_function(
            "com.example.fns/greeter", "a", [typed_value(StringType, "a")], {"seen_count": None}
        )
    )
    assert invocation_result(data).ListFields() == []
