"""The AWS Lambda handler against the events of each gateway, in the documented shapes
(statefun_core.testing.aws_lambda): as written, and carrying real ``ToFunction`` bytes."""

from __future__ import annotations

import base64
import json
from typing import Any, Optional

import pytest

from statefun_core import (
    Context,
    Limits,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    make_plugin_manager,
    message_builder,
)
from statefun_core.aws_lambda import LambdaHandler, ReplyTooLargeError
from statefun_core.errors import (
    FunctionFailedError,
    MalformedRequestError,
    MethodNotAllowedError,
    RequestTooLargeError,
)
from statefun_core.plugins import hookimpl
from statefun_core.testing import wire
from statefun_core.testing.aws_lambda import (
    GATEWAYS,
    LambdaResponse,
    documented_event,
    gateway_event,
    invoke,
)
from statefun_core.testing.endpoint import (
    FAILING,
    GREETER,
    INBOX,
    NEW,
    FailureRecorder,
    greetings,
    make_functions,
)

from .served import load

LIMIT = 4096


def event(name: str, body: Optional[bytes], method: str = "POST", **headers: str) -> dict[str, Any]:
    return gateway_event(body, gateway=name, method=method, headers=headers)


@pytest.fixture
def recorder() -> FailureRecorder:
    return FailureRecorder()


@pytest.fixture
def statefun(recorder: FailureRecorder) -> LambdaHandler:
    plugins = make_plugin_manager(load_entrypoints=False)
    plugins.register(recorder)
    handler = RequestReplyHandler(make_functions(), plugins=plugins, limits=Limits(LIMIT))
    return LambdaHandler(handler)


def call(statefun: LambdaHandler, event: dict[str, Any]) -> dict[str, Any]:
    """The handler's answer, as Lambda sends it on: through JSON."""
    response: dict[str, Any] = json.loads(json.dumps(statefun(event, None)))
    return response


def headers_of(response: dict[str, Any]) -> dict[str, str]:
    """The response's headers, from ``multiValueHeaders`` (one value each) where it has them."""
    if "multiValueHeaders" in response:
        assert "headers" not in response
        multi = response["multiValueHeaders"]
        assert all(len(values) == 1 for values in multi.values()), multi
        return {name: values[0] for name, values in multi.items()}
    headers: dict[str, str] = response["headers"]
    return headers


def reply_of(response: dict[str, Any]) -> bytes:
    assert response["statusCode"] == 200, response
    assert headers_of(response)["Content-Type"] == "application/octet-stream"
    assert response["isBase64Encoded"] is True
    return base64.b64decode(response["body"])


def assert_error(response: dict[str, Any], status: int) -> str:
    assert response["statusCode"] == status, response
    assert headers_of(response)["Content-Type"] == "text/plain; charset=utf-8"
    assert response["isBase64Encoded"] is False
    text: str = response["body"]
    assert 0 < len(text) < 200 and "\n" not in text and "Traceback" not in text, text
    return text


@pytest.mark.parametrize("name", GATEWAYS)
def test_the_greeter_state_discovery_and_a_batch(statefun: LambdaHandler, name: str) -> None:
    greet = wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 4})
    reply = reply_of(call(statefun, event(name, greet)))
    assert greetings(reply) == (5, [(INBOX, "Ann", "Hello Ann for the 5th time!")])

    discover = wire.to_function(GREETER, "Ann", ["Ann"])
    reply = reply_of(call(statefun, event(name, discover)))
    assert [spec.name for spec in wire.missing_states(reply)] == ["seen_count"]

    batch = wire.to_function(GREETER, "Bo", ["Bo", "Bo"], {"seen_count": 1})
    seen, sent = greetings(reply_of(call(statefun, event(name, batch))))
    assert seen == 3
    assert [text for _, _, text in sent] == [
        "Hello Bo for the 2th time!",
        "Hello Bo for the 3th time!",
    ]


