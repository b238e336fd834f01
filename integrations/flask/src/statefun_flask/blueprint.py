"""The endpoint: a blueprint whose one view hands the request body to a RequestReplyHandler."""

from __future__ import annotations

import sys
from typing import Callable, Iterator, Mapping, Optional

from flask import Blueprint, Request, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import (
    ClientDisconnected,
    HTTPException,
    MethodNotAllowed,
    RequestEntityTooLarge,
)

from statefun_core import RequestReplyHandler
from statefun_core.errors import (
    MalformedRequestError,
    MethodNotAllowedError,
    RequestTooLargeError,
    StatefunError,
)
from statefun_core.http import CONTENT_TYPE, FunctionsOrHandler, as_handler, error_response
from statefun_core.plugins import Endpoint
from statefun_core.wsgi import incomplete, input_errors, unreadable

__all__ = ["endpoint_view", "make_blueprint"]


def make_blueprint(
    functions_or_handler: FunctionsOrHandler,
    url_prefix: str = "/statefun",
    name: str = "statefun",
) -> Blueprint:
    """A blueprint that serves ``POST <url_prefix>`` (endpoint ``<name>.endpoint``).

    Requests are handled with ``handle_sync`` on the worker's thread: no event loop is made
    per request, and ``async`` functions still work (see ``handle_sync``). The
    request body is limited by Flask's ``MAX_CONTENT_LENGTH``. A body over it (413), one the
    server cannot hand over whole (400: shorter than its ``Content-Length``, a malformed chunk)
    and a wrong method (405) reach the ``statefun_request_failed`` hook, as the handler's own
    rejections do.

    Any method but POST is answered 405 with ``Allow: POST``, also one Flask does not know
    (``TRACE``, ``PROPFIND``), before the application's 405 handlers, which stay in force for
    its other URLs (and routes the application adds at the same path for other methods win).

    Registered on an application with Flask-WTF's ``CSRFProtect``, the blueprint exempts
    itself: the runtime's POST carries no CSRF token.
    """
    handler = as_handler(functions_or_handler)
    blueprint = Blueprint(name, __name__, url_prefix=url_prefix or "/")

    def endpoint() -> Response:
        current: Request = request._get_current_object()  # type: ignore[attr-defined]
        try:
            body = read_body(current, handler.limits.request_bytes)
        except (RequestTooLargeError, MalformedRequestError) as error:
            return rejected(handler, error)
        reply_headers: dict[str, str] = {}  # what the plugins answer with (a traceresponse)
        try:
            reply = handler.handle_sync(
                body, headers=RequestHeaders(current), reply_headers=reply_headers
            )
        except Exception as error:
            return statefun_error(error)
        return Response(reply, content_type=CONTENT_TYPE, headers=reply_headers)

    blueprint.add_url_rule(
        "", "endpoint", endpoint, methods=["POST"], provide_automatic_options=False
    )

    @blueprint.before_app_request
    def method_not_allowed() -> Optional[Response]:
        # Flask raises a wrong method's MethodNotAllowed after the before-request functions,
        # into the application's 405 handlers: this answers it first, for this endpoint only.
        if not isinstance(request.routing_exception, MethodNotAllowed):
            return None
        adapter = current_app.create_url_adapter(request)
        try:
            rule, _ = adapter.match(method="POST", return_rule=True)  # type: ignore[union-attr]
        except HTTPException:
            return None  # not POST there either
        if current_app.view_functions.get(rule.endpoint) is not endpoint:
            return None
        return rejected(handler, MethodNotAllowedError(f"{request.method} is not allowed"))

    @blueprint.record
    def exempt_from_csrf(state: BlueprintSetupState) -> None:
        csrf_exempt(state.app.extensions, blueprint)

    return blueprint


def csrf_exempt(extensions: Mapping[str, object], blueprint: Blueprint) -> None:
    """Exempt the blueprint from Flask-WTF's ``CSRFProtect``, if the application has one."""
    flask_wtf = sys.modules.get("flask_wtf.csrf")  # imported if the application uses it
    csrf = extensions.get("csrf")
    if flask_wtf is not None and isinstance(csrf, flask_wtf.CSRFProtect):
        csrf.exempt(blueprint)


