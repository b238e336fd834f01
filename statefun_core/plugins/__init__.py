"""The plugin host: pluggy, project ``statefun``, hooks prefixed ``statefun_``.

Write a plugin as a module or object with functions marked ``@hookimpl`` and named after the
specifications in :mod:`statefun_core.plugins.hookspecs`; publish it under the entry-point group
``statefun``. See ``docs/plugins.md``.
"""

from .endpoints import Endpoint, EndpointResponse, allowed_methods, find_endpoint, header
from .events import BatchEvent, InvocationCancelled, InvocationEvent, InvocationRetried, Outcome
from .health import HealthEndpoints
from .logcontext import (
    InvocationLogContext,
    InvocationLogFilter,
    add_invocation_context,
    current_invocation,
)
from .manager import (
    DISABLE_AUTOLOAD_ENV,
    DISABLED_PLUGINS_ENV,
    ENTRY_POINT_GROUP,
    PROJECT,
    hookimpl,
    hookspec,
    make_plugin_manager,
)

__all__ = [
    "DISABLED_PLUGINS_ENV",
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "PROJECT",
    "BatchEvent",
    "Endpoint",
    "EndpointResponse",
    "HealthEndpoints",
    "InvocationCancelled",
    "InvocationEvent",
    "InvocationLogContext",
    "InvocationLogFilter",
    "InvocationRetried",
    "Outcome",
    "add_invocation_context",
    "allowed_methods",
    "current_invocation",
    "find_endpoint",
    "header",
    "hookimpl",
    "hookspec",
    "make_plugin_manager",
]
