"""The endpoint: a blueprint whose one view hands the request body to a RequestReplyHandler."""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

from flask import Blueprint, Flask, Request, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import (
    ClientDisconnected,
    HTTPException,
    MethodNotAllowed,
    RequestEntityTooLarge,
)
from werkzeug.routing import Rule

from statefun_core import RequestReplyHandler
from statefun_core.errors import (
    MalformedRequestError,
    MethodNotAllowedError,
    RequestTooLargeError,
    StatefunError,
)
from statefun_core.http import CONTENT_TYPE, FunctionsOrHandler, as_handler, error_response
from statefun_core.plugins import Endpoint, allowed_methods
from statefun_core.wsgi import (
    incomplete,
    input_errors,
    read_terminated,
    unreadable,
    unterminated,
)

__all__ = ["endpoint_view", "make_blueprint", "route_endpoints"]


def make_blueprint(
    functions_or_handler: FunctionsOrHandler,
    url_prefix: str = "/statefun",
    name: str = "statefun",
) -> Blueprint:
    """A blueprint that serves ``POST <url_prefix>`` (endpoint ``<name>.endpoint``), with or
    without a trailing slash.

    Requests are handled with ``handle_sync`` on the worker's thread: no event loop is made
    per request, and ``async`` functions still work (see ``handle_sync``). The request body
    is limited by Flask's ``MAX_CONTENT_LENGTH``, or without it by the handler's
    ``Limits.request_bytes``. A body over it (413), one the server cannot hand over whole
    (400: shorter than its ``Content-Length``, a malformed chunk) and a wrong method (405)
    reach the ``statefun_request_failed`` hook, as the handler's own rejections do.

    Any method but POST is answered 405 with ``Allow: POST``, also one Flask does not know
    (``TRACE``, ``PROPFIND``): the blueprint registers an application-wide 405 handler that
    answers so for the statefun endpoints and hands every other URL's 405 to the handler the
    application had (its ``errorhandler(405)``, else one for a base class such as
    ``HTTPException``, else Flask's own). A 405 handler the application registers after the
    blueprint replaces it, for the endpoint too.

    Registered on an application with Flask-WTF's ``CSRFProtect``, the blueprint exempts
    itself: the runtime's POST carries no CSRF token.
    """
    handler = as_handler(functions_or_handler)
    prefix = (url_prefix or "").rstrip("/") or "/"
    blueprint = Blueprint(name, __name__, url_prefix=prefix)

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

    # Served with and without the trailing slash: module.yaml files name the endpoint without
    # it, and the runtime follows no redirect (Werkzeug's 308 for "/statefun/").
    blueprint.add_url_rule(
        "",
        "endpoint",
        endpoint,
        methods=["POST"],
        provide_automatic_options=False,
        strict_slashes=False,
    )

    @blueprint.record
    def register(state: BlueprintSetupState) -> None:
        # An error handler, not a before-request function: it costs the POST path nothing.
        endpoints = state.app.extensions.setdefault(_ENDPOINTS, {})
        if not endpoints:
            own_405 = state.app.error_handler_spec[None][405].get(MethodNotAllowed)
            state.app.extensions[_APPLICATIONS_405] = own_405
            state.app.register_error_handler(MethodNotAllowed, _method_not_allowed)
        endpoints[endpoint] = handler
        csrf_exempt(state.app.extensions, blueprint)

    return blueprint


#: ``app.extensions`` keys: each statefun endpoint view's handler, the 405 handler the
#: application had before the first statefun blueprint, and the plugins' endpoints routed.
_ENDPOINTS = "statefun_endpoints"
_APPLICATIONS_405 = "statefun_applications_405"
_PLUGIN_ENDPOINTS = "statefun_plugin_endpoints"


def route_endpoints(app: Flask, endpoints: Iterable[Endpoint]) -> None:
    """Route the endpoints plugins contribute at their paths, each method to its endpoint
    (``HEAD`` to the ``GET`` one); any other method is a plain 405 with ``Allow``, as at the
    function endpoint (no automatic ``OPTIONS``). Register a statefun blueprint first: its
    405 handler answers them.

    An application serves them once: routing another handler's endpoint at a method and path
    routed already is a ``ValueError`` naming it (routing the same endpoints again does
    nothing), and so is one where the application routes a view of its own, which Werkzeug
    would answer instead. A view the application routes there later is never answered."""
    endpoints = [endpoint for endpoint in endpoints if not already_routed(app, endpoint)]
    for endpoint in endpoints:
        app.add_url_rule(
            endpoint.path,
            f"statefun_endpoint_{endpoint.method}_{endpoint.path}",
            endpoint_view(endpoint),
            methods=[endpoint.method],
            provide_automatic_options=False,
        )
        app.extensions.setdefault(_PLUGIN_ENDPOINTS, []).append(endpoint)


