"""``RequestReplyHandler``: ``ToFunction`` bytes in, ``FromFunction`` bytes out.

One pipeline — parse → resolve state → invoke → collect — with two drivers that differ only in
how the function is called. ``handle_sync`` calls sync functions, and ``async`` ones whose code
never awaits, directly, with no event loop, and runs any other ``async`` function as a task of
an event loop kept per thread. ``handle_async`` awaits async functions,
calls sync ones inline, and sends ``blocking=True`` functions to a thread pool.
"""

from __future__ import annotations

# asyncio is imported where an event loop is used: a sync server (a Lambda function) whose
# functions never await does not pay for its import, a sixth of a cold start.
import contextlib
import functools
import itertools
import logging
import threading
import time
import weakref
from concurrent.futures import Executor
from contextvars import copy_context
from typing import Any, Callable, Iterator, Mapping, MutableMapping, Optional, Union

import pluggy
from google.protobuf.message import DecodeError

from . import protocol
from ._mypyc import awaiter, awaiting, caused, compiled, fieldwise, mypyc_attr
from .context import DelayedMessage, InvocationContext
from .core import ValueSpec, is_state_typename, parse_typename
from .deadletters import DeadLetterEgress, DeadLetterPolicy, DeadLetterRecord
from .errors import (
    AsyncFunctionInSyncContextError,
    FunctionFailedError,
    LimitExceededError,
    MalformedRequestError,
    PluginError,
    RequestTooLargeError,
    StatefunError,
    UnknownTypeError,
    error_text,
    is_unreadable,
)
from .functions import StatefulFunction, StatefulFunctions
from .limits import DEFAULT_LIMITS, Limits
from .messages import EgressMessage, Message, _new_message, encode
from .plugins.endpoints import Endpoint, checked_endpoints, find_endpoint, header
from .plugins.events import (
    BatchEvent,
    CheckedReplyHeaders,
    InvocationCancelled,
    InvocationEvent,
    InvocationRetried,
    Outcome,
)
from .plugins.logcontext import log_line, trace_id
from .plugins.manager import OBSERVER_HOOKS, make_plugin_manager, plugin_label
from .protowire import ONE_BYTE as _ONE_BYTE
from .protowire import element, field, key, text, typed_value_fields, varint
from .registry import TypeRegistry
from .storage import checkpoint, kept_encoder, kept_size, rollback, storage_class
from .tracecontext import TRACEPARENT, TRACERESPONSE, is_traceparent
from .types import Type, TypeSerializer

__all__ = ["RequestReplyHandler"]

RequestBytes = Union[bytes, bytearray, memoryview]
Headers = Mapping[str, str]
ReplyHeaders = MutableMapping[str, str]

_NO_HEADERS: Headers = {}
_EXPIRE_NONE, _EXPIRE_AFTER_WRITE, _EXPIRE_AFTER_INVOKE = 0, 1, 2
# Any hook but request_failed needs a BatchEvent, not only statefun_batch_started.
_BATCH_EVENTS = "batch events"
# the logger of statefun_core.http too: a failed function here, every other failure there
logger: logging.Logger = logging.getLogger("statefun_core")

_INVOCATION_RESULT = key(100, 2)  # FromFunction.invocation_result
_MODIFY = key(1, 0) + b"\x01"  # PersistedValueMutation.mutation_type MODIFY
_DELAY = key(1, 0)  # DelayedInvocation.delay_in_ms, a varint follows
_CANCELLATION = key(10, 0) + b"\x01"  # DelayedInvocation.is_cancellation_request, true
# what the task of a blocking batch tells its thread when the request is cancelled (_in_executor)
_REQUEST_CANCELLED = StopIteration("the request was cancelled")


@functools.lru_cache(maxsize=4096)
def _typename_head(typename: str) -> bytes:
    """An ``Address``'s namespace (1) and type (2) from ``typename``, where its id (3) follows;
    an ``EgressMessage`` starts with the same two fields."""
    try:
        namespace, name = parse_typename(typename)
    except ValueError as error:  # a message_builder or egress typename: told which it is
        raise caused(
            ValueError(
                f"a message or egress record was sent to {typename!r}, which is not a function's "
                f"or an egress's typename: {error} (as in module.yaml, e.g. com.example/inbox)"
            ),
            None,
        )
    return field(1, namespace.encode()) + field(2, name.encode())


@functools.lru_cache(maxsize=1024)
def _reply_head(size: int) -> bytes:
    """A reply up to its ``InvocationResponse`` of ``size`` bytes (its key and length). Cached:
    a function's replies come in a few sizes, and a hit is one C call, not ``varint``'s frame."""
    return _INVOCATION_RESULT + varint(size)


#: Most missing-state replies a function keeps for reuse: one per set of missing states, of
#: which a runtime sends a few (none registered yet, or those added by a deploy) but a caller
#: could send any of 2**states, each kept for ever if all were kept.
_INCOMPLETE_REPLIES_KEPT = 16
#: Parsed, a repeated field's element costs some 30 times the two bytes an empty one takes in
#: the body (32 MiB of them, about 1 GiB): a body over this many bytes has its fields counted
#: first, and is refused unparsed if they are too many.
_COUNTED_ABOVE = 256 * 1024
#: Most fields besides invocations a counted body may hold: state values and the target.
_MAX_OTHER_FIELDS = 10_000


def _no_limit(maximum: Optional[int]) -> float:
    return float("inf") if maximum is None else maximum


def _target(message: Message) -> bytes:
    """The ``Address`` a message is sent to."""
    target_id = message.target_id
    if type(target_id) is str:
        ident = target_id.encode()
    else:
        try:
            ident = text(target_id)
        except TypeError:
            raise caused(
                TypeError(
                    f"a message to {message.target_typename} has the target_id {target_id!r}: an "
                    f"id is a str (target_id=str(...))"
                ),
                None,
            )
    return _typename_head(message.target_typename) + field(3, ident)


class _Mutation:
    """How :meth:`RequestReplyHandler._collect` writes a state's mutation, made once per state.

    A class with slots, not a NamedTuple: ``_collect`` reads these on every request, and a
    slot is read by an instruction the interpreter specialises, a NamedTuple's field through
    its descriptor's call."""

    __slots__ = (
        "deleted",
        "encode_kept",
        "kept_head",
        "modified",
        "mutation_overhead",
        "name",
        "value_head",
        "value_overhead",
    )

    def __init__(self, name: str, tpe: Type[Any]) -> None:
        self.name = name
        state_name = field(2, name.encode())
        self.deleted = element(1, state_name)  # the whole DELETE (mutation_type 0: left out)
        self.modified = _MODIFY + state_name  # a MODIFY mutation up to its value
        self.value_head = typed_value_fields(tpe.typename)  # its TypedValue up to its bytes
        self.encode_kept = kept_encoder(tpe)  # for an int or bool kept as it is
        # A kept int or bool that is not zero is always encoded in as many bytes (kept_size):
        # its MODIFY mutation is kept_head, the same for every value, and then those bytes.
        size = kept_size(tpe)
        kept = element(1, self.modified + element(3, self.value_head + field(3, bytes(size))))
        self.kept_head = kept[:-size] if size else b""
        # What a value of n bytes adds up to while every length is under 0x80: its TypedValue
        # is value_overhead + n bytes long (value_head, the value's key and length, the value),
        # the whole MODIFY mutation mutation_overhead + n (modified and the TypedValue's key
        # and length besides).
        self.value_overhead = len(self.value_head) + 2
        self.mutation_overhead = len(self.modified) + len(self.value_head) + 4


