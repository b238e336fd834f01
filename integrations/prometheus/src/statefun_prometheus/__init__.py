"""Prometheus metrics for StateFun remote functions.

Installed, the plugin registers itself (entry point ``prometheus``) with metrics on
prometheus_client's default registry, served at ``GET /metrics`` by every integration
(through the ``statefun_endpoints`` hook); :func:`metrics_endpoint` and
:func:`metrics_response` for a server of your own.
"""

from __future__ import annotations

from statefun_core.errors import IntegrationNotAvailableError

try:
    import prometheus_client  # noqa: F401
except ImportError as _error:  # pragma: no cover - prometheus-client is a dependency
    raise IntegrationNotAvailableError(
        "statefun_prometheus needs prometheus_client: pip install statefun-prometheus"
    ) from _error

from .exposition import metrics_endpoint, metrics_response
from .plugin import PrometheusPlugin

__version__ = "0.1.0"

__all__ = ["PrometheusPlugin", "metrics_endpoint", "metrics_response"]
