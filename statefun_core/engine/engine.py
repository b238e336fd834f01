"""The runtime's rules, without I/O: mailboxes, batches, state discovery, TTL, delayed
messages and the order in which a reply is applied (protocol §4 to §8).

A driver moves messages: it calls :meth:`Engine.send` for input, sends each
:class:`Batch` from :meth:`Engine.next_batches` to the function, and hands the reply to
:meth:`Engine.complete` (or calls :meth:`Engine.fail`). Each call is one store transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Optional, Union

from google.protobuf.message import DecodeError, Message

from .. import protocol, tracecontext
from ..core import is_state_typename
from .clock import Clock
from .errors import (
    CancellationTokenError,
    DiscoveryLoopError,
    InvalidReplyError,
    StaleBatchError,
    StateTypeError,
    UnknownEgressError,
    UnregisteredStateError,
)
from .model import (
    UNSET_TYPENAME,
    Address,
    EgressRecord,
    Envelope,
    ExpireMode,
    StateEntry,
    StateSpec,
    Timer,
    TraceContext,
    TypedValue,
)
from .store import Store

__all__ = ["Batch", "Completion", "Engine"]

_MODIFY = 1  # FromFunction.PersistedValueMutation.MutationType


@dataclass(frozen=True, eq=False)
class Batch:
    """One request to one address: its messages, oldest first, and the ``ToFunction`` bytes.

    ``headers`` are the trace headers to send with the request (none when no message has a
    known origin; see :mod:`statefun_core.tracecontext`) and ``trace`` the context they
    continue. Batches compare by identity: the engine accepts a reply only for the batch it
    handed out.
    """

    address: Address
    messages: tuple[Envelope, ...]
    request: bytes
    discovery_round: int = 0
    trace: Optional[TraceContext] = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def last_seq(self) -> int:
        return self.messages[-1].seq

    def to_function(self) -> Any:
        """The request as a ``protocol.ToFunction``."""
        return protocol.ToFunction.FromString(self.request)


@dataclass(frozen=True)
class Completion:
    """What applying a reply did.

    ``incomplete`` is true for a state-discovery reply: the engine registered ``registered``
    and will offer the same messages again from :meth:`Engine.next_batches`. Otherwise the
    other fields list the effects, in the order they were applied.
    """

    batch: Batch
    incomplete: bool = False
    registered: tuple[StateSpec, ...] = ()
    sent: tuple[Envelope, ...] = ()
    scheduled: tuple[Timer, ...] = ()
    cancelled: tuple[str, ...] = ()
    egress: tuple[EgressRecord, ...] = ()
    mutated: tuple[str, ...] = ()


class Engine:
    """The rules of a StateFun runtime over a :class:`Store` and a :class:`Clock`.

    Not thread-safe: drive it from one thread, or hold a lock around every call.

    ``backpressure_threshold`` is ``maxNumBatchRequests``: :meth:`is_backpressured` reports an
    address with that many buffered messages (``<= 0`` disables it); it never caps a batch.
    ``max_discovery_rounds`` bounds how often one batch may answer with missing state.
    ``egress_ids``, when given, are the only egress ids a reply may use.

    Durability: an address's in-flight marker (the ``seq`` of the last message of its batch) is
    set when the batch is taken and stays until its reply is applied, in the same transaction
    that removes the batch's messages. A marker with no batch handed out in this process —
    after a restart, a discovery round, :meth:`fail`, or the release of the buffered messages
    by a reply — is offered again by :meth:`next_batches`, with the same messages.
    """

    egress_ids: Optional[frozenset[str]]

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        backpressure_threshold: int = 1000,
        max_discovery_rounds: int = 10,
        egress_ids: Optional[Collection[str]] = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.backpressure_threshold = backpressure_threshold
        self.max_discovery_rounds = max_discovery_rounds
        self.egress_ids = None if egress_ids is None else frozenset(egress_ids)
        self._outstanding: dict[Address, Batch] = {}
        # an address's discovery rounds so far, and the span a discovery reply reported for a
        # batch of no known origin (its retry goes on in that trace rather than starting
        # another); both belong to the batch's head message, and end with it
        self._discovery: dict[Address, _Discovery] = {}

    # --- input --------------------------------------------------------------------------

    def send(
        self,
        target: Address,
        argument: TypedValue,
        caller: Optional[Address] = None,
        trace: Optional[TraceContext] = None,
    ) -> int:
        """Queue a message (from an ingress when ``caller`` is None); return its ``seq``.
        ``trace`` is where it comes from, when the ingress knows (a ``traceparent``)."""
        with self.store.transaction():
            return self.store.mailbox_append(Envelope(target, argument, caller, trace=trace))

    def fire_due_timers(self) -> int:
        """Deliver the delayed messages due on the clock to their mailboxes, in
        ``(due, scheduling)`` order; return how many."""
        with self.store.transaction():
            due = self.store.timers_pop_due(self.clock.now_ms())
            for timer in due:
                self.store.mailbox_append(
                    Envelope(timer.target, timer.argument, timer.caller, trace=timer.trace)
                )
        return len(due)

    # --- batches ------------------------------------------------------------------------

    def next_batches(self, limit: Optional[int] = None) -> list[Batch]:
        """Take the batches ready to send and mark them in flight.

        First the addresses with a marker and no batch out (re-sends, with the same
        messages), then idle addresses with queued messages, each sending its oldest message
        alone: the rest are buffered, the next batch when the reply is applied (protocol §4.3).
        """
        batches: list[Batch] = []
        with self.store.transaction():
            for address in self.store.in_flight_addresses():
                if address in self._outstanding:
                    continue
                if limit is not None and len(batches) >= limit:
                    break
                last_seq = self.store.in_flight_get(address) or 0
                messages = [m for m in self.store.mailbox_peek(address) if m.seq <= last_seq]
                if not messages:  # consumed already; a store restored from an old copy
                    self.store.in_flight_clear(address)
                    continue
                batches.append(self._take(address, messages))
            for address in self.store.mailbox_addresses():
                if limit is not None and len(batches) >= limit:
                    break
                if self.store.in_flight_get(address) is not None:
                    continue
                messages = self.store.mailbox_peek(address, limit=1)
                self.store.in_flight_set(address, messages[0].seq)
                batches.append(self._take(address, messages))
        for batch in batches:
            self._outstanding[batch.address] = batch
        return batches

    def _take(self, address: Address, messages: list[Envelope]) -> Batch:
        now_ms = self.clock.now_ms()
        request = protocol.ToFunction()
        invocation = request.invocation
        invocation.target.CopyFrom(address.to_proto())
        entries = self.store.state_get(address)
        for name, spec in self.store.specs_get(address.typename).items():
            persisted = invocation.state.add()
            persisted.state_name = name
            entry = entries.get(name)
            if entry is None:
                continue
            if entry.expired(spec, now_ms):
                self.store.state_delete(address, name)
                continue
            persisted.state_value.CopyFrom(TypedValue(spec.typename, entry.value).to_proto())
            if spec.expire_mode == ExpireMode.AFTER_INVOKE:
                self.store.state_put(
                    address,
                    name,
                    StateEntry(entry.typename, entry.value, entry.written_ms, now_ms),
                )
        for message in messages:
            item = invocation.invocations.add()
            if message.caller is not None:
                item.caller.CopyFrom(message.caller.to_proto())
            item.argument.CopyFrom(message.argument.to_proto())
        rounds, discovered = 0, None
        discovery = self._discovery.get(address)
        # its head message dropped by the driver (skipped, dead-lettered), a batch starts anew
        if discovery is not None and discovery.head_seq == messages[0].seq:
            rounds, discovered = discovery.rounds, discovery.trace
        trace, headers = _trace_headers(messages, discovered)
        return Batch(address, tuple(messages), request.SerializeToString(), rounds, trace, headers)

    def complete(
        self, batch: Batch, reply: Union[bytes, Message], trace: Optional[TraceContext] = None
    ) -> Completion:
        """Apply the function's reply to ``batch``: a ``FromFunction``, or its bytes (empty
        means no effects); a driver that parsed the reply already passes the message, so it is
        parsed once. ``trace`` is the span of the batch the function reported
        (``traceresponse``): the origin of the messages, delayed messages and egress records of
        the reply; without it they keep the batch's own (``batch.trace``). A ``traceresponse``
        has no ``tracestate``: one that continues the batch's trace keeps the batch's.

        On a discovery reply the specs are registered and the same messages are offered
        again. Otherwise, atomically: the batch's messages are consumed, the address's
        buffered messages are released as its next batch, and the effects are applied in
        protocol order (messages, delayed messages, egress, state). An :class:`EngineError`
        leaves the store as it was and the batch in flight.
        """
        self._check_outstanding(batch)
        response: Any = reply
        if not isinstance(reply, protocol.FromFunction):
            try:
                response = protocol.FromFunction.FromString(reply)
            except DecodeError as error:
                raise InvalidReplyError(
                    f"the reply to {batch.address} is not a FromFunction: {error}"
                )
        with self.store.transaction():
            if response.HasField("incomplete_invocation_context"):
                completion = self._discover(batch, response.incomplete_invocation_context)
                if batch.trace is not None or trace is None:
                    trace = batch.trace  # its retry carries its own headers
                self._discovery[batch.address] = _Discovery(
                    batch.messages[0].seq, batch.discovery_round + 1, trace
                )
            else:
                trace = _continued(trace, batch.trace)
                completion = self._apply(batch, response.invocation_result, trace)
        del self._outstanding[batch.address]
        if not completion.incomplete:
            self._discovery.pop(batch.address, None)
        return completion

    def fail(self, batch: Batch) -> None:
        """Give up on this attempt of ``batch``: nothing is applied, its messages stay queued
        and :meth:`next_batches` offers them again, still before anything queued later."""
        self._check_outstanding(batch)
        del self._outstanding[batch.address]

    def is_handed_out(self, address: Address) -> bool:
        """Whether a batch of ``address`` is handed out: taken by :meth:`next_batches`, its
        reply not applied and :meth:`fail` not called. Its request holds the state as it was
        taken."""
        return address in self._outstanding

    def _check_outstanding(self, batch: Batch) -> None:
        if self._outstanding.get(batch.address) is not batch:
            raise StaleBatchError(f"that batch for {batch.address} is not in flight")

    # --- applying replies ---------------------------------------------------------------

    def _discover(self, batch: Batch, context: Any) -> Completion:
        rounds = batch.discovery_round + 1
        if rounds > self.max_discovery_rounds:
            missing = ", ".join(spec.state_name for spec in context.missing_values)
            raise DiscoveryLoopError(
                f"{batch.address.typename} still reports missing state ({missing}) after "
                f"{self.max_discovery_rounds} discovery rounds; does it declare a state it "
                f"then fails to find in the request?"
            )
        registered = self.store.specs_get(batch.address.typename)
        added: list[StateSpec] = []
        for missing in context.missing_values:
            spec = _spec(batch.address.typename, missing)
            known = registered.get(spec.name)
            if known is None:
                self.store.spec_add(batch.address.typename, spec)
                registered[spec.name] = spec
                added.append(spec)
            elif known.typename != spec.typename:
                raise StateTypeError(
                    f"state {spec.name!r} of {batch.address.typename} is registered as "
                    f"{known.typename}; it can not become {spec.typename}"
                )
        return Completion(batch, incomplete=True, registered=tuple(added))

    def _apply(self, batch: Batch, result: Any, trace: Optional[TraceContext]) -> Completion:
        address = batch.address
        now_ms = self.clock.now_ms()
        self.store.mailbox_remove(address, batch.last_seq)
        # The buffer as it is now is the next batch; what this reply sends comes after it.
        buffered = self.store.mailbox_peek(address)
        if buffered:
            self.store.in_flight_set(address, buffered[-1].seq)
        else:
            self.store.in_flight_clear(address)

        sent = self._send(address, result.outgoing_messages, trace)
        scheduled, cancelled = self._schedule(address, result.delayed_invocations, trace, now_ms)
        egress = self._produce(address, result.outgoing_egresses, trace)
        mutated = self._mutate(address, result.state_mutations, now_ms)
        return Completion(
            batch,
            sent=tuple(sent),
            scheduled=tuple(scheduled),
            cancelled=tuple(cancelled),
            egress=tuple(egress),
            mutated=tuple(mutated),
        )

    def _send(
        self, address: Address, messages: Any, trace: Optional[TraceContext]
    ) -> list[Envelope]:
        sent = []
        for outgoing in messages:
            envelope = Envelope(
                Address.from_proto(outgoing.target),
                TypedValue.from_proto(outgoing.argument),
                address,
                trace=trace,
            )
            sent.append(replace(envelope, seq=self.store.mailbox_append(envelope)))
        return sent

    def _schedule(
        self, address: Address, invocations: Any, trace: Optional[TraceContext], now_ms: int
    ) -> tuple[list[Timer], list[str]]:
        """The delayed messages added, and the cancellation tokens cancelled, in reply order."""
        scheduled, cancelled = [], []
        for delayed in invocations:
            token = delayed.cancellation_token
            if delayed.is_cancellation_request:
                if not token:
                    raise InvalidReplyError(f"{address} sent a cancellation without a token")
                self.store.timer_cancel(address.id, token)
                cancelled.append(token)
                continue
            if delayed.delay_in_ms < 0:
                raise InvalidReplyError(f"{address} sent a negative delay: {delayed.delay_in_ms}")
            if token and self.store.timer_pending(address.id, token):
                raise CancellationTokenError(
                    f"{address} scheduled a message with cancellation token {token!r}, which "
                    f"is still pending for id {address.id!r}"
                )
            timer = Timer(
                now_ms + delayed.delay_in_ms,
                Address.from_proto(delayed.target),
                TypedValue.from_proto(delayed.argument),
                address,
                token or None,
                address.id,
                trace=trace,
            )
            scheduled.append(replace(timer, seq=self.store.timer_add(timer)))
        return scheduled, cancelled

    def _produce(
        self, address: Address, egresses: Any, trace: Optional[TraceContext]
    ) -> list[EgressRecord]:
        egress = []
        for message in egresses:
            egress_id = f"{message.egress_namespace}/{message.egress_type}"
            if self.egress_ids is not None and egress_id not in self.egress_ids:
                known = ", ".join(sorted(self.egress_ids)) or "none"
                raise UnknownEgressError(
                    f"{address} sent to unknown egress {egress_id} (known egresses: {known})"
                )
            record = EgressRecord(egress_id, TypedValue.from_proto(message.argument), trace=trace)
            egress.append(replace(record, seq=self.store.egress_append(record)))
        return egress

    def _mutate(self, address: Address, mutations: Any, now_ms: int) -> list[str]:
        """Apply the state mutations; the names of the states changed."""
        specs = self.store.specs_get(address.typename)
        mutated = []
        for mutation in mutations:
            spec = specs.get(mutation.state_name)
            if spec is None:
                raise UnregisteredStateError(
                    f"{address} changed state {mutation.state_name!r}, which "
                    f"{address.typename} never declared"
                )
            if mutation.mutation_type == _MODIFY:
                typename = mutation.state_value.typename or UNSET_TYPENAME
                if typename != spec.typename:
                    raise StateTypeError(
                        f"{address} wrote state {spec.name!r} as {typename}; it is registered "
                        f"as {spec.typename}"
                    )
                value = bytes(mutation.state_value.value)
                self.store.state_put(
                    address, spec.name, StateEntry(spec.typename, value, now_ms, now_ms)
                )
            else:
                self.store.state_delete(address, spec.name)
            mutated.append(spec.name)
        return mutated

    # --- inspection ---------------------------------------------------------------------

    def is_backpressured(self, address: Address, threshold: Optional[int] = None) -> bool:
        """Whether ``address`` has ``threshold`` (default ``backpressure_threshold``) messages
        buffered behind its batch in flight (then a driver stops taking input for it). A
        driver with one threshold per endpoint passes the address's own."""
        threshold = self.backpressure_threshold if threshold is None else threshold
        if threshold <= 0:
            return False
        with self.store.transaction():
            in_flight = self.store.in_flight_get(address) or 0
            buffered = self.store.mailbox_count(address, after_seq=in_flight)
        return buffered >= threshold

    def is_idle(self) -> bool:
        """No message queued, no batch in flight (delayed messages may still be pending)."""
        with self.store.transaction():
            return not self.store.mailbox_addresses() and not self.store.in_flight_addresses()

    def next_timer_due_ms(self) -> Optional[int]:
        """When the earliest pending delayed message is due, if any."""
        with self.store.transaction():
            return self.store.timer_next_due()

    def pending_timers(self) -> list[Timer]:
        """The delayed messages not yet delivered, by due time."""
        with self.store.transaction():
            return self.store.timers()

    def egress_records(self, after_seq: int = 0) -> list[EgressRecord]:
        """The records sent to egresses, oldest first (``after_seq`` to read only new ones)."""
        with self.store.transaction():
            return self.store.egress_list(after_seq)

    def state(self, address: Address) -> dict[str, TypedValue]:
        """The live (present, unexpired) state values of ``address``, by name. Reading it
        does not count as an access for ``AFTER_INVOKE``."""
        now_ms = self.clock.now_ms()
        with self.store.transaction():
            specs = self.store.specs_get(address.typename)
            entries = self.store.state_get(address)
        return {
            name: TypedValue(entry.typename, entry.value)
            for name, entry in entries.items()
            if name in specs and not entry.expired(specs[name], now_ms)
        }

    def registered_specs(self, function_typename: str) -> dict[str, StateSpec]:
        """The state specs learnt for a function type."""
        with self.store.transaction():
            return self.store.specs_get(function_typename)


