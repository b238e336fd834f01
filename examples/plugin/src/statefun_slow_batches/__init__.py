"""An example statefun plugin: a module whose ``@hookimpl`` functions are the plugin.

- Logs a warning for every batch slower than ``STATEFUN_SLOW_BATCH_SECONDS`` (default 1.0).
- Makes :class:`decimal.Decimal` a StateFun type (``example.types/decimal``, its string form),
  so ``ValueSpec("balance", type=Decimal)`` and ``message_builder(..., value=Decimal("1.5"))``
  work.
- Answers every batch with a ``Server-Timing`` header (``statefun;dur=<ms>``): a header for
  the reply, which every integration sends.
- Serves ``GET /slow-batches`` in every integration: how many slow batches it has seen, as
  JSON (an endpoint: no web framework is imported here).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from decimal import Decimal
from typing import Any, Mapping, Optional

from statefun_core import simple_type
from statefun_core.plugins import BatchEvent, Endpoint, EndpointResponse, InvocationEvent, hookimpl
from statefun_core.registry import TypeRegistry

__all__ = ["DECIMAL", "PATH", "SLOW_BATCH_SECONDS_ENV", "logger"]

SLOW_BATCH_SECONDS_ENV = "STATEFUN_SLOW_BATCH_SECONDS"
logger = logging.getLogger("statefun.slow_batches")

DECIMAL = simple_type("example.types/decimal", str, lambda data: Decimal(data.decode("ascii")))
# Scratch is shared by every plugin: key it by the plugin's own name.
_SCRATCH = "slow-batches"
#: Where the endpoint is served, from the root of the application.
PATH = "/slow-batches"
_lock = threading.Lock()  # hooks run on many threads
_seen = 0


def _threshold() -> float:
    return float(os.environ.get(SLOW_BATCH_SECONDS_ENV, "1.0"))


@hookimpl
def statefun_register_types(registry: TypeRegistry) -> None:
    registry.register(Decimal, DECIMAL, source="statefun-slow-batches")


@hookimpl
def statefun_invocation_started(invocation: InvocationEvent) -> None:
    invocation.scratch[_SCRATCH] = time.perf_counter()


@hookimpl
def statefun_invocation_finished(
    invocation: InvocationEvent, error: Optional[BaseException]
) -> None:
    took = time.perf_counter() - invocation.scratch[_SCRATCH]
    slowest = invocation.batch.scratch.get(_SCRATCH, (0.0, -1))
    if took > slowest[0]:
        invocation.batch.scratch[_SCRATCH] = (took, invocation.index)


@hookimpl
def statefun_batch_finished(batch: BatchEvent) -> None:
    # a header for the reply: what the batch took, for the runtime's side (or a proxy) to see
    batch.reply_headers["Server-Timing"] = f"statefun;dur={batch.duration * 1000:.3f}"
    if batch.duration >= _threshold():
        global _seen
        with _lock:
            _seen += 1
        took, index = batch.scratch.get(_SCRATCH, (0.0, -1))
        logger.warning(
            "slow batch: %s took %.3fs for %d invocation(s) (outcome %s); "
            "the slowest was #%d at %.3fs",
            batch.function_type,
            batch.duration,
            batch.batch_size,
            batch.outcome,
            index,
            took,
        )


@hookimpl
def statefun_endpoints(handler: Any) -> list[Endpoint]:
    def report(headers: Mapping[str, str]) -> EndpointResponse:
        body = {"slow_batches": _seen, "threshold_seconds": _threshold()}
        return EndpointResponse(
            200, {"Content-Type": "application/json"}, json.dumps(body).encode()
        )

    return [Endpoint("GET", PATH, report)]
