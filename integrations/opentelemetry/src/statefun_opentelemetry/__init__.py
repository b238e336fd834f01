"""OpenTelemetry tracing for StateFun remote functions: a span per batch, a child per invocation,
a span per rejected request; trace context carried from message to message.

Installed, the plugin registers itself (entry point ``opentelemetry``) and traces with the global
tracer provider. Depends on ``opentelemetry-api`` only; configure the SDK in your application.
"""

from __future__ import annotations

from statefun_core.errors import IntegrationNotAvailableError

try:
    import opentelemetry.trace  # noqa: F401
except ImportError as _error:  # pragma: no cover - opentelemetry-api is a dependency
    raise IntegrationNotAvailableError(
        "statefun_opentelemetry needs opentelemetry-api: pip install statefun-opentelemetry"
    ) from _error

__version__ = "0.1.0"  # before .plugin, which names its tracer with it

from .plugin import SCRATCH_KEY, OpenTelemetryPlugin

__all__ = ["SCRATCH_KEY", "OpenTelemetryPlugin"]
