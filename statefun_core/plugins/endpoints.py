"""HTTP endpoints that plugins contribute (``statefun_endpoints``), free of any web framework.

An :class:`Endpoint` is a method, a path and a callable from the request headers to an
:class:`EndpointResponse`. Every integration mounts a handler's ``endpoints`` beside the
function endpoint; a plain ASGI or WSGI app finds one with
:meth:`~statefun_core.RequestReplyHandler.endpoint_for`, calls :meth:`Endpoint.respond` and
writes what it returns.
"""

from __future__ import annotations

import inspect
import logging
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, NamedTuple, Optional, Sequence

from ..errors import PluginError

__all__ = ["Endpoint", "EndpointResponse", "allowed_methods", "find_endpoint", "header"]

logger: logging.Logger = logging.getLogger("statefun_core.plugins")


class EndpointResponse(NamedTuple):
    """What an endpoint answers: ``(status, headers, body)``."""

    status: int
    headers: Mapping[str, str]
    body: bytes


_FAILED = EndpointResponse(500, {"Content-Type": "text/plain; charset=utf-8"}, b"endpoint failed")


@dataclass(frozen=True)
class Endpoint:
    """``method`` (``"GET"``) and ``path`` (``"/metrics"``, from the root of the application
    the integration serves) answered by ``handle(headers)``.

    ``headers`` is the request's headers, case-insensitive as the framework gives them (read
    them with :func:`header` to be safe with a plain dict). ``handle`` runs on the server's
    thread or event loop: keep it short, with no blocking I/O."""

    method: str
    path: str
    handle: Callable[[Mapping[str, str]], EndpointResponse]

    def respond(self, headers: Mapping[str, str]) -> EndpointResponse:
        """``handle(headers)``; a 500 with a short text when it raises or answers anything but
        an ``EndpointResponse`` (logged, no traceback to the caller)."""
        try:
            answer = self.handle(headers)
        except Exception:
            logger.exception("statefun endpoint %s %s failed", self.method, self.path)
            return _FAILED
        if not _is_response(answer):
            logger.error(
                "statefun endpoint %s %s answered %r; expected EndpointResponse(status, "
                "headers, body): a status from 100 to 599, headers of strings on one line, "
                "a bytes body",
                self.method,
                self.path,
                answer,
            )
            return _FAILED
        status, answered, body = answer
        # the server frames the body itself: a length the endpoint gives could cut it short
        kept = {k: v for k, v in answered.items() if k.lower() not in _DROPPED_FROM_ENDPOINTS}
        return EndpointResponse(status, kept, body)


class PluginEndpoints(list[Endpoint]):
    """The endpoints one plugin's ``statefun_endpoints`` returned, checked, with its name."""

    def __init__(self, plugin: str, endpoints: Iterable[Endpoint] = ()) -> None:
        super().__init__(endpoints)
        self.plugin = plugin


def checked_endpoints(plugin: str, contributed: object) -> PluginEndpoints:
    """What ``plugin``'s ``statefun_endpoints`` returned, checked to be a list of endpoints
    that a server can route: ``PluginError`` naming the plugin if not."""
    if contributed is None:
        return PluginEndpoints(plugin)
    items: list[object] = list(contributed) if isinstance(contributed, (list, tuple)) else []
    wrong = [item for item in items if not isinstance(item, Endpoint)]
    if wrong or not isinstance(contributed, (list, tuple)):
        shown = wrong[0] if wrong else contributed
        raise PluginError(
            f"statefun plugin {plugin!r} returned {type(shown).__name__} from "
            "statefun_endpoints; expected a list of Endpoint(method, path, handle)"
        )
    endpoints = PluginEndpoints(plugin, (item for item in items if isinstance(item, Endpoint)))
    for endpoint in endpoints:
        _check_endpoint(plugin, endpoint)
    return endpoints


def _check_endpoint(plugin: str, endpoint: Endpoint) -> None:
    where = f"{endpoint.method} {endpoint.path}"
    if not (
        isinstance(endpoint.method, str) and endpoint.method.isalpha() and endpoint.method.isupper()
    ):
        raise PluginError(
            f"statefun plugin {plugin!r} method {endpoint.method!r} of {where} is not an "
            "upper-case HTTP method"
        )
    if not (isinstance(endpoint.path, str) and endpoint.path.startswith("/")):
        raise PluginError(
            f"statefun plugin {plugin!r} path {endpoint.path!r} of {where} does not start with '/'"
        )
    if inspect.iscoroutinefunction(endpoint.handle):
        raise PluginError(
            f"statefun plugin {plugin!r} handle of {where} is async: an endpoint's handle is a "
            "plain function (no integration awaits it)"
        )


_DROPPED_FROM_ENDPOINTS = frozenset({"content-length", "transfer-encoding", "connection"})


def _is_response(answer: object) -> bool:
    if not isinstance(answer, tuple) or len(answer) != 3:
        return False
    status, headers, body = answer
    return (
        isinstance(status, int)
        and 100 <= status <= 599
        and isinstance(headers, Mapping)
        and all(is_header(name, value) for name, value in headers.items())
        and isinstance(body, bytes)
    )


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def is_header(name: object, value: object) -> bool:
    """Whether a server can write ``name: value``: a token and a string on one line."""
    return (
        isinstance(name, str)
        and _TOKEN.fullmatch(name) is not None
        and isinstance(value, str)
        and "\r" not in value
        and "\n" not in value
        and "\0" not in value
    )


def header(headers: Mapping[str, str], name: str) -> Optional[str]:
    """The value of header ``name`` in ``headers``, whatever the case of its key."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def find_endpoint(endpoints: Sequence[Endpoint], method: str, path: str) -> Optional[Endpoint]:
    """The endpoint for ``method`` and ``path`` (a ``HEAD`` finds the ``GET`` one), or None."""
    method = "GET" if method == "HEAD" else method
    for endpoint in endpoints:
        if endpoint.path == path and endpoint.method == method:
            return endpoint
    return None


def allowed_methods(endpoints: Sequence[Endpoint], path: str) -> str:
    """The ``Allow`` header of a 405 at ``path``: its endpoints' methods, and ``HEAD`` beside
    a ``GET`` (which answers it); empty when no endpoint is there."""
    methods = {endpoint.method for endpoint in endpoints if endpoint.path == path}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))
