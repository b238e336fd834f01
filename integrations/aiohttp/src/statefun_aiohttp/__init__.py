"""Serve StateFun remote functions from an aiohttp application.

Mount on an existing application::

    statefun_aiohttp.setup(app, functions)                        # POST /statefun

or as a sub-application::

    app.add_subapp("/statefun/", statefun_aiohttp.create_app(functions))
"""

from __future__ import annotations

from statefun_core.errors import IntegrationNotAvailableError

try:
    import aiohttp  # noqa: F401
except ImportError as error:  # pragma: no cover - aiohttp is a dependency
    raise IntegrationNotAvailableError(
        "statefun_aiohttp needs aiohttp: pip install statefun-aiohttp"
    ) from error

from .app import HANDLER_KEY, create_app, endpoint_view, handle_request, setup

__version__ = "0.1.0"

__all__ = ["HANDLER_KEY", "create_app", "endpoint_view", "handle_request", "setup"]
