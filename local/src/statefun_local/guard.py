"""What keeps the runtime's HTTP side to the developer's own tools: loopback is no boundary
against a page open in the developer's browser.

- Every request must name the runtime in ``Host`` by an IP address, ``localhost`` or a name
  allowed with ``--allow-host``: a page that had its own domain name resolve to 127.0.0.1 (DNS
  rebinding) sends its own name, and is refused.
- A request that changes something (any method but GET, HEAD, OPTIONS) must come from the
  runtime's own page or from outside a browser: an ``Origin`` other than the runtime's own, or a
  ``Sec-Fetch-Site`` other than ``same-origin``/``none``, is refused; and unless the browser
  says it comes from the runtime's own page, it must carry a ``Content-Type`` a page on another
  origin can not send without asking first (not ``text/plain``, a form's, none, or a
  browser's own ping or CSP report).
- The playground egress' ``GET``, which takes a record, is refused on the same ``Origin`` and
  ``Sec-Fetch-Site`` (:func:`cross_site_refusal`).

Also here: log lines that keep to one line whatever a typename, id or reply holds.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Optional

from aiohttp import web

from statefun_core.plugins.logcontext import one_line

if TYPE_CHECKING:
    from aiohttp.typedefs import Handler, Middleware

__all__ = [
    "TYPED_BY_CONTENT_TYPE",
    "cross_site_refusal",
    "guard_middleware",
    "one_line",
    "one_line_logger",
    "typename_problem",
]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: What a page may send to any origin without a CORS preflight (Fetch standard), and what a
#: browser sends there itself when a page asks: a link's ping, CSP violation reports (which
#: browsers before Fetch metadata sent with neither Origin nor Sec-Fetch-Site).
_SIMPLE_CONTENT_TYPES = frozenset(
    {"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
     "text/ping", "application/csp-report", "application/reports+json"}
)  # fmt: skip
_SAME_SITE_OK = frozenset({"same-origin", "none"})
#: the name of a route whose body's type its Content-Type names (the playground ingress'):
#: a refused simple type is answered with that way to type it
TYPED_BY_CONTENT_TYPE = "typed-by-content-type"


def _hostname(host: str) -> str:
    """The name or address of a ``Host`` header, without the port and IPv6 brackets."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    name, colon, port = host.rpartition(":")
    return name if colon and port.isdigit() else host


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def cross_site_refusal(request: web.Request) -> Optional[web.Response]:
    """The refusal of a request another origin's page made the browser send (its ``Origin``
    or ``Sec-Fetch-Site`` says so), else None: for a request that changes something."""
    origin = request.headers.get("Origin")
    if origin is not None:
        own = f"{request.scheme}://{request.headers.get('Host')}"
        if origin.lower() != own.lower():
            return web.Response(status=403, text=f"cross-origin request from {origin!r} refused\n")
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.lower() not in _SAME_SITE_OK:
        return web.Response(status=403, text=f"{site} request refused (Sec-Fetch-Site)\n")
    return None


def guard_middleware(allowed_hosts: Iterable[str] = ()) -> Middleware:
    """The middleware refusing what a page on another origin could make a browser send."""
    names = {"localhost", *(host.lower() for host in allowed_hosts)}

    def refusal(request: web.Request) -> Optional[web.Response]:
        host = request.headers.get("Host")
        if host is not None and not (_is_ip(_hostname(host)) or _hostname(host).lower() in names):
            return web.Response(status=403, text=(
                f"Host {host!r} is not this runtime's: use its address, or localhost "
                "(statefun-local run --allow-host NAME allows a name)\n"))  # fmt: skip
        if request.method in _SAFE_METHODS:
            return None
        refused = cross_site_refusal(request)
        if refused is not None:
            return refused
        # the page's own form posts say where they come from; anything else must use a type
        # that no other site's page can send without a preflight (which is never allowed)
        site = request.headers.get("Sec-Fetch-Site", "")
        own_page = "Origin" in request.headers or site.lower() == "same-origin"
        content_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if content_type in _SIMPLE_CONTENT_TYPES and not own_page:
            if (request.match_info.route.name or "").startswith(TYPED_BY_CONTENT_TYPE):
                wanted = "application/vnd.<namespace>/<type> (the message's typename)"
            else:
                wanted = "application/json"
            return web.Response(status=415, text=(
                f"Content-Type {content_type or '(none)'} refused: send {wanted}, or "
                "application/octet-stream for raw bytes\n"))  # fmt: skip
        return None

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        refused = refusal(request)  # not `or`: before aiohttp 3.12 a Response is falsy
        if refused is not None:
            return refused
        return await handler(request)

    return guard


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def json_line(value: Any) -> str:
    """``value`` as one line of JSON, its text as it is, but for a lone surrogate (a JSON
    value's ``"\\ud800"``: Python's ``json`` reads it so), escaped as JSON writes it: a line
    any UTF-8 output takes."""
    text = json.dumps(value, ensure_ascii=False)
    return _LONE_SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


class _OneLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        escaped = one_line(message)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True


_ONE_LINE = _OneLine()


def one_line_logger(name: str) -> logging.Logger:
    """The logger ``name``, whose messages keep to one line: a typename, an id or a function's
    reply can not forge a log line."""
    log = logging.getLogger(name)
    if _ONE_LINE not in log.filters:
        log.addFilter(_ONE_LINE)
    return log


def typename_problem(typename: str) -> Optional[str]:
    """Why ``typename`` can not be a function type the runtime calls, or None. Its name goes
    into the endpoint's URL (percent-encoded): these would still make the URL say something
    else than the typename."""
    parts = typename.split("/")
    if len(parts) < 2 or not all(parts):
        return f"{typename!r} is not a typename 'namespace/name'"
    if any(part in (".", "..") for part in parts):
        return f"{one_line(typename)!r}: '.' and '..' are not names"
    if "?" in typename or "#" in typename or _CONTROL.search(typename):
        return f"{one_line(typename)!r}: a typename holds no '?', '#' or control characters"
    return None
