"""The endpoint view, ``setup`` for an existing application and ``create_app`` for a sub-app."""

from __future__ import annotations

import functools
import logging
from concurrent.futures import Executor
from typing import Awaitable, Callable, Optional

import pluggy
from aiohttp import web
from aiohttp.web_urldispatcher import _default_expect_handler  # 100 Continue, or 417
from multidict import CIMultiDict

from statefun_core import RequestReplyHandler
from statefun_core.errors import (
    MalformedRequestError,
    MethodNotAllowedError,
    RequestTooLargeError,
    StatefunError,
)
from statefun_core.http import (
    CONTENT_TYPE,
    DEFAULT_MAX_REQUEST_BYTES,
    FunctionsOrHandler,
    as_handler,
    error_response,
)
from statefun_core.plugins import Endpoint, allowed_methods

__all__ = [
    "HANDLER_KEY",
    "create_app",
    "endpoint_view",
    "expect_continue",
    "handle_request",
    "setup",
]

#: Where ``setup`` keeps the handler: ``request.config_dict[HANDLER_KEY]`` (sub-apps inherit it).
HANDLER_KEY = web.AppKey("statefun_handler", RequestReplyHandler)

# where the core logs each request it fails
logger: logging.Logger = logging.getLogger("statefun_core")
_AIOHTTP_DEFAULT_MAX_SIZE = 1024**2


async def handle_request(request: web.Request) -> web.Response:
    """POST a ``ToFunction``, get the ``FromFunction`` reply (``application/octet-stream``).

    The handler is ``request.config_dict[HANDLER_KEY]``. The request headers reach the plugin
    hooks through ``handle_async(..., headers=...)``. A body over the application's
    ``client_max_size`` is answered 413, one aiohttp cannot decode (a ``Content-Encoding`` it
    does not hold to) 400; these and a wrong method reach the ``statefun_request_failed``
    hook. A client that goes away before its body is in is no failure: it is logged at debug
    level, as Tornado's endpoint does, and nothing runs.
    Without a handler under ``HANDLER_KEY``, each request is a 500 logged with what to set.
    """
    handler = request.config_dict.get(HANDLER_KEY)
    if not isinstance(handler, RequestReplyHandler):
        return _error_response(_no_handler(handler))
    return await _respond(handler, request)


async def _respond(handler: RequestReplyHandler, request: web.Request) -> web.Response:
    """``handle_request`` with its handler found: what ``setup`` routes, bound to the handler
    it sets, so that no request looks it up."""
    if request.method != "POST":
        not_allowed = MethodNotAllowedError(method=request.method)
        response = _rejected(handler, request, not_allowed)
        response.headers["Allow"] = "POST"
        return response
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _too_large(handler, request)
    except web.RequestPayloadError as error:
        # aiohttp decodes a Content-Encoding itself: bytes that are not what it says are the
        # client's error, as a body that is not a ToFunction is
        unreadable = MalformedRequestError(f"the request body cannot be read: {error.__cause__}")
        return _rejected(handler, request, unreadable)
    except OSError as error:
        # The connection was lost before the body was in (aiohttp's "Connection lost"): no
        # one is left to answer, and neither the server nor a function failed.
        logger.debug("statefun request abandoned: the client disconnected (%r)", error)
        return web.Response(status=400, headers=_SERVER)
    except Exception as error:
        return _error_response(error)
    reply_headers: dict[str, str] = {}  # what the plugins answer with (a traceresponse)
    try:
        reply = await handler.handle_async(
            body, headers=request.headers, reply_headers=reply_headers
        )
    except Exception as error:
        return _error_response(error)
    if reply_headers:
        return web.Response(body=reply, headers={**reply_headers, **_REPLY_HEADERS})
    return web.Response(body=reply, headers=_REPLY_HEADERS)  # copied by the response


async def expect_continue(request: web.Request) -> Optional[web.Response]:
    """The ``expect_handler`` of a route of :func:`handle_request`: a client that asks
    ``Expect: 100-continue`` for a body declared over ``client_max_size`` (or with a wrong
    method) is answered at once, and uploads nothing::

        app.router.add_post("/fn", handle_request, expect_handler=expect_continue)
    """
    handler = request.config_dict.get(HANDLER_KEY)
    if not isinstance(handler, RequestReplyHandler):
        return _before_body(_error_response(_no_handler(handler)))
    return await _expect(handler, request)


def _no_handler(found: object) -> RuntimeError:
    """Why a route of :func:`handle_request` cannot serve: ``HANDLER_KEY`` was never set, or
    set to something else (the ``StatefulFunctions`` that ``setup`` takes, most likely)."""
    what = "no handler" if found is None else f"a {type(found).__name__}, not a RequestReplyHandler"
    return RuntimeError(
        f"statefun_aiohttp: handle_request found {what} under HANDLER_KEY: set "
        "app[statefun_aiohttp.HANDLER_KEY] = RequestReplyHandler(functions), or serve with "
        "statefun_aiohttp.setup(app, functions)"
    )


async def _expect(handler: RequestReplyHandler, request: web.Request) -> Optional[web.Response]:
    """The endpoint's ``Expect: 100-continue``: a body declared over ``client_max_size`` (or a
    wrong method) is refused at once, instead of a ``100 Continue`` that has the client upload
    it first; anything else gets aiohttp's own answer."""
    limit = request.client_max_size
    if request.method != "POST":
        return _before_body(await _respond(handler, request))
    if limit and request.content_length is not None and request.content_length > limit:
        return _before_body(_too_large(handler, request))
    await _default_expect_handler(request)
    return None