def _modify(mutation: _Mutation, data: bytes) -> bytes:
    """A ``state_mutations`` element (``InvocationResponse`` field 1) setting ``data``.

    When every length in it fits in one byte (a counter, a short string: most states), it is
    written in one join with its lengths added up here; otherwise field by field."""
    size = len(data)
    whole = mutation.mutation_overhead + size
    if size and whole < 0x80:
        return b"".join((
            b"\x0a", _ONE_BYTE[whole], mutation.modified,
            b"\x1a", _ONE_BYTE[mutation.value_overhead + size], mutation.value_head,
            b"\x1a", _ONE_BYTE[size], data,
        ))  # fmt: skip
    return element(1, mutation.modified + element(3, mutation.value_head + field(3, data)))


@functools.lru_cache(maxsize=4096)
def _message_heads(target_typename: str, typename: str) -> tuple[bytes, int, bytes, int]:
    """What a message to ``target_typename`` with a value of ``typename`` starts its two fields
    with, and what each adds to the length of what follows it (the id's or the value's key and
    length besides): the ``Address`` up to its id (3) and the ``TypedValue`` up to its value."""
    head = _typename_head(target_typename)
    value_head = typed_value_fields(typename)
    return head, len(head) + 2, value_head, len(value_head) + 2


# An outgoing message whose every length is under 0x80, each written by %c as its one byte:
# the element (2) holds the Address (1: the head, then the id as field 3) and the TypedValue
# (2: the head, then the value as field 3).
_SHORT_MESSAGE = b"\x12%c\x0a%c%b\x1a%c%b\x12%c%b\x1a%c%b"


def _message(message: Message) -> Optional[bytes]:
    """An ``outgoing_messages`` element (``InvocationResponse`` field 2) for a built message
    whose every length fits in one byte (a short text to a short id: most messages), written
    in one piece with its lengths added up here; None for any other, which ``_collect`` writes
    field by field (a value whose type the plugins find, a received one sent on, an id given as
    bytes, an empty id or value, a longer one)."""
    typename = message._typename
    if typename is None:  # received (no _data), or typed by the plugins when sent
        return None
    target_id = message.target_id
    data = message._data
    if type(target_id) is not str or not data:
        return None
    ident = target_id.encode()  # before the typename is parsed, as _target does
    head, head_size, value_head, value_head_size = _message_heads(message.target_typename, typename)
    ident_size = len(ident)
    data_size = len(data)
    address_size = head_size + ident_size
    value_size = value_head_size + data_size
    size = address_size + value_size + 4
    if size >= 0x80 or not ident_size:
        return None
    return _SHORT_MESSAGE % (
        size, address_size, head, ident_size, ident, value_size, value_head, data_size, data
    )  # fmt: skip


class _Plan:
    """What the handler precomputes for one function: resolved specs and replies to reuse."""

    __slots__ = (
        "fun",
        "function",
        "incomplete_replies",
        "mutations",
        "name_set",
        "names",
        "policy",
        "specs",
        "storage_class",
    )

    def __init__(
        self,
        function: StatefulFunction,
        types: TypeRegistry,
        dead_letters: Optional[DeadLetterEgress] = None,
        max_state_bytes: float = float("inf"),
    ) -> None:
        self.function = function
        # what a batch calls: an async function's results go through _awaited
        self.fun = awaiting(_awaited, function.fun) if function.is_async else function.fun
        egress = function.dead_letters or dead_letters
        if egress is None and (function.final_errors or function.final_unreadable):
            raise ValueError(
                f"{function.typename} declares final failures but no dead-letter egress: "
                "name one at bind(dead_letters=...) or RequestReplyHandler(dead_letters=...)"
            )
        self.policy = (
            None
            if egress is None
            else DeadLetterPolicy(egress, function.final_errors, function.final_unreadable)
        )
        self.specs: list[tuple[str, Type[Any], TypeSerializer[Any], ValueSpec]] = []
        for spec in function.specs:
            try:
                tpe = spec.type if isinstance(spec.type, Type) else types.for_class(spec.type)
            except UnknownTypeError as error:
                raise caused(
                    UnknownTypeError(
                        f"function {function.typename!r}, state {spec.name!r}: {error}"
                    ),
                    None,
                )
            if not is_state_typename(tpe.typename):
                where = f"function {function.typename!r}, state {spec.name!r}"
                problem = f"type {tpe.typename!r} is not namespace/name, as a state's must be"
                if isinstance(spec.type, Type):
                    raise ValueError(f"{where}: {problem}")
                raise PluginError(f"{where}: {problem}; it came from {types.source_of(tpe)}")
            self.specs.append((spec.name, tpe, tpe.serializer(), spec))
        self.names = tuple(name for name, *_ in self.specs)
        self.name_set = frozenset(self.names)
        self.mutations = [_Mutation(name, tpe) for name, tpe, _, _ in self.specs]
        self.storage_class = storage_class(
            function.typename,
            {name: (tpe, serializer) for name, tpe, serializer, _ in self.specs},
            max_state_bytes,
        )
        self.incomplete_replies: dict[tuple[str, ...], bytes] = {}

    def incomplete_reply(self, names: tuple[str, ...]) -> bytes:
        reply = self.incomplete_replies.get(names)
        if reply is None:
            out = protocol.FromFunction()
            missing_values = out.incomplete_invocation_context.missing_values
            for name, tpe, _, spec in self.specs:
                if name not in names:
                    continue
                missing = missing_values.add(state_name=name, type_typename=tpe.typename)
                if spec.after_call or spec.after_write:
                    missing.expiration_spec.mode = (
                        _EXPIRE_AFTER_INVOKE if spec.after_call else _EXPIRE_AFTER_WRITE
                    )
                    missing.expiration_spec.expire_after_millis = spec.duration
                else:
                    missing.expiration_spec.mode = _EXPIRE_NONE
            reply = out.SerializeToString()
            if len(self.incomplete_replies) < _INCOMPLETE_REPLIES_KEPT:
                self.incomplete_replies[names] = reply
        return reply


class _Batch(InvocationContext):
    """One request in flight, and the context its function is called with.

    Besides the context it keeps the plan, the invocations to run and the function to call
    (the user's, or one that reports each invocation to the plugins). Made field by field in
    ``_resolve`` (a class call with ``__init__`` costs several times more), which leaves
    slots unset on purpose: ``_invocation``, set by :meth:`message` before each invocation,
    ``_address``, built on first read, and ``failure`` and ``suspended``, set where a try
    fails.
    """

    __slots__ = ("event", "failure", "fun", "id", "invocations", "plan", "suspended", "typename")
    __deletable__ = ("failure",)  # compiled by mypyc, only these may be deleted

    plan: _Plan
    typename: str
    id: str
    invocations: Any
    event: Optional[BatchEvent]
    fun: Callable[..., Any]
    failure: FunctionFailedError  # set (and logged) where an invocation raised, if plugins watch
    suspended: bool  # set where handle_sync's first try of an async function awaited (_step)

    def message(self, invocation: Any, types: TypeRegistry) -> Message:
        """The message of one invocation, which becomes the one the context answers for."""
        self._invocation = invocation
        message = _new_message(Message)
        message.target_typename = self.typename
        message.target_id = self.id
        message._typed_value = invocation.argument
        message._typename = None  # read first when the message is sent on
        message._types = types
        return message


