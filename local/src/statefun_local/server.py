"""The runtime's HTTP side: ingress, egress, inspection and a small live web page.

=====================================  ===================================================
``POST /ingress/{ns}/{type}/{id}``     send a message. JSON ``{"type": "string", "value":
                                       "Ann"}`` (``string``, ``int``, ``long``, ``bool``,
                                       ``float``, ``double``), ``{"type": "ns/name", "value":
                                       {...}}`` (JSON), ``{"type": "ns/name", "base64":
                                       "..."}``; or raw bytes (``application/octet-stream``)
                                       with ``?typename=ns/name``
``POST /records/{ns}/{name}``          a Kafka or Kinesis record for the ingress ``ns/name``:
                                       the raw value as the body, ``?topic=...&key=...``
                                       (Kinesis: ``?stream=...&partition_key=...``)
``GET /api/status``                    functions, queues, throughput, egress, failures;
                                       the first 100 stuck addresses and calls being
                                       retried, ``totals`` counting them all
``GET /api/state/{ns}/{type}/{id}``    an address's state, mailbox and timers: the first
                                       ``?limit=`` (100) messages and timers, ``totals``
                                       counting them all; ``without_value``: the states its
                                       function declares that have no value there, each
                                       with its ``type`` (``null`` before the function has
                                       answered since the runtime started)
``POST /api/state/{ns}/{type}/{id}``   set and delete states: ``{"set": {"count": 99},
                                       "delete": ["seen"]}``, each value encoded by its
                                       state's registered type; 409 while a batch of the
                                       address is being called (nothing changed); ``?by=``
                                       as below
``GET /api/addresses/{ns}/{type}``     the ids of a function type with state, messages or
                                       timers, ``?after=ID`` for the next page
``GET /api/egress?after=N&wait=S``     egress records after ``N``, waiting up to ``S`` s
                                       (at most 60)
``GET /``                              the web page (polls ``/api/status``)
``GET /api/stuck``                     addresses whose head message keeps failing, oldest
                                       failure first: 100 (or ``?limit=``), ``?after=P``
                                       (``next``, a ``position``) for the next page
``GET /api/audit``                     what was done to them, newest first: 100 (or
                                       ``?limit=``), ``?before=N`` for the next page
``POST /api/stuck/{action}/{address}`` ``retry``, ``skip`` or ``dead-letter`` the head
                                       message of ``ns/type/id``; ``?by=`` names who did it
                                       in the audit log (default ``api``); ``?message=N``:
                                       only if the head message is still ``N`` (else 409,
                                       nothing done). While a call to
                                       the address is in progress, a skip or dead-letter is
                                       answered 202 ``"done": "pending"``: it is done if
                                       that call fails, moot if it succeeds (the audit log
                                       says which)
=====================================  ===================================================

A module's playground ingress (``io.statefun.playground.v1/ingress``) takes ``PUT`` or ``POST
/{ns}/{type}/{id}`` on its port, the body the message's bytes, typed by a ``Content-Type:
application/vnd.<typename>`` (else ``io.statefun.types/string``), as the playground image
does. Its egress answers ``GET /{topic}`` on its port with the payload of the topic's next
record not taken yet (404: none yet; 405: not one of its topics). On the runtime's own port
they are served beside the routes above (:func:`make_apps`).

An ingress request's W3C ``traceparent`` (and ``tracestate``) header is kept with its
messages: the trace continues through every function they reach.

Every request passes :func:`~statefun_local.guard.guard_middleware` first: no other site's
page can use these through the developer's browser.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import inspect
import json
import math
import os
import re
import sys
from collections.abc import Awaitable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any, Optional, TypeVar

from aiohttp import web

from statefun_core.engine import Address, TraceContext

from . import editing
from .guard import TYPED_BY_CONTENT_TYPE, cross_site_refusal, guard_middleware, typename_problem
from .inspection import SHOWN, address_ids
from .javatext import java_utf8
from .module import PLAYGROUND_EGRESS_ID, PLAYGROUND_INGRESS_ID
from .runtime import LocalRuntime, UnknownFunctionError, UnknownIngressError
from .stuck import HeadChangedError, NotStuckError
from .values import InvalidValueError, make_value

__all__ = ["MAX_REQUEST_LINE", "RUNTIME_KEY", "make_app", "make_apps"]

#: The longest request line served (an ``AppRunner``'s ``max_line_size``): an address in a
#: playground ingress path as long as the image's HTTP server takes (Undertow: a request head
#: of up to 1 MiB), not aiohttp's 8190 bytes.
MAX_REQUEST_LINE = 1 << 20

T = TypeVar("T")

RUNTIME_KEY = web.AppKey("statefun_local_runtime", LocalRuntime)
_STOPPING_KEY = web.AppKey("statefun_local_stopping", asyncio.Event)
#: the tasks of the ingress requests in a send (see _unless_stopping)
_SENDING_KEY = web.AppKey("statefun_local_sending", set["asyncio.Task[Any]"])
#: The longest ``GET /api/egress`` waits for a record.
MAX_WAIT = 60.0
#: Sequence numbers are SQLite integers.
_MAX_SEQ = 2**63 - 1


def _typename(request: web.Request) -> str:
    return _typename_of(f"{request.match_info['namespace']}/{request.match_info['type']}")


def _typename_of(typename: str) -> str:
    _check_text(typename)
    problem = typename_problem(typename)
    if problem is not None:
        raise _bad_request(problem)
    return typename


def _query(request: web.Request, name: str) -> Optional[str]:
    """The query parameter ``name``, if given; given more than once, which one is meant is not
    known: refused."""
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise _bad_request(f"?{name}= is given {len(values)} times: give it once")
    return values[0] if values else None


def _address(request: web.Request) -> Address:
    # the id in the path, or as ?id=: a browser removes an id '.' or '..' from a path (the page
    # sends every id so), and an empty id has no path
    query_id = _query(request, "id")
    id_ = request.match_info.get("id", query_id)
    if id_ is None:
        raise _bad_request("no id: give the address as <namespace>/<type>/<id>, or ?id=<id>")
    if query_id is not None and "id" in request.match_info:
        raise _bad_request("the id is given twice, in the path and as ?id=: give it once")
    address = Address(_typename(request), id_)
    _check_text(address.id)
    return address


def _trace(request: web.Request) -> Optional[TraceContext]:
    """The W3C trace context the ingress request carries, if any: where its message starts."""
    return TraceContext.parse(
        request.headers.get("traceparent"), request.headers.get("tracestate", "")
    )


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=message + "\n")


def _check_text(*texts: str) -> None:
    """Refuse text that can not be UTF-8 (a lone surrogate from a JSON escape): it can be
    neither stored nor sent."""
    for text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _bad_request(f"{text!r} is not valid Unicode (a lone surrogate)") from None


async def _json_body(request: web.Request) -> Any:
    """The body as JSON, which is UTF-8 (RFC 8259): a ``charset`` parameter, which
    ``application/json`` does not define, is not read."""
    try:
        return json.loads((await request.read()).decode("utf-8"))
    except RecursionError:
        raise _bad_request("the body is not JSON this runtime reads: nested too deeply") from None
    except ValueError as error:  # UnicodeDecodeError included
        raise _bad_request(f"the body is not JSON: {error}") from None


async def ingress(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME_KEY]
    target = _address(request)
    try:
        if request.content_type == "application/json":
            body = await _json_body(request)
            if (
                not isinstance(body, dict)
                or not isinstance(body.get("type"), str)
                or not (body.get("base64") is None or isinstance(body["base64"], str))
            ):
                raise _bad_request(
                    'expected {"type": "string", "value": ...} or {"type": "ns/name", '
                    '"base64": "..."}'
                )
            _check_text(body["type"])
            value = make_value(body["type"], body.get("value"), base64_data=body.get("base64"))
        else:
            typename = _query(request, "typename")
            if not typename:
                raise _bad_request(
                    "send JSON (Content-Type: application/json), or raw bytes with "
                    "?typename=namespace/name"
                )
            value = make_value(typename, raw=await request.read())
        seq = await _unless_stopping(request, runtime.send(target, value, _trace(request)))
    except (InvalidValueError, UnknownFunctionError) as error:
        raise _bad_request(str(error)) from None
    return web.json_response(
        {"target": str(target), "type": value.typename, "seq": seq}, status=202
    )


_NOT_QUEUED = (
    "the runtime is stopping: the message was not queued; send it again once the runtime runs\n"
)


async def _unless_stopping(request: web.Request, sending: Awaitable[T]) -> T:
    """``sending`` (a send that may wait while its target has ``maxNumBatchRequests``
    buffered), unless the server stops first: then nothing was queued, and the client is told
    so (503) rather than left with a connection closed on it, not knowing. Stopping cancels
    the request's task where the send waits (it queues its messages in one step, at its end);
    a send that does not wait costs no task of its own. A send that would start once stopping
    began (its request's body still coming then) is not started: 503 too."""
    if request.app[_STOPPING_KEY].is_set():  # nothing would cancel a send that waits
        if inspect.iscoroutine(sending):
            sending.close()  # never started
        raise web.HTTPServiceUnavailable(text=_NOT_QUEUED)
    task = asyncio.current_task()
    assert task is not None  # aiohttp runs each request in a task
    waiting = request.app[_SENDING_KEY]
    waiting.add(task)
    try:
        return await sending
    except asyncio.CancelledError:
        if not request.app[_STOPPING_KEY].is_set():
            raise
        if sys.version_info >= (3, 11):
            task.uncancel()  # answered: the cancellation is done with
        raise web.HTTPServiceUnavailable(text=_NOT_QUEUED) from None
    finally:
        waiting.discard(task)


async def no_address(request: web.Request) -> web.Response:
    raise web.HTTPNotFound(text=f"{request.path}: an address is /ingress/<namespace>/<type>/<id>\n")


async def record(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME_KEY]
    ingress_id = f"{request.match_info['namespace']}/{request.match_info['name']}"
    topic, stream = _query(request, "topic"), _query(request, "stream")
    source = topic or stream or ""
    key, partition_key = _query(request, "key"), _query(request, "partition_key")
    if key is None:  # "" is an id, too
        key = partition_key
    _check_text(ingress_id, source, key or "")
    try:
        seqs = await _unless_stopping(
            request,
            runtime.send_record(ingress_id, source, key, await request.read(), _trace(request)),
        )
    except (UnknownIngressError, UnknownFunctionError) as error:
        raise _bad_request(str(error)) from None
    return web.json_response({"ingress": ingress_id, "messages": seqs}, status=202)


#: the playground image reads a message's typename from a Content-Type with this prefix
_TYPED_CONTENT = "application/vnd."
_PLAYGROUND_DEFAULT_TYPE = "io.statefun.types/string"


async def playground_ingress(request: web.Request) -> web.Response:
    """A message as the playground image's ingress takes it: the body as the value's bytes,
    typed by ``Content-Type: application/vnd.<typename>``."""
    runtime = request.app[RUNTIME_KEY]
    target = _playground_address(request.raw_path)
    content_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip()
    typename = _PLAYGROUND_DEFAULT_TYPE
    if content_type.lower().startswith(_TYPED_CONTENT):
        typename = content_type[len(_TYPED_CONTENT) :]
    try:
        value = make_value(typename, raw=await request.read())
        seq = await _unless_stopping(request, runtime.send(target, value, _trace(request)))
    except (InvalidValueError, UnknownFunctionError) as error:
        raise _bad_request(str(error)) from None
    return web.json_response({"target": str(target), "type": value.typename, "seq": seq})


#: a path parameter (``;name=value``, up to the next ``/``)
_PATH_PARAMETER = re.compile(r";[^/]*")
#: the scheme and host of a request target in absolute form (``PUT http://host/ns/type/id``)
_ABSOLUTE_FORM = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/]*")
_ESCAPE = re.compile(rb"%(..)?", re.DOTALL)
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
#: escapes the image's HTTP server (Undertow, ALLOW_ENCODED_SLASH off) leaves as they are
_KEPT_ESCAPES = frozenset({b"2F", b"5C"})


