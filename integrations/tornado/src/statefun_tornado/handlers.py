"""``StatefunHandler``, the endpoint, and ``EndpointHandler`` for the plugins' endpoints."""

from __future__ import annotations

import logging
import sys
from collections.abc import Coroutine
from typing import Any, Mapping, Optional, Sequence, Union

from tornado.concurrent import Future, future_set_result_unless_cancelled
from tornado.http1connection import HTTP1Connection
from tornado.web import OutputTransform, RequestHandler, stream_request_body

from statefun_core import RequestReplyHandler
from statefun_core.errors import MethodNotAllowedError, RequestTooLargeError, StatefunError
from statefun_core.http import CONTENT_TYPE, DEFAULT_MAX_REQUEST_BYTES, error_response
from statefun_core.plugins import Endpoint, allowed_methods, find_endpoint
from statefun_core.plugins.logcontext import trace_id
from statefun_core.tracecontext import TRACEPARENT, TRACERESPONSE

__all__ = ["EndpointHandler", "StatefunHandler"]

# where the core logs each request it fails
logger: logging.Logger = logging.getLogger("statefun_core")

# Not Tornado's default, which names its version.
_SERVER = "TornadoServer"

_NO_HANDLER = (
    "statefun_tornado: StatefunHandler has no handler: route it with "
    "{'handler': RequestReplyHandler(functions)}, or set the application's "
    "'statefun_handler' setting"
)
_NOT_A_HANDLER = (
    "statefun_tornado: StatefunHandler's handler is a {}, not a RequestReplyHandler: give "
    "{{'handler': RequestReplyHandler(functions)}} (or the 'statefun_handler' setting), made "
    "once, or route make_routes(functions)"
)


class _BodyTakenAsIn(Future[None]):
    """The request's body future once data_received has refused the body: done, and set
    again by Tornado as a no-op, if the body's end is read before the response is finished (a
    subclass's ``data_received`` that does not return the future holding the reading)."""

    def __init__(self) -> None:
        super().__init__()
        super().set_result(None)

    def set_result(self, result: None) -> None:
        pass


@stream_request_body
class StatefunHandler(RequestHandler):
    """POST a ``ToFunction``, get the ``FromFunction`` reply (``application/octet-stream``).

    Configured by the routing table: ``(path, StatefunHandler, {"handler": ...,
    "max_body_size": ...})``, or by the application's settings ``statefun_handler`` and
    ``statefun_max_body_size`` for what the rule does not give. Without a handler, every request
    is answered 500 and logged. A body declared larger than ``max_body_size`` (default 32 MiB)
    is answered 413 before it is read, a chunked one as soon as it is over; other methods than
    POST (any method, also one Tornado does not route) get 405 with ``Allow: POST``.
    Both reach the ``statefun_request_failed`` hook, as the handler's own rejections do.
    The request headers reach the plugin hooks through ``handle_async(..., headers=...)``.
    Subclass and override ``prepare``/``on_finish`` (calling ``super()``) to add your own;
    ``prepare`` does not hold back the body of a request these checks let through: it may run
    once the body is in, as in a plain handler.
    """

    _rejected: Optional[Future[None]] = None  # a body over the limit: until it is answered
    _limit_setting = "max_body_size"  # what a 413 names
    SUPPORTED_METHODS: tuple[str, ...]
    handler: RequestReplyHandler
    max_body_size: int

    def initialize(
        self, handler: Optional[RequestReplyHandler] = None, max_body_size: Optional[int] = None
    ) -> None:
        self._body: Union[bytes, bytearray] = b""
        self._received = 0
        if handler is None:
            handler = self.settings.get("statefun_handler")
            if handler is None:
                # Raised here, it would drop the connection unanswered: prepare answers 500.
                self._refusal: Optional[Exception] = RuntimeError(_NO_HANDLER)
                return
        if not isinstance(handler, RequestReplyHandler):  # StatefulFunctions, most likely
            self._refusal = TypeError(_NOT_A_HANDLER.format(type(handler).__name__))
            return
        if max_body_size is None:
            max_body_size = self.settings.get("statefun_max_body_size")
        if max_body_size is None:  # as Tornado's HTTPServer takes max_body_size=None
            max_body_size = DEFAULT_MAX_REQUEST_BYTES
        self.handler = handler
        self.max_body_size = max_body_size
        # A streaming handler is made when the headers are in: checked here, before the body.
        self._refusal = self._check_headers()

    def set_default_headers(self) -> None:
        self.set_header("Server", _SERVER)

    def check_xsrf_cookie(self) -> None:
        """The runtime posts protobuf without a cookie: XSRF protection does not apply."""

    def _execute(
        self, transforms: list[OutputTransform], *args: bytes, **kwargs: bytes
    ) -> Coroutine[Any, Any, None]:
        # Tornado (its private _execute, alike from 6.1 to 6.6) reads a streamed body only once
        # prepare() has run in the task this starts: two event-loop turns per request more than
        # a plain handler, some 35 kI (5 us). A request the header checks let through has
        # nothing to wait for: its body is read at once, and prepare() and post() run when the
        # task gets its turn, as in a plain handler.
        if self._refusal is None:
            # what Tornado's delegate awaits before it reads the body: None, nothing to await
            self._prepared_future = None
        elif (method := self.request.method or "") not in self.SUPPORTED_METHODS:
            # A method Tornado does not route (PROPFIND) is refused in prepare() too, like any
            # wrong method: Tornado's own 405 comes before it, so outside the request span an
            # instrumentation starts there, and the refusal's span was a second trace.
            self.SUPPORTED_METHODS = (*self.SUPPORTED_METHODS, method)
        return super()._execute(transforms, *args, **kwargs)

    def prepare(self) -> None:
        if self._refusal is not None:
            self._reject(self._refusal)

    def _check_headers(self) -> Optional[StatefunError]:
        """Why the request is refused before its body is read, if it is."""
        if self.request.method != "POST":
            return MethodNotAllowedError(method=self.request.method)
        connection = self.request.connection
        if isinstance(connection, HTTP1Connection):
            # the endpoint counts the body past the connection's limit (below): the
            # HTTPServer's own, when lower, is the one in force. Read as Tornado reads it (not
            # public): max_body_size, else max_buffer_size; Tornado 6.1 takes a 0 for unset.
            server_limit = connection._max_body_size
            if server_limit < self.max_body_size:
                self.max_body_size = server_limit
                given = connection.params.max_body_size == server_limit
                setting = "max_body_size" if given else "max_buffer_size"
                self._limit_setting = f"HTTPServer {setting}"
        declared = self.request.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_body_size:
            return RequestTooLargeError(int(declared), self.max_body_size, self._limit_setting)
        # A chunked body is counted as it comes (data_received). The connection's own limit
        # would answer a bare 400, at the chunk header that crosses it.
        if isinstance(connection, HTTP1Connection):
            connection.set_max_body_size(sys.maxsize)
        return None

    def data_received(self, chunk: bytes) -> Optional[Future[None]]:
        if self._rejected is not None:  # more of a refused body (a subclass dropped the future)
            return self._rejected
        self._received += len(chunk)
        if self._received > self.max_body_size:
            # Answered by the request's task, where prepare and on_finish run (and an
            # instrumentation attaches the request's span), not here in the connection's:
            # the body is taken as in, and the connection reads no more of it until then.
            self._refusal = RequestTooLargeError(None, self.max_body_size, self._limit_setting)
            self._rejected = Future()
            future_set_result_unless_cancelled(self.request._body_future, None)
            self.request._body_future = _BodyTakenAsIn()
            return self._rejected
        if not self._body:
            self._body = chunk  # most bodies come in one chunk: passed on as it came
        else:
            # the rest in one buffer: an older Tornado (6.1) hands over each chunk of a chunked
            # body as it came, and a list of a million 2-byte chunks takes some 60 MB
            if type(self._body) is bytes:
                self._body = bytearray(self._body)
            self._body += chunk
        return None

    def finish(self, chunk: Union[str, bytes, dict[str, Any], None] = None) -> Future[None]:
        """A body over the limit holds the connection's reading until the response is
        finished, by whatever answers it (the 413, or a subclass's own error in ``prepare``):
        Tornado then closes the connection."""
        try:
            return super().finish(chunk)
        finally:
            if self._rejected is not None:
                future_set_result_unless_cancelled(self._rejected, None)

    def on_connection_close(self) -> None:
        """A client that goes away before its body is in is no failure: Tornado runs nothing
        and answers nothing; it is logged at debug level, as statefun-aiohttp does."""
        if not self._finished and not self.request._body_future.done():
            logger.debug("statefun request abandoned: the client disconnected")
        super().on_connection_close()

    async def post(self, *path_args: str, **path_kwargs: str) -> None:
        """The path's groups, when the rule's pattern has any, are not the endpoint's concern."""
        if self._refusal is not None:  # the body went over the limit (data_received)
            self._reject(self._refusal)
            return
        body = self._body
        reply_headers: dict[str, str] = {}  # what the plugins answer with (a traceresponse)
        try:
            reply = await self.handler.handle_async(
                body, headers=self.request.headers, reply_headers=reply_headers
            )
        except Exception as error:
            self._finish_with_error(error, reply_headers)
            return
        for name, value in reply_headers.items():
            self.set_header(name, value)
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(reply)

    def _reject(self, error: Exception) -> None:
        """Answer a request refused before the handler saw its body (a wrong method, a body
        over ``max_body_size``): the plugins hear of it like of any rejected request. (A
        missing handler is the server's error: 500, logged, and no plugins to tell.)

        Tornado closes the connection after a response given before the body was read, so
        the response says so (``Connection: close``): a client does not reuse it.
        """
        if isinstance(error, MethodNotAllowedError):
            self.set_header("Allow", "POST")
        if isinstance(error, StatefunError):
            self.handler.reject(error, self.request.headers)
        self.set_header("Connection", "close")
        self._finish_with_error(error)

    def _finish_with_error(
        self, error: Exception, reply_headers: Optional[Mapping[str, str]] = None
    ) -> None:
        status, text = error_response(error)
        trace = trace_id(
            self.request.headers.get(TRACEPARENT),
            reply_headers.get(TRACERESPONSE) if reply_headers else None,
        )
        if trace is not None:
            # Tornado's access line (an error for a 5xx) names the trace, as the core's line
            # of the failure does. On this instance: a request that succeeds pays nothing.
            summary = f"{self._request_summary()} trace={trace}"
            self._request_summary = lambda: summary  # type: ignore[method-assign]
        self.set_status(status)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(text)


