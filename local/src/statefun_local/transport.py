"""Calling remote functions over HTTP, with StateFun's retry rules (protocol.md §1, §11).

Async transport (the default): every failed attempt is retried (connection errors, any non-2xx,
a wrong content type, an unparsable or oversized body) with a backoff from 2 ms, doubling,
within the endpoint's ``call`` budget. OkHttp transport: only I/O errors and 408, 409, 420,
429, 499, 5xx are retried, from 10 ms; other statuses fail at once.
"""

from __future__ import annotations

import asyncio
import io
import time
import weakref
from collections.abc import Mapping, MutableMapping
from typing import Any, Callable, Optional

import aiohttp
from aiohttp.connector import Connection
from google.protobuf.message import Message

from statefun_core import protocol
from statefun_core.tracecontext import TRACERESPONSE

from .module import OKHTTP_TRANSPORT, Endpoint, is_unix_url, split_unix_url

__all__ = ["CallFailedError", "HttpTransport"]

CONTENT_TYPE = "application/octet-stream"
#: No attempt is started with less of the call budget left than this.
_MIN_ATTEMPT = 0.010
_OKHTTP_RETRIED_STATUSES = frozenset({408, 409, 420, 429, 499})
#: aiohttp warns (a ResourceWarning) of a body over 1 MiB given as bytes (TOO_LARGE_BYTES_BODY):
#: a larger batch goes as a BytesIO, which it writes in chunks.
_LARGEST_BYTES_BODY = 2**20
_HINTS = {
    404: " (is the endpoint's urlPathTemplate the function server's path, and the function "
    "bound there?)",
    405: " (is the endpoint's urlPathTemplate the path the function server takes POSTs at?)",
}


def _unix_hint(url: str, status: int) -> str:
    target = "/" + url.split("/", 3)[3]
    bound = ", and is the function bound there" if status == 404 else ""  # or the SDK's 404
    return (
        f" (over a unix socket the runtime POSTs to {target}: the path below the socket "
        "file as one segment, its slashes escaped; does the function server take POSTs "
        f"there{bound}?)"
    )


_HEADERS = {
    "Content-Type": CONTENT_TYPE,
    "Accept": CONTENT_TYPE,
    "Accept-Encoding": "gzip,deflate",
    "User-Agent": "statefun",
}


class CallFailedError(Exception):
    """A call to a function that failed for good: every attempt within the budget failed."""

    def __init__(self, url: str, attempts: int, reason: str) -> None:
        super().__init__(f"POST {url} failed after {attempts} attempt(s): {reason}")
        self.url = url
        self.attempts = attempts
        self.reason = reason


class _AttemptFailed(Exception):
    def __init__(self, reason: str, retry: bool = True) -> None:
        super().__init__(reason)
        self.retry = retry


#: Called on every failed attempt that will be retried: (url, attempt number, reason).
RetryListener = Callable[[str, int, str], None]


class HttpTransport:
    """Sends ``ToFunction`` requests and returns the parsed ``FromFunction`` replies.

    Connections are pooled and kept alive. The async transport pools them by function type,
    at most the endpoint's ``pool_size``, as the runtime's Netty client does: waiting for a
    free one counts against the ``connect`` timeout, as it does there (aiohttp's ``connect``
    timeout covers it), and a connection older than ``pool_ttl`` starts no other call. OkHttp's
    pool is shared and unbounded, as the runtime's.
    """

    def __init__(self, on_retry: Optional[RetryListener] = None) -> None:
        #: (unix socket, function type or None for a shared pool) -> its session
        self._sessions: dict[tuple[Optional[str], Optional[str]], aiohttp.ClientSession] = {}
        self._on_retry = on_retry

    async def __aenter__(self) -> HttpTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _get_session(
        self, endpoint: Endpoint, function_type: str, unix_socket: Optional[str]
    ) -> aiohttp.ClientSession:
        pooled = endpoint.pool_size > 0
        key = (unix_socket, function_type if pooled else None)
        session = self._sessions.get(key)
        if session is None:
            connector: aiohttp.BaseConnector
            if unix_socket is not None:
                connector = aiohttp.UnixConnector(path=unix_socket, limit=endpoint.pool_size)
            else:
                tls = True if endpoint.tls is None else endpoint.tls.context
                connector = _Connector(
                    endpoint.pool_ttl, limit=endpoint.pool_size, keepalive_timeout=15, ssl=tls
                )
            session = aiohttp.ClientSession(connector=connector, headers=_HEADERS)
            self._sessions[key] = session
        return session

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()

    async def call(
        self,
        endpoint: Endpoint,
        function_type: str,
        body: bytes,
        headers: Optional[Mapping[str, str]] = None,
        reply_headers: Optional[MutableMapping[str, str]] = None,
    ) -> Message:
        """POST ``body`` (a ``ToFunction``) for ``function_type``, with ``headers`` (the
        batch's trace headers); return the ``FromFunction`` of the first good reply, parsed.
        The reply's ``traceresponse`` header, if any, is put in ``reply_headers``."""
        url = endpoint.url_for(function_type)
        okhttp = endpoint.transport == OKHTTP_TRANSPORT
        backoff = 0.010 if okhttp else 0.002
        deadline = time.monotonic() + endpoint.call_timeout
        attempt = 0
        previous = ""  # the reason of the attempt before, should the budget cut the last one
        while True:
            attempt += 1
            try:
                budget = deadline - time.monotonic()
                return await self._attempt(
                    endpoint, function_type, url, body, budget, okhttp, headers, reply_headers
                )
            except _AttemptFailed as failure:
                if not failure.retry:
                    raise CallFailedError(url, attempt, str(failure)) from None
                reason = str(failure)
            remaining = deadline - time.monotonic()
            if remaining <= _MIN_ATTEMPT:
                if previous and previous != reason:  # a last attempt that timed out says little
                    reason = f"{reason}, after {previous}"
                raise CallFailedError(url, attempt, f"{reason} (call timeout exhausted)")
            previous = reason
            if self._on_retry is not None:
                self._on_retry(url, attempt, reason)
            await asyncio.sleep(min(backoff, remaining - _MIN_ATTEMPT))
            backoff *= 2

    async def _attempt(
        self,
        endpoint: Endpoint,
        function_type: str,
        url: str,
        body: bytes,
        budget: float,
        okhttp: bool,
        headers: Optional[Mapping[str, str]],
        reply_headers: Optional[MutableMapping[str, str]],
    ) -> Message:
        timeout = aiohttp.ClientTimeout(total=budget, connect=min(endpoint.connect_timeout, budget))
        unix_socket = None
        if is_unix_url(url):
            unix_socket, url = split_unix_url(url)
        session = self._get_session(endpoint, function_type, unix_socket)
        payload = body if len(body) <= _LARGEST_BYTES_BODY else io.BytesIO(body)
        try:
            async with session.post(  # the runtime follows no redirect of a POST
                url, data=payload, timeout=timeout, headers=headers or None, allow_redirects=False
            ) as response:
                location = response.headers.get("Location")
                if 300 <= response.status < 400 and location:
                    raise _AttemptFailed(
                        f"HTTP {response.status} to {location}: the runtime follows no "
                        "redirect; point the endpoint's urlPathTemplate there",
                        retry=not okhttp,
                    )
                if not 200 <= response.status < 300:
                    text = (await response.read())[:200].decode("utf-8", "replace")
                    retry = not okhttp or (
                        response.status >= 500 or response.status in _OKHTTP_RETRIED_STATUSES
                    )
                    hint = _HINTS.get(response.status, "")
                    if unix_socket is not None and hint:
                        hint = _unix_hint(url, response.status)
                    raise _AttemptFailed(f"HTTP {response.status}: {text.strip()}{hint}", retry)
                content_types = response.headers.getall("Content-Type", [])
                if not _octet_stream(content_types, okhttp):
                    raise _AttemptFailed(
                        f"the reply's Content-Type is {', '.join(content_types)!r}, "
                        f"expected {CONTENT_TYPE!r}",
                        retry=not okhttp,
                    )
                if (response.content_length or 0) > endpoint.payload_max_bytes:
                    raise _AttemptFailed("the reply is larger than payload_max_bytes")
                data = await response.read()
                if len(data) > endpoint.payload_max_bytes:
                    raise _AttemptFailed("the reply is larger than payload_max_bytes")
                traceresponse = response.headers.get(TRACERESPONSE)
                if reply_headers is not None and traceresponse is not None:
                    reply_headers[TRACERESPONSE] = traceresponse
        except aiohttp.ServerTimeoutError as exc:  # connecting, or waiting for the pool
            raise _AttemptFailed(f"timed out: {exc}") from None
        except asyncio.TimeoutError:
            raise _AttemptFailed("timed out") from None
        except aiohttp.ClientError as exc:
            raise _AttemptFailed(f"{type(exc).__name__}: {exc}") from None
        try:
            reply: Message = protocol.FromFunction.FromString(data)
        except Exception as exc:  # protobuf's DecodeError differs between backends
            raise _AttemptFailed(f"the reply is not a FromFunction: {exc}", not okhttp) from None
        return reply


class _Connector(aiohttp.TCPConnector):
    """A pool whose connections live ``ttl`` seconds at most (0: for ever): one that old
    starts no other call, as the runtime's pool drops a connection past its ``pool_ttl``."""

    def __init__(self, ttl: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pool_ttl = ttl
        #: when each connection was first used, about when it was made (names aiohttp has not)
        self._first_used: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    async def connect(self, *args: Any, **kwargs: Any) -> Connection:
        while True:
            connection = await super().connect(*args, **kwargs)
            protocol = connection.protocol
            now = time.monotonic()
            if not self._pool_ttl or protocol is None:
                return connection
            if now - self._first_used.setdefault(protocol, now) < self._pool_ttl:
                return connection
            connection.close()  # too old: closed, and another one taken


def _octet_stream(content_types: list[str], okhttp: bool) -> bool:
    """Whether a reply's ``Content-Type`` headers say ``application/octet-stream`` as the
    runtime's transport reads them: OkHttp's exactly (``MediaType`` equality); the async
    transport's (Netty's ``containsValue(..., ignoreCase=true)``) ignoring case, any one of
    the comma-separated values, trimmed. Neither takes parameters (``; charset=...``)."""
    if okhttp:
        return content_types[-1:] == [CONTENT_TYPE]  # OkHttp reads the last one
    return any(
        value.strip().lower() == CONTENT_TYPE
        for header in content_types
        for value in header.split(",")
    )
