"""A plain ASGI application serving StateFun functions: run it with any ASGI server, or mount
it in any ASGI framework. No framework is imported.

Run it::

    app = StatefunASGI(functions)          # uvicorn module:app, hypercorn, granian ...

Mount it in FastAPI or Starlette (the runtime's URL then ends in a slash:
``http://host:8000/statefun/``)::

    statefun = StatefunASGI(functions)
    app.mount("/statefun", statefun)

or in front of any other ASGI application (Quart, Falcon's ``falcon.asgi.App``)::

    app = mount(other_app, "/statefun", StatefunASGI(functions))
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine, Iterator, Mapping, MutableMapping
from typing import Any, Callable, Optional

from .errors import MalformedRequestError
from .http import CONTENT_TYPE
from .serving import Answer, Served, declared_length, error_answer

__all__ = ["ASGIApp", "AnyASGIApp", "StatefunASGI", "mount"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
#: An ASGI 3 application.
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: What :func:`mount` returns: an ASGI 3 application as any framework declares one (Quart's and
#: Falcon's take narrower scopes than :data:`ASGIApp`'s, which a type checker holds against them).
AnyASGIApp = Callable[[Any, Any, Any], Coroutine[Any, Any, None]]

_OCTETS = (b"content-type", CONTENT_TYPE.encode())


class StatefunASGI(Served):
    """An ASGI 3 application: ``POST`` at its root is the function endpoint; beside it, the
    endpoints installed plugins contribute (``GET /metrics`` of statefun-prometheus, health;
    ``endpoints=False`` leaves them out).

    Given :class:`~statefun_core.StatefulFunctions`, it builds a
    :class:`~statefun_core.RequestReplyHandler` with ``executor`` and ``plugins``; the one it
    serves with is :attr:`handler`. Functions run with ``handle_async`` on the server's loop.
    The body is read as it arrives and refused (413) once it is over the handler's
    ``Limits.request_bytes``: a larger declared ``Content-Length`` is refused unread. Every
    other method is answered 405 with ``Allow: POST``. A client gone before its body ended is
    never run: logged, with nobody to answer, as a 400 (as under WSGI, where the server hands
    over a short body). Each of these refusals reaches the ``statefun_request_failed`` hook.
    ``lifespan`` events are answered, so servers that send them need no option.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await _not_http(scope, receive, send)
            return
        endpoint = self.endpoint
        raw = scope["headers"]
        headers = _new_headers(ScopeHeaders)  # ScopeHeaders(raw) without a call to __init__:
        headers._raw = raw  # a class call with one costs several times more
        declared = None
        for name, value in raw:
            if name == b"content-length":  # ASGI servers give the names in lower case
                declared = declared_length(value)
                break
        path = _relative_path(scope) if scope.get("root_path") else scope["path"]
        early = endpoint.before_body(scope["method"], path, headers, declared)
        if early is not None:
            await _send(send, early, head=scope["method"] == "HEAD", close=_unread_body(scope))
            return
        limit = endpoint.limit
        message = await receive()
        if message["type"] == "http.disconnect":
            endpoint.rejected(_client_gone(), headers)  # nobody to answer
            return
        body = message.get("body", b"")
        if message.get("more_body", False):
            rest = await _rest_of_body(receive, body, limit)
            if rest is None:
                endpoint.rejected(_client_gone(), headers)
                return
            body = rest
        if limit is not None and len(body) > limit:
            await _send(send, endpoint.rejected(endpoint.too_large(), headers))
            return
        reply_headers: dict[str, str] = {}  # what plugins add (a traceresponse)
        try:
            reply = await endpoint.handler.handle_async(body, headers, reply_headers)
        except Exception as error:
            await _send(send, error_answer(error))
            return
        response_headers = [_OCTETS, (b"content-length", b"%d" % len(reply))]
        if reply_headers:
            for name, value in reply_headers.items():
                response_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        await send({"type": "http.response.start", "status": 200, "headers": response_headers})
        await send({"type": "http.response.body", "body": reply})


async def _rest_of_body(
    receive: Receive, first: bytes, limit: Optional[int]
) -> Optional[bytearray]:
    """The body sent in more than one message, read until it ends or until it is over
    ``limit`` (then what was read, which the caller refuses); ``None`` on a disconnect."""
    # one buffer, not a list of the chunks: a server may pass each chunk of a chunked body
    # as it came (hypercorn does), and a list of a million 2-byte chunks is some 60 MB
    body = bytearray(first)
    while limit is None or len(body) <= limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return body


def _client_gone() -> MalformedRequestError:
    """The error (400) of a request whose client went before its body ended: never run, and
    logged and reported to the plugins as a WSGI server's short body is, though the answer
    has nobody to go to."""
    return MalformedRequestError("the client went before the request body ended")


async def _not_http(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    else:  # a websocket: refused before it is accepted (the server answers 403)
        await send({"type": "websocket.close", "code": 1008})


def _relative_path(scope: Scope) -> str:
    """The path below the application's mount point. ASGI servers and frameworks put the
    mount point in ``root_path``; newer ones keep it in ``path`` as well, older ones take it
    out."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :]
    return path


def _unread_body(scope: Scope) -> bool:
    """Whether an answer given before the body is read leaves a body on an HTTP/1.1
    connection: one the client waits for ``100 Continue`` to send (RFC 9110, 10.1.1), or any
    the request declares. The answer then says the connection ends (RFC 9112, 9.6), so that the
    client's next request goes on a new one: the server would take it for that body, or, as
    granian sometimes does, close the connection without saying so."""
    if scope.get("http_version") != "1.1":
        return False  # HTTP/2 has no Connection header; HTTP/1.0 closes anyway
    for name, value in scope["headers"]:
        if name == b"expect" and value.lower() == b"100-continue":
            return True
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


async def _send(send: Send, answer: Answer, head: bool = False, close: bool = False) -> None:
    # Names in lower case, as ASGI asks (and HTTP/2 requires).
    headers = [(name.lower().encode(), value.encode("latin-1")) for name, value in answer.headers]
    headers.append((b"content-length", b"%d" % len(answer.body)))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else answer.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    """Nothing to start or stop: each event is acknowledged."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class ScopeHeaders(Mapping[str, str]):
    """An ASGI scope's headers for the core's hooks: a case-insensitive mapping, decoded on
    demand (most requests have no plugin that reads them)."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Any) -> None:
        self._raw: list[tuple[bytes, bytes]] = raw

    def __getitem__(self, key: str) -> str:
        wanted = key.lower().encode("latin-1")
        for name, value in self._raw:
            if name.lower() == wanted:
                return value.decode("latin-1")
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (name.decode("latin-1") for name, _ in self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __bool__(self) -> bool:
        return True  # a request has headers; spares counting them (``headers or {}``)


_new_headers = ScopeHeaders.__new__


def mount(
    app: Callable[[Any, Any, Any], Awaitable[None]],
    path: str,
    statefun: Callable[[Any, Any, Any], Awaitable[None]],
) -> AnyASGIApp:
    """An ASGI application that sends requests for ``path`` and below it to ``statefun`` and
    everything else (``lifespan`` too) to ``app``: for frameworks that cannot mount an ASGI
    application themselves. ``path`` itself (no trailing slash) reaches ``statefun``'s root."""
    prefix = "/" + path.strip("/")

    async def mounted(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            root = scope.get("root_path", "")
            below = _relative_path(scope)
            if below == prefix or below.startswith(prefix + "/"):
                inner = dict(scope)
                inner["root_path"] = root + prefix
                inner["path"] = root + below
                await statefun(inner, receive, send)
                return
        await app(scope, receive, send)

    return mounted