def _placeholder_batch(cls: type[_Batch]) -> _Batch:
    return _Batch(None, None)


_new_batch = fieldwise(_Batch, _placeholder_batch)
# what the handler awaits of functions and threads goes through it (see _mypyc.awaiter)
_awaited = awaiter(compiled(_placeholder_batch))


@mypyc_attr(native_class=False)
class _Planner:
    """A handler's plans, one per function, made as each function is bound.

    The handler's functions call :meth:`plan` as they bind one, through a weak reference: to
    this object, which only its handler holds, so a dropped handler is not kept by them.
    Not the handler itself: compiled by mypyc, it takes no weak reference; this class stays a
    Python class there (``native_class=False``), which does."""

    __slots__ = ("__weakref__", "dead_letters", "max_state_bytes", "plans", "plugins", "types")

    def __init__(
        self,
        types: TypeRegistry,
        plugins: pluggy.PluginManager,
        dead_letters: Optional[DeadLetterEgress],
        max_state_bytes: float,
    ) -> None:
        self.types = types
        self.plugins = plugins
        self.dead_letters = dead_letters
        self.max_state_bytes = max_state_bytes
        self.plans: dict[str, _Plan] = {}

    def plan(self, function: StatefulFunction) -> _Plan:
        """Resolve the types of ``function``'s state now: a spec no plugin resolves fails here,
        when the handler is built or the function bound, never on a request."""
        try:
            plan = _Plan(function, self.types, self.dead_letters, self.max_state_bytes)
        except UnknownTypeError as error:
            raise caused(UnknownTypeError(f"{error}; {self._plugins_hint()}"), None)
        self.plans[function.typename] = plan
        return plan

    def _plugins_hint(self) -> str:
        """What the plugin manager left out, for an error about a type nobody resolves."""
        disabled: list[str] = getattr(self.plugins, "disabled", [])
        if disabled:
            return f"disabled plugins: {', '.join(disabled)} (STATEFUN_DISABLED_PLUGINS)"
        if not getattr(self.plugins, "autoload", True):
            return (
                "installed plugins were not loaded "
                "(STATEFUN_DISABLE_PLUGIN_AUTOLOAD or load_entrypoints=False)"
            )
        return "no plugin is disabled"


