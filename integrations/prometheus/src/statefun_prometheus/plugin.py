"""``PrometheusPlugin``: the lifecycle events of the handler as Prometheus metrics.

Labels are bounded: ``function_type`` (the functions an endpoint serves), ``outcome``,
``kind`` and ``status``; never an id. Requests rejected before a batch exists are counted by
status only, since their typename comes from the (untrusted) request.
"""

from __future__ import annotations

from typing import Mapping, Optional

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from statefun_core.http import status_for
from statefun_core.plugins import BatchEvent, InvocationEvent, hookimpl

__all__ = ["BATCH_SIZE_BUCKETS", "PrometheusPlugin"]

BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


class PrometheusPlugin:
    """Registers its metrics on ``registry`` (default: prometheus_client's ``REGISTRY``).

    Make one per registry: a second instance on the same registry is a duplicate-metric error.
    """

    def __init__(self, registry: Optional[CollectorRegistry] = REGISTRY) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        self.invocations = counter(
            "statefun_invocations", "Function invocations.", ("function_type", "outcome")
        )
        self.batches = counter(
            "statefun_batches",
            "Invocation batches (requests) by outcome: ok, missing_state or error.",
            ("function_type", "outcome"),
        )
        self.rejected = counter(
            "statefun_requests_rejected",
            "Requests rejected before a batch existed (malformed, unknown function, too large).",
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
        self.batch_size = Histogram(
            "statefun_batch_size",
            "Invocations per batch.",
            ("function_type",),
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.batch_duration = Histogram(
            "statefun_batch_duration_seconds",
            "Seconds from parsing a batch to its reply or failure.",
            ("function_type",),
            registry=registry,
        )

    @hookimpl
    def statefun_invocation_finished(
        self, invocation: InvocationEvent, error: Optional[BaseException]
    ) -> None:
        outcome = "ok" if error is None else "error"
        self.invocations.labels(invocation.batch.function_type, outcome).inc()

    @hookimpl
    def statefun_batch_finished(self, batch: BatchEvent) -> None:
        self._batch(batch)
        function_type = batch.function_type
        if batch.state_bytes_read:
            self.state_read.labels(function_type).inc(batch.state_bytes_read)
        if batch.state_bytes_written:
            self.state_written.labels(function_type).inc(batch.state_bytes_written)
        for kind, count in (
            ("message", batch.messages),
            ("delayed", batch.delayed_messages),
            ("egress", batch.egress_records),
        ):
            if count:
                self.outgoing.labels(function_type, kind).inc(count)

    @hookimpl
    def statefun_batch_failed(self, batch: BatchEvent, error: BaseException) -> None:
        self._batch(batch)

    @hookimpl
    def statefun_request_failed(
        self, error: BaseException, batch: Optional[BatchEvent], headers: Mapping[str, str]
    ) -> None:
        if batch is None:
            self.rejected.labels(str(status_for(error))).inc()

    def _batch(self, batch: BatchEvent) -> None:
        function_type = batch.function_type
        self.batches.labels(function_type, batch.outcome).inc()
        self.batch_size.labels(function_type).observe(batch.batch_size)
        self.batch_duration.labels(function_type).observe(batch.duration)