class EndpointHandler(RequestHandler):
    """The endpoints plugins contribute at one path (``/metrics``, health), configured by
    ``{"endpoints": [...]}``: a request is answered by the endpoint of its method (``HEAD`` by
    the ``GET`` one); other methods (any method, also one Tornado does not route) get 405 with
    ``Allow``, as the function endpoint does."""

    endpoints: tuple[Endpoint, ...]
    endpoint_path: str

    def initialize(self, endpoints: Sequence[Endpoint]) -> None:
        self.endpoints = tuple(endpoints)
        self.endpoint_path = self.endpoints[0].path

    def set_default_headers(self) -> None:
        self.set_header("Server", _SERVER)

    def check_xsrf_cookie(self) -> None:
        """A method no endpoint here answers gets its 405 (with ``Allow``), not the XSRF 403:
        there is nothing to protect. An endpoint that answers it keeps Tornado's check."""
        method = self.request.method or ""
        if find_endpoint(self.endpoints, method, self.endpoint_path) is not None:
            super().check_xsrf_cookie()

    def prepare(self) -> None:
        endpoint = find_endpoint(self.endpoints, self.request.method or "", self.endpoint_path)
        if endpoint is None:
            self._method_not_allowed()
            return
        status, headers, body = endpoint.respond(self.request.headers)
        self.set_status(status)
        for name, value in headers.items():
            self.set_header(name, value)
        self.finish(body)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Tornado answers a method outside ``SUPPORTED_METHODS`` itself, before ``prepare``."""
        if status_code == 405:
            self._method_not_allowed()
        else:
            super().write_error(status_code, **kwargs)

    def _method_not_allowed(self) -> None:
        self.set_status(405)
        self.set_header("Allow", allowed_methods(self.endpoints, self.endpoint_path))
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("Method Not Allowed")
