"""The endpoint: a blueprint whose one view hands the request body to a RequestReplyHandler."""

from __future__ import annotations

from typing import Callable, Iterator, Mapping, Optional

from flask import Blueprint, Response, request
from werkzeug.datastructures import Headers
from werkzeug.exceptions import RequestEntityTooLarge

from statefun_core import RequestReplyHandler
from statefun_core.errors import MethodNotAllowedError, RequestTooLargeError, StatefunError
from statefun_core.http import CONTENT_TYPE, FunctionsOrHandler, as_handler, error_response
from statefun_core.plugins import Endpoint

__all__ = ["endpoint_view", "make_blueprint"]

# Every method but POST reaches the view, so that it too is answered through error_response.
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def make_blueprint(
    functions_or_handler: FunctionsOrHandler,
    url_prefix: str = "/statefun",
    name: str = "statefun",
) -> Blueprint:
    """A blueprint that serves ``POST <url_prefix>`` (endpoint ``<name>.endpoint``).

    Requests are handled with ``handle_sync`` on the worker's thread: no event loop is made
    per request, and ``async`` functions still work (the handler steps them itself). The
    request body is limited by Flask's ``MAX_CONTENT_LENGTH``. A body over it (413) and a wrong
    method (405) reach the ``statefun_request_failed`` hook, as the handler's own rejections do.
    """
    handler = as_handler(functions_or_handler)
    blueprint = Blueprint(name, __name__, url_prefix=url_prefix or "/")

    def endpoint() -> Response:
        if request.method != "POST":
            return rejected(handler, MethodNotAllowedError(f"{request.method} is not allowed"))
        try:
            body = read_body(handler.limits.request_bytes)
        except RequestEntityTooLarge:
            limit = request.max_content_length or 0
            return rejected(handler, RequestTooLargeError(request.content_length or 0, limit))
        except RequestTooLargeError as error:
            return rejected(handler, error)
        reply_headers: dict[str, str] = {}  # what the plugins answer with (a traceresponse)
        try:
            reply = handler.handle_sync(
                body, headers=RequestHeaders(request.headers), reply_headers=reply_headers
            )
        except Exception as error:
            return statefun_error(error)
        return Response(reply, content_type=CONTENT_TYPE, headers=reply_headers)

    blueprint.add_url_rule(
        "", "endpoint", endpoint, methods=_METHODS, provide_automatic_options=False
    )
    return blueprint


def read_body(limit: Optional[int]) -> bytes:
    """The request body. Without ``MAX_CONTENT_LENGTH`` Flask would read a body of any size
    into memory, so the handler's ``Limits.request_bytes`` bounds what is read: a larger
    declared length is refused unread (a declared length bounds the input stream), and a
    chunked body is read to one byte over the limit (which the handler refuses)."""
    if request.max_content_length is not None or limit is None:
        return request.get_data(cache=False)
    declared = request.content_length
    if declared is not None:
        if declared > limit:
            raise RequestTooLargeError(declared, limit)
        return request.get_data(cache=False)
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = request.stream.read(min(1 << 16, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


class RequestHeaders(Mapping[str, str]):
    """The request's headers for the core's hooks: a case-insensitive mapping, read on demand
    (most requests have no plugin that reads them, so nothing is copied)."""

    __slots__ = ("_headers",)

    def __init__(self, headers: Headers) -> None:
        self._headers = headers

    def __getitem__(self, key: str) -> str:
        return self._headers[key]

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self._headers.items())

    def __len__(self) -> int:
        return len(self._headers)

    def __bool__(self) -> bool:
        return True  # a request has headers; spares counting them (``headers or {}``)


def rejected(handler: RequestReplyHandler, error: StatefunError) -> Response:
    """The answer to a request refused before the handler saw its body (a wrong method, a body
    over the limit): the plugins hear of it like of any rejected request."""
    handler.reject(error, RequestHeaders(request.headers))
    return statefun_error(error)


def statefun_error(error: BaseException) -> Response:
    """The response for a failed request: the core's status and short text, no traceback."""
    status, text = error_response(error)
    response = Response(text, status=status, content_type="text/plain; charset=utf-8")
    if status == 405:
        response.headers["Allow"] = "POST"
    return response


def endpoint_view(endpoint: Endpoint) -> Callable[[], Response]:
    """The view of one endpoint a plugin contributes (``/metrics``, health)."""

    def view() -> Response:
        status, headers, body = endpoint.respond(RequestHeaders(request.headers))
        return Response(body, status=status, headers=dict(headers))

    return view
