"""Resource limits: what one request may carry and what one batch may produce.

Exceeding a limit is a :class:`~statefun_core.errors.LimitExceededError` that names the limit;
never an out-of-memory. Limits on the request (its size, its invocations) answer 413; limits on
what a function produces (a state value, outgoing messages, the reply) fail the batch (500).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

__all__ = ["DEFAULT_LIMITS", "Limits"]

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Limits a :class:`~statefun_core.RequestReplyHandler` enforces; ``None`` turns one off."""

    request_bytes: Optional[int] = 32 * MiB
    """Largest request body. The runtime's own default for a reply (``payload_max_bytes``)."""

    invocations_per_batch: Optional[int] = 10_000
    """Most invocations in one request (the runtime buffers up to ``maxNumBatchRequests``,
    1,000 by default, before it applies back-pressure)."""

    state_value_bytes: Optional[int] = 32 * MiB
    """Largest encoded state value a function may write (a larger reply would be refused by
    the runtime anyway)."""

    outgoing_per_batch: Optional[int] = 10_000
    """Most messages, delayed messages, cancellations and egress records one batch may send."""

    reply_bytes: Optional[int] = 32 * MiB
    """Largest reply. The runtime's ``payload_max_bytes`` (32 MiB by default) refuses a larger
    one and calls again, with the same batch; over this limit the batch fails (500) here, where
    it is logged, and the plugins see the failure."""

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None and (type(value) is not int or value < 0):
                raise ValueError(f"Limits.{field.name} must be None or an int >= 0, not {value!r}")


DEFAULT_LIMITS = Limits()
