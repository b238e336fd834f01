"""The ``/metrics`` endpoint: prometheus_client's exposition, negotiated as its own server does."""

from __future__ import annotations

import gzip
import os
from typing import Mapping, Optional

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.exposition import choose_encoder

from statefun_core.plugins import EndpointResponse, header

__all__ = ["metrics_endpoint", "metrics_response"]

#: The directory of prometheus_client's multiprocess mode, which also takes (deprecated) the
#: lowercase name: its workers write there with either set.
_MULTIPROC_DIR_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")


def multiprocess_dir_set() -> bool:
    """Whether ``PROMETHEUS_MULTIPROC_DIR`` (or its lowercase name) is set."""
    return any(os.environ.get(name) for name in _MULTIPROC_DIR_VARIABLES)


def _registry(registry: Optional[CollectorRegistry]) -> CollectorRegistry:
    """``registry`` (the default one if None); or, when ``PROMETHEUS_MULTIPROC_DIR`` is set, the
    metrics of every process that wrote to that directory, merged (prometheus_client's
    multiprocess mode, in which every metric, whatever its registry, is written there: one
    registry alone would show this worker's counts only)."""
    if multiprocess_dir_set():
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return merged
    return REGISTRY if registry is None else registry


def metrics_response(registry: Optional[CollectorRegistry] = None) -> tuple[bytes, str]:
    """``(body, content_type)`` of the Prometheus text exposition of ``registry`` (default: the
    default registry), or of the multiprocess directory's metrics when it is set: what
    :func:`metrics_endpoint` answers a request that asks for no format."""
    response = metrics_endpoint({}, registry)
    return response.body, response.headers["Content-Type"]


def metrics_endpoint(
    headers: Mapping[str, str], registry: Optional[CollectorRegistry] = None
) -> EndpointResponse:
    """The answer to ``GET /metrics``: OpenMetrics when the ``Accept`` header asks for it, the
    text format otherwise (prometheus_client's ``choose_encoder``), gzipped when
    ``Accept-Encoding`` allows it."""
    encoder, content_type = choose_encoder(header(headers, "Accept") or "")
    body = encoder(_registry(registry))
    response_headers = {"Content-Type": content_type}
    if "gzip" in (header(headers, "Accept-Encoding") or ""):
        body = gzip.compress(body)
        response_headers["Content-Encoding"] = "gzip"
    return EndpointResponse(200, response_headers, body)
