"""``PrometheusPlugin``: the lifecycle events of the handler as Prometheus metrics.

Labels are bounded: ``function_type`` (the functions an endpoint serves), ``outcome``,
``kind`` and ``status``; never an id. Requests rejected before a batch exists are counted by
status only, since their typename comes from the (untrusted) request.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, values

from statefun_core.http import status_for
from statefun_core.plugins import (
    BatchEvent,
    Endpoint,
    EndpointResponse,
    InvocationCancelled,
    InvocationEvent,
    InvocationRetried,
    hookimpl,
)
from statefun_core.tracecontext import TRACERESPONSE, is_traceparent

from .exposition import metrics_endpoint, multiprocess_dir_set

if TYPE_CHECKING:
    from statefun_core import RequestReplyHandler

__all__ = ["BATCH_SIZE_BUCKETS", "DURATION_BUCKETS", "PrometheusPlugin"]

logger: logging.Logger = logging.getLogger("statefun_prometheus")

BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
#: Seconds: a batch of quick functions takes well under a millisecond (prometheus_client's
#: default buckets start at 5 ms, where every such batch would fall in the first one), and the
#: runtime gives up on a request after its call timeout, 1 minute by default.
DURATION_BUCKETS = (
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


class PrometheusPlugin:
    """Registers its metrics on ``registry`` (default: prometheus_client's ``REGISTRY``).

    Make one per registry: a second instance on the same registry is a duplicate-metric error.
    Every integration serves the registry at ``GET metrics_path`` (``None``: not served).
    ``duration_buckets`` are the upper bounds of ``statefun_batch_duration_seconds``.
    """

    invocations: Counter
    batches: Counter
    rejected: Counter
    state_read: Counter
    state_written: Counter
    outgoing: Counter
    dead_letters: Counter
    batch_size: Histogram
    batch_duration: Histogram

    def __init__(
        self,
        registry: Optional[CollectorRegistry] = REGISTRY,
        *,
        metrics_path: Optional[str] = "/metrics",
        duration_buckets: Sequence[float] = DURATION_BUCKETS,
    ) -> None:
        self.registry = registry
        self.metrics_path = metrics_path
        if multiprocess_dir_set() and values.ValueClass is values.MutexValue:
            logger.warning(
                "PROMETHEUS_MULTIPROC_DIR is set, but prometheus_client was imported before it "
                "was (gunicorn's --env and raw_env are applied after gunicorn.conf.py is read): "
                "this process keeps its metrics in memory, and /metrics, which merges the "
                "directory's files, does not show them. Set it in the environment the server "
                "starts with."
            )

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        self.invocations = counter(
            "statefun_invocations",
            "Function invocations by how the function returned: ok, error (it raised), or "
            "cancelled (stopped at an await: its request was cancelled, not its failure). The "
            "effects of a failed batch's ok invocations are discarded and the batch is sent "
            "again: see statefun_batches.",
            ("function_type", "outcome"),
        )
        self.batches = counter(
            "statefun_batches",
            "Invocation batches (requests) by outcome: ok, missing_state, error (a function "
            "raised), or cancelled (the server cancelled the request: its client went, as a "
            "runtime whose call timed out does; not the function's failure).",
            ("function_type", "outcome"),
        )
        self.rejected = counter(
            "statefun_requests_rejected",
            "Requests rejected before a batch existed, by status: malformed (400), unknown "
            "function (404), wrong method (405), too large (413), the server's own failure (500).",
            ("status",),
        )
        self.state_read = counter(
            "statefun_state_read_bytes", "Bytes of state received.", ("function_type",)
        )
        self.state_written = counter(
            "statefun_state_written_bytes", "Bytes of state written back.", ("function_type",)
        )
        self.outgoing = counter(
            "statefun_outgoing_messages",
            "Messages, delayed messages and egress records produced.",
            ("function_type", "kind"),
        )
        self.dead_letters = counter(
            "statefun_dead_letters",
            "Invocations that failed for good and went to the dead-letter egress.",
            ("function_type",),
        )
        self.batch_size = Histogram(
            "statefun_batch_size",
            "Invocations per batch.",
            ("function_type",),
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.batch_duration = Histogram(
            "statefun_batch_duration_seconds",
            "Seconds from parsing a batch to its reply, failure or cancellation, by outcome: "
            "ok, missing_state, error or cancelled.",
            ("function_type", "outcome"),
            buckets=duration_buckets,
            registry=registry,
        )
        self._by_type: dict[str, _Series] = {}

    @hookimpl
    def statefun_endpoints(self, handler: RequestReplyHandler) -> list[Endpoint]:
        if self.metrics_path is None:
            return []
        registry = self.registry

        def metrics(headers: Mapping[str, Any]) -> EndpointResponse:
            return metrics_endpoint(headers, registry)

        return [Endpoint("GET", self.metrics_path, metrics)]

    def _series(self, function_type: str) -> _Series:
        series = self._by_type.get(function_type)
        if series is None:
            series = self._by_type.setdefault(function_type, _Series(self, function_type))
        return series

    @hookimpl
    def statefun_invocation_finished(
        self, invocation: InvocationEvent, error: Optional[BaseException]
    ) -> None:
        series = self._series(invocation.batch.function_type)
        if error is None:
            series.invocations_ok.inc()
        elif isinstance(error, InvocationCancelled):
            series.invocations_cancelled.inc()
        elif not isinstance(error, InvocationRetried):  # a try run again: not an invocation
            series.invocations_error.inc()

    @hookimpl
    def statefun_batch_finished(self, batch: BatchEvent) -> None:
        series = self._batch(batch)
        if batch.state_bytes_read:
            series.state_read.inc(batch.state_bytes_read)
        if batch.state_bytes_written:
            series.state_written.inc(batch.state_bytes_written)
        if batch.messages:
            series.messages.inc(batch.messages)
        if batch.delayed_messages:
            series.delayed.inc(batch.delayed_messages)
        if batch.egress_records:
            series.egress.inc(batch.egress_records)
        if batch.dead_letters:  # those of its reply: not a failed batch's, nor a discarded try's
            series.dead_letters.inc(batch.dead_letters)

    @hookimpl
    def statefun_batch_failed(self, batch: BatchEvent, error: BaseException) -> None:
        self._batch(batch)

    @hookimpl
    def statefun_request_failed(
        self, error: BaseException, batch: Optional[BatchEvent], headers: Mapping[str, str]
    ) -> None:
        if batch is None:
            self.rejected.labels(str(status_for(error))).inc()

    def _batch(self, batch: BatchEvent) -> _Series:
        series = self._series(batch.function_type)
        batches, duration = series.by_outcome[batch.outcome or "ok"]
        batches.inc()
        series.batch_size.observe(batch.batch_size)
        # a plugin that traces the batch (statefun-opentelemetry) names its span in the reply
        exemplar = (
            _exemplar(batch.reply_headers.get(TRACERESPONSE)) if batch.reply_headers else None
        )
        duration.observe(batch.duration, exemplar)
        return series


def _exemplar(traceresponse: Optional[str]) -> Optional[dict[str, str]]:
    """The exemplar of a batch whose span a ``traceresponse`` names, when its trace is sampled
    (an exemplar leads to a trace that was recorded): OpenMetrics shows it on the bucket."""
    if traceresponse is None or not is_traceparent(traceresponse):
        return None
    if not int(traceresponse[53:55], 16) & 1:  # the sampled flag (0x02 is Level 2's random)
        return None
    return {"trace_id": traceresponse[3:35], "span_id": traceresponse[36:52]}


class _Series:
    """The labelled children of one function type, looked up once: ``labels()`` takes a lock
    and builds a key on every call. Made eagerly, so every series reads 0 before it counts."""

    def __init__(self, plugin: PrometheusPlugin, function_type: str) -> None:
        self.invocations_ok = plugin.invocations.labels(function_type, "ok")
        self.invocations_error = plugin.invocations.labels(function_type, "error")
        self.invocations_cancelled = plugin.invocations.labels(function_type, "cancelled")
        # a batch's count and duration: the latency of failures apart from that of replies
        self.by_outcome = {
            outcome: (
                plugin.batches.labels(function_type, outcome),
                plugin.batch_duration.labels(function_type, outcome),
            )
            for outcome in ("ok", "missing_state", "error", "cancelled")
        }
        self.batch_size = plugin.batch_size.labels(function_type)
        self.state_read = plugin.state_read.labels(function_type)
        self.state_written = plugin.state_written.labels(function_type)
        self.messages = plugin.outgoing.labels(function_type, "message")
        self.delayed = plugin.outgoing.labels(function_type, "delayed")
        self.egress = plugin.outgoing.labels(function_type, "egress")
        self.dead_letters = plugin.dead_letters.labels(function_type)