@mypyc_attr(allow_interpreted_subclasses=True)
class RequestReplyHandler:
    """Serves a :class:`StatefulFunctions` over the StateFun request-reply protocol.

    ``plugins`` is a plugin manager from :func:`~statefun_core.plugins.make_plugin_manager`;
    by default one is made that loads the installed plugins. ``executor`` runs
    ``blocking=True`` functions under ``handle_async`` (default: the loop's executor).
    ``limits`` bounds what a request may carry and a batch may produce (see
    :class:`~statefun_core.Limits` for the defaults). ``dead_letters`` is where the final
    failures of functions that name no dead-letter egress of their own go (see
    :mod:`statefun_core.deadletters`).
    """

    plugins: pluggy.PluginManager
    types: TypeRegistry
    endpoints: tuple[Endpoint, ...]

    def __init__(
        self,
        # Optional: None is refused below with the official SDK's ValueError, which a compiled
        # build would not reach if the annotation refused it first (with a TypeError)
        functions: Optional[StatefulFunctions],
        *,
        plugins: Optional[pluggy.PluginManager] = None,
        executor: Optional[Executor] = None,
        limits: Limits = DEFAULT_LIMITS,
        dead_letters: Optional[DeadLetterEgress] = None,
    ) -> None:
        if functions is None:
            raise ValueError("functions must be provided.")
        self.dead_letters = dead_letters
        self.functions = functions
        self.plugins = plugins if plugins is not None else make_plugin_manager()
        self.types = TypeRegistry()
        self.plugins.hook.statefun_register_types(registry=self.types)
        hook = self.plugins.hook

        def from_plugins(cls: type) -> Optional[Type[Any]]:
            return hook.statefun_type_for_class(cls=cls)  # type: ignore[no-any-return]

        answering = [plugin_label(impl) for impl in hook.statefun_type_for_class.get_hookimpls()]
        self.types.add_factory(
            from_plugins, source=f"statefun_type_for_class of {' or '.join(answering) or 'none'}"
        )
        self.executor = executor
        self.limits = limits
        # the limits as numbers to compare with (None: no limit)
        self._max_request_bytes = _no_limit(limits.request_bytes)
        self._max_invocations = _no_limit(limits.invocations_per_batch)
        self._max_state_bytes = _no_limit(limits.state_value_bytes)
        self._max_outgoing = _no_limit(limits.outgoing_per_batch)
        self._max_reply_bytes = _no_limit(limits.reply_bytes)
        # a larger body is counted before it is parsed (_check_large)
        self._counted_above = min(_COUNTED_ABOVE, self._max_request_bytes)
        # a larger reply is checked against the limits (_check_large_reply): one over
        # request_bytes writes states that no request could carry
        self._large_reply = min(_COUNTED_ABOVE, self._max_reply_bytes, self._max_request_bytes)
        self._planner = _Planner(self.types, self.plugins, dead_letters, self._max_state_bytes)
        self._plans = self._planner.plans
        for function in functions:
            self._planner.plan(function)
        functions._served_by(self._planner.plan)  # held weakly: not the handler itself
        self._hooked: frozenset[str] = frozenset()
        self._hooked_generation = -1
        self._batch_events = False  # whether any hook needs a BatchEvent (see _hooks)
        self._loops = threading.local()
        # between a blocking batch's thread that failed and its request's task, cancelled
        self._stopping = threading.Lock()
        self._endpoint_plugins: list[str] = []  # the plugin of each endpoint, for messages
        self.endpoints = self._endpoints()
        """The HTTP endpoints the plugins contribute (``statefun_endpoints``), which every
        integration mounts beside the function endpoint."""

    def __repr__(self) -> str:
        return f"RequestReplyHandler({self.functions!r})"

    def endpoint_for(self, method: str, path: str) -> Optional[Endpoint]:
        """The plugins' endpoint for ``method`` and ``path`` (``HEAD`` finds ``GET``), or None:
        what a server that routes by itself calls before answering 404."""
        return find_endpoint(self.endpoints, method, path)

    def check_endpoints_clear_of(self, path: str) -> None:
        """Raise ``PluginError`` naming the plugin if one of its endpoints is at ``path``, where
        a server serves the functions (``/statefun``; ``/`` for an application that serves them
        at its root): the function endpoint answers there, so the plugin's never would."""
        for endpoint, plugin in zip(self.endpoints, self._endpoint_plugins):
            if endpoint.path.rstrip("/") == path.rstrip("/"):
                raise PluginError(
                    f"statefun plugin {plugin!r} contributes the endpoint {endpoint.method} "
                    f"{endpoint.path} where the functions are served ({path or '/'}), so it "
                    "would never be answered: serve the functions, or the endpoint, at another "
                    "path"
                )

    def _endpoints(self) -> tuple[Endpoint, ...]:
        """The plugins' endpoints, each plugin's checked and named (by the manager's guard), so
        that a broken answer, or a clash, names the plugins; mistakes fail here, not in a
        server. Through pluggy, so that hook wrappers and tracing see the call."""
        endpoints: list[Endpoint] = []
        owners = self._endpoint_plugins
        for contributed in self.plugins.hook.statefun_endpoints(handler=self):
            plugin = getattr(contributed, "plugin", "a hook wrapper or unnamed plugin")
            for endpoint in checked_endpoints(plugin, contributed):
                index = next(
                    (
                        i
                        for i, known in enumerate(endpoints)
                        if (known.method, known.path) == (endpoint.method, endpoint.path)
                    ),
                    None,
                )
                if index is not None:
                    raise PluginError(
                        f"two plugins contribute the endpoint {endpoint.method} {endpoint.path}:"
                        f" by {owners[index]!r} and by {plugin!r}"
                    )
                endpoints.append(endpoint)
                owners.append(plugin)
        return tuple(endpoints)

    # --- the two drivers ------------------------------------------------------------------

    def handle_sync(
        self,
        request_bytes: RequestBytes,
        headers: Optional[Headers] = None,
        reply_headers: Optional[ReplyHeaders] = None,
        check_reply: Optional[Callable[[int], None]] = None,
    ) -> bytes:
        """Handle one request without an event loop; safe to call from any thread.

        ``headers`` are the request's HTTP headers, for the plugins (a trace context); the
        headers plugins set for the reply (``traceresponse``) are added to ``reply_headers``,
        which a server sends with the reply. ``check_reply`` is a server's own bound on the
        reply (the Lambda handler's, for what its gateway takes back): called with the size
        of a reply that has effects, before the plugins hear the batch succeed, and what it
        raises fails the batch as a limit exceeded there would.

        A batch runs in a copy of the caller's context, as under the official SDK's
        ``asyncio.run``: what a function sets in a context variable (a logger's bound fields)
        does not outlive its request in the server's thread. Sync functions, and async ones whose
        code never awaits, are called with no event loop at all (so also from inside a running
        loop); an async function that awaits runs as a task of this thread's event loop (kept per
        thread), so ``asyncio.timeout``, task groups and HTTP clients work in it. One that never
        awaits but needs the running loop all the same (``asyncio.get_running_loop()``,
        ``create_task``, in its code or in what it calls) finds none on its first batch: that
        batch is run again from its start as a task, and so is every later one; as is one whose
        code awaits since it was bound (IPython's autoreload puts new code in the function).
        """
        try:
            batch = self._resolve(request_bytes, headers, reply_headers)
        except StatefunError as error:
            self.reject(error, headers)
            raise
        if isinstance(batch, bytes):
            return batch  # the missing-state reply
        try:
            function = batch.plan.function
            if function.awaits:
                self._run_on_thread_loop(batch)
            elif function.is_async:  # each coroutine finishes on its first step
                try:
                    copy_context().run(self._step, batch)
                except (RuntimeError, _Suspended) as error:
                    if not isinstance(error, _Suspended) and not _wanted_a_loop(error):
                        raise
                    # Its code never awaits, but what it calls needs the running loop (a task
                    # it starts, a library that asks for the loop), as under handle_async; or
                    # its code awaits now (changed since it was bound, by IPython's autoreload):
                    # it runs as a task from now on, this batch again from its start.
                    function.awaits = True
                    self._restart(batch)
                    self._run_on_thread_loop(batch)
            else:
                copy_context().run(self._invoke, batch)
            # a value that cannot be encoded fails the batch too
            return self._collect(batch, check_reply)
        except BaseException as error:
            # the batch's task is the handler's own: a CancelledError is the function's
            failure = self._failed(batch, error, headers, _interrupts(error))
            if failure is error:
                raise
            try:
                raise caused(failure, error)
            finally:  # see _failed
                del batch, failure

    async def handle_async(
        self,
        request_bytes: RequestBytes,
        headers: Optional[Headers] = None,
        reply_headers: Optional[ReplyHeaders] = None,
    ) -> bytes:
        """Handle one request on the running event loop (``headers`` and ``reply_headers`` as
        for :meth:`handle_sync`).

        Cancelled (a server whose client went), it raises ``CancelledError``, and the plugins
        hear the batch fail with the outcome ``cancelled``: an async function gets it at its
        ``await``; a ``blocking=True`` one, in its thread, cannot be stopped: the invocation
        running there runs to its end (what it raises is logged as a failed function's
        error), and the next ones never start.
        """
        try:
            batch = self._resolve(request_bytes, headers, reply_headers)
        except StatefunError as error:
            self.reject(error, headers)
            raise
        if isinstance(batch, bytes):
            return batch  # the missing-state reply
        function = batch.plan.function
        try:
            if function.is_async:
                fun = batch.fun
                types = self.types
                for invocation in batch.invocations:
                    await fun(batch, batch.message(invocation, types))
            elif function.blocking:  # in the request's context there too, and its own copy
                import asyncio

                loop = asyncio.get_running_loop()
                run = copy_context().run
                stopped: list[Exception] = []
                try:
                    await _awaited(
                        loop.run_in_executor(
                            self.executor, run, self._in_executor, batch, stopped, headers
                        )
                    )
                except asyncio.CancelledError:
                    # The invocation in the thread cannot be stopped; the next ones never start.
                    with self._stopping:
                        raised = stopped.pop() if stopped else None
                        stopped.append(_REQUEST_CANCELLED)
                    if raised is not None:  # it failed as the request was cancelled
                        _failed_unawaited(batch, raised, headers)
                        del raised
                    raise
                if stopped:
                    raise stopped.pop()
            else:
                self._invoke(batch)
            return self._collect(batch)  # a value that cannot be encoded fails the batch too
        except BaseException as error:
            cancelled = _cancelled(error)
            if cancelled:
                _log_cancelled(batch, headers)
            failure = self._failed(
                batch, error, headers, cancelled or _interrupts(error), cancelled
            )
            if failure is error:
                raise
            try:
                raise caused(failure, error)
            finally:  # see _failed
                del batch, failure

    # --- the pipeline ---------------------------------------------------------------------

    def reject(self, error: StatefunError, headers: Optional[Headers] = None) -> None:
        """Report a request refused before it had a batch to ``statefun_request_failed``.

        The handler calls it for what it refuses itself (malformed, unknown function, too
        large); a server calls it for what the framework answers before the handler sees the
        body (a wrong method, a body over the framework's own size limit).
        """
        if headers:  # for the refusal's log line (statefun_core.http.error_response)
            traceparent = header(headers, TRACEPARENT)
            if isinstance(traceparent, str) and is_traceparent(traceparent):
                error.traceparent = traceparent
        if self._hooks("statefun_request_failed"):
            self.plugins.hook.statefun_request_failed(
                error=error, batch=None, headers=_NO_HEADERS if headers is None else headers
            )

    def _check_large(self, data: RequestBytes) -> None:
        """A large body, refused before it is parsed if it is over ``Limits.request_bytes`` or
        holds more invocations than ``Limits.invocations_per_batch``, or more than
        ``_MAX_OTHER_FIELDS`` other fields (see ``protocol.batch_field_counts``)."""
        if len(data) > self._max_request_bytes:
            raise RequestTooLargeError(len(data), int(self._max_request_bytes))
        if isinstance(data, str) or self._max_invocations == float("inf"):
            return  # str: refused below; no limit: not counted (a count would not end early)
        maximum = self._max_invocations
        invocations, others = protocol.batch_field_counts(data, maximum, _MAX_OTHER_FIELDS)
        if invocations > maximum:
            error = LimitExceededError("invocations_per_batch", invocations, int(maximum))
            # counted up to the limit only: the batch holds at least that many
            error.args = (
                f"the batch holds more than {int(maximum)} invocations ({error.setting})",
            )
            raise error
        if others > _MAX_OTHER_FIELDS:
            raise MalformedRequestError(
                f"the request holds more than {_MAX_OTHER_FIELDS} fields besides its "
                "invocations (a runtime sends one state value per ValueSpec)"
            )

    def _resolve(
        self, data: RequestBytes, headers: Optional[Headers], reply_headers: Optional[ReplyHeaders]
    ) -> Union[bytes, _Batch]:
        """Parse and resolve state: the missing-state reply as bytes, or a batch to run."""
        if len(data) > self._counted_above:
            self._check_large(data)
        if type(data) is not bytes:
            if isinstance(data, str):
                raise MalformedRequestError("the request body must be bytes, not str")
            data = bytes(data)
        try:
            request = protocol.parse_request(data)
        except (DecodeError, RuntimeError, ValueError) as error:
            raise caused(
                MalformedRequestError(f"the request body is not a ToFunction: {error}"), None
            )
        # A request without an invocation batch reads as an empty one, whose target "/" no
        # function can be bound to: it is told apart only when no plan is found.
        pb_batch = request.invocation
        # A batch may be empty, and its target id too (a Kafka record with an empty key): it is
        # answered as the official SDK answers it, with the missing state or a reply. Its
        # repeated fields are looped over as lists ([:]): upb's containers have no iterator of
        # their own, and Python's for them ends each loop in an IndexError made with a
        # formatted message (some 2.5 kI a loop).
        invocations = pb_batch.invocations[:]
        if len(invocations) > self._max_invocations:
            maximum = int(self._max_invocations)
            raise LimitExceededError("invocations_per_batch", len(invocations), maximum)
        target = pb_batch.target
        typename = f"{target.namespace}/{target.type}"
        plan = self._plans.get(typename)
        if plan is None or plan.function is not self.functions._functions.get(typename):
            if not request.HasField("invocation"):
                raise MalformedRequestError("the ToFunction request has no invocation batch")
            plan = self._planner.plan(self.functions.for_typename(typename))
        id = target.id
        received = {}
        for state in pb_batch.state[:]:
            received[state.state_name] = state

        event: Optional[BatchEvent] = None
        if self._hooked_generation != getattr(self.plugins, "generation", None):
            self._hooks(_BATCH_EVENTS)  # plugins changed: look again at who listens
        if self._batch_events:
            event = BatchEvent(
                function_type=typename,
                function_id=id,
                batch_size=len(invocations),
                headers=_NO_HEADERS if headers is None else headers,
                started=time.perf_counter(),
                reply_headers=CheckedReplyHeaders({} if reply_headers is None else reply_headers),
            )
            self.plugins.hook.statefun_batch_started(batch=event)

        if not received.keys() >= plan.name_set:
            absent = tuple(name for name in plan.names if name not in received)
            reply = plan.incomplete_reply(absent)
            if event is not None:
                event.outcome = "missing_state"
                event.missing_states = absent
                event.duration = time.perf_counter() - event.started
                self.plugins.hook.statefun_batch_finished(batch=event)
            return reply

        storage = plan.storage_class()
        storage._received = received
        storage._values = {}
        storage._written = {}
        batch = _new_batch(_Batch)
        batch._target = target
        batch.storage = storage
        batch._max_outgoing = self._max_outgoing
        batch.outbox = []
        batch.plan = plan
        batch.typename = typename
        batch.id = id
        batch.invocations = invocations
        batch.event = event
        if event is None and plan.policy is None:
            batch.fun = plan.fun
        else:
            batch.fun = self._observed(batch)
        return batch

    def _invoke(self, batch: _Batch) -> None:
        """Run every invocation of a sync function's batch, in order."""
        fun, types = batch.fun, self.types
        for invocation in batch.invocations:
            if (result := fun(batch, batch.message(invocation, types))) is not None:
                _returned(batch, result)

    def _in_executor(
        self, batch: _Batch, stopped: list[Exception], headers: Optional[Headers]
    ) -> None:
        """``_invoke`` in the executor, putting what the function raised in ``stopped``, for
        the request's task to raise: an asyncio future can not hold a ``StopIteration`` (it
        is dropped, and the request awaits for ever). Not returned: the executor's frame that
        holds a result is in the error's traceback, a cycle that would keep the batch until
        the cyclic garbage collector. Once the request is cancelled (``_REQUEST_CANCELLED``
        in ``stopped``), no further invocation starts: nobody waits for its reply; and what
        the running one raises is logged here, as the task would have (nobody raises it)."""
        fun, types = batch.fun, self.types
        try:
            for invocation in batch.invocations:
                if stopped:
                    return
                if (result := fun(batch, batch.message(invocation, types))) is not None:
                    _returned(batch, result)
        except Exception as error:
            with self._stopping:  # the task takes it, or has been cancelled: not both
                cancelled = bool(stopped)
                if not cancelled:
                    stopped.append(error)
            if cancelled:
                _failed_unawaited(batch, error, headers)

    def _step(self, batch: _Batch) -> None:
        """Run every invocation of an async function whose code never awaits, in order, each
        coroutine to its end in one step: no event loop needed."""
        fun, types = batch.fun, self.types
        for invocation in batch.invocations:
            awaiting = fun(batch, batch.message(invocation, types)).__await__()
            for _ in awaiting:
                batch.suspended = True
                # GeneratorExit where it awaits (_no_loop_for), here: compiled by mypyc, the
                # observing coroutine would not be closed as this frame unwinds
                awaiting.close()
                raise _Suspended

    def _run_on_thread_loop(self, batch: _Batch) -> None:
        """Run every invocation of an async function that awaits, from sync code: the batch is
        one task of this thread's event loop, as under ``asyncio.run``."""
        import asyncio

        if asyncio._get_running_loop() is not None:
            raise AsyncFunctionInSyncContextError(
                "handle_sync() was called with an async function from inside a running event "
                "loop; await handler.handle_async(...) instead"
            )
        owner: Optional[_ThreadLoop] = getattr(self._loops, "owner", None)
        if owner is None:
            owner = self._loops.owner = _ThreadLoop()
        loop = owner.loop
        # The loop stood still since the thread's last batch: one turn takes in what came
        # meanwhile (a kept-alive connection its server closed), before the batch's client
        # would take that connection from its pool and fail on it.
        loop.call_soon(loop.stop)
        loop.run_forever()
        try:
            loop.run_until_complete(self._invoke_async(batch))
        finally:  # as asyncio.run: no task of the batch outlives it
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            if leftovers:
                loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))

    def _restart(self, batch: _Batch) -> None:
        """Undo what a batch did before it failed (its state changes, what it sent), to run it
        again from its first invocation."""
        batch.storage._written.clear()
        batch.storage._values.clear()
        batch.outbox.clear()
        batch.suspended = False
        if batch.event is not None:
            batch.event.dead_letters = 0  # its dead-letter records went with the outbox
        if batch.fun is not batch.plan.fun:
            batch.fun = self._observed(batch)  # counting invocations from the first again

    async def _invoke_async(self, batch: _Batch) -> None:
        """Await every invocation of an async function's batch, in order (``handle_async``
        runs the same loop inline: a coroutine less per request)."""
        fun, types = batch.fun, self.types
        for invocation in batch.invocations:
            await fun(batch, batch.message(invocation, types))

    def _collect(self, batch: _Batch, check_reply: Optional[Callable[[int], None]] = None) -> bytes:
        """The reply, written by hand (see protowire.py): a ``FromFunction`` whose
        ``InvocationResponse`` has the state mutations in declaration order, then the outbox
        by kind (messages, delayed messages, egress records), each kind in send order.

        The outbox is encoded in send order, so what cannot be encoded (a target, a value)
        fails the batch at the first such item sent; state values were encoded when assigned
        (see storage.py), but for ints and bools, whose encoding cannot fail.
        """
        parts: list[bytes] = []  # the InvocationResponse's fields, in field order
        written = batch.storage._written
        if written:
            for mutation in batch.plan.mutations:
                if mutation.name not in written:
                    continue
                data = written[mutation.name]
                if data is None:
                    parts.append(mutation.deleted)
                    continue
                if type(data) is not bytes:  # an int or bool kept as it is: not yet encoded
                    if data:
                        parts.append(mutation.kept_head + mutation.encode_kept(data))
                        continue
                    data = b""  # proto3 leaves 0 and False out
                parts.append(_modify(mutation, data))
        if batch.outbox:
            delayed: list[bytes] = []  # field 3, after the messages (2)
            egress: list[bytes] = []  # field 4
            for sent in batch.outbox:
                if isinstance(sent, Message):
                    message = _message(sent)
                    if message is None:  # the target before the value: the first to fail fails
                        target = element(1, _target(sent))
                        message = element(2, target + element(2, self._typed_value(sent)))
                    parts.append(message)
                elif isinstance(sent, EgressMessage):
                    record = _typename_head(sent.typename) + element(3, self._typed_value(sent))
                    egress.append(element(4, record))
                else:
                    delayed.append(element(3, self._delayed(sent)))
            parts += delayed
            parts += egress
        reply = b""  # no effects: an empty FromFunction
        if parts:
            result = b"".join(parts)
            reply = _reply_head(len(result)) + result
            if len(reply) > self._large_reply:
                self._check_large_reply(batch, len(reply))
            if check_reply is not None:
                check_reply(len(reply))
        if batch.event is not None:
            self._finished(batch)
        return reply

    def _check_large_reply(self, batch: _Batch, size: int) -> None:
        """A large reply fails its batch if it is over ``Limits.reply_bytes``, or if the state it
        writes would make the address's states, together, over ``Limits.request_bytes``: every
        request carries them all, so each would be refused (413) and the address never called
        again. Looked at only for a reply over 256 KiB or ``Limits.request_bytes``, which
        writing a large state makes."""
        if size > self._max_reply_bytes:
            maximum = int(self._max_reply_bytes)
            raise LimitExceededError("reply_bytes", size, maximum, "the reply's size")
        written = batch.storage._written
        if not written or self._max_request_bytes == float("inf"):
            return
        received = batch.storage._received
        total = 0
        for mutation in batch.plan.mutations:
            if mutation.name not in written:
                total += len(received[mutation.name].state_value.value)
            elif (data := written[mutation.name]) is not None:
                if type(data) is not bytes:  # an int or bool kept as it is
                    data = mutation.encode_kept(data) if data else b""
                total += len(data)
        if total > self._max_request_bytes:
            maximum = int(self._max_request_bytes)
            error = LimitExceededError("request_bytes", total, maximum)
            error.args = (
                f"the address's states would be {total} bytes together, over the limit of "
                f"{maximum} bytes (Limits.request_bytes) on the requests that carry them: "
                "every later request to it would be refused",
            )
            raise error

    def _finished(self, batch: _Batch) -> None:
        """Report a batch that succeeded to ``statefun_batch_finished``."""
        event = batch.event
        assert event is not None
        event.outcome = "ok"
        event.duration = time.perf_counter() - event.started
        received = batch.storage._received
        event.state_bytes_read = sum(
            len(received[name].state_value.value) for name in batch.plan.names
        )
        written = batch.storage._written
        event.state_bytes_written = sum(
            len(data) if type(data) is bytes else len(mutation.encode_kept(data)) if data else 0
            for mutation in batch.plan.mutations
            if (data := written.get(mutation.name)) is not None
        )
        event.messages = event.delayed_messages = event.egress_records = 0
        for sent in batch.outbox:
            if isinstance(sent, Message):
                event.messages += 1
            elif isinstance(sent, EgressMessage):
                event.egress_records += 1
            elif sent.message is not None:  # not a cancellation
                event.delayed_messages += 1
        self.plugins.hook.statefun_batch_finished(batch=event)

    def _failed(
        self,
        batch: _Batch,
        error: BaseException,
        headers: Optional[Headers],
        ends_request: bool,
        cancelled: bool = False,
    ) -> BaseException:
        """Report a batch that raised ``error`` to the plugins, and return what to raise: a
        ``FunctionFailedError`` caused by it (logged), or, when it ``ends_request`` (a
        cancelled request, an interrupted process: not the function's failure), ``error``
        itself. The batch's outcome is ``cancelled`` for a ``cancelled`` request, else
        ``error`` (an interrupted process's too: it stopped, nobody hung up)."""
        failure: BaseException = error
        if not ends_request:
            met: Optional[FunctionFailedError] = getattr(batch, "failure", None)
            if met is not None:
                # The error's traceback holds the frames that hold the batch: neither the
                # batch nor the frame that raises the error may hold it in turn, or the batch
                # (request, state, outbox) waits for the cyclic garbage collector.
                del batch.failure
            # logged where an invocation raised it; else (not observed, or another step of the
            # batch failed: encoding the reply) here
            failure = (
                met
                if met is not None and met.__cause__ is error
                else _failed_function(batch, error, headers)
            )
        event = batch.event
        headers = _NO_HEADERS if headers is None else headers
        outcome: Outcome = "cancelled" if cancelled else "error"
        if event is not None:
            event.outcome = outcome
            event.duration = time.perf_counter() - event.started
            self.plugins.hook.statefun_batch_failed(batch=event, error=error)
        if self._hooks("statefun_request_failed"):
            if event is None:  # no other hook: the batch was not observed, only named here
                event = BatchEvent(
                    function_type=batch.typename,
                    function_id=batch.id,
                    batch_size=len(batch.invocations),
                    headers=headers,
                    started=time.perf_counter(),
                    outcome=outcome,
                )
            self.plugins.hook.statefun_request_failed(error=failure, batch=event, headers=headers)
        return failure

    # --- helpers --------------------------------------------------------------------------

    def _delayed(self, sent: DelayedMessage) -> bytes:
        """A ``DelayedInvocation``: a message sent after a delay, or a cancellation."""
        message = sent.message
        if message is None:
            return _CANCELLATION + field(11, text(sent.cancellation_token))
        delay = _DELAY + varint(sent.delay_ms) if sent.delay_ms else b""
        target = element(2, _target(message))
        value = element(3, self._typed_value(message))
        return delay + target + value + field(11, text(sent.cancellation_token))

    def _typed_value(self, message: Union[Message, EgressMessage]) -> bytes:
        """The ``TypedValue`` of a message or egress record."""
        typename = message._typename
        if typename is not None:
            return typed_value_fields(typename) + field(3, message._data)  # type: ignore[arg-type]
        if message._typed_value is not None:  # a received message sent on, as it came
            return message._typed_value.SerializeToString()  # type: ignore[no-any-return]
        assert isinstance(message, Message)  # message_builder(value=...) without a type:
        tpe = self.types.for_value(message._value)  # the plugins know the class
        return typed_value_fields(tpe.typename) + field(3, encode(tpe, message._value))

    def _hooks(self, name: str) -> bool:
        """Whether any plugin implements ``name``; cached until plugins change."""
        generation = getattr(self.plugins, "generation", None)
        if generation is None or generation != self._hooked_generation:
            hook = self.plugins.hook
            hooked = {n for n in OBSERVER_HOOKS if getattr(hook, n).get_hookimpls()}
            if hooked - {"statefun_request_failed"}:
                hooked.add(_BATCH_EVENTS)
            self._hooked = frozenset(hooked)
            self._batch_events = _BATCH_EVENTS in hooked
            self._hooked_generation = -1 if generation is None else generation
        return name in self._hooked

    def _observed(self, batch: _Batch) -> Callable[..., Any]:
        """The batch's function, reporting each invocation to the plugins and dead-lettering
        its final failures (either or both).

        It is called with the batch as its context, and holds no reference to it: kept in
        ``batch.fun``, one would make a cycle, which keeps the batch (its request, state and
        outbox) until the cyclic garbage collector runs, not only until its reply."""
        fun = batch.plan.fun
        index = itertools.count()
        observing = self._observing
        if batch.plan.function.is_async:

            async def observed_async(context: _Batch, message: Message) -> None:
                with observing(context, next(index), message):
                    await fun(context, message)

            return awaiting(_awaited, observed_async)

        def observed(context: _Batch, message: Message) -> None:
            with observing(context, next(index), message):
                if (result := fun(context, message)) is not None:
                    _returned(context, result)

        return observed

    def _told(self, batch: _Batch, error: BaseException, retried: bool) -> BaseException:
        """What ``statefun_invocation_finished`` is told an invocation raised: an
        ``InvocationRetried`` for a try run again, an ``InvocationCancelled`` for one its
        request's cancellation cut short, else ``error`` itself.

        Cut short as ``handle_async`` tells it for the batch (``_cancelled``), and only an
        ``async`` function awaits in the request's task; never under ``handle_sync``, whose
        task is the handler's own, on this thread's loop (a ``CancelledError`` there is the
        function's, or the process's as it stops)."""
        if retried:
            return _retried(error)
        if not batch.plan.function.is_async:
            return error
        import asyncio

        loop = asyncio._get_running_loop()
        owner: Optional[_ThreadLoop] = getattr(self._loops, "owner", None)
        if loop is None or (owner is not None and loop is owner.loop) or not _cancelled(error):
            return error
        return _cancellation(error)

    @contextlib.contextmanager
    def _observing(self, batch: _Batch, index: int, message: Message) -> Iterator[None]:
        policy = batch.plan.policy
        if policy is not None:
            saved_outbox, saved_state = len(batch.outbox), checkpoint(batch.storage)
        hook = self.plugins.hook
        invocation = None
        if batch.event is not None:
            invocation = InvocationEvent(
                batch=batch.event,
                index=index,
                caller=batch.caller,
                argument_typename=message.typed_value.typename,
            )
            hook.statefun_invocation_started(invocation=invocation)
        try:
            yield
        except BaseException as error:
            retried = _no_loop_for(batch, error)  # handle_sync runs it again, as a task
            if retried or policy is None or not policy.is_final(error):
                if isinstance(error, Exception) and not retried and invocation is not None:
                    # the function's failure, logged here, where the plugins' span and log
                    # context of the invocation are current (with no plugin, by _failed,
                    # which has the request's headers for the line's trace id)
                    batch.failure = _failed_function(batch, error)
                if invocation is not None:
                    hook.statefun_invocation_finished(
                        invocation=invocation, error=self._told(batch, error, retried)
                    )
                if isinstance(error, StopIteration):
                    # What Python raises for it out of a generator (PEP 479), which contextlib
                    # takes back off the function's error. Compiled by mypyc, the generator lets
                    # it out as it is: it kept contextlib's frame in its traceback, a cycle that
                    # held the batch until the cyclic garbage collector ran.
                    raise caused(RuntimeError("generator raised StopIteration"), error)
                raise
            # a final failure: this invocation leaves no trace but its dead-letter record
            del batch.outbox[saved_outbox:]
            rollback(batch.storage, saved_state)
            caller = batch.caller
            record = DeadLetterRecord.for_error(
                batch.typename,
                batch.id,
                None if caller is None else (caller.typename, caller.id),
                batch._invocation.argument,
                error,
            )
            batch.outbox.append(record.to_egress(policy.egress))
            if invocation is not None:
                invocation.batch.dead_letters += 1
                hook.statefun_invocation_dead_lettered(
                    invocation=invocation, error=error, record=record
                )
                hook.statefun_invocation_finished(invocation=invocation, error=error)
            return
        if invocation is not None:
            hook.statefun_invocation_finished(invocation=invocation, error=None)


