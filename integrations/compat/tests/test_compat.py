"""Code written for apache-flink-statefun runs unchanged with `import statefun`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

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
    # and the package's modules imported so far, as the official SDK's star import gives its own
    names = {name for name, value in star.items() if not isinstance(value, ModuleType)}
    assert names - {"__builtins__"} == set(statefun_core.__all__)


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


def test_the_official_generated_protobuf_modules_are_there() -> None:
    """Tests written for the official SDK build requests with its generated modules."""
    from statefun.request_reply_pb2 import FromFunction, ToFunction
    from statefun.types_pb2 import StringWrapper

    functions = StatefulFunctions()

    @functions.bind("com.example/echo")
    def echo(context: statefun.Context, message: statefun.Message) -> None:
        context.send(message_builder("com.example/out", "x", str_value=message.as_string()))

    request = ToFunction()
    batch = request.invocation
    batch.target.namespace, batch.target.type, batch.target.id = "com.example", "echo", "x"
    argument = batch.invocations.add().argument
    argument.typename = StringType.typename
    argument.has_value = True
    argument.value = StringWrapper(value="hi").SerializeToString()
    reply = FromFunction.FromString(
        RequestReplyHandler(functions).handle_sync(request.SerializeToString())
    )
    (sent,) = reply.invocation_result.outgoing_messages
    assert StringWrapper.FromString(sent.argument.value).value == "hi"


def test_the_official_sdk_installed_beside_is_named(tmp_path: Path) -> None:
    """Both distributions install the package ``statefun``: uninstalling one later breaks the
    other, so importing says so."""
    info = tmp_path / "apache_flink_statefun-3.3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: apache-flink-statefun\n")
    alone = subprocess.run(
        [sys.executable, "-c", "import statefun"], capture_output=True, text=True, timeout=120
    )
    assert alone.returncode == 0 and "apache-flink-statefun" not in alone.stderr
    beside = subprocess.run(
        [sys.executable, "-c", "import statefun"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        timeout=120,
    )
    assert beside.returncode == 0, beside.stderr
    assert "apache-flink-statefun is installed beside statefun-compat" in beside.stderr
    assert "pip install --force-reinstall statefun-compat" in beside.stderr


def test_an_official_style_test_builds_and_reads_the_nested_messages() -> None:
    """Official users' tests build requests from the nested classes of the generated modules
    (on every protobuf, 3.20 included, whose message factory leaves them out)."""
    from statefun.request_reply_pb2 import FromFunction, ToFunction, TypedValue

    functions = StatefulFunctions()

    @functions.bind("ns/counter", specs=[ValueSpec("n", IntType)])
    def count(context: statefun.Context, message: statefun.Message) -> None:
        del context.storage.n

    batch = ToFunction.InvocationBatchRequest()
    batch.target.namespace, batch.target.type, batch.target.id = "ns", "counter", "a"
    state = ToFunction.PersistedValue(state_name="n")
    state.state_value.CopyFrom(TypedValue(typename="io.statefun.types/int"))
    batch.state.append(state)
    batch.invocations.append(ToFunction.Invocation(argument=TypedValue(typename="x/y")))
    request = ToFunction(invocation=batch)

    reply_bytes = RequestReplyHandler(functions).handle_sync(request.SerializeToString())
    reply = FromFunction.FromString(reply_bytes)
    (mutation,) = reply.invocation_result.state_mutations
    assert isinstance(mutation, FromFunction.PersistedValueMutation)
    delete = FromFunction.PersistedValueMutation.MutationType.Value("DELETE")
    assert mutation.mutation_type == delete
    assert FromFunction.ExpirationSpec.ExpireMode.Value("AFTER_INVOKE") == 2
    assert FromFunction.DelayedInvocation().is_cancellation_request is False