def already_routed(app: Flask, endpoint: Endpoint) -> bool:
    """Whether ``endpoint`` is routed on ``app`` already; ``ValueError`` if another endpoint
    is at its method and path (Flask's own error, an ``AssertionError`` about overwriting a
    view function, says neither what clashes nor what to do)."""
    for known in app.extensions.get(_PLUGIN_ENDPOINTS, ()):
        if known is endpoint:
            return True
        if (known.method, known.path) == (endpoint.method, endpoint.path):
            raise ValueError(
                f"statefun_flask: the plugins' endpoint {endpoint.method} {endpoint.path} is "
                "routed on this app already, for another handler: an app serves them once, so "
                "call route_endpoints for one handler only (an installed plugin, such as "
                "statefun-prometheus, is one instance for every handler: its /metrics counts "
                "them all), and set STATEFUN_ENDPOINTS = False for a Statefun extension set up "
                "after it"
            )
    own = _own_view(app, endpoint)
    if own is not None:
        raise ValueError(
            f"statefun_flask: the app routes {endpoint.method} {endpoint.path} to its own view "
            f"{own!r}, so the plugins' endpoint there would never be answered: keep the app's "
            "with STATEFUN_ENDPOINTS = False (or route_endpoints of the other endpoints), or "
            "route the app's view at another path"
        )
    return False


def _own_view(app: Flask, endpoint: Endpoint) -> Optional[str]:
    """The name of the application's view that answers ``endpoint``'s method and path, which
    Werkzeug would match before the plugin's (a rule without converters, added first), or
    None."""
    try:
        rule, _ = app.url_map.bind("localhost").match(
            endpoint.path, method=endpoint.method, return_rule=True
        )
    except HTTPException:  # none there (404, 405), or a redirect to the path with a slash
        return None
    if not isinstance(rule, Rule) or rule.arguments:
        return None  # a rule with converters: Werkzeug tries the plugin's static one first
    return str(rule.endpoint)


def _method_not_allowed(error: MethodNotAllowed) -> ResponseReturnValue:
    """A statefun endpoint's 405 through its handler's hooks; the application's for the rest."""
    app = current_app
    adapter = app.create_url_adapter(request)
    try:
        matched, _ = adapter.match(method="POST") if adapter is not None else (None, None)
    except HTTPException:
        matched = None  # not POST there either
    handler = app.extensions[_ENDPOINTS].get(app.view_functions.get(str(matched)))
    if handler is not None:
        return rejected(handler, MethodNotAllowedError(method=request.method))
    allow = allowed_methods(app.extensions.get(_PLUGIN_ENDPOINTS, ()), request.path)
    if allow:  # a plugin's endpoint: answered as the function endpoint answers
        text = "Method Not Allowed"
        headers = {"Allow": allow, "Content-Type": "text/plain; charset=utf-8"}
        return Response(text, status=405, headers=headers)
    applications = app.extensions[_APPLICATIONS_405] or _for_base_class(app, error)
    if applications is None:
        return error  # Flask's own answer
    return app.ensure_sync(applications)(error)  # type: ignore[no-any-return]


def _for_base_class(app: Flask, error: MethodNotAllowed) -> Optional[Callable[..., Any]]:
    """The application's handler for a base class of the error (``HTTPException``)."""
    handlers = app.error_handler_spec[None][None]
    return next((handlers[cls] for cls in type(error).__mro__ if cls in handlers), None)


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

    A chunked body the server does not end (the Flask test client, wsgiref) is a
    ``MalformedRequestError`` (400) that says so. So is a body the server cannot hand over
    whole: one shorter than its ``Content-Length`` (gunicorn hands over what came before the
    client stopped), or one whose reading raised (a malformed chunk, a client gone:
    ``input_errors``, and Werkzeug's ``ClientDisconnected``).
    """
    environ = current.environ
    length = environ.get("CONTENT_LENGTH", "")
    if length.isascii() and length.isdigit() and "HTTP_TRANSFER_ENCODING" not in environ:
        declared: Optional[int] = int(length)  # the runtime's requests, read faster than...
    else:
        declared = current.content_length  # ...Werkzeug reads them (and the rest)
    if declared is not None or not environ.get("wsgi.input_terminated"):
        if declared is None and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            raise unterminated()  # Werkzeug would read it as empty
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
    return read_terminated(environ["wsgi.input"], maximum, setting)


def _maximum(current: Request, limit: Optional[int]) -> tuple[Optional[int], str]:
    """The body limit in force and the setting that makes it."""
    if current.max_content_length is None:
        return limit, "Limits.request_bytes"
    return current.max_content_length, "MAX_CONTENT_LENGTH"


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
