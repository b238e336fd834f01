"""A plain WSGI application serving StateFun functions: run it with any WSGI server, or put it
in front of any WSGI application. No framework is imported.

Run it::

    app = StatefunWSGI(functions)          # gunicorn module:app, waitress-serve module:app ...

or serve it beside another WSGI application (Falcon, Bottle, Pyramid ...)::

    app = mount(other_app, "/statefun", StatefunWSGI(functions))
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import Any, Callable, Optional

from .errors import MalformedRequestError, RequestTooLargeError, StatefunError
from .serving import Answer, Served, declared_length

__all__ = [
    "StatefunWSGI",
    "WSGIApp",
    "incomplete",
    "input_errors",
    "mount",
    "read_terminated",
    "unreadable",
    "unterminated",
]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
#: A WSGI application (PEP 3333).
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

_CHUNK = 1 << 16


class StatefunWSGI(Served):
    """A WSGI application: ``POST`` at its root is the function endpoint; beside it, the
    endpoints installed plugins contribute (``GET /metrics`` of statefun-prometheus, health;
    ``endpoints=False`` leaves them out).

    Given :class:`~statefun_core.StatefulFunctions`, it builds a
    :class:`~statefun_core.RequestReplyHandler` with ``executor`` and ``plugins``; the one it
    serves with is :attr:`handler`. Functions run with ``handle_sync`` on the server's worker
    thread (``async`` functions too: see ``handle_sync``). A declared ``Content-Length``
    over the handler's ``Limits.request_bytes`` is refused unread (413); a body without one
    is read when the server marks it complete (``wsgi.input_terminated``, as gunicorn and
    waitress do for a chunked body), up to one byte over the limit. A body the server cannot
    hand over whole (shorter than its ``Content-Length``, a malformed chunk, a client gone) is
    answered 400 and never run. Every other method is answered 405 with ``Allow: POST``; these
    refusals reach the ``statefun_request_failed`` hook.
    """

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        answer = self._answer(environ)
        status = f"{answer.status} {HTTPStatus(answer.status).phrase}"
        start_response(status, [*answer.headers, ("Content-Length", str(len(answer.body)))])
        # One item, empty for a HEAD: hypercorn starts the response with the first item.
        return [b""] if environ["REQUEST_METHOD"] == "HEAD" else [answer.body]

    def _answer(self, environ: Environ) -> Answer:
        endpoint = self.endpoint
        headers = EnvironHeaders(environ)
        declared = declared_length(environ.get("CONTENT_LENGTH") or None)
        early = endpoint.before_body(
            environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), headers, declared
        )
        if early is not None:
            return early
        stream = environ["wsgi.input"]
        limit = endpoint.limit
        if declared is not None:  # within the limit: before_body checked it
            try:
                body = stream.read(declared)
            except input_errors() as error:
                return endpoint.rejected(unreadable(error), headers)
            if len(body) != declared:  # the client stopped sending: gunicorn hands over less
                return endpoint.rejected(incomplete(len(body), declared), headers)
        elif environ.get("wsgi.input_terminated"):
            try:
                body = read_terminated(stream, limit, "Limits.request_bytes")
            except StatefunError as error:  # unreadable (400) or over the limit (413)
                return endpoint.rejected(error, headers)
        elif "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            return endpoint.rejected(unterminated(), headers)
        else:  # PEP 3333: without a length, the input may not be read
            body = b""
        return endpoint.handle_sync(body, headers)


def read_terminated(stream: Any, limit: Optional[int], setting: str) -> bytes:
    """A body without a ``Content-Length`` that the server ends (``wsgi.input_terminated``),
    read to its end, or to one byte over ``limit`` (then ``RequestTooLargeError`` naming
    ``setting``); a read that raises one of :func:`input_errors` is :func:`unreadable` (400)."""
    chunks: list[bytes] = []
    size = 0
    try:
        while limit is None or size <= limit:
            chunk = stream.read(_CHUNK if limit is None else min(_CHUNK, limit + 1 - size))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
    except input_errors() as error:
        raise unreadable(error) from None
    assert limit is not None  # the loop ends early only with a limit
    raise RequestTooLargeError(None, limit, setting)


def input_errors() -> tuple[type[BaseException], ...]:
    """What reading ``wsgi.input`` raises for a body the server cannot hand over whole (a
    malformed chunk, a client gone): ``OSError`` and ``ValueError`` (most servers, werkzeug's
    development server, gunicorn's ``NoMoreData``) and, when gunicorn serves, its
    ``ParseException`` (``InvalidChunkSize``, ``ChunkMissingTerminator``, ...). For an
    ``except`` clause, which looks it up only when something was raised."""
    gunicorn = sys.modules.get("gunicorn.http.errors")
    parse_error = getattr(gunicorn, "ParseException", None)
    if isinstance(parse_error, type) and issubclass(parse_error, Exception):
        return (OSError, ValueError, parse_error)
    return (OSError, ValueError)


def unreadable(error: BaseException) -> MalformedRequestError:
    """The error (400) for a body the server could not read whole: one of
    :func:`input_errors`."""
    return MalformedRequestError(f"the request body could not be read: {error!r}")


def unterminated() -> MalformedRequestError:
    """The error (400) for a chunked body the server passed without marking its end
    (``wsgi.input_terminated``): PEP 3333 forbids reading it, and a framework reads it as
    empty (Django's and Werkzeug's development servers, the Flask test client)."""
    return MalformedRequestError(
        "the server passed a chunked body without marking its end (wsgi.input_terminated), so "
        "it may not be read (PEP 3333): send its Content-Length, or serve under gunicorn or "
        "waitress"
    )


def incomplete(size: int, declared: int) -> MalformedRequestError:
    """The error (400) for a body that ended before its ``Content-Length``: it is not run."""
    return MalformedRequestError(
        f"the request body is incomplete: {size} of its {declared} bytes (Content-Length)"
    )


class EnvironHeaders(Mapping[str, str]):
    """A WSGI environ's request headers for the core's hooks: a case-insensitive mapping,
    read on demand (most requests have no plugin that reads them)."""

    __slots__ = ("_environ",)

    def __init__(self, environ: Environ) -> None:
        self._environ = environ

    def __getitem__(self, key: str) -> str:
        name = key.upper().replace("-", "_")
        if name not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = "HTTP_" + name
        value = self._environ.get(name)
        if value is None:
            raise KeyError(key)
        return str(value)

    def __iter__(self) -> Iterator[str]:
        for key in self._environ:
            if key.startswith("HTTP_"):
                yield key[5:].replace("_", "-").lower()
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                yield key.replace("_", "-").lower()

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return True  # a request has headers; spares counting them (``headers or {}``)


def mount(app: WSGIApp, path: str, statefun: WSGIApp) -> WSGIApp:
    """A WSGI application that sends requests for ``path`` and below it to ``statefun``
    (``SCRIPT_NAME`` and ``PATH_INFO`` shifted, as a WSGI dispatcher does) and everything else
    to ``app``. ``path`` itself (no trailing slash) reaches ``statefun``'s root."""
    prefix = "/" + path.strip("/")

    def mounted(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path_info: str = environ.get("PATH_INFO", "")
        if path_info == prefix or path_info.startswith(prefix + "/"):
            inner = dict(environ)
            inner["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
            inner["PATH_INFO"] = path_info[len(prefix) :]
            return statefun(inner, start_response)
        return app(environ, start_response)

    return mounted
