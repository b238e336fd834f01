"""The test harness: a user's functions run by the real handler, with the runtime's rules.

Every batch goes through :class:`~statefun_core.RequestReplyHandler` as real protobuf bytes,
and every reply is applied by the same :class:`~statefun_core.engine.Engine` the local runtime
uses, over a :class:`~statefun_core.engine.MemoryStore` and a clock the test moves.
Each batch carries the trace headers statefun-local sends (:mod:`statefun_core.tracecontext`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any, Callable, Optional, Union

import pluggy

from ..core import ValueSpec
from ..deadletters import DeadLetterEgress, DeadLetterRecord
from ..engine import (
    Address,
    Batch,
    Engine,
    ExpireMode,
    ManualClock,
    MemoryStore,
    StaleBatchError,
    StateEntry,
    StateSpec,
    TraceContext,
    TypedValue,
)
from ..errors import AsyncFunctionInSyncContextError
from ..functions import StatefulFunctions
from ..handler import RequestReplyHandler
from ..http import CONTENT_TYPE
from ..messages import message_builder
from ..storage import _naming_state, state_serializer
from ..tracecontext import TRACERESPONSE
from ..types import BUILTIN_TYPES, Type
from .records import AnyEgress, PendingMessage, SentMessage, decode_egress

__all__ = ["Harness", "HarnessError", "HarnessFactory"]

Duration = Union[int, timedelta]


class HarnessError(AssertionError):
    """The harness could not finish: the functions keep messaging each other forever."""


class Harness:
    """Runs ``functions`` like a StateFun runtime, in-process and deterministically.

    ``send`` queues a message, ``run`` (or ``await run_async()``) delivers until nothing is
    left to do, ``advance`` moves the clock, firing delayed messages and expiring state.
    Messages to function types that ``functions`` does not hold, or that ``capture`` names
    (to test a function without the ones it messages), are captured in :attr:`captured`
    instead of delivered. A function that raises fails its batch: the error
    propagates and the batch's messages stay queued, as in the runtime, which retries them.

    ``plugins`` and ``dead_letters`` are passed to the handler (default: the installed
    plugins, as in production); a final failure goes to its dead-letter egress as it would
    from a deployed endpoint (:attr:`dead_letters`, :meth:`assert_dead_lettered`).
    ``max_batches`` bounds one ``run``; more means the functions never go quiet.
    """

    functions: StatefulFunctions
    capture: frozenset[str]
    handler: RequestReplyHandler
    clock: ManualClock
    store: MemoryStore
    engine: Engine

    def __init__(
        self,
        functions: StatefulFunctions,
        *,
        plugins: Optional[pluggy.PluginManager] = None,
        start_ms: int = 0,
        max_batches: int = 10_000,
        max_discovery_rounds: int = 10,
        dead_letters: Optional[DeadLetterEgress] = None,
        capture: Iterable[str] = (),
    ) -> None:
        self.capture = frozenset((capture,) if isinstance(capture, str) else capture)
        not_run = sorted(typename for typename in self.capture if typename not in functions)
        if not_run:
            raise ValueError(
                f"capture names function types the functions run; not {', '.join(not_run)} "
                f"(messages to a type they do not run are captured anyway)"
            )
        self.functions = functions
        self.handler = RequestReplyHandler(functions, plugins=plugins, dead_letters=dead_letters)
        self.clock = ManualClock(start_ms)
        self.store = MemoryStore()
        self.engine = Engine(self.store, self.clock, max_discovery_rounds=max_discovery_rounds)
        self.max_batches = max_batches
        #: Every message a function sent, in the order the runtime applied them.
        self.sent: list[SentMessage] = []
        #: Messages delivered to function types the harness does not run (or captures).
        self.captured: list[SentMessage] = []
        self._dead_letter_egresses: set[DeadLetterEgress] = set()  # of functions redeployed
        #: Every request sent to a function, state-discovery rounds included, in order.
        self.batches: list[Batch] = []

    def __repr__(self) -> str:
        return (
            f"Harness({self.functions!r}, now_ms={self.now_ms}, batches={len(self.batches)}, "
            f"sent={len(self.sent)})"
        )

    # --- driving ------------------------------------------------------------------------

    def send(
        self,
        typename: str,
        id: str,
        *,
        caller: Optional[tuple[str, str]] = None,
        traceparent: Optional[str] = None,
        **value: Any,
    ) -> Harness:
        """Queue a message for ``typename``/``id``, the value given as to ``message_builder``
        (``str_value=``, ``int_value=``, ..., or ``value=`` with ``value_type=``). Without
        ``caller`` (a ``(typename, id)`` pair) it arrives as from an ingress; ``traceparent``
        is where it comes from, for tracing (a W3C ``traceparent``)."""
        sender = None if caller is None else Address(*caller)
        trace = TraceContext.parse(traceparent)
        if traceparent is not None and trace is None:
            raise ValueError(f"not a W3C traceparent: {traceparent!r}")
        typed_value = self._typed_value(typename, id, value)
        self.engine.send(Address(typename, id), typed_value, sender, trace)
        return self

    def run(self) -> int:
        """Deliver messages (and delayed messages due now) until the functions are quiet;
        return how many batches were delivered.

        Each reply is applied before the next batch is sent, and what it makes ready goes
        out then, as in the runtime: a message to an idle address is sent at once, alone,
        and those that reach it while it is busy are its next batch."""
        delivered = 0
        ready = collections.deque(self._next_batches(delivered))
        while ready:
            batch = ready.popleft()
            with self._released_on_error([batch, *ready]):
                reply_headers: dict[str, str] = {}
                if self._is_served(batch):
                    self._check_runs_without_loop(batch)
                    headers = _request_headers(batch)
                    reply = self.handler.handle_sync(batch.request, headers, reply_headers)
                else:
                    reply = self._capture(batch)
                self._complete(batch, reply, reply_headers)
            delivered += 1
            ready.extend(self._next_batches(delivered))
        return delivered

    async def run_async(self) -> int:
        """:meth:`run` through the handler's ``handle_async``, for asyncio tests."""
        delivered = 0
        ready = collections.deque(self._next_batches(delivered))
        while ready:
            batch = ready.popleft()
            with self._released_on_error([batch, *ready]):
                reply_headers: dict[str, str] = {}
                if self._is_served(batch):
                    headers = _request_headers(batch)
                    reply = await self.handler.handle_async(batch.request, headers, reply_headers)
                else:
                    reply = self._capture(batch)
                self._complete(batch, reply, reply_headers)
            delivered += 1
            ready.extend(self._next_batches(delivered))
        return delivered

    def advance(self, duration: Duration) -> int:
        """Move the clock forward by ``duration`` (milliseconds, or a ``timedelta``), delivering
        each delayed message at its due time; return how many batches were delivered."""
        delivered = self.run()
        for due_ms in self._due_times(duration):
            self.clock.advance(due_ms - self.clock.now_ms())
            delivered += self.run()
        return delivered

    async def advance_async(self, duration: Duration) -> int:
        """:meth:`advance` through ``handle_async``."""
        delivered = await self.run_async()
        for due_ms in self._due_times(duration):
            self.clock.advance(due_ms - self.clock.now_ms())
            delivered += await self.run_async()
        return delivered

    def redeploy(
        self, functions: StatefulFunctions, *, plugins: Optional[pluggy.PluginManager] = None
    ) -> Harness:
        """Serve new versions of the functions against the same runtime (state, registered
        specs, queued and delayed messages), to test how a change of state specs behaves;
        with the harness' plugins unless ``plugins`` are given."""
        self._dead_letter_egresses |= _dead_letter_egresses(self.functions, self.handler)
        self.functions = functions
        self.handler = RequestReplyHandler(
            functions,
            plugins=self.handler.plugins if plugins is None else plugins,
            dead_letters=self.handler.dead_letters,
        )
        return self

    def restart(self) -> Harness:
        """Restart the runtime: a new engine over the same store and clock. Batches that were
        in flight are sent again; nothing queued, scheduled or stored is lost. The registered
        state specs are, as the runtime loses them (protocol §5): the next request of each
        function discovers them again, with its specs as they are now."""
        with self.store.transaction():
            self.store.specs_forget()
        self.engine = Engine(
            self.store, self.clock, max_discovery_rounds=self.engine.max_discovery_rounds
        )
        return self

    @property
    def now_ms(self) -> int:
        """The harness clock, in milliseconds."""
        return self.clock.now_ms()

    # --- reading results ----------------------------------------------------------------

    def state(self, typename: str, id: str) -> dict[str, Any]:
        """The live state of ``typename``/``id``, each value decoded by its declared type;
        a state that was never written, was deleted or expired is absent. A value stored as
        another type (a redeploy changed the state's type) raises ``TypeError``, as the
        function's read of it does.

        A state whose spec the runtime has forgotten (after :meth:`restart`) or not learnt yet
        (set by :meth:`set_state` before any request) is shown as the next request will see
        it: expired or not by the spec the deployed function declares."""
        address = Address(typename, id)
        registered = self.engine.registered_specs(typename)
        now_ms = self.clock.now_ms()
        with self.store.transaction():
            entries = self.store.state_get(address)
        state = {}
        for name, (tpe, declared) in self._declared_specs(typename).items():
            entry = entries.get(name)
            if entry is None or entry.expired(registered.get(name, declared), now_ms):
                continue
            if entry.typename != tpe.typename:
                raise TypeError(
                    f"state {name!r} of {typename}/{id} is stored as {entry.typename}, but "
                    f"the deployed function declares it as {tpe.typename}"
                )
            state[name] = tpe.serializer().deserialize(entry.value)
        return state

    def set_state(self, typename: str, id: str, **values: Any) -> Harness:
        """Store state of ``typename``/``id`` as if its function had just written it, to start
        a test from a given state: each value encoded by the type its ``ValueSpec`` declares
        (``None`` deletes it), written now on the harness clock (an expiration counts from
        here). The address's next request carries it. A name the function does not declare,
        or a value its type cannot encode, is an error and nothing is stored."""
        declared = self._declared_specs(typename)
        undeclared = _undeclared(typename, values, declared)
        if undeclared is not None:
            raise ValueError(undeclared)
        registered = self.engine.registered_specs(typename)
        encoded: dict[str, Optional[bytes]] = {}
        for name, value in values.items():
            tpe, spec = declared[name]
            known = registered.get(name)
            if known is not None and known.typename != spec.typename:
                raise TypeError(
                    f"state {name!r} of {typename} is registered as {known.typename}; the "
                    f"deployed function declares it as {spec.typename} (restart() forgets it)"
                )
            if value is None:
                encoded[name] = None
                continue
            try:
                encoded[name] = state_serializer(tpe, tpe.serializer())(value)
            except (TypeError, ValueError) as error:
                raise _naming_state(error, name, tpe.typename) from None
        address, now_ms = Address(typename, id), self.clock.now_ms()
        with self.store.transaction():
            for name, data in encoded.items():
                if data is None:
                    self.store.state_delete(address, name)
                else:
                    entry = StateEntry(declared[name][1].typename, data, now_ms, now_ms)
                    self.store.state_put(address, name, entry)
        return self

    @property
    def pending(self) -> list[PendingMessage]:
        """The delayed messages not delivered (nor cancelled) yet, by due time."""
        return [
            PendingMessage(
                t.target,
                t.argument,
                t.caller,
                self.handler.types,
                due_ms=t.due_ms,
                cancellation_token=t.token,
            )
            for t in self.engine.pending_timers()
        ]

    @property
    def egress(self) -> list[AnyEgress]:
        """Every record sent to an egress, in order; Kafka and Kinesis records decoded."""
        return [decode_egress(record) for record in self.engine.egress_records()]

    @property
    def dead_letters(self) -> list[DeadLetterRecord]:
        """Every dead-letter record sent (to any dead-letter egress of the functions served,
        now or before a redeploy), in order; other records on the same egress (another topic
        or stream) are not dead letters."""
        egresses = self._dead_letter_egresses | _dead_letter_egresses(self.functions, self.handler)
        return [
            DeadLetterRecord.from_json(record.value)
            for record in self.egress
            if _sent_to(record, egresses)
        ]

    # --- assertions ---------------------------------------------------------------------

    def assert_dead_lettered(
        self, typename: str, id: str, error: Optional[type[BaseException]] = None
    ) -> DeadLetterRecord:
        """Assert a message to ``typename``/``id`` was dead-lettered (for ``error``, a class,
        when given); return its record."""
        __tracebackhide__ = True  # pytest: a failure points at the test's line
        for record in self.dead_letters:
            if (record.function_type, record.function_id) != (typename, id):
                continue
            if error is None or record.error_class == f"{error.__module__}.{error.__qualname__}":
                return record
        raise AssertionError(
            f"no message to {typename}/{id} was dead-lettered"
            f"{'' if error is None else f' for {error.__qualname__}'}; dead letters: "
            f"{_listing(self.dead_letters)}"
        )

    def assert_state(self, typename: str, id: str, **expected: Any) -> None:
        """Assert the given states of ``typename``/``id`` (``None`` for absent); a name the
        function does not declare is an error, not an absent state (a typo would pass)."""
        __tracebackhide__ = True  # pytest: a failure points at the test's line
        undeclared = _undeclared(typename, expected, self._declared_specs(typename))
        if undeclared is not None:
            raise AssertionError(undeclared)
        state = self.state(typename, id)
        actual = {name: state.get(name) for name in expected}
        if actual != expected:
            raise AssertionError(
                f"state of {typename}/{id}: expected {expected!r}, found {actual!r} "
                f"(all live state: {state!r})"
            )

    def assert_sent(self, typename: str, id: str, **value: Any) -> SentMessage:
        """Assert a function sent this message (value as for :meth:`send`); return it."""
        __tracebackhide__ = True  # pytest: a failure points at the test's line
        return self._find(self.sent, "sent", typename, id, value)

    def assert_captured(self, typename: str, id: str, **value: Any) -> SentMessage:
        """Assert this message reached ``typename``/``id``, a type the harness does not run
        (or captures)."""
        __tracebackhide__ = True  # pytest: a failure points at the test's line
        try:
            return self._find(self.captured, "captured", typename, id, value)
        except AssertionError as error:
            if typename not in self.functions or typename in self.capture:
                raise
            hint = f"{typename} is a function the harness runs: its messages are delivered, "
            raise AssertionError(f"{error}\n{hint}not captured (assert_sent finds them)") from None

    def assert_egress(self, egress: Optional[str] = None, **fields: Any) -> AnyEgress:
        """Assert a record matching ``egress`` (the egress id) and ``fields`` was sent, for
        example ``assert_egress("example/out", topic="greetings", key="ann", value="Hi")``.
        A ``str`` value is compared with the record's bytes decoded as UTF-8. Returns it."""
        __tracebackhide__ = True  # pytest: a failure points at the test's line
        if egress is not None:
            fields["egress"] = egress
        for record in self.egress:
            if all(
                _matches(getattr(record, name, _MISSING), want) for name, want in fields.items()
            ):
                return record
        raise AssertionError(
            f"no egress record matches {fields!r}; records sent: {_listing(self.egress)}"
        )

    # --- internals ----------------------------------------------------------------------

    def _next_batches(self, delivered: int) -> list[Batch]:
        self.engine.fire_due_timers()
        batches = self.engine.next_batches()
        if batches and delivered >= self.max_batches:
            self._release(batches)
            busy = sorted({str(batch.address) for batch in batches})
            raise HarnessError(
                f"the functions are still busy after {delivered} batches (still messaging: "
                f"{', '.join(busy)}); is a function sending to itself forever?"
            )
        return batches

    def _is_served(self, batch: Batch) -> bool:
        typename = batch.address.typename
        if typename not in self.functions or typename in self.capture:
            return False
        self.batches.append(batch)
        return True

    def _check_runs_without_loop(self, batch: Batch) -> None:
        """``run`` called where an event loop runs (a notebook cell, an async test) can not run
        an async function that awaits: say so, naming the harness' way, before the handler
        fails the batch saying to await ``handle_async``."""
        if asyncio._get_running_loop() is None:
            return
        if self.functions.for_typename(batch.address.typename).awaits:
            raise AsyncFunctionInSyncContextError(
                f"{batch.address.typename} is an async function that awaits, and run() was "
                "called inside a running event loop (a notebook cell, an async test): "
                "await harness.run_async() there (or advance_async(...))"
            )

    def _capture(self, batch: Batch) -> bytes:
        types = self.handler.types
        self.captured.extend(
            SentMessage(m.target, m.argument, m.caller, types) for m in batch.messages
        )
        return b""

    def _complete(self, batch: Batch, reply: bytes, reply_headers: dict[str, str]) -> None:
        trace = TraceContext.parse(reply_headers.get(TRACERESPONSE))
        completion = self.engine.complete(batch, reply, trace)
        types = self.handler.types
        self.sent.extend(
            SentMessage(m.target, m.argument, m.caller, types) for m in completion.sent
        )

    @contextlib.contextmanager
    def _released_on_error(self, batches: list[Batch]) -> Iterator[None]:
        """If delivering fails, give the undelivered batches back to the engine (their
        messages stay queued for a later run) and let the error through."""
        try:
            yield
        except BaseException:
            self._release(batches)
            raise

    def _release(self, batches: Iterable[Batch]) -> None:
        for batch in batches:
            with contextlib.suppress(StaleBatchError):  # completed already
                self.engine.fail(batch)

    def _due_times(self, duration: Duration) -> Iterable[int]:
        """The due times of delayed messages within ``duration``, then its end, computed
        lazily: delivering one message may schedule another inside the window."""
        ms = duration // timedelta(milliseconds=1) if isinstance(duration, timedelta) else duration
        if ms < 0:
            raise ValueError(f"time only moves forward; got {ms} ms")
        until = self.clock.now_ms() + ms
        while True:
            due = self.engine.next_timer_due_ms()
            if due is None or due > until:
                yield until
                return
            yield due

    def _typed_value(self, typename: str, id: str, value: dict[str, Any]) -> TypedValue:
        if value.keys() == {"value"}:  # the class's type is known to the handler's plugins
            value = {"value": value["value"], "value_type": self._resolve(type(value["value"]))}
        return TypedValue.from_proto(message_builder(typename, id, **value).typed_value)

    def _declared_specs(self, typename: str) -> dict[str, tuple[Type[Any], StateSpec]]:
        """The states the deployed function declares: each one's type, and the spec its
        state discovery would register."""
        declared = {}
        for spec in self.functions.for_typename(typename).specs:
            tpe = self._resolve(spec.type)
            declared[spec.name] = (tpe, _state_spec(spec, tpe))
        return declared

    def _resolve(self, tpe: Union[Type[Any], type]) -> Type[Any]:
        return tpe if isinstance(tpe, Type) else self.handler.types.for_class(tpe)

    def _find(
        self, messages: list[SentMessage], kind: str, typename: str, id: str, value: dict[str, Any]
    ) -> SentMessage:
        __tracebackhide__ = True
        target = Address(typename, id)
        argument = self._typed_value(typename, id, value) if value else None
        for message in messages:
            if message.target == target and argument in (None, message.argument):
                return message
        raise AssertionError(
            f"no {kind} message to {target} with {value!r}; {kind}: "
            f"{_listing(messages, _described)}"
        )


_MISSING = object()


def _state_spec(spec: ValueSpec, tpe: Type[Any]) -> StateSpec:
    if spec.after_call:
        return StateSpec(spec.name, tpe.typename, ExpireMode.AFTER_INVOKE, spec.duration)
    if spec.after_write:
        return StateSpec(spec.name, tpe.typename, ExpireMode.AFTER_WRITE, spec.duration)
    return StateSpec(spec.name, tpe.typename)


def _undeclared(typename: str, names: Iterable[str], declared: Iterable[str]) -> Optional[str]:
    """What is wrong with ``names`` that the function does not declare, if any: such a name
    is an error, not an absent state (a typo in an "is absent" check would pass)."""
    unknown = sorted(set(names) - set(declared))
    if not unknown:
        return None
    return (
        f"{typename} declares no state {', '.join(map(repr, unknown))}; its states: "
        f"{', '.join(sorted(declared)) or 'none'}"
    )


def _dead_letter_egresses(
    functions: StatefulFunctions, handler: RequestReplyHandler
) -> set[DeadLetterEgress]:
    egresses = {function.dead_letters for function in functions}
    egresses.add(handler.dead_letters)
    return {egress for egress in egresses if egress is not None}


def _sent_to(record: AnyEgress, egresses: set[DeadLetterEgress]) -> bool:
    """Whether ``record`` went to one of ``egresses``: its egress id, and its topic or stream
    when the dead-letter egress names one."""
    return any(
        record.egress == egress.typename
        and getattr(record, "topic", None) == egress.topic
        and getattr(record, "stream", None) == egress.stream
        for egress in egresses
    )


def _request_headers(batch: Batch) -> dict[str, str]:
    """The headers statefun-local sends with a batch: the content type and the trace headers."""
    return {"Content-Type": CONTENT_TYPE, **batch.headers}


def _matches(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, str) and isinstance(actual, bytes):
        return actual == wanted.encode("utf-8")
    return bool(actual == wanted)


def _described(message: SentMessage) -> str:
    """A message as a failed assertion lists it: a built-in type's value decoded."""
    argument, shown = message.argument, message.argument.value
    for tpe in BUILTIN_TYPES:
        if tpe.typename == argument.typename and argument.has_value:
            with contextlib.suppress(Exception):
                shown = tpe.serializer().deserialize(argument.value)
    return f"{message.target} from {message.caller}: {shown!r} ({argument.typename})"


def _listing(items: Iterable[Any], show: Callable[[Any], str] = repr) -> str:
    return "".join(f"\n  {show(item)}" for item in items) or "none"


#: What the ``statefun_harness`` fixture is, for a typed test (``def test_greets(
#: statefun_harness: HarnessFactory) -> None``): the class itself, so that the options given to
#: the fixture are checked as ``Harness(...)``'s are.
HarnessFactory = type[Harness]