def _failed_function(
    batch: _Batch, error: BaseException, headers: Optional[Headers] = None
) -> FunctionFailedError:
    """The ``FunctionFailedError`` of a batch whose function raised ``error``, logged with the
    function's exception (the line alone, what an alert or a log search shows, says why) and
    its traceback. Logged by the handler, once, where the error is met: with the invocation's
    trace context and log context current when it comes from an invocation; else with the
    function, id and trace id as record attributes (``_line_fields``)."""
    failure = FunctionFailedError(batch.typename, batch.id)
    failure.__cause__ = error
    if type(error) is AttributeError:
        _name_the_states(batch, error)
    reason = error_text(error)
    why = f"{type(error).__name__}: {reason}" if reason else type(error).__name__
    cause = error.__cause__
    if type(cause) is TypeError and is_unreadable(cause):
        # a decoder's own error on another type's bytes ('Expecting value: line 2 column 1'):
        # the line names the types, which only the traceback's chained cause did
        why += f" (raised reading a value of another type: {error_text(cause)})"
    log_line(
        logger,
        logging.ERROR,
        "statefun request failed: %s: %s",
        failure,
        why,
        fields=_line_fields(batch, headers),
        exc_info=failure,
    )
    return failure


def _returned(batch: _Batch, result: object) -> None:
    """What a sync function returned, which is dropped as in the official SDK, unless it is
    something to await (a coroutine): then the function has not run, and never would.

    Bound as a plain ``def`` and made ``async def`` since (IPython's autoreload swaps a
    function's code in place), or a plain wrapper of an ``async def`` without
    ``functools.wraps``, so ``bind`` could not tell: the batch fails, naming the function,
    rather than succeeding with nothing done."""
    import inspect

    if not inspect.isawaitable(result):
        return
    close = getattr(result, "close", None)
    if close is not None:
        close()  # no "never awaited" warning: the error says it
    fun = batch.plan.function.fun
    name = getattr(fun, "__qualname__", repr(fun))
    raise TypeError(
        f"{batch.plan.function.typename}: {name} returned a {type(result).__name__}, "
        "which nothing awaits: the function is bound as a plain def, so it did not run. Bind "
        "the async def function itself (a wrapper of it with functools.wraps); after a reload "
        "that made it async def, bind it again"
    )