def _playground_address(raw_path: str) -> Address:
    """The address in a playground ingress request's path, as the image's HTTP server gives it
    to the ingress: path parameters (``;...``) left out, escapes decoded but for ``%2F`` and
    ``%5C``, the bytes read as Java reads UTF-8, split at ``/`` with empty parts at the end
    dropped (so ``/ns/type/id/`` is ``id``); the query is not read."""
    path = _PATH_PARAMETER.sub("", _ABSOLUTE_FORM.sub("", raw_path.split("?", 1)[0]))

    def unescaped(escape: re.Match[bytes]) -> bytes:
        code = escape.group(1)
        if code is None or not set(code) <= _HEX_DIGITS:
            raise _bad_request(
                f"{raw_path}: a '%' is not followed by two hex digits (a '%' is sent as %25)"
            )
        return escape.group(0) if code.upper() in _KEPT_ESCAPES else bytes((int(code, 16),))

    raw = path.encode("utf-8", "surrogateescape")
    parts = java_utf8(_ESCAPE.sub(unescaped, raw))[1:].split("/")
    while parts and not parts[-1]:
        parts.pop()
    if len(parts) != 3:
        raise _bad_request(
            f"{raw_path}: the playground ingress takes /<namespace>/<type>/<id> (a '/' in an id "
            "can not be sent: the playground image keeps %2F as it is)"
        )
    return Address(_typename_of(f"{parts[0]}/{parts[1]}"), parts[2])


