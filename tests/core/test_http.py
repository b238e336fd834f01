"""statefun_core.http.as_handler: the one way an integration turns what it is given into a
handler."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from statefun_core import (
    Context,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    make_plugin_manager,
    message_builder,
)
from statefun_core.http import as_handler
from statefun_core.testing.wire import messages, to_function


def echo_functions() -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind("ns/echo", blocking=True)
    def echo(context: Context, message: Message) -> None:
        context.send(message_builder("ns/out", context.address.id, str_value=message.as_string()))

    return functions


def test_a_handler_is_served_as_given() -> None:
    handler = RequestReplyHandler(echo_functions())
    assert as_handler(handler) is handler


def test_functions_get_a_handler_with_the_executor_and_plugins() -> None:
    plugins = make_plugin_manager(load_entrypoints=False)
    with ThreadPoolExecutor(1, thread_name_prefix="given-executor") as executor:
        functions = echo_functions()
        handler = as_handler(functions, executor=executor, plugins=plugins)
        assert isinstance(handler, RequestReplyHandler)
        assert handler.functions is functions
        assert handler.plugins is plugins
        assert handler.executor is executor
        reply = handler.handle_sync(to_function("ns/echo", "a", ["hi"]))
    (sent,) = messages(reply)
    assert sent.message.as_string() == "hi"


def test_executor_or_plugins_with_a_ready_handler_is_a_value_error() -> None:
    handler = RequestReplyHandler(echo_functions())
    with pytest.raises(ValueError, match="RequestReplyHandler itself"):
        as_handler(handler, plugins=make_plugin_manager(load_entrypoints=False))
    with ThreadPoolExecutor(1) as executor, pytest.raises(ValueError, match="itself"):
        as_handler(handler, executor=executor)


def test_anything_else_is_a_type_error_naming_its_type() -> None:
    with pytest.raises(TypeError, match="StatefulFunctions or a RequestReplyHandler, got dict"):
        as_handler({"ns/echo": print})  # type: ignore[arg-type]