def _failed_unawaited(batch: _Batch, error: Exception, headers: Optional[Headers]) -> None:
    """Log what a ``blocking=True`` invocation raised in its thread after its request was
    cancelled: nobody raises it, but its operator wants to know the function failed. The
    line a failure met by the request writes, once: an observed invocation wrote it where it
    raised."""
    met: Optional[FunctionFailedError] = getattr(batch, "failure", None)
    if met is not None:
        del batch.failure  # see _failed
    if met is None or met.__cause__ is not error:
        _failed_function(batch, error, headers)


def _log_cancelled(batch: _Batch, headers: Optional[Headers]) -> None:
    """Log a batch whose request was cancelled: not the function's failure, but what an
    operator looks for when a runtime retries (its call timed out and it closed the
    connection). A warning, as a refused request's; with the function, id and trace id as
    record attributes, as the log context puts them on a failed function's line."""
    log_line(
        logger,
        logging.WARNING,
        "statefun request cancelled: function %r for id %r gets no reply (its client went, "
        "as a runtime does when its call times out, or the server is stopping)",
        batch.typename,
        batch.id,
        fields=_line_fields(batch, headers),
    )


def _line_fields(batch: _Batch, headers: Optional[Headers]) -> dict[str, Optional[str]]:
    """The record attributes of a batch's failure or cancellation line, as the log context
    names them inside an invocation: its function, id and trace id (by ``trace_id``'s rule:
    the batch span's, named in the reply's ``traceresponse``, when a tracing plugin made one).
    ``headers`` are the request's; the batch's plugin event has them too."""
    event = batch.event
    if headers is None and event is not None:
        headers = event.headers
    traceparent = header(headers, TRACEPARENT) if headers else None
    if not isinstance(traceparent, str):  # a server's headers are not always checked
        traceparent = None
    traceresponse = None if event is None else event.reply_headers.get(TRACERESPONSE)
    return {
        "statefun_function": batch.typename,
        "statefun_id": batch.id,
        "trace_id": trace_id(traceparent, traceresponse),
    }