async def playground_no_address(request: web.Request) -> web.Response:
    raise _bad_request(f"{request.path}: the playground ingress takes /<namespace>/<type>/<id>")


async def playground_egress(request: web.Request) -> web.Response:
    """The payload of the topic's next record not taken yet, as the playground image's egress
    answers it: 404 when there is none yet, 405 for a topic the egress does not have."""
    # a GET that takes the record: another site's page (an <img> of it) must not take it
    refused = cross_site_refusal(request)
    if refused is not None:
        return refused
    runtime = request.app[RUNTIME_KEY]
    topic = request.match_info["topic"]
    topics = runtime.module.egresses[PLAYGROUND_EGRESS_ID].topics
    if topic not in topics:
        raise web.HTTPMethodNotAllowed(
            request.method, ["GET"],
            text=f"no topic {topic!r} in the playground egress (its topics: {', '.join(topics)})\n",
        )  # fmt: skip
    payload = runtime.take_playground_record(topic)
    if payload is None:
        raise web.HTTPNotFound(text=f"no record in {topic!r} yet\n")
    return web.Response(body=payload)


async def status(request: web.Request) -> web.Response:
    return web.json_response(request.app[RUNTIME_KEY].status())


async def state(request: web.Request) -> web.Response:
    """An address; ``limit``: how many of its messages and delayed messages (``totals`` counts
    them all)."""
    limit = int(_number(request, "limit", SHOWN, maximum=1000, minimum=1))
    return web.json_response(request.app[RUNTIME_KEY].inspect(_address(request), limit))