def _before_body(response: web.Response) -> web.Response:
    """An answer to ``Expect: 100-continue`` says the connection ends (``Connection: close``;
    aiohttp closes it once the body is in or after its lingering time): the client sends no
    body after it, and aiohttp, waiting for that body, would take the client's next request on
    the connection for it."""
    response.force_close()
    return response


def _too_large(handler: RequestReplyHandler, request: web.Request) -> web.Response:
    # The request's client_max_size: that of the application the server runs, which is the
    # parent's when this one is mounted. No Content-Length for a chunked body: its size is
    # unknown.
    limit = request.client_max_size
    setting = "client_max_size"
    if limit == _AIOHTTP_DEFAULT_MAX_SIZE:  # most likely never set: say where to
        setting += ", aiohttp's default: set it on the web.Application the server runs"
    too_large = RequestTooLargeError(request.content_length, limit, setting)
    return _rejected(handler, request, too_large)


def _rejected(
    handler: RequestReplyHandler, request: web.Request, error: StatefunError
) -> web.Response:
    """The answer to a request refused before the handler saw its body (a wrong method, a body
    over ``client_max_size``): the plugins hear of it like of any rejected request."""
    handler.reject(error, request.headers)
    return _error_response(error)


def _error_response(error: Exception) -> web.Response:
    status, text = error_response(error)
    return web.Response(status=status, text=text, headers=_SERVER)


# aiohttp's default names its version and Python's.
_SERVER = {"Server": "aiohttp"}
_REPLY_HEADERS = CIMultiDict({"Content-Type": CONTENT_TYPE, **_SERVER})


def endpoint_view(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The view of one endpoint a plugin contributes (``/metrics``, health); route a ``GET``
    one for ``HEAD`` too (``add_get`` does)."""

    async def view(request: web.Request) -> web.Response:
        return _endpoint_response(endpoint, request)

    return view


def _endpoints_view(
    handler: RequestReplyHandler, path: str
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """What ``setup`` routes at a path of the plugins' endpoints, for any method: the
    endpoint of the method (``HEAD`` finds the ``GET`` one), or 405 naming those there, all
    with the function endpoint's ``Server`` (aiohttp's own 405 names its version)."""
    allow = allowed_methods(handler.endpoints, path)

    async def view(request: web.Request) -> web.Response:
        endpoint = handler.endpoint_for(request.method, path)
        if endpoint is None:
            headers = {"Allow": allow, **_SERVER}
            return web.Response(status=405, text="Method Not Allowed", headers=headers)
        return _endpoint_response(endpoint, request)

    return view


def _endpoint_response(endpoint: Endpoint, request: web.Request) -> web.Response:
    status, headers, body = endpoint.respond(request.headers)
    response = web.Response(status=status, headers=headers, body=body)
    response.headers.update(_SERVER)  # in whatever case the plugin wrote the name
    return response


def setup(
    app: web.Application,
    functions_or_handler: FunctionsOrHandler,
    *,
    path: str = "/statefun",
    executor: Optional[Executor] = None,
    plugins: Optional[pluggy.PluginManager] = None,
    endpoints: bool = True,
) -> RequestReplyHandler:
    """Serve the functions at ``POST path`` on ``app``, with or without a trailing slash;
    returns the handler it serves with.

    Other methods are answered 405 with ``Allow: POST``.

    Given :class:`StatefulFunctions`, builds a :class:`RequestReplyHandler` with ``plugins`` and
    ``executor`` (the pool for functions bound with ``blocking=True``; default: the loop's).
    The endpoints the plugins contribute (``/metrics`` of statefun-prometheus, health) are
    routed on ``app`` at their own paths (``endpoints=False`` leaves them out). The body limit
    is the application's own ``client_max_size``: set it on the application the server runs.
    """
    handler = as_handler(functions_or_handler, executor=executor, plugins=plugins)
    app[HANDLER_KEY] = handler
    # the runtime posts to the urlPathTemplate as written, and does not follow redirects
    for served in dict.fromkeys((path.rstrip("/"), path.rstrip("/") + "/")):
        _route(app, served, handler)
    if endpoints:
        handler.check_endpoints_clear_of(path)
        for endpoint_path in dict.fromkeys(endpoint.path for endpoint in handler.endpoints):
            app.router.add_route("*", endpoint_path, _endpoints_view(handler, endpoint_path))
    return handler


def _route(app: web.Application, path: str, handler: RequestReplyHandler) -> None:
    app.router.add_route(
        "*",
        path,
        functools.partial(_respond, handler),
        expect_handler=functools.partial(_expect, handler),
    )


def create_app(
    functions_or_handler: FunctionsOrHandler,
    *,
    client_max_size: int = DEFAULT_MAX_REQUEST_BYTES,
    executor: Optional[Executor] = None,
    plugins: Optional[pluggy.PluginManager] = None,
    endpoints: bool = True,
) -> web.Application:
    """An application serving the functions at its root, with or without a trailing slash.

    Run it (``web.run_app(create_app(functions))``) or mount it:
    ``app.add_subapp("/statefun/", create_app(functions))`` serves ``POST /statefun``. Mounted,
    the parent application's ``client_max_size`` is the one in force.
    """
    app = web.Application(client_max_size=client_max_size)
    setup(
        app,
        functions_or_handler,
        path="",
        executor=executor,
        plugins=plugins,
        endpoints=endpoints,
    )
    return app