def _name_the_states(batch: _Batch, error: AttributeError) -> None:
    """Python's words for a state name not declared (``'<typename> storage' object has no
    attribute 'sesion'``, the storage class has no ``__getattr__`` to say more: it would slow
    every read), followed by the states there are and the nearest one."""
    import difflib  # here: a failure's cost, not every start-up's
    import unicodedata

    unknown = f"'{batch.typename} storage' object has no attribute "
    reason = str(error)
    if not reason.startswith(unknown):
        return
    rest = reason[len(unknown) :]  # 'sesion' (and since Python 3.13, for a write, more words)
    if not rest.startswith("'"):
        return
    name = rest[1 : rest.find("'", 1)]
    names = batch.plan.names
    # an attribute name in source is read in its NFKC form: 'e\u0301' as 'é', 'ﬁ' as 'fi'
    unreachable = [n for n in names if n != name and unicodedata.normalize("NFKC", n) == name]
    if unreachable:
        error.args = (
            f"{reason}: {batch.typename} has no state {name!a}, but a state {unreachable[0]!a}, "
            f"which looks the same: Python reads the attribute name in its NFKC form, "
            f"{name!a}; name the ValueSpec so, or reach the state with "
            f"getattr(context.storage, {unreachable[0]!a})",
        )
        return
    nearest = difflib.get_close_matches(name, names, n=1)
    error.args = (
        f"{reason}: {batch.typename} has no state {name!r}"
        + (f" (did you mean {nearest[0]!r}?)" if nearest else "")
        + f"; its states are {', '.join(names) or 'none'}: declare each in "
        "bind(specs=[ValueSpec(...)])",
    )


