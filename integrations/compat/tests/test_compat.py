"""Code written for apache-flink-statefun runs unchanged with `import statefun`."""

from __future__ import annotations

from pathlib import Path

import mypy.api
import statefun
from statefun import (
    IntType,
    RequestReplyHandler,
    StatefulFunctions,
    StringType,
    ValueSpec,
    message_builder,
)

import statefun_core


def test_statefun_is_statefun_core() -> None:
    assert statefun.RequestReplyHandler is statefun_core.RequestReplyHandler
    star: dict[str, object] = {}
    exec("from statefun import *", star)
    assert set(star) - {"__builtins__"} == set(statefun_core.__all__)


def test_type_checkers_see_what_a_star_import_gives(tmp_path: Path) -> None:
    """``from statefun import *`` is how the guide starts: mypy must know every name of it."""
    program = tmp_path / "greeter.py"
    program.write_text(
        "from statefun import *\n"
        "functions = StatefulFunctions()\n"
        "@functions.bind('com.example.fns/greeter', specs=[ValueSpec('seen', IntType)])\n"
        "async def greet(context: Context, message: Message) -> None:\n"
        "    context.send(message_builder('com.example.fns/inbox', 'x', str_value='hi'))\n"
        "handler: RequestReplyHandler = RequestReplyHandler(functions)\n"
    )
    report, errors, status = mypy.api.run(["--strict", "--no-incremental", str(program)])
    assert status == 0, report + errors


def test_the_guides_greeter_unchanged() -> None:
    functions = StatefulFunctions()

    @functions.bind(
        typename="com.example.fns/greeter", specs=[ValueSpec(name="seen_count", type=IntType)]
    )
    async def greet(ctx: statefun.Context, message: statefun.Message) -> None:
        name = message.as_string()
        storage = ctx.storage
        seen = storage.seen_count or 0
        storage.seen_count = seen + 1
        ctx.send(
            message_builder(
                target_typename="com.example.fns/inbox",
                target_id=name,
                str_value=f"Hello {name} for the {seen}th time!",
            )
        )

    request = statefun_core.protocol.ToFunction()
    batch = request.invocation
    batch.target.namespace, batch.target.type, batch.target.id = "com.example.fns", "greeter", "Jo"
    batch.state.add(state_name="seen_count")
    argument = batch.invocations.add().argument
    argument.typename, argument.has_value = StringType.typename, True
    argument.value = StringType.serializer().serialize("Jo")

    reply = statefun_core.protocol.FromFunction.FromString(
        RequestReplyHandler(functions).handle_sync(request.SerializeToString())
    )
    (sent,) = reply.invocation_result.outgoing_messages
    assert StringType.serializer().deserialize(sent.argument.value) == "Hello Jo for the 0th time!"
