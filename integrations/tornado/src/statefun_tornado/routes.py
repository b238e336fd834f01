"""``make_routes`` for an existing application's rules, ``make_app`` for a ready application."""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any, Optional

import pluggy
from tornado.routing import URLSpec
from tornado.web import Application

from statefun_core.http import FunctionsOrHandler, as_handler

from .handlers import EndpointHandler, StatefunHandler

__all__ = ["make_app", "make_routes"]


def make_routes(
    functions_or_handler: FunctionsOrHandler,
    path: str = "/statefun",
    *,
    max_body_size: Optional[int] = None,
    executor: Optional[Executor] = None,
    plugins: Optional[pluggy.PluginManager] = None,
    endpoints: bool = True,
) -> list[URLSpec]:
    """The routing rules that serve the functions at ``POST path`` (named ``statefun``; a
    regular expression, as every Tornado rule, its leading slash added if missing), with or
    without a trailing slash (the runtime follows no redirect, and module files differ).

    Given :class:`StatefulFunctions`, builds one :class:`RequestReplyHandler` with ``plugins``
    and ``executor`` (the pool for functions bound with ``blocking=True``; default: the
    loop's). ``max_body_size`` left out, the application's ``statefun_max_body_size`` setting
    is the limit, or 32 MiB without it. The endpoints the plugins contribute (``/metrics`` of
    statefun-prometheus, health) get a rule per path, at the root as the plugin names it (named
    ``statefun-endpoint-<path>``; ``endpoints=False`` leaves them out).
    """
    path = "/" + path.lstrip("/")  # Tornado matches the path with its slash: "statefun" never
    handler = as_handler(functions_or_handler, executor=executor, plugins=plugins)
    options: dict[str, Any] = {"handler": handler}
    if max_body_size is not None:  # else the application's setting, or the default
        options["max_body_size"] = max_body_size
    rules = [URLSpec(path, StatefunHandler, options, name="statefun")]
    other = path[:-1] if path.endswith("/") else f"{path}/"
    if other:
        rules.append(URLSpec(other, StatefunHandler, options))
    if endpoints:
        handler.check_endpoints_clear_of(path)
        for endpoint_path in dict.fromkeys(endpoint.path for endpoint in handler.endpoints):
            at_path = [endpoint for endpoint in handler.endpoints if endpoint.path == endpoint_path]
            name = f"statefun-endpoint-{endpoint_path}"
            rules.append(URLSpec(endpoint_path, EndpointHandler, {"endpoints": at_path}, name=name))
    return rules


def make_app(
    functions_or_handler: FunctionsOrHandler,
    path: str = "/statefun",
    *,
    max_body_size: Optional[int] = None,
    executor: Optional[Executor] = None,
    plugins: Optional[pluggy.PluginManager] = None,
    endpoints: bool = True,
    **settings: Any,
) -> Application:
    """An :class:`Application` with :func:`make_routes`; ``settings`` go to the Application
    (``statefun_max_body_size`` among them is the limit when ``max_body_size`` is left out)."""
    routes = make_routes(
        functions_or_handler,
        path,
        max_body_size=max_body_size,
        executor=executor,
        plugins=plugins,
        endpoints=endpoints,
    )
    return Application([*routes], **settings)
