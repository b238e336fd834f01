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
from collections.abc import Iterator, Mapping
from typing import Any

from .errors import MalformedRequestError
from .serving import Answer, Served

__all__ = ["LambdaHandler"]


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
    short line of text. Functions run with ``handle_sync``; ``async`` functions too.

    Given :class:`~statefun_core.StatefulFunctions`, it builds a
    :class:`~statefun_core.RequestReplyHandler` with ``executor`` and ``plugins``; the one it
    serves with is :attr:`handler`. An event of no HTTP gateway raises ``ValueError``.
    """

    routes_paths = False

    def __call__(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        answer = self._answer(event)
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

    def _answer(self, event: Mapping[str, Any]) -> Answer:
        endpoint = self.endpoint
        method = _method(event)
        if _multi_valued(event):
            multi = event["multiValueHeaders"] or {}
            headers = EventHeaders({name: ", ".join(values) for name, values in multi.items()})
        else:
            headers = EventHeaders(event.get("headers") or {})
        early = endpoint.before_body(method, "", headers, None)
        if early is not None:
            return early
        text = event.get("body") or ""
        if not event.get("isBase64Encoded"):
            # A ToFunction is never text (its first byte is not UTF-8), and a gateway that
            # passed it as text would not decode the base64 reply either.
            if text:
                return endpoint.rejected(MalformedRequestError(_AS_TEXT), headers)
            return endpoint.handle_sync(b"", headers)
        try:
            body = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            malformed = MalformedRequestError("the request body is not valid base64")
            return endpoint.rejected(malformed, headers)
        return endpoint.handle_sync(body, headers)


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