def _spec(function_typename: str, missing: Any) -> StateSpec:
    typename = missing.type_typename or UNSET_TYPENAME
    if not is_state_typename(typename):
        raise InvalidReplyError(
            f"state {missing.state_name!r} of {function_typename} has type {typename!r}; a "
            f"type is namespace/name"
        )
    expiration = missing.expiration_spec
    mode = ExpireMode(expiration.mode)
    if mode != ExpireMode.NONE and expiration.expire_after_millis <= 0:
        raise InvalidReplyError(
            f"state {missing.state_name!r} of {function_typename} expires after "
            f"{expiration.expire_after_millis} ms; it must be positive"
        )
    return StateSpec(missing.state_name, typename, mode, expiration.expire_after_millis)


_NO_HEADERS: Mapping[str, str] = {}


@dataclass(frozen=True)
class _Discovery:
    """Where the discovery of an address's batch is: the seq of the batch's head message,
    the rounds it took, and the span to retry it in when its messages have no known origin."""

    head_seq: int
    rounds: int
    trace: Optional[TraceContext]


def _continued(
    reported: Optional[TraceContext], sent: Optional[TraceContext]
) -> Optional[TraceContext]:
    """The origin of a reply's effects: the span the function reported, with the vendors'
    ``tracestate`` the batch was sent with when that span is in the same trace (W3C: the
    state travels with the trace; a ``traceresponse`` carries none); else the batch's own."""
    if reported is None:
        return sent
    if sent is None or reported.tracestate or not sent.tracestate:
        return reported
    if reported.traceparent[3:35] != sent.traceparent[3:35]:  # another trace id
        return reported
    return TraceContext(reported.traceparent, sent.tracestate)


def _trace_headers(
    messages: list[Envelope], discovered: Optional[TraceContext]
) -> tuple[Optional[TraceContext], Mapping[str, str]]:
    """The batch's trace context (its first known origin) and the headers that carry it with
    the origin of every message; with no known origin, the span its discovery round reported
    (``discovered``), if any."""
    first = next((message.trace for message in messages if message.trace is not None), None)
    if first is None:
        if discovered is None:
            return None, _NO_HEADERS
        return discovered, {tracecontext.TRACEPARENT: discovered.traceparent}
    headers = {tracecontext.TRACEPARENT: first.traceparent}
    if first.tracestate:
        headers[tracecontext.TRACESTATE] = first.tracestate
    origins = [None if m.trace is None else m.trace.traceparent for m in messages]
    headers[tracecontext.ORIGINS] = tracecontext.encode_origins(origins)
    return first, headers
