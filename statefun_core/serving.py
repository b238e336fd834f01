"""What the plain ASGI and WSGI applications and the AWS Lambda handler share: which requests
reach the handler, and the answer to each of the others.

Each of them reads the request its own way, then asks :class:`Endpoint` whether to answer
before reading the body (:meth:`Endpoint.before_body`), reads the body within
``Limits.request_bytes``, and answers with :meth:`Endpoint.reply`, all without a web framework.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Callable, Optional, Union

import pluggy

from .errors import MethodNotAllowedError, RequestTooLargeError, StatefunError
from .handler import RequestReplyHandler
from .http import CONTENT_TYPE, FunctionsOrHandler, as_handler, error_response

__all__ = ["Answer", "Endpoint", "GetEndpoint"]

#: A GET endpoint served beside the function endpoint: ``() -> (body, content type)``.
GetEndpoint = Callable[[], "tuple[bytes, str]"]

_TEXT = "text/plain; charset=utf-8"
_TEXT_HEADERS = (("Content-Type", _TEXT),)
_REPLY_HEADERS = (("Content-Type", CONTENT_TYPE),)


@dataclass(frozen=True)
class Answer:
    """A response: status, headers (without ``Content-Length``) and body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


_NOT_FOUND = Answer(404, _TEXT_HEADERS, b"Not Found: nothing is served at this path")


def error_answer(error: BaseException) -> Answer:
    """The core's status and one short line of text for a failed request; ``Allow: POST``
    with a 405."""
    status, text = error_response(error)
    headers = (("Content-Type", _TEXT), ("Allow", "POST")) if status == 405 else _TEXT_HEADERS
    return Answer(status, headers, text.encode())


def _metrics() -> tuple[bytes, str]:
    metrics_response = importlib.import_module("statefun_prometheus").metrics_response
    body, content_type = metrics_response()
    return bytes(body), str(content_type)


class Endpoint:
    """The function endpoint at the application's root (``""`` or ``"/"``) and the GET
    endpoints in :attr:`routes` (each path relative to the root).

    ``routes`` holds ``GET metrics_path`` when statefun-prometheus is installed; endpoints
    contributed by plugins belong in it too, so each application serves them alike.
    """

    def __init__(
        self,
        functions_or_handler: FunctionsOrHandler,
        *,
        executor: Optional[Executor] = None,
        plugins: Optional[pluggy.PluginManager] = None,
        metrics_path: Optional[str] = "/metrics",
    ) -> None:
        self.handler: RequestReplyHandler = as_handler(
            functions_or_handler, executor=executor, plugins=plugins
        )
        self.limit: Optional[int] = self.handler.limits.request_bytes
        self.routes: dict[str, GetEndpoint] = {}
        if metrics_path is not None and importlib.util.find_spec("statefun_prometheus"):
            self.routes[metrics_path] = _metrics

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
        if path not in ("", "/"):
            return self._route(method, path)
        if method != "POST":
            return self.rejected(MethodNotAllowedError(f"{method} is not allowed"), headers)
        limit = self.limit
        if declared_length is not None and limit is not None and declared_length > limit:
            return self.rejected(RequestTooLargeError(declared_length, limit), headers)
        return None

    def _route(self, method: str, path: str) -> Answer:
        endpoint = self.routes.get(path)
        if endpoint is None:
            return _NOT_FOUND
        if method not in ("GET", "HEAD"):
            return Answer(405, (*_TEXT_HEADERS, ("Allow", "GET")), b"Method Not Allowed")
        body, content_type = endpoint()
        return Answer(200, (("Content-Type", content_type),), body)

    def too_large(self, size: int) -> RequestTooLargeError:
        """The error for a body found larger than the limit while it was read."""
        assert self.limit is not None
        return RequestTooLargeError(size, self.limit)

    def rejected(self, error: StatefunError, headers: Mapping[str, str]) -> Answer:
        """The answer to a request refused before the handler saw its body; the plugins hear
        of it like of any rejected request."""
        self.handler.reject(error, headers)
        return error_answer(error)

    @staticmethod
    def reply(reply: bytes) -> Answer:
        """The answer carrying the handler's reply."""
        return Answer(200, _REPLY_HEADERS, reply)


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
