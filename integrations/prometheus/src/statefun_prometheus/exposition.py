"""The body and content type of a ``/metrics`` response, for any web framework."""

from __future__ import annotations

import os
from typing import Optional

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

__all__ = ["metrics_response"]


def metrics_response(registry: Optional[CollectorRegistry] = None) -> tuple[bytes, str]:
    """``(body, content_type)`` of the Prometheus text exposition of ``registry``.

    Without a registry: the default one, or, when ``PROMETHEUS_MULTIPROC_DIR`` is set, the
    metrics of every process that wrote to that directory, merged.
    """
    if registry is None:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST
