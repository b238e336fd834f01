"""What the plain ASGI and WSGI applications and the AWS Lambda handler share: which requests
reach the handler, and the answer to each of the others.

Each of them reads the request its own way, then asks :class:`Endpoint` whether to answer
before reading the body (:meth:`Endpoint.before_body`), reads the body within
``Limits.request_bytes``, and answers with :meth:`Endpoint.reply`, all without a web framework.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Callable, Optional, Union

import pluggy

from .errors import MethodNotAllowedError, RequestTooLargeError, StatefunError
from .handler import RequestReplyHandler
from .http import CONTENT_TYPE, FunctionsOrHandler, as_handler, error_response, logger
from .plugins.endpoints import allowed_methods

__all__ = ["Answer", "Endpoint", "Served"]

_TEXT = "text/plain; charset=utf-8"
_TEXT_HEADERS = (("Content-Type", _TEXT),)
#: The headers of a reply, before those the plugins add.
REPLY_HEADERS = (("Content-Type", CONTENT_TYPE),)


@dataclass(frozen=True)
class Answer:
    """A response: status, headers (without ``Content-Length``) and body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _not_found(path: str) -> Answer:
    """A 404 naming the path below the application's root that it saw: a request that
    reaches the application at the wrong path (a framework route where a mount was meant, a
    ``root_path`` given twice) shows where it landed."""
    shown = repr(path if len(path) <= 100 else path[:100] + "…")
    logger.info("statefun: nothing is served at %s below the application's root", shown)
    text = f"Not Found: nothing is served at {shown} below this application's root"
    return Answer(404, _TEXT_HEADERS, text.encode())


def error_answer(error: BaseException) -> Answer:
    """The core's status and one short line of text for a failed request; ``Allow: POST``
    with a 405."""
    status, text = error_response(error)
    headers = (("Content-Type", _TEXT), ("Allow", "POST")) if status == 405 else _TEXT_HEADERS
    return Answer(status, headers, text.encode())


class Endpoint:
    """The function endpoint at the application's root (``""`` or ``"/"``) and, with
    ``endpoints`` true, the endpoints installed plugins contribute (``GET /metrics`` of
    statefun-prometheus, health: :attr:`RequestReplyHandler.endpoints`), each at its path
    relative to the root.
    """

    def __init__(
        self,
        functions_or_handler: FunctionsOrHandler,
        *,
        executor: Optional[Executor] = None,
        plugins: Optional[pluggy.PluginManager] = None,
        endpoints: bool = True,
    ) -> None:
        self.handler: RequestReplyHandler = as_handler(
            functions_or_handler, executor=executor, plugins=plugins
        )
        self.limit: Optional[int] = self.handler.limits.request_bytes
        self.endpoints = endpoints

    def before_body(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        declared_length: Optional[int],
    ) -> Optional[Answer]:
        """The answer to give without reading the body, or ``None`` when the body is for the
        handler: another endpoint, a path with none, a wrong method (405) or a declared
        length over ``Limits.request_bytes`` (413; that body is never read)."""
        # "//" too: the runtime POSTs /%2F to a unix socket's endpoint (its OkHttp client
        # sends the path as one segment, its slash escaped), which servers decode so
        if path.strip("/"):
            return self._route(method, path, headers)
        if method != "POST":
            return self.rejected(MethodNotAllowedError(method=method), headers)
        limit = self.limit
        if declared_length is not None and limit is not None and declared_length > limit:
            return self.rejected(RequestTooLargeError(declared_length, limit), headers)
        return None

    def _route(self, method: str, path: str, headers: Mapping[str, str]) -> Answer:
        if not self.endpoints:
            return _not_found(path)
        answer = self._endpoint_answer(method, path, headers)
        if answer is None and path.endswith("/"):
            # Litestar's mount hands the path on with a slash added: "/metrics/" for "/metrics"
            answer = self._endpoint_answer(method, path.rstrip("/"), headers)
        return _not_found(path) if answer is None else answer

    def _endpoint_answer(
        self, method: str, path: str, headers: Mapping[str, str]
    ) -> Optional[Answer]:
        """The answer of the plugins' endpoint at ``path``: its own, or 405 for another
        method; ``None`` when no endpoint is there."""
        endpoint = self.handler.endpoint_for(method, path)
        if endpoint is None:
            allowed = allowed_methods(self.handler.endpoints, path)
            if not allowed:
                return None
            return Answer(405, (*_TEXT_HEADERS, ("Allow", allowed)), b"Method Not Allowed")
        status, response_headers, body = endpoint.respond(headers)  # without framing headers
        return Answer(status, tuple(response_headers.items()), body)

    def too_large(self) -> RequestTooLargeError:
        """The error for a body found larger than the limit while it was read, which stops
        there: how large it is, nobody knows."""
        assert self.limit is not None
        return RequestTooLargeError(None, self.limit)

    def rejected(self, error: StatefunError, headers: Mapping[str, str]) -> Answer:
        """The answer to a request refused before the handler saw its body; the plugins hear
        of it like of any rejected request."""
        self.handler.reject(error, headers)
        return error_answer(error)

    def handle_sync(
        self,
        body: bytes,
        headers: Mapping[str, str],
        check_reply: Optional[Callable[[int, Mapping[str, str]], None]] = None,
    ) -> Answer:
        """The handler's answer to ``body`` (``handle_sync``): its reply with the headers
        plugins add to it, or the error's status and text. ``check_reply`` (the Lambda
        handler's) is the handler's ``check_reply``, given the reply's headers as well."""
        reply_headers: dict[str, str] = {}  # what plugins add (a traceresponse)
        check = None
        if check_reply is not None:

            def check(size: int) -> None:
                check_reply(size, reply_headers)

        try:
            reply = self.handler.handle_sync(
                body, headers=headers, reply_headers=reply_headers, check_reply=check
            )
        except Exception as error:
            return error_answer(error)
        if not reply_headers:
            return Answer(200, REPLY_HEADERS, reply)
        return Answer(200, (*REPLY_HEADERS, *reply_headers.items()), reply)


def declared_length(value: Union[str, bytes, None]) -> Optional[int]:
    """A ``Content-Length`` as a number; ``None`` when absent or not a number (the server
    refuses such a request itself, or frames the body another way)."""
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        return None
    return length if length >= 0 else None


class Served:
    """What the ASGI and WSGI applications and the Lambda handler are built from: the
    :class:`Endpoint` they answer with, and its :attr:`handler`."""

    endpoint: Endpoint

    routes_paths = True
    """Whether the paths below the root reach the plugins' endpoints (not for Lambda, where
    every path is the function endpoint)."""

    def __init__(
        self,
        functions_or_handler: FunctionsOrHandler,
        *,
        executor: Optional[Executor] = None,
        plugins: Optional[pluggy.PluginManager] = None,
        endpoints: bool = True,
    ) -> None:
        self.endpoint = Endpoint(
            functions_or_handler, executor=executor, plugins=plugins, endpoints=endpoints
        )
        if endpoints and self.routes_paths:
            self.handler.check_endpoints_clear_of("/")

    @property
    def handler(self) -> RequestReplyHandler:
        """The handler it serves with (for a dependency, a test, a plugin)."""
        return self.endpoint.handler
