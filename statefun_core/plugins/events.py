"""What the lifecycle hooks are told about a batch and about each invocation in it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, MutableMapping, Optional

from ..core import SdkAddress

Outcome = Literal["ok", "missing_state", "error"]


@dataclass
class BatchEvent:
    """One request: a batch of invocations for one address.

    Filled in as the batch goes: ``outcome``, ``duration`` and the counters are set when it
    finishes or fails. ``scratch`` is free for plugins (key it by your plugin's name): a span,
    a timer, anything you need to carry from ``started`` to ``finished``.
    """

    function_type: str
    function_id: str
    batch_size: int
    headers: Mapping[str, str]
    """The request's HTTP headers; empty when the handler was called without any (no HTTP
    request carries the batch)."""
    started: float
    """``time.perf_counter()`` when the batch started."""
    reply_headers: MutableMapping[str, str] = field(default_factory=dict)
    """Headers to send with the reply (statefun-opentelemetry's ``traceresponse``); a server
    sends them when it passed ``reply_headers`` to the handler."""
    outcome: Optional[Outcome] = None
    duration: float = 0.0
    """Seconds from start to finish or failure."""
    state_bytes_read: int = 0
    state_bytes_written: int = 0
    messages: int = 0
    delayed_messages: int = 0
    egress_records: int = 0
    missing_states: tuple[str, ...] = ()
    dead_letters: int = 0
    """Invocations that failed for good and went to the dead-letter egress (the batch is ok)."""
    scratch: dict[str, Any] = field(default_factory=dict)


@dataclass
class InvocationEvent:
    """One invocation of the function inside a batch (``index`` counts from 0)."""

    batch: BatchEvent
    index: int
    caller: Optional[SdkAddress]
    argument_typename: str
    scratch: dict[str, Any] = field(default_factory=dict)
