"""Test a Lambda function that serves StateFun functions, without AWS: the event each HTTP
gateway sends it, carrying the request bytes you give, and its response read as the gateway
reads it. ::

    from statefun_core.testing import wire
    from statefun_core.testing.aws_lambda import gateway_event, invoke

    request = wire.to_function("com.example.fns/greeter", "ann", ["ann"], {"seen_count": 1})
    response = invoke(statefun, gateway_event(request, gateway="rest_api"))
    assert response.status == 200
    assert wire.mutations(response.body) == {...}

The events are those of the AWS documentation's examples (its account, ids and addresses), one
per gateway in :data:`GATEWAYS`: a Lambda function URL and an API Gateway HTTP API with payload
format 2.0; an HTTP API with 1.0; a REST API (Lambda proxy integration); an Application Load
Balancer's target group, without and with multi-value headers.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any, Callable, NamedTuple, Optional

__all__ = ["GATEWAYS", "LambdaResponse", "documented_event", "gateway_event", "invoke"]

GATEWAYS = ("function_url", "http_api_v2", "http_api_v1", "rest_api", "alb", "alb_multi_value")


class LambdaResponse(NamedTuple):
    """A Lambda function's response to an HTTP gateway, as the gateway reads it."""

    status: int
    #: from ``headers``, or from ``multiValueHeaders`` (values joined by ", ") when only those
    headers: dict[str, str]
    #: decoded from base64 when ``isBase64Encoded``, else the text's UTF-8
    body: bytes


def documented_event(gateway: str) -> dict[str, Any]:
    """The gateway's event as the AWS documentation shows it (a ``GET``, or a text body), a
    new copy each call."""
    if gateway not in GATEWAYS:
        raise ValueError(f"no event of a gateway {gateway!r}; there are: {', '.join(GATEWAYS)}")
    text = (resources.files(__package__) / "lambda_events" / f"{gateway}.json").read_text()
    event: dict[str, Any] = json.loads(text)
    return event


def gateway_event(
    body: Optional[bytes],
    *,
    gateway: str = "function_url",
    method: str = "POST",
    headers: Optional[Mapping[str, str]] = None,
) -> dict[str, Any]:
    """The event ``gateway`` sends for a request with ``method``, ``headers`` (besides the
    example's) and ``body``, base64 encoded as the gateways pass a binary body (``None``: no
    body)."""
    event = documented_event(gateway)
    if event.get("version") == "2.0":
        event["requestContext"]["http"]["method"] = method
    else:
        event["httpMethod"] = method
        if "httpMethod" in event["requestContext"]:  # not in a load balancer's
            event["requestContext"]["httpMethod"] = method
    added = dict(headers or {})
    if "headers" in event:
        event["headers"] = {**(event["headers"] or {}), **added}
    if "multiValueHeaders" in event:  # payload 1.0 has both; a load balancer one or the other
        multi = event["multiValueHeaders"] or {}
        event["multiValueHeaders"] = {**multi, **{name: [value] for name, value in added.items()}}
    event["body"] = None if body is None else base64.b64encode(body).decode("ascii")
    event["isBase64Encoded"] = body is not None
    return event


def invoke(
    function: Callable[[Any, Any], Any], event: Mapping[str, Any], context: Any = None
) -> LambdaResponse:
    """Call a Lambda function (a :class:`~statefun_core.aws_lambda.LambdaHandler`) as Lambda
    does, its event and response passed through JSON, and read the response."""
    response = json.loads(json.dumps(function(json.loads(json.dumps(event)), context)))
    if "headers" in response or "multiValueHeaders" not in response:
        headers = dict(response.get("headers") or {})
    else:
        multi = response["multiValueHeaders"] or {}
        headers = {name: ", ".join(values) for name, values in multi.items()}
    text = response.get("body") or ""
    body = base64.b64decode(text) if response.get("isBase64Encoded") else text.encode("utf-8")
    return LambdaResponse(response["statusCode"], headers, body)
