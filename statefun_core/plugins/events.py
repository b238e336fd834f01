"""What the lifecycle hooks are told about a batch and about each invocation in it."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Optional

from ..core import SdkAddress
from .endpoints import is_header

Outcome = Literal["ok", "missing_state", "error", "cancelled"]


#: Headers that frame the reply (its length, encoding, type, the connection): the server's own.
_SERVERS_OWN = frozenset(
    {
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


class CheckedReplyHeaders(MutableMapping[str, str]):
    """The headers plugins add to the reply, checked as they are set: a header the server
    could not write (not a string, a line break in it) or one that frames the reply
    (``Content-Length``, ``Content-Type``, ...) raises ``ValueError`` in the plugin's hook,
    which is logged naming the plugin, instead of breaking a reply whose batch succeeded."""

    def __init__(self, target: MutableMapping[str, str]) -> None:
        self._target = target

    def __setitem__(self, name: str, value: str) -> None:
        if not is_header(name, value):
            raise ValueError(
                f"reply header {name!r}: {value!r}: a header is a token and a string on one "
                "line (str() the value)"
            )
        if name.lower() in _SERVERS_OWN:
            raise ValueError(f"reply header {name!r} frames the reply: the server sets it")
        self._target[name] = value

    def __getitem__(self, name: str) -> str:
        return self._target[name]

    def __delitem__(self, name: str) -> None:
        del self._target[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._target)

    def __len__(self) -> int:
        return len(self._target)

    def __repr__(self) -> str:
        return repr(self._target)


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
    """Set when the batch ends: ``ok`` or ``missing_state`` (``statefun_batch_finished``),
    ``error`` or ``cancelled`` (``statefun_batch_failed``)."""
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


class InvocationRetried(Exception):
    """The ``error`` given to ``statefun_invocation_finished`` for a try the handler discards:
    ``handle_sync`` called an ``async`` function with no event loop, the function asked for
    one, and its batch runs again from its start as a task of the thread's loop (the
    function's ``RuntimeError`` is the ``__cause__``). Not the function's failure: the
    in-tree plugins neither count it nor mark it an error (statefun-opentelemetry ends its
    span with the outcome ``retried``). Once per function per process (or per thread,
    for batches that reach it on several threads at once)."""


class InvocationCancelled(BaseException):
    """The ``error`` given to ``statefun_invocation_finished`` for an invocation its request's
    cancellation cut short (a server cancels the request of a client that went, as a runtime
    whose call timed out does): not the function's failure (the ``CancelledError`` raised at
    its ``await`` is the ``__cause__``), and its batch's outcome is ``cancelled``. The in-tree
    plugins count and trace it as ``cancelled``, not as an error. A ``BaseException``, as
    ``asyncio.CancelledError`` is: a plugin that lets what is not an ``Exception`` pass lets it
    pass too."""


@dataclass
class InvocationEvent:
    """One invocation of the function inside a batch (``index`` counts from 0)."""

    batch: BatchEvent
    index: int
    caller: Optional[SdkAddress]
    argument_typename: str
    scratch: dict[str, Any] = field(default_factory=dict)
