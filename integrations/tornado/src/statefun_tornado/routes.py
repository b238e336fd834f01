"""``make_routes`` for an existing application's rules, ``make_app`` for a ready application."""

from __future__ import annotations

import importlib.util
from concurrent.futures import Executor
from typing import Any, Optional

import pluggy
from tornado.routing import URLSpec
from tornado.web import Application

from statefun_core.http import DEFAULT_MAX_REQUEST_BYTES, FunctionsOrHandler, as_handler

from .handlers import MetricsHandler, StatefunHandler

__all__ = ["make_app", "make_routes"]


def make_routes(
    functions_or_handler: FunctionsOrHandler,
    path: str = "/statefun",
    *,
    max_body_size: int = DEFAULT_MAX_REQUEST_BYTES,
    executor: Optional[Executor] = None,
    plugins: Optional[pluggy.PluginManager] = None,
    metrics_path: Optional[str] = "/metrics",
) -> list[URLSpec]:
    """The routing rules that serve the functions at ``POST path`` (named ``statefun``).

    Given :class:`StatefulFunctions`, builds one :class:`RequestReplyHandler` with ``plugins``
    and ``executor`` (the pool for functions bound with ``blocking=True``; default: the
    loop's). When statefun-prometheus is installed, ``GET metrics_path`` serves the metrics
    (``metrics_path=None`` leaves it out).
    """
    handler = as_handler(functions_or_handler, executor=executor, plugins=plugins)
    options = {"handler": handler, "max_body_size": max_body_size}
    rules = [URLSpec(path, StatefunHandler, options, name="statefun")]
    if metrics_path is not None and importlib.util.find_spec("statefun_prometheus") is not None:
        rules.append(URLSpec(metrics_path, MetricsHandler, name="statefun-metrics"))
    return rules


def make_app(
    functions_or_handler: FunctionsOrHandler,
    path: str = "/statefun",
    *,
    max_body_size: int = DEFAULT_MAX_REQUEST_BYTES,
    executor: Optional[Executor] = None,
    plugins: Optional[pluggy.PluginManager] = None,
    metrics_path: Optional[str] = "/metrics",
    **settings: Any,
) -> Application:
    """An :class:`Application` with :func:`make_routes`; ``settings`` go to the Application."""
    routes = make_routes(
        functions_or_handler,
        path,
        max_body_size=max_body_size,
        executor=executor,
        plugins=plugins,
        metrics_path=metrics_path,
    )
    return Application([*routes], **settings)