@mypyc_attr(native_class=False)  # compiled, a native class takes no weak reference
class _ThreadLoop:
    """The event loop ``handle_sync`` keeps for one thread, closed when the thread's locals go
    (at thread exit, or with the handler), so no loop is left unclosed.

    Closed by a weakref finalizer, not ``__del__``: a handler in a reference cycle takes its
    threads' owners into the cyclic garbage, where ``__del__`` methods run in no set order (the
    loop's sockets could be finalized, unclosed, before it), but weakref callbacks run before
    any of them; and the finalizer holds the loop, so the loop is never garbage before it."""

    __slots__ = ("__weakref__", "loop")

    def __init__(self) -> None:
        import asyncio

        self.loop = asyncio.new_event_loop()
        # not at exit: a daemon thread's loop may be running then, and its close would fail
        weakref.finalize(self, self.loop.close).atexit = False


def _interrupts(error: BaseException) -> bool:
    """Whether ``error`` interrupts the process (Ctrl-C, ``sys.exit``) or the request (its
    coroutine closed unfinished: a task destroyed at shutdown): not a function's failure."""
    return isinstance(error, (KeyboardInterrupt, SystemExit, GeneratorExit))


def _wanted_a_loop(error: RuntimeError) -> bool:
    """Whether ``error`` is asyncio's for code that needs a running event loop where there is
    none (``get_running_loop``, ``create_task``, ``ensure_future``, ``Future()``)."""
    import asyncio

    reason = error_text(error)
    return (
        "no running event loop" in reason or "no current event loop" in reason
    ) and asyncio._get_running_loop() is None


class _Suspended(Exception):
    """An async function run with no loop suspended: its code awaits after all."""


def _no_loop_for(batch: _Batch, error: BaseException) -> bool:
    """Whether ``error`` is an async function's, run with no loop, asking for one, or closed
    where it suspended (``GeneratorExit``, see ``_step``): not its failure (``handle_sync``
    runs its batch again as a task), even if it declares ``RuntimeError`` final."""
    if not batch.plan.function.is_async:
        return False
    if isinstance(error, GeneratorExit):  # else a coroutine closed unfinished (a task destroyed)
        return getattr(batch, "suspended", False)
    return isinstance(error, RuntimeError) and _wanted_a_loop(error)


def _retried(error: BaseException) -> InvocationRetried:
    """What the plugins are told of a try that asked for the loop, or awaited: not a failure."""
    retried = InvocationRetried(
        "run with no event loop, it needed one: its batch runs again as a task"
    )
    retried.__cause__ = error
    return retried


def _cancellation(error: BaseException) -> InvocationCancelled:
    """What the plugins are told of an invocation its request's cancellation cut short."""
    cancelled = InvocationCancelled("its request was cancelled: the function was stopped")
    cancelled.__cause__ = error
    return cancelled


def _cancelled(error: BaseException) -> bool:
    """Whether ``error`` is the request's task being cancelled from outside (a server whose
    client went), not a ``CancelledError`` the function raised itself (awaiting a task it
    cancelled), which is its failure. Before Python 3.11 tasks do not tell the two apart:
    each is taken for the request's."""
    import asyncio

    if not isinstance(error, asyncio.CancelledError):
        return False
    cancelling = getattr(asyncio.current_task(), "cancelling", None)
    return cancelling is None or cancelling() > 0