async def edit_state(request: web.Request) -> web.Response:
    """Set and delete states of an address: ``{"set": {"count": 99}, "delete": ["seen"]}``,
    each value encoded by its state's registered type; ``?by=`` names who did it in the audit
    log (default ``api``); ``?db=PATH``: only if the runtime runs on that database (else 409),
    as the CLI asks."""
    runtime = request.app[RUNTIME_KEY]
    address = _address(request)
    actor = (_query(request, "by") or "api")[:40]
    expected_db = _query(request, "db")
    if expected_db is not None and not _same_file(expected_db, runtime.db):
        raise web.HTTPConflict(
            text=f"this runtime runs on {runtime.db}, not on {expected_db}: nothing changed "
            "(give the --url of the runtime on that database)\n"
        )
    try:
        values, deleted = editing.parse(await _json_body(request))
        _check_text(*values, *deleted)
        detail = runtime.edit_state(address, values, deleted, actor)
    except editing.StateEditError as error:
        raise _bad_request(str(error)) from None
    except editing.AddressBusyError as error:
        raise web.HTTPConflict(text=f"{error}\n") from None
    return web.json_response({"address": str(address), "done": "edited", "detail": detail})


def _same_file(path: str, db: Path) -> bool:
    try:
        return os.path.samefile(path, db)
    except (OSError, ValueError):  # not there; a NUL in the path
        return False


async def addresses(request: web.Request) -> web.Response:
    """A page of a function type's ids; ``next`` is the ``after`` of the next page."""
    typename = _typename(request)
    after = _query(request, "after") or ""
    _check_text(after)
    limit = int(_number(request, "limit", 100, maximum=1000, minimum=1))
    ids = address_ids(request.app[RUNTIME_KEY].store, typename, after, limit + 1)
    return web.json_response(
        {
            "function": typename,
            "ids": ids[:limit],
            "next": ids[limit - 1] if len(ids) > limit else None,
        }
    )


def _number(
    request: web.Request,
    name: str,
    default: float,
    maximum: float,
    integer: bool = True,
    minimum: int = 0,
) -> float:
    """The query parameter ``name``: a finite number from ``minimum`` to ``maximum``."""
    text = _query(request, name)
    if text is None:
        return default
    try:
        number = int(text) if integer else float(text)
    except ValueError:
        number = math.nan
    # the bounds first: math.isfinite of an integer too large for a float raises
    if not (minimum <= number <= maximum and math.isfinite(number)):
        kind = (
            f"an integer from {minimum} to {int(maximum)}"
            if integer
            else f"a finite number, {minimum} or more"
        )
        raise _bad_request(f"{name} must be {kind}, not {text!r}")
    return number


