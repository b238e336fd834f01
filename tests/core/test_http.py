"""statefun_core.http: ``as_handler``, the one way an integration turns what it is given into a
handler, and ``error_response``, the status, text and log line of a failed request."""

from __future__ import annotations

import logging
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
from statefun_core.errors import (
    AsyncFunctionInSyncContextError,
    FunctionFailedError,
    FunctionNotFoundError,
    LimitExceededError,
    MalformedRequestError,
    MethodNotAllowedError,
    PluginError,
    RequestTooLargeError,
    UnknownTypeError,
)
from statefun_core.http import as_handler, error_response
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


REASONS = {
    400: "Bad Request: the body is not a StateFun ToFunction message",
    404: "Not Found: no function is bound to the request's typename",
    405: "Method Not Allowed: StateFun requests are POST",
    500: "Internal Server Error: the function failed",
}


@pytest.mark.parametrize(
    ("error", "status"),
    [(MalformedRequestError("not protobuf"), 400), (FunctionNotFoundError("ns/nobody"), 404),
     (MethodNotAllowedError("GET is not allowed"), 405),
     (FunctionFailedError("ns/echo", "a"), 500)],
)  # fmt: skip
def test_each_status_answers_its_short_reason(error: Exception, status: int) -> None:
    assert error_response(error) == (status, REASONS[status])


@pytest.mark.parametrize(
    "error",
    [PluginError("p"), UnknownTypeError("t"), AsyncFunctionInSyncContextError("a")],
    ids=["plugin", "unknown type", "async in sync"],
)
def test_the_sdks_other_errors_are_server_errors(error: Exception) -> None:
    assert error_response(error) == (500, "Internal Server Error")


def test_each_error_says_what_failed() -> None:
    not_found = FunctionNotFoundError("ns/nobody")
    assert (str(not_found), not_found.typename) == (
        "no function is bound to the typename 'ns/nobody'", "ns/nobody"
    )  # fmt: skip
    failed = FunctionFailedError("ns/echo", "a")
    assert str(failed) == "function 'ns/echo' failed for id 'a'"
    assert (failed.typename, failed.id) == ("ns/echo", "a")
    limit = LimitExceededError("outgoing_per_batch", 3, 2)
    assert str(limit) == "outgoing_per_batch is 3, over the limit of 2 (Limits.outgoing_per_batch)"
    # read until one byte over the limit, its length never known
    unknown = RequestTooLargeError(None, 4096)
    assert str(unknown) == "the request body is over the limit of 4096 bytes (Limits.request_bytes)"
    assert (unknown.value, unknown.maximum) == (4097, 4096)
    known = RequestTooLargeError(5000, 4096, "client_max_size")
    assert (str(known), known.value, known.setting) == (
        "the request body is 5000 bytes, over the limit of 4096 bytes (client_max_size)",
        5000,
        "client_max_size",
    )


def test_a_failure_that_is_not_a_functions_blames_no_function() -> None:
    # a misconfigured endpoint (Tornado's without a handler), a bug in the server's code
    assert error_response(RuntimeError("a bug")) == (500, "Internal Server Error")


def test_a_limit_names_itself_even_when_it_failed_a_function() -> None:
    too_large = RequestTooLargeError(5000, 4096)
    over = "the request body is 5000 bytes, over the limit of 4096 bytes (Limits.request_bytes)"
    assert error_response(too_large) == (
        413, f"Payload Too Large: the request is over the endpoint's limits: {over}"
    )  # fmt: skip
    failed = FunctionFailedError("ns/echo", "a")
    failed.__cause__ = too_large
    assert error_response(failed) == (500, f"{REASONS[500]}: {over}")


class Listening:
    """A plugin that observes invocations, so the handler reports (and logs) each one."""

    from statefun_core.plugins import hookimpl

    @hookimpl
    def statefun_invocation_finished(self, invocation: object, error: object) -> None:
        pass


@pytest.mark.parametrize("observed", [False, True])
def test_a_failed_function_is_logged_once_by_the_handler_naming_its_exception(
    caplog: pytest.LogCaptureFixture, observed: bool
) -> None:
    functions = StatefulFunctions()
    causes = {"o-1": ValueError("a 'shop/Order' value is not valid"), "o-2": KeyError()}

    @functions.bind("shop/cashier")
    def cashier(context: Context, message: Message) -> None:
        raise causes[context.address.id]

    plugins = make_plugin_manager([Listening()] if observed else [], load_entrypoints=False)
    handler = RequestReplyHandler(functions, plugins=plugins)
    caplog.set_level(logging.ERROR, logger="statefun_core")
    for id in causes:
        with pytest.raises(FunctionFailedError) as raised:
            handler.handle_sync(to_function("shop/cashier", id, ["x"]))
        assert error_response(raised.value)[0] == 500  # which does not log it again
    valued, bare = caplog.records
    assert valued.getMessage() == (
        "statefun request failed: function 'shop/cashier' failed for id 'o-1': "
        "ValueError: a 'shop/Order' value is not valid"
    )
    assert bare.getMessage() == (
        "statefun request failed: function 'shop/cashier' failed for id 'o-2': KeyError"
    )
    assert valued.exc_info is not None  # with its traceback, as before
    assert valued.exc_info[1].__cause__ is causes["o-1"]


def test_a_405_keeps_the_method_when_the_server_says_it() -> None:
    assert str(MethodNotAllowedError(method="PUT")) == "PUT is not allowed"
    assert MethodNotAllowedError(method="PUT").method == "PUT"
    assert str(MethodNotAllowedError("no")) == "no" and MethodNotAllowedError("no").method is None
    assert str(MethodNotAllowedError()) == "the method is not allowed"


def test_server_errors_are_logged_with_their_traceback_and_the_runtimes_retries_as_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="statefun_core")
    bug = RuntimeError("a bug")
    error_response(bug)
    error_response(MethodNotAllowedError(method="GET"))
    error_response(FunctionNotFoundError("ns/nobody"))
    error_response(RequestTooLargeError(5000, 4096))
    error_response(MalformedRequestError("not a ToFunction"))
    (failed, wrong_method, unknown, too_large, malformed) = caplog.records
    assert (failed.levelname, failed.getMessage()) == ("ERROR", "statefun request failed: a bug")
    assert failed.exc_info is not None and failed.exc_info[1] is bug
    assert (wrong_method.levelname, wrong_method.exc_info) == ("INFO", None)
    assert wrong_method.getMessage() == "statefun request rejected (405): GET is not allowed"
    assert [record.levelname for record in (unknown, too_large, malformed)] == ["WARNING"] * 3
    assert unknown.getMessage().startswith("statefun request rejected (404): ")


def test_a_record_factory_setting_trace_id_does_not_turn_a_refusal_into_an_error(
    caplog: pytest.LogCaptureFixture, factory_trace_id: str
) -> None:
    """Every integration answers with ``error_response``: with a record factory that sets
    ``trace_id`` (a common recipe), it still answers and logs, the factory's trace id
    standing, where ``logging`` would have raised ``KeyError`` for the ``extra``."""
    caplog.set_level(logging.INFO, logger="statefun_core")
    assert error_response(MalformedRequestError("not a ToFunction"))[0] == 400
    assert error_response(RuntimeError("a bug"))[0] == 500
    rejected, failed = caplog.records
    assert rejected.getMessage() == "statefun request rejected (400): not a ToFunction"
    assert failed.getMessage() == "statefun request failed: a bug"
    assert {rejected.__dict__["trace_id"], failed.__dict__["trace_id"]} == {factory_trace_id}
    assert {rejected.funcName, failed.funcName} == {"error_response"}
