"""An AWS Lambda handler serving StateFun functions behind an HTTP gateway: API Gateway HTTP APIs
(payload format 2.0 or 1.0), REST APIs (1.0), Lambda function URLs (2.0) and Application Load
Balancers (with or without multi-value headers). No AWS library is imported.

In the function's module, made once per execution environment::

    statefun = LambdaHandler(functions)    # the Lambda handler setting: module.statefun

Every path of the function is the endpoint. A REST API passes a binary body through only
when ``application/octet-stream`` is one of its binary media types (see docs/deployment.md).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Mapping
from typing import Any, Optional

from .errors import LimitExceededError, MalformedRequestError
from .limits import MiB
from .serving import REPLY_HEADERS as _REPLY_HEADERS
from .serving import Answer, Served

__all__ = ["LambdaHandler", "ReplyTooLargeError"]

# The largest response (as JSON) the gateway takes from the function. Lambda's, for a
# synchronous invocation: "Invocation payload (request and response): 6 MB each" (Lambda
# quotas, https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html; "For
# synchronous invocations, the maximum payload size is 6 MB", API_Invoke.html). An Application
# Load Balancer's: "The maximum size of the response JSON that the Lambda function can send is
# 1 MB" (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/lambda-functions.html).
# Read as MiB, the larger (Lambda's error for a request over it names 6,291,456 bytes): a reply
# the gateway would carry must not be refused here.
_LAMBDA_RESPONSE_BYTES = 6 * MiB
_ALB_RESPONSE_BYTES = 1 * MiB
# Room for the rest of the response (status, headers) beside the body: a body shorter than the
# limit by more is not measured.
_HEADROOM = 64 * 1024


class ReplyTooLargeError(LimitExceededError):
    """The reply is larger than the gateway takes back from the function: it fails its batch
    (HTTP 500, logged), as a reply over ``Limits.reply_bytes`` does.

    Returned, it would fail the invocation: the gateway answers 502 and the function logs
    nothing. The runtime retries a 500 as it would the 502, and each retry fails alike until
    the batch is smaller (``maxNumBatchRequests``) or the state it writes is.
    """

    args: tuple[Any, ...]

    status = 500

    def __init__(self, reply_bytes: int, size: int, limit: int, gateway: str) -> None:
        super().__init__("reply_bytes", size, limit, setting=f"what {gateway} takes back")
        self.args = (
            f"the reply of {reply_bytes} bytes is {size} bytes as the Lambda response (its "
            f"body base64 encoded), over the {limit} bytes {gateway} takes back from a "
            "function: it would fail the invocation (a 502, logged nowhere); send smaller "
            "batches (maxNumBatchRequests in module.yaml) or write smaller state",
        )


_AS_TEXT = (
    "the gateway passed the request body as text, not base64 (isBase64Encoded is false), so "
    "its bytes are lost: a REST API needs application/octet-stream among its binary media types"
)


class LambdaHandler(Served):
    """A Lambda handler, ``(event, context) -> response``: ``POST`` with a ``ToFunction``
    body (base64, ``isBase64Encoded``, as the gateways pass a binary body; passed as text, it
    is a 400 that names the REST API's binary media types) is answered with the reply,
    base64 encoded; everything else with the statuses of every integration (405 with
    ``Allow: POST`` for another method, 400, 404, 413 over ``Limits.request_bytes``, 500), a
    short line of text. A reply larger than the gateway takes back (6 MB as JSON, 1 MB behind a
    load balancer) fails its batch with :class:`ReplyTooLargeError`: a 500, logged, and a
    failed batch for the plugins. Functions run with ``handle_sync``; ``async`` functions too.

    Given :class:`~statefun_core.StatefulFunctions`, it builds a
    :class:`~statefun_core.RequestReplyHandler` with ``executor`` and ``plugins``; the one it
    serves with is :attr:`handler`. An event of no HTTP gateway raises ``ValueError``.
    """

    routes_paths = False

    def __call__(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        method = _method(event)
        headers = _headers(event)
        answer = self._answer(event, method, headers)
        if answer.status == 200:
            # the handler checked the reply (check_reply) before the batch finished: only a
            # header a plugin added as it finished can have made it too large since
            too_large = _too_large(event, len(answer.body), answer.headers)
            if too_large is not None:
                return _response(event, self.endpoint.rejected(too_large, headers))
        return _response(event, answer)

    def _answer(self, event: Mapping[str, Any], method: str, headers: EventHeaders) -> Answer:
        endpoint = self.endpoint
        early = endpoint.before_body(method, "", headers, None)
        if early is not None:
            return early
        text = event.get("body") or ""
        if not event.get("isBase64Encoded"):
            # A ToFunction is never text (its first byte is not UTF-8), and a gateway that
            # passed it as text would not decode the base64 reply either.
            if text:
                return endpoint.rejected(MalformedRequestError(_AS_TEXT), headers)
            body = b""
        else:
            try:
                body = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                malformed = MalformedRequestError("the request body is not valid base64")
                return endpoint.rejected(malformed, headers)

        def check_reply(reply_bytes: int, reply_headers: Mapping[str, str]) -> None:
            headers = (*_REPLY_HEADERS, *reply_headers.items())
            too_large = _too_large(event, reply_bytes, headers)
            if too_large is not None:
                raise too_large

        return endpoint.handle_sync(body, headers, check_reply)


def _headers(event: Mapping[str, Any]) -> EventHeaders:
    if _multi_valued(event):
        multi = event["multiValueHeaders"] or {}
        return EventHeaders({name: ", ".join(values) for name, values in multi.items()})
    return EventHeaders(event.get("headers") or {})


def _response(event: Mapping[str, Any], answer: Answer) -> dict[str, Any]:
    """The answer as the gateway of ``event`` reads it: a reply base64 encoded, an error's
    text as it is."""
    response: dict[str, Any] = {"statusCode": answer.status}
    if _multi_valued(event):  # a load balancer reads only these when the event has them
        response["multiValueHeaders"] = {name: [value] for name, value in answer.headers}
    else:
        response["headers"] = dict(answer.headers)
    if answer.status == 200:
        response["body"] = base64.b64encode(answer.body).decode("ascii")
        response["isBase64Encoded"] = True
    else:
        response["body"] = answer.body.decode("utf-8")
        response["isBase64Encoded"] = False
    return response


def _too_large(
    event: Mapping[str, Any], reply_bytes: int, headers: tuple[tuple[str, str], ...]
) -> Optional[ReplyTooLargeError]:
    """Why the gateway would not take back a reply of ``reply_bytes`` sent with ``headers``,
    if it would not."""
    if "elb" in (event.get("requestContext") or {}):
        limit, gateway = _ALB_RESPONSE_BYTES, "an Application Load Balancer"
    else:
        limit, gateway = _LAMBDA_RESPONSE_BYTES, "Lambda"
    body_size = 4 * ((reply_bytes + 2) // 3)  # base64
    if body_size + _HEADROOM <= limit:
        return None
    # as the runtime sends it: JSON, ASCII (a character a byte); the body adds its own size
    size = len(json.dumps(_response(event, Answer(200, headers, b"")))) + body_size
    if size <= limit:
        return None
    return ReplyTooLargeError(reply_bytes, size, limit, gateway)


def _multi_valued(event: Mapping[str, Any]) -> bool:
    """Whether the event is a load balancer's with multi-value headers on: it has no
    ``headers`` then, only ``multiValueHeaders`` (a REST API's event has both)."""
    return "headers" not in event and "multiValueHeaders" in event


def _method(event: Any) -> str:
    """The request's method; a ``ValueError`` saying so for an event of no HTTP gateway (the
    Lambda console's test event, a queue's records, any JSON value invoked directly)."""
    if not isinstance(event, Mapping):
        method = None
    elif event.get("version") == "2.0":  # HTTP API 2.0 and function URLs
        method = ((event.get("requestContext") or {}).get("http") or {}).get("method")
    else:  # REST API, HTTP API 1.0
        method = event.get("httpMethod")
    if not isinstance(method, str):
        if isinstance(event, Mapping):
            what = f"its keys: {', '.join(sorted(map(str, event))) or 'none'}"
        else:
            what = f"it is a {type(event).__name__}, not an object"
        raise ValueError(
            "LambdaHandler serves the events of API Gateway HTTP and REST APIs, function URLs "
            "and Application Load Balancers, with requestContext.http.method (payload 2.0) or "
            "httpMethod (1.0); this event has "
            f"neither ({what})"
        )
    return method


class EventHeaders(Mapping[str, str]):
    """An event's ``headers`` for the core's hooks, matched in any case (payload 1.0 keeps the
    client's case, 2.0 lowers it)."""

    __slots__ = ("_headers",)

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = {name.lower(): value for name, value in headers.items()}

    def __getitem__(self, key: str) -> str:
        return self._headers[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers)

    def __len__(self) -> int:
        return len(self._headers)
