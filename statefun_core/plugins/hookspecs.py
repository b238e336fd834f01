"""The hook specifications: the reference for plugin authors.

Every hook is called with keyword arguments. Hooks are synchronous and run on the request
path: they must not block or do I/O. Lifecycle hooks are events (pluggy cannot wrap an
awaited call); carry your own state from one to the next in the event's ``scratch``.

Order for one request: ``statefun_batch_started`` → for each invocation
``statefun_invocation_started`` → (``statefun_invocation_dead_lettered`` for a final failure)
→ ``statefun_invocation_finished`` → then exactly one of
``statefun_batch_finished`` (outcome ``ok`` or ``missing_state``) or ``statefun_batch_failed``
(outcome ``error``, or ``cancelled`` when the server cancelled the request: its client went,
or the server is stopping).
``statefun_request_failed`` is called for every request that ends in an error or is
cancelled, including those rejected before a batch exists (malformed body, unknown function).

A cancelled request is not the function's failure (a runtime whose call timed out hung up,
or the server is stopping for a redeploy), yet it ends through the same hooks as one, with
outcome ``cancelled``: a plugin that ends in ``statefun_batch_failed`` what it started in
``statefun_batch_started`` (a span, a timer) ends it for a cancelled batch too, and one that
counts every failed batch keeps counting it. Tell the two apart by ``batch.outcome``, and an
invocation the cancellation cut short by its ``error``, an
:class:`~statefun_core.plugins.InvocationCancelled`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from ..deadletters import DeadLetterRecord
from ..registry import TypeRegistry
from ..types import Type
from .endpoints import Endpoint
from .events import BatchEvent, InvocationEvent
from .markers import hookspec

if TYPE_CHECKING:
    from ..handler import RequestReplyHandler


@hookspec
def statefun_register_types(registry: TypeRegistry) -> None:
    """Contribute StateFun types when a handler is built.

    Call ``registry.register(PythonClass, type)`` for fixed classes and
    ``registry.add_factory(fn)`` for families of classes: ``fn(cls)`` returns a ``Type`` or
    ``None``. Functions can then declare ``ValueSpec("name", type=PythonClass)`` and send
    ``message_builder(..., value=instance)``. Two types claiming one typename is an error.
    """


@hookspec(firstresult=True)
def statefun_type_for_class(cls: type) -> Optional[Type[Any]]:
    """Return the StateFun ``Type`` for ``cls``, or ``None`` to let other plugins answer.

    Asked once per class that ``statefun_register_types`` did not cover; the first answer wins
    and is cached.
    """


@hookspec
def statefun_batch_started(batch: BatchEvent) -> None:
    """A batch for one address starts (after its request was parsed and its function found).

    Headers a plugin puts in ``batch.reply_headers`` (until the batch finishes) are sent with
    the reply by servers that pass ``reply_headers`` to the handler, as the integrations do.
    """


@hookspec
def statefun_invocation_started(invocation: InvocationEvent) -> None:
    """One invocation of the batch is about to call the function."""


@hookspec
def statefun_invocation_finished(
    invocation: InvocationEvent, error: Optional[BaseException]
) -> None:
    """One invocation returned (``error`` is None) or raised ``error``.

    ``error`` is an :class:`~statefun_core.plugins.InvocationRetried` for a try the handler
    discards and runs again (``handle_sync``'s first batch of an ``async`` function that asks
    for the running loop): not the function's failure, to be neither counted nor traced as
    one. Its batch's invocations are then started again from the first.

    ``error`` is an :class:`~statefun_core.plugins.InvocationCancelled` for an ``async``
    function stopped at its ``await`` because the server cancelled the request (the
    ``CancelledError`` is its ``__cause__``): not the function's failure either; its batch
    fails with outcome ``cancelled``. A ``blocking=True`` invocation, which its thread runs
    to its end, is told how it ended: ``None``, or what it raised.
    """


@hookspec
def statefun_invocation_dead_lettered(
    invocation: InvocationEvent, error: BaseException, record: DeadLetterRecord
) -> None:
    """One invocation failed for good: ``error`` is final for its function, so its effects were
    dropped and ``record`` went to the function's dead-letter egress instead of failing the
    batch. Called between ``statefun_invocation_started`` and ``statefun_invocation_finished``
    (which gets the same ``error``); the batch goes on with the next invocation.
    """


@hookspec
def statefun_batch_finished(batch: BatchEvent) -> None:
    """The batch produced a reply: ``outcome`` is ``ok`` or ``missing_state``.

    ``duration``, state bytes read and written, and the counts of messages, delayed messages
    and egress records are set; for ``missing_state``, ``missing_states`` names them.
    """


@hookspec
def statefun_batch_failed(batch: BatchEvent, error: BaseException) -> None:
    """The batch produced no reply: a function raised (outcome ``error``), or the server
    cancelled the request (outcome ``cancelled``).

    ``error`` is the function's own exception, or for a cancelled request the
    ``asyncio.CancelledError`` (not the function's failure: its client went, as a runtime
    whose call timed out does, or the server is stopping). A request interrupted otherwise
    (``KeyboardInterrupt``, ``SystemExit``, its coroutine closed unfinished: ``GeneratorExit``)
    is an ``error`` batch with that exception.
    """


@hookspec
def statefun_request_failed(
    error: BaseException, batch: Optional[BatchEvent], headers: Mapping[str, str]
) -> None:
    """A request ended in an error (any status but 200), or with no reply; ``batch`` is None
    when the request was rejected before a batch existed (malformed body → 400, unknown
    function → 404). When no plugin implements another lifecycle hook, the batch was not
    observed: its ``batch`` names the function, the id and the batch size, and its outcome,
    with no duration or counters. A cancelled request's ``error`` is the
    ``asyncio.CancelledError`` and its ``batch.outcome`` is ``cancelled``."""


# --- endpoints --------------------------------------------------------------------------------


@hookspec
def statefun_endpoints(handler: RequestReplyHandler) -> Sequence[Endpoint]:
    """Contribute HTTP endpoints (metrics, health) when a handler is built.

    Return :class:`~statefun_core.plugins.Endpoint` objects: a method, a path from the root of
    the application and ``handle(headers) -> EndpointResponse(status, headers, body)``, with
    no web framework in sight. Every integration mounts ``handler.endpoints`` beside the
    function endpoint. Two endpoints with one method and path are a ``PluginError``, and so
    is a hook that raises or returns anything else (both name the plugin).
    """
    return ()


def _all() -> list[Any]:
    return [value for name, value in globals().items() if name.startswith("statefun_")]