async def egress(request: web.Request) -> web.Response:
    """Egress records after ``after``; with none yet, waits up to ``wait`` s for one, until
    the client goes away or the server stops."""
    runtime = request.app[RUNTIME_KEY]
    after = int(_number(request, "after", 0, maximum=_MAX_SEQ))
    wait = min(_number(request, "wait", 0, maximum=sys.float_info.max, integer=False), MAX_WAIT)
    records = asyncio.ensure_future(runtime.wait_egress(after, wait))
    stopping = asyncio.ensure_future(request.app[_STOPPING_KEY].wait())
    gone = asyncio.ensure_future(_client_gone(request))
    try:
        await asyncio.wait({records, stopping, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (records, stopping, gone):
            task.cancel()
    if not records.done() or records.cancelled():
        return web.json_response({"records": runtime.egress_records(after)})
    return web.json_response({"records": records.result()})


async def _client_gone(request: web.Request, every: float = 0.2) -> None:
    """Returns once the client closed its connection (aiohttp does not cancel the handler)."""
    while request.transport is not None and not request.transport.is_closing():
        await asyncio.sleep(every)


_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def _page_headers(page: str) -> dict[str, str]:
    """The page runs its own script and style only (whatever text it shows, no markup in it
    could run), talks to the runtime only, and no other site may show it in a frame, where a
    click meant for that site's page would land on its Skip or Dead-letter button."""
    allowed = {"script": "", "style": ""}
    for kind, text in _INLINE.findall(page):
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        allowed[kind] += f" 'sha256-{digest}'"
    policy = (
        f"default-src 'none'; script-src{allowed['script']}; style-src{allowed['style']}; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return {"Content-Security-Policy": policy, "X-Frame-Options": "DENY"}


async def index(request: web.Request) -> web.Response:
    page = resources.files(__package__).joinpath("web/index.html").read_text("utf-8")
    return web.Response(text=page, content_type="text/html", headers=_page_headers(page))


# --- stuck addresses ---------------------------------------------------------------------

_ACTIONS = {"retry": LocalRuntime.retry_now, "skip": LocalRuntime.skip,
            "dead-letter": LocalRuntime.dead_letter}  # fmt: skip


async def stuck_list(request: web.Request) -> web.Response:
    """A page of the stuck addresses, oldest failure first; ``next`` is the ``after`` of the
    next page (the ``position`` of the last address shown)."""
    after = _query(request, "after")
    if after is not None:
        _check_text(after)
    limit = int(_number(request, "limit", 100, maximum=1000, minimum=1))
    try:
        entries = request.app[RUNTIME_KEY].stuck(limit + 1, after)
    except ValueError as error:
        raise _bad_request(f"after: {error}") from None
    return web.json_response(
        {
            "stuck": entries[:limit],
            "next": entries[limit - 1]["position"] if len(entries) > limit else None,
        }
    )


async def audit_list(request: web.Request) -> web.Response:
    """A page of the audit log, newest first; ``next`` is the ``before`` of the next page."""
    before = None if _query(request, "before") is None else int(
        _number(request, "before", 0, maximum=_MAX_SEQ, minimum=1))  # fmt: skip
    limit = int(_number(request, "limit", 100, maximum=1000, minimum=1))
    entries = request.app[RUNTIME_KEY].audit_log(limit + 1, before)
    return web.json_response(
        {
            "audit": entries[:limit],
            "next": entries[limit - 1]["seq"] if len(entries) > limit else None,
        }
    )


async def stuck_action(request: web.Request) -> web.Response:
    action = _ACTIONS.get(request.match_info["action"])
    if action is None:
        raise web.HTTPNotFound(
            text=f"no action {request.match_info['action']!r}; use {', '.join(_ACTIONS)}\n"
        )
    address = _address(request)
    actor = (_query(request, "by") or "api")[:40]
    message = None if _query(request, "message") is None else int(
        _number(request, "message", 0, maximum=_MAX_SEQ, minimum=1))  # fmt: skip
    try:
        outcome = action(request.app[RUNTIME_KEY], address, actor, message)
    except NotStuckError as error:
        raise web.HTTPNotFound(text=f"{error}\n") from None
    except HeadChangedError as error:
        raise web.HTTPConflict(text=f"{error}\n") from None
    reply = {"address": str(address), "done": outcome.done}
    if outcome.detail:
        reply["detail"] = outcome.detail
    return web.json_response(reply, status=202 if outcome.done == "pending" else 200)


async def _started(app: web.Application) -> None:
    app[_STOPPING_KEY] = asyncio.Event()
    app[_SENDING_KEY] = set()


async def _stopping(app: web.Application) -> None:
    app[_STOPPING_KEY].set()
    for task in app[_SENDING_KEY]:  # each waiting in a send: answered 503
        task.cancel()


def _app(runtime: LocalRuntime, allowed_hosts: Iterable[str]) -> web.Application:
    app = web.Application(middlewares=[guard_middleware(allowed_hosts)])
    app[RUNTIME_KEY] = runtime
    app.on_startup.append(_started)
    app.on_shutdown.append(_stopping)
    return app


def make_apps(
    runtime: LocalRuntime, port: int, *, allowed_hosts: Iterable[str] = ()
) -> dict[int, web.Application]:
    """The web applications to serve on each port: the runtime's (:func:`make_app`) on
    ``port``, and the module's playground ingress and egress on theirs, beside the runtime's
    routes when on the same port (the playground's greeter listens on 8090, the runtime's
    default port)."""
    apps = {port: make_app(runtime, allowed_hosts=allowed_hosts)}

    def app_on(playground_port: int) -> web.Application:
        if playground_port not in apps:
            apps[playground_port] = _app(runtime, allowed_hosts)
        return apps[playground_port]

    ingress = runtime.module.ingresses.get(PLAYGROUND_INGRESS_ID)
    if ingress is not None:
        app = app_on(ingress.port)
        for method in ("PUT", "POST"):
            # the address is read from the raw path, as the image reads it (_playground_address);
            # [\s\S]: an id may hold a line break (%0A), which '.' would not match
            app.router.add_route(
                method,
                r"/{namespace}/{type}/{id:[\s\S]+}",
                playground_ingress,
                name=f"{TYPED_BY_CONTENT_TYPE}-{method.lower()}",  # a router's names are unique
            )
            if ingress.port != port:  # there, a mistyped runtime route would get this answer
                app.router.add_route(method, r"/{partial:[\s\S]*}", playground_no_address)
    egress = runtime.module.egresses.get(PLAYGROUND_EGRESS_ID)
    if egress is not None:
        # no HEAD: a GET takes the record, and a HEAD's answer has no body to give it in;
        # a topic is any text, '/' and braces too, as the image's
        app_on(egress.port).router.add_get("/{topic:.+}", playground_egress, allow_head=False)
    return apps


def make_app(runtime: LocalRuntime, *, allowed_hosts: Iterable[str] = ()) -> web.Application:
    """The runtime's web application (start and stop the runtime yourself). ``allowed_hosts``:
    names besides ``localhost`` and IP addresses that requests may give in ``Host``. Without
    the module's playground ingress and egress, which listen on ports of their own:
    :func:`make_apps` gives every port's application."""
    app = _app(runtime, allowed_hosts)
    # an id is anything, a line break (%0A) too, which '.' would not match: [\s\S]
    app.router.add_post(r"/ingress/{namespace}/{type}/{id:[\s\S]+}", ingress)
    app.router.add_post(r"/ingress/{partial:[\s\S]*}", no_address)
    app.router.add_post("/records/{namespace}/{name}", record)
    app.router.add_get("/api/status", status)
    app.router.add_get(r"/api/state/{namespace}/{type}/{id:[\s\S]+}", state)
    app.router.add_get("/api/state/{namespace}/{type}", state)  # ?id=
    app.router.add_post(r"/api/state/{namespace}/{type}/{id:[\s\S]+}", edit_state)
    app.router.add_post("/api/state/{namespace}/{type}", edit_state)  # ?id=
    app.router.add_get("/api/addresses/{namespace}/{type}", addresses)
    app.router.add_get("/api/egress", egress)
    app.router.add_get("/", index)
    app.router.add_get("/api/stuck", stuck_list)
    app.router.add_get("/api/audit", audit_list)
    app.router.add_post(r"/api/stuck/{action}/{namespace}/{type}/{id:[\s\S]+}", stuck_action)
    app.router.add_post("/api/stuck/{action}/{namespace}/{type}", stuck_action)  # ?id=
    return app