def read_body(current: Request, limit: Optional[int]) -> bytes:
    """The request body, bounded by ``MAX_CONTENT_LENGTH`` or, without it, by the handler's
    ``Limits.request_bytes`` (``limit``): Flask alone would read a body of any size.

    A declared length over the limit is refused unread. A body sent in chunks, which the server
    ends (``wsgi.input_terminated``), is read here, and refused as soon as it is one byte over
    the limit: Werkzeug would cut it at ``MAX_CONTENT_LENGTH`` and pass it on, and joining the
    chunks of a body over the limit would hold it twice.

    A body the server cannot hand over whole is a ``MalformedRequestError`` (400): one shorter
    than its ``Content-Length`` (gunicorn hands over what came before the client stopped), or
    one whose reading raised (a malformed chunk, a client gone: ``input_errors``, and
    Werkzeug's ``ClientDisconnected``).
    """
    environ = current.environ
    length = environ.get("CONTENT_LENGTH", "")
    if length.isascii() and length.isdigit() and "HTTP_TRANSFER_ENCODING" not in environ:
        declared: Optional[int] = int(length)  # the runtime's requests, read faster than...
    else:
        declared = current.content_length  # ...Werkzeug reads them (and the rest)
    if declared is not None or not environ.get("wsgi.input_terminated"):
        if declared is not None and limit is not None and declared > limit:
            maximum, setting = _maximum(current, limit)
            if maximum is not None and declared > maximum:
                raise RequestTooLargeError(declared, maximum, setting)
        try:
            # Werkzeug refuses a declared length over MAX_CONTENT_LENGTH itself, unread.
            body = current.get_data(cache=False)
        except RequestEntityTooLarge:
            maximum, setting = _maximum(current, limit)
            raise RequestTooLargeError(declared, maximum or 0, setting) from None
        except ClientDisconnected as error:  # Werkzeug's: the input ended or failed early
            raise unreadable(error) from None
        except input_errors() as error:
            raise unreadable(error) from None
        if declared is not None and len(body) != declared:
            raise incomplete(len(body), declared)
        return body
    maximum, setting = _maximum(current, limit)
    stream = environ["wsgi.input"]
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := stream.read(_CHUNK if maximum is None else min(_CHUNK, maximum + 1 - size)):
            size += len(chunk)
            if maximum is not None and size > maximum:
                break
            chunks.append(chunk)
    except input_errors() as error:
        raise unreadable(error) from None
    if maximum is not None and size > maximum:
        raise RequestTooLargeError(None, maximum, setting)
    return b"".join(chunks)


def _maximum(current: Request, limit: Optional[int]) -> tuple[Optional[int], str]:
    """The body limit in force and the setting that makes it."""
    if current.max_content_length is None:
        return limit, "Limits.request_bytes"
    return current.max_content_length, "MAX_CONTENT_LENGTH"


_CHUNK = 1 << 16


class RequestHeaders(Mapping[str, str]):
    """The request's headers for the core's hooks: a case-insensitive mapping, read on demand
    (most requests have no plugin that reads them, so nothing is made or copied)."""

    __slots__ = ("_request",)

    def __init__(self, current: Request) -> None:
        self._request = current

    def __getitem__(self, key: str) -> str:
        return self._request.headers[key]

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self._request.headers.items())

    def __len__(self) -> int:
        return len(self._request.headers)

    def __bool__(self) -> bool:
        return True  # a request has headers; spares counting them (``headers or {}``)


def rejected(handler: RequestReplyHandler, error: StatefunError) -> Response:
    """The answer to a request refused before the handler saw its body (a wrong method, a body
    over the limit): the plugins hear of it like of any rejected request."""
    handler.reject(error, RequestHeaders(request._get_current_object()))  # type: ignore[attr-defined]
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
        current: Request = request._get_current_object()  # type: ignore[attr-defined]
        status, headers, body = endpoint.respond(RequestHeaders(current))
        return Response(body, status=status, headers=dict(headers))

    return view