@pytest.mark.parametrize("name", GATEWAYS)
def test_every_error_status(statefun: LambdaHandler, name: str) -> None:
    unknown = wire.to_function("com.example.fns/nobody", "x", ["x"], NEW)
    assert_error(call(statefun, event(name, b"\xff\xff\xff")), 400)
    assert_error(call(statefun, event(name, unknown)), 404)
    assert_error(call(statefun, event(name, wire.to_function(FAILING, "x", ["x"]))), 500)
    too_large = wire.to_function(GREETER, "Ann", ["x" * LIMIT], NEW)
    assert "Limits.request_bytes" in assert_error(call(statefun, event(name, too_large)), 413)
    not_base64 = {**event(name, b""), "body": "not base64!", "isBase64Encoded": True}
    assert_error(call(statefun, not_base64), 400)


@pytest.mark.parametrize("name", GATEWAYS)
def test_a_wrong_method_is_405_and_reaches_the_hooks(
    statefun: LambdaHandler, recorder: FailureRecorder, name: str
) -> None:
    response = call(statefun, event(name, None, "GET", **{"x-request-id": "r-1"}))
    assert_error(response, 405)
    assert headers_of(response)["Allow"] == "POST"
    assert recorder.failures == [(MethodNotAllowedError, 405, "r-1")]


def test_the_hooks_see_refused_requests_with_their_headers(
    statefun: LambdaHandler, recorder: FailureRecorder
) -> None:
    too_large = wire.to_function(GREETER, "Ann", ["x" * LIMIT], NEW)
    call(statefun, event("rest_api", too_large, **{"X-Request-Id": "r-2"}))
    assert recorder.failures == [(RequestTooLargeError, 413, "r-2")]


@pytest.mark.parametrize("name", GATEWAYS)
def test_each_documented_event_as_written(statefun: LambdaHandler, name: str) -> None:
    """The examples carry a text body (not a ToFunction: 400) or are a GET (405)."""
    shaped = documented_event(name)
    expected = 405 if shaped.get("httpMethod") == "GET" else 400
    assert_error(call(statefun, shaped), expected)


def test_the_documented_example_serves_the_greeter() -> None:
    statefun = load("lambda", make_functions()).statefun
    assert isinstance(statefun, LambdaHandler)
    greet = wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 1})
    reply = reply_of(call(statefun, event("function_url", greet)))
    assert greetings(reply) == (2, [(INBOX, "Ann", "Hello Ann for the 2th time!")])


class ServerTiming:
    """A plugin that answers each batch with a header, as the tracing plugin's traceresponse."""

    @hookimpl
    def statefun_batch_started(self, batch: Any) -> None:
        batch.reply_headers["Server-Timing"] = "statefun"


@pytest.mark.parametrize("name", GATEWAYS)
def test_the_reply_carries_the_headers_plugins_add(name: str) -> None:
    plugins = make_plugin_manager([ServerTiming()], load_entrypoints=False)
    statefun = LambdaHandler(RequestReplyHandler(make_functions(), plugins=plugins))
    response = call(statefun, event(name, wire.to_function(GREETER, "Ann", ["Ann"], NEW)))
    assert greetings(reply_of(response))[0] == 1
    assert headers_of(response)["Server-Timing"] == "statefun"


