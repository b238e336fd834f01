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
``GET /api/status``                    functions, queues, throughput, egress, failures
``GET /api/state/{ns}/{type}/{id}``    an address's state, mailbox and timers
``GET /api/egress?after=N&wait=S``     egress records after ``N``, waiting up to ``S`` s
``GET /``                              the web page (polls ``/api/status``)
``GET /api/stuck``                     addresses whose head message keeps failing
``GET /api/audit``                     what was done to them, newest first
``POST /api/stuck/{action}/{address}`` ``retry``, ``skip`` or ``dead-letter`` the head
                                       message of ``ns/type/id``; ``?by=`` names who did it
                                       in the audit log (default ``api``)
=====================================  ===================================================

An ingress request's W3C ``traceparent`` (and ``tracestate``) header is kept with its
messages: the trace continues through every function they reach.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Optional

from aiohttp import web

from statefun_core.engine import Address, TraceContext

from .runtime import LocalRuntime, UnknownFunctionError, UnknownIngressError
from .stuck import BusyAddressError, NotStuckError
from .values import InvalidValueError, make_value

__all__ = ["RUNTIME_KEY", "make_app"]

RUNTIME_KEY = web.AppKey("statefun_local_runtime", LocalRuntime)


def _address(request: web.Request) -> Address:
    info = request.match_info
    return Address(f"{info['namespace']}/{info['type']}", info["id"])


def _trace(request: web.Request) -> Optional[TraceContext]:
    """The W3C trace context the ingress request carries, if any: where its message starts."""
    return TraceContext.parse(request.headers.get("traceparent"),
                              request.headers.get("tracestate", ""))


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=message + "\n")


async def ingress(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME_KEY]
    target = _address(request)
    try:
        if request.content_type == "application/json":
            try:
                body: Any = await request.json()
            except ValueError as error:
                raise _bad_request(f"the body is not JSON: {error}") from None
            if not isinstance(body, dict) or "type" not in body:
                raise _bad_request(
                    'expected {"type": "string", "value": ...} or {"type": "ns/name", '
                    '"base64": "..."}'
                )
            value = make_value(str(body["type"]), body.get("value"),
                               base64_data=body.get("base64"))
        else:
            typename = request.query.get("typename")
            if not typename:
                raise _bad_request(
                    "send JSON (Content-Type: application/json), or raw bytes with "
                    "?typename=namespace/name"
                )
            value = make_value(typename, raw=await request.read())
        seq = await runtime.send(target, value, _trace(request))
    except (InvalidValueError, UnknownFunctionError) as error:
        raise _bad_request(str(error)) from None
    return web.json_response(
        {"target": str(target), "type": value.typename, "seq": seq}, status=202
    )


async def record(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME_KEY]
    ingress_id = f"{request.match_info['namespace']}/{request.match_info['name']}"
    source = request.query.get("topic") or request.query.get("stream") or ""
    key = request.query.get("key") or request.query.get("partition_key") or ""
    try:
        seqs = await runtime.send_record(ingress_id, source, key, await request.read(),
                                         _trace(request))
    except (UnknownIngressError, UnknownFunctionError) as error:
        raise _bad_request(str(error)) from None
    return web.json_response({"ingress": ingress_id, "messages": seqs}, status=202)


async def status(request: web.Request) -> web.Response:
    return web.json_response(request.app[RUNTIME_KEY].status())


async def state(request: web.Request) -> web.Response:
    return web.json_response(request.app[RUNTIME_KEY].inspect(_address(request)))


async def egress(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME_KEY]
    try:
        after = int(request.query.get("after", "0"))
        wait = min(float(request.query.get("wait", "0")), 60.0)
    except ValueError:
        raise _bad_request("after must be an integer and wait a number of seconds") from None
    records = await runtime.wait_egress(after, wait)
    return web.json_response({"records": records})


async def index(request: web.Request) -> web.Response:
    page = resources.files(__package__).joinpath("web/index.html").read_text("utf-8")
    return web.Response(text=page, content_type="text/html")


# --- stuck addresses ---------------------------------------------------------------------

_ACTIONS = {"retry": LocalRuntime.retry_now, "skip": LocalRuntime.skip,
            "dead-letter": LocalRuntime.dead_letter}  # fmt: skip


async def stuck_list(request: web.Request) -> web.Response:
    return web.json_response({"stuck": request.app[RUNTIME_KEY].stuck()})


async def audit_list(request: web.Request) -> web.Response:
    return web.json_response({"audit": request.app[RUNTIME_KEY].audit_log()})


async def stuck_action(request: web.Request) -> web.Response:
    action = _ACTIONS.get(request.match_info["action"])
    if action is None:
        raise web.HTTPNotFound(text=f"no action {request.match_info['action']!r}; use "
                                    f"{', '.join(_ACTIONS)}\n")
    address = _address(request)
    actor = request.query.get("by", "api")[:40] or "api"
    try:
        done = action(request.app[RUNTIME_KEY], address, actor)
    except NotStuckError as error:
        raise web.HTTPNotFound(text=f"{error}\n") from None
    except BusyAddressError as error:
        raise web.HTTPConflict(text=f"{error}\n") from None
    return web.json_response({"address": str(address), "done": done})


def make_app(runtime: LocalRuntime) -> web.Application:
    """The runtime's web application (start and stop the runtime yourself)."""
    app = web.Application()
    app[RUNTIME_KEY] = runtime
    app.router.add_post("/ingress/{namespace}/{type}/{id:.+}", ingress)
    app.router.add_post("/records/{namespace}/{name}", record)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/state/{namespace}/{type}/{id:.+}", state)
    app.router.add_get("/api/egress", egress)
    app.router.add_get("/", index)
    app.router.add_get("/api/stuck", stuck_list)
    app.router.add_get("/api/audit", audit_list)
    app.router.add_post("/api/stuck/{action}/{namespace}/{type}/{id:.+}", stuck_action)
    return app
