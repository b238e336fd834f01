"""Serve StateFun remote functions from an aiohttp application.

Mount on an existing application::

    statefun_aiohttp.setup(app, functions)                        # POST /statefun

or as a sub-application::

    app.add_subapp("/statefun/", statefun_aiohttp.create_app(functions))

The body limit is the ``client_max_size`` of the application the server runs, the parent one
when mounted: aiohttp's default, 1 MiB, is too small for the runtime's batches (up to 32 MiB).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from statefun_core.http import integration_exports

if TYPE_CHECKING:
    from .app import (
        HANDLER_KEY,
        create_app,
        endpoint_view,
        expect_continue,
        handle_request,
        setup,
    )

__all__ = [
    "HANDLER_KEY",
    "create_app",
    "endpoint_view",
    "expect_continue",
    "handle_request",
    "setup",
]

# hidden from type checkers, which read the imports above: a module __getattr__ would make
# any name, a misspelt one too, type-check as Any
if not TYPE_CHECKING:
    __getattr__ = integration_exports(
        __name__,
        dict.fromkeys(__all__, ".app"),
        framework="aiohttp",
        install="statefun-aiohttp",
    )

__version__ = "0.1.0"