def test_a_body_as_text_is_400_naming_binary_media_types(
    statefun: LambdaHandler, recorder: FailureRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    """A REST API without application/octet-stream among its binary media types passes the
    body as UTF-8 text (its bytes that are not UTF-8 replaced), and would not decode the reply."""
    greet = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
    as_text = {**event("rest_api", greet), "isBase64Encoded": False}
    as_text["body"] = greet.decode("utf-8", errors="replace")
    assert_error(call(statefun, as_text), 400)
    assert "binary media types" in caplog.text
    assert recorder.failures == [(MalformedRequestError, 400, None)]


@pytest.mark.parametrize("name", GATEWAYS)
def test_a_post_without_a_body_is_an_empty_request_not_one_passed_as_text(
    statefun: LambdaHandler, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert_error(call(statefun, event(name, None)), 400)
    assert "no invocation batch" in caplog.text
    assert "binary media types" not in caplog.text


def test_a_body_not_marked_base64_is_refused_not_taken_as_text(statefun: LambdaHandler) -> None:
    greet = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
    as_text = {**event("rest_api", greet), "isBase64Encoded": False}  # its base64, as text
    assert_error(call(statefun, as_text), 400)


def test_a_base64_body_with_a_character_outside_the_alphabet_is_400_and_never_run(
    statefun: LambdaHandler, recorder: FailureRecorder
) -> None:
    shaped = event("function_url", wire.to_function(GREETER, "Ann", ["Ann"], NEW))
    shaped["body"] = shaped["body"][:8] + "*" + shaped["body"][8:]
    assert_error(call(statefun, shaped), 400)
    assert recorder.failures == [(MalformedRequestError, 400, None)]
    assert recorder.batches == [None]


class HeadersSeen:
    """A plugin that keeps how many headers each batch had, and the headers."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, dict[str, str]]] = []

    @hookimpl
    def statefun_batch_started(self, batch: Any) -> None:
        self.seen.append((len(batch.headers), dict(batch.headers)))


def test_the_hooks_get_the_event_headers_as_a_mapping_named_in_lower_case() -> None:
    seen = HeadersSeen()
    plugins = make_plugin_manager([seen], load_entrypoints=False)
    statefun = LambdaHandler(RequestReplyHandler(make_functions(), plugins=plugins))
    greet = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
    reply_of(call(statefun, event("rest_api", greet, **{"X-Request-Id": "r-3"})))
    ((count, headers),) = seen.seen
    assert count == len(headers) == len(documented_event("rest_api")["headers"]) + 1
    assert headers["x-request-id"] == "r-3"
    assert headers["user-agent"].startswith("Mozilla/5.0")  # "User-Agent" in the event


def test_a_load_balancer_with_multi_value_headers_gets_its_reply_headers_so() -> None:
    """With multi-value headers on, a load balancer reads only ``multiValueHeaders`` of the
    reply (the runtime refuses a reply without its Content-Type); without, only ``headers``."""
    seen = HeadersSeen()
    plugins = make_plugin_manager([seen], load_entrypoints=False)
    statefun = LambdaHandler(RequestReplyHandler(make_functions(), plugins=plugins))
    greet = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
    multi = event("alb_multi_value", greet, **{"X-Request-Id": "r-4"})
    response = call(statefun, multi)
    assert "headers" not in response
    assert response["multiValueHeaders"] == {"Content-Type": ["application/octet-stream"]}
    assert greetings(reply_of(response))[1] == [(INBOX, "Ann", "Hello Ann for the 1th time!")]
    refused = call(statefun, event("alb_multi_value", greet, "PUT"))
    assert refused["multiValueHeaders"]["Allow"] == ["POST"]
    single = call(statefun, event("alb", greet))
    assert "multiValueHeaders" not in single
    assert single["headers"] == {"Content-Type": "application/octet-stream"}
    ((_, headers),) = seen.seen[:1]
    assert headers["x-request-id"] == "r-4"
    assert headers["cookie"] == "name1=value1, name2=value2"  # joined as HTTP joins them


def test_an_event_with_headers_is_answered_in_headers_whatever_else_it_has(
    statefun: LambdaHandler,
) -> None:
    """Only a load balancer's event with multi-value headers on lacks ``headers``: payload 1.0
    has ``multiValueHeaders`` beside it, and an event may carry no header map at all."""
    greet = wire.to_function(GREETER, "Ann", ["Ann"], NEW)
    both = event("rest_api", greet)
    assert "headers" in both and "multiValueHeaders" in both
    no_map = {name: value for name, value in both.items() if not name.endswith("eaders")}
    for shaped in (both, no_map):
        response = call(statefun, shaped)
        assert "multiValueHeaders" not in response
        assert response["headers"] == {"Content-Type": "application/octet-stream"}
        assert greetings(reply_of(response))[0] == 1


@pytest.mark.parametrize(
    "shaped",
    [
        {"key1": "value1", "key2": "value2", "key3": "value3"},  # the Lambda console's test event
        {"Records": [{"eventSource": "aws:sqs", "body": "Ann"}]},
        {"version": "2.0", "rawPath": "/"},
        {"version": "2.0", "requestContext": {"http": None}},
    ],
    ids=["console-test", "sqs", "no-request-context", "null-http"],
)
def test_an_event_of_no_http_gateway_is_an_error_that_says_so(
    statefun: LambdaHandler, shaped: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match=r"API Gateway.*function URLs.*httpMethod.*its keys: "):
        statefun(shaped, None)


@pytest.mark.parametrize("shaped", [[], "Ann", None], ids=["list", "string", "null"])
def test_an_event_that_is_no_json_object_is_an_error_that_says_so(
    statefun: LambdaHandler, shaped: Any
) -> None:
    """A direct invocation passes any JSON value (``aws lambda invoke --payload '[]'``)."""
    with pytest.raises(ValueError, match=r"API Gateway.*httpMethod.*it is a \w+, not an object"):
        statefun(shaped, None)


@pytest.mark.parametrize("name", GATEWAYS)
def test_the_plugins_endpoints_are_not_served(name: str) -> None:
    """docs/servers.md: every path is the function endpoint, ``/metrics`` too."""
    pytest.importorskip("statefun_prometheus")
    statefun = LambdaHandler(make_functions())  # the installed plugins
    assert statefun.handler.endpoint_for("GET", "/metrics") is not None
    shaped = event(name, None, "GET")
    if shaped.get("version") == "2.0":
        shaped["rawPath"] = shaped["requestContext"]["http"]["path"] = "/metrics"
    else:
        shaped["path"] = shaped["requestContext"]["path"] = "/metrics"
    response = call(statefun, shaped)
    assert_error(response, 405)
    assert headers_of(response)["Allow"] == "POST"


@pytest.mark.parametrize("name", GATEWAYS)
def test_invoke_reads_the_response_as_the_gateway_does(statefun: LambdaHandler, name: str) -> None:
    greet = wire.to_function(GREETER, "Ann", ["Ann"], {"seen_count": 2})
    response = invoke(statefun, event(name, greet))
    assert isinstance(response, LambdaResponse)
    assert response.status == 200
    assert response.headers == {"Content-Type": "application/octet-stream"}
    assert greetings(response.body) == (3, [(INBOX, "Ann", "Hello Ann for the 3th time!")])

    refused = invoke(statefun, event(name, b"", "PUT"))
    assert (refused.status, refused.headers["Allow"]) == (405, "POST")
    assert refused.body.startswith(b"Method Not Allowed")


def test_a_gateway_event_carries_the_headers_where_its_gateway_puts_them() -> None:
    """Payload 1.0 has each header in ``headers`` and ``multiValueHeaders``; 2.0 only the
    first; a load balancer one or the other."""
    for name in GATEWAYS:
        shaped = gateway_event(b"\x01", gateway=name, headers={"X-Request-Id": "r-5"})
        assert base64.b64decode(shaped["body"]) == b"\x01" and shaped["isBase64Encoded"]
        if "headers" in shaped:
            assert shaped["headers"]["X-Request-Id"] == "r-5"
        if "multiValueHeaders" in shaped:
            assert shaped["multiValueHeaders"]["X-Request-Id"] == ["r-5"]
        assert "headers" in shaped or "multiValueHeaders" in shaped
    assert "multiValueHeaders" in gateway_event(None, gateway="rest_api")
    with pytest.raises(ValueError, match=r"'http_api'; there are: function_url, http_api_v2"):
        gateway_event(None, gateway="http_api")


SIZED = "example/sized"


def sized_functions() -> StatefulFunctions:
    """``SIZED`` sends one message of as many bytes as its argument says."""
    functions = StatefulFunctions()

    @functions.bind(SIZED)
    def sized(context: Context, message: Message) -> None:
        size = int(message.as_string() or "0")
        context.send(message_builder(INBOX, "out", str_value="x" * size))

    return functions


@pytest.mark.parametrize(
    ("name", "fits", "too_large", "limit"),
    [
        ("function_url", 4_600_000, 4_800_000, 6 * 1024 * 1024),
        ("rest_api", 4_600_000, 4_800_000, 6 * 1024 * 1024),
        ("alb", 750_000, 800_000, 1024 * 1024),
        ("alb_multi_value", 750_000, 800_000, 1024 * 1024),
    ],
)
def test_a_reply_over_what_the_gateway_takes_back_is_a_logged_500(
    name: str, fits: int, too_large: int, limit: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Lambda takes a response of 6 MB back from a function (1 MB behind a load balancer),
    its body base64 encoded: a larger one would fail the invocation, a 502 logged nowhere."""
    recorder = FailureRecorder()
    plugins = make_plugin_manager([recorder], load_entrypoints=False)
    statefun = LambdaHandler(RequestReplyHandler(sized_functions(), plugins=plugins))
    response = invoke(statefun, event(name, wire.to_function(SIZED, "x", [str(fits)])))
    assert response.status == 200
    (sent,) = wire.invocation_result(response.body).outgoing_messages
    assert len(sent.argument.value) > fits
    assert not caplog.records

    request = wire.to_function(SIZED, "x", [str(too_large)])
    response = invoke(statefun, event(name, request, **{"X-Request-Id": "r-6"}))
    assert response.status == 500
    assert response.body.startswith(b"Internal Server Error: the function failed: the reply of")
    (record,) = caplog.records
    assert record.levelname == "ERROR" and record.name == "statefun_core"
    message = record.getMessage()
    assert f"over the {limit} bytes" in message and "maxNumBatchRequests" in message, message
    failure = record.exc_info and record.exc_info[1]
    assert isinstance(failure, FunctionFailedError)
    assert isinstance(failure.__cause__, ReplyTooLargeError)
    assert recorder.failures == [(FunctionFailedError, 500, "r-6")]


class BatchOutcomes:
    """A plugin: the outcome of each batch, as the hooks that end a batch report it."""

    def __init__(self) -> None:
        self.outcomes: list[str] = []

    @hookimpl
    def statefun_batch_finished(self, batch: Any) -> None:
        self.outcomes.append(f"finished {batch.outcome}")

    @hookimpl
    def statefun_batch_failed(self, batch: Any, error: BaseException) -> None:
        self.outcomes.append(f"failed {type(error).__name__}")

    @hookimpl
    def statefun_request_failed(self, error: BaseException, batch: Any, headers: Any) -> None:
        self.outcomes.append(f"request failed {type(error).__name__} with batch {batch.outcome}")


@pytest.mark.parametrize("name", ["function_url", "alb"])
def test_a_reply_over_what_the_gateway_takes_back_is_one_failed_batch_for_the_plugins(
    name: str,
) -> None:
    """Not a batch that succeeded and then a request refused besides (two requests on a
    dashboard for one, one of them ok): its batch failed, as over Limits.reply_bytes."""
    outcomes = BatchOutcomes()
    plugins = make_plugin_manager([outcomes], load_entrypoints=False)
    statefun = LambdaHandler(RequestReplyHandler(sized_functions(), plugins=plugins))
    response = invoke(statefun, event(name, wire.to_function(SIZED, "x", [str(7_000_000)])))
    assert response.status == 500
    assert outcomes.outcomes == [
        "failed ReplyTooLargeError",
        "request failed FunctionFailedError with batch error",
    ]


class LateHeader:
    """A plugin that adds a 30 kB header to the reply as its batch finishes."""

    @hookimpl
    def statefun_batch_finished(self, batch: Any) -> None:
        batch.reply_headers["X-Late"] = "x" * 30_000


def test_a_reply_made_too_large_by_a_header_added_as_its_batch_finished_is_a_500() -> None:
    """The handler checks the reply before its batch finishes; a plugin may still add a
    header then: the reply that fitted no longer does, and is refused after all."""
    recorder = FailureRecorder()
    plugins = make_plugin_manager([LateHeader(), recorder], load_entrypoints=False)
    statefun = LambdaHandler(RequestReplyHandler(sized_functions(), plugins=plugins))
    response = invoke(statefun, event("function_url", wire.to_function(SIZED, "x", ["4700000"])))
    assert response.status == 500
    assert recorder.failures == [(ReplyTooLargeError, 500, None)]
