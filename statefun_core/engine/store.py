"""Where the engine keeps everything: the :class:`Store` protocol and :class:`MemoryStore`.

Each group of methods maps onto one SQL table:

=============  ==========================================================================
mailbox        ``(seq PK autoincrement, target_type, target_id, caller_type, caller_id,
               arg_typename, arg_has_value, arg_value)``
in_flight      ``(target_type, target_id) PK, last_seq``
specs          ``(function_type, name) PK, typename, expire_mode, expire_after_ms``
state          ``(target_type, target_id, name) PK, typename, value, written_ms, accessed_ms``
timers         ``(seq PK autoincrement, due_ms, target…, caller…, argument…, token, scope)``
               with an index on ``(due_ms, seq)`` and one on ``(scope, token)``
egress         ``(seq PK autoincrement, egress, arg_typename, arg_has_value, arg_value)``
=============  ==========================================================================

``seq`` values only grow (an ``AUTOINCREMENT`` key, or one counter shared by all tables).
The engine calls every method inside :meth:`Store.transaction`; one engine event (an ingress
message, taking batches, applying a reply, firing timers) is one transaction.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Callable, ContextManager, Optional, Protocol

from .errors import StateTypeError
from .model import Address, EgressRecord, Envelope, StateEntry, StateSpec, Timer

__all__ = ["MemoryStore", "Store"]


class Store(Protocol):
    """Persistence for the engine. Implementations need not be thread-safe: the engine is
    driven from one thread at a time."""

    def transaction(self) -> ContextManager[None]:
        """All or nothing: commit when the block ends, roll back if it raises. The engine never
        nests transactions."""
        ...

    # --- mailboxes: messages waiting for (or in) a batch ------------------------------

    def mailbox_append(self, envelope: Envelope) -> int:
        """Queue ``envelope`` (its ``seq`` is ignored); return the new, ever-growing ``seq``."""
        ...

    def mailbox_peek(self, address: Address, limit: Optional[int] = None) -> list[Envelope]:
        """The messages queued for ``address``, oldest first; only the ``limit`` oldest when
        given."""
        ...

    def mailbox_count(self, address: Address, after_seq: int = 0) -> int:
        """How many messages with ``seq > after_seq`` are queued for ``address``."""
        ...

    def mailbox_remove(self, address: Address, up_to_seq: int) -> None:
        """Drop the messages of ``address`` with ``seq <= up_to_seq``."""
        ...

    def mailbox_addresses(self) -> list[Address]:
        """Every address with a queued message, in the order of their oldest message."""
        ...

    # --- in-flight markers: one batch per address, survives restarts -------------------

    def in_flight_get(self, address: Address) -> Optional[int]:
        """The ``seq`` of the last message of the batch in flight to ``address``, if any."""
        ...

    def in_flight_set(self, address: Address, last_seq: int) -> None: ...

    def in_flight_clear(self, address: Address) -> None: ...

    def in_flight_addresses(self) -> list[Address]:
        """Every address with a marker, in the order the markers were set."""
        ...

    # --- state specs, per function type, grow-only --------------------------------------

    def specs_get(self, function_typename: str) -> dict[str, StateSpec]: ...

    def spec_add(self, function_typename: str, spec: StateSpec) -> None:
        """Register ``spec``; :class:`StateTypeError` if an address of the type has a value
        of that name stored as another type. Values outlive their spec (a restart forgets the
        spec), and they would be sent labelled with the new type: the runtime fails instead,
        as restoring a snapshot does (protocol §6)."""
        ...

    def specs_forget(self) -> None:
        """Forget every registered spec, keeping the state values: what a runtime's restart
        does (protocol §5)."""
        ...

    # --- state values -------------------------------------------------------------------

    def state_get(self, address: Address) -> dict[str, StateEntry]:
        """Every stored state value of ``address`` by state name (expired ones included)."""
        ...

    def state_put(self, address: Address, name: str, entry: StateEntry) -> None: ...

    def state_delete(self, address: Address, name: str) -> None: ...

    # --- timers (delayed messages) ------------------------------------------------------

    def timer_add(self, timer: Timer) -> int:
        """Schedule ``timer`` (its ``seq`` is ignored); return the new, ever-growing ``seq``."""
        ...

    def timer_pending(self, scope: str, token: str) -> bool:
        """Whether a timer with ``token`` is pending in ``scope``."""
        ...

    def timer_cancel(self, scope: str, token: str) -> bool:
        """Remove the pending timer with ``token`` in ``scope``; whether there was one."""
        ...

    def timers_pop_due(self, now_ms: int) -> list[Timer]:
        """Remove and return the timers with ``due_ms <= now_ms``, by ``(due_ms, seq)``."""
        ...

    def timer_next_due(self) -> Optional[int]:
        """The earliest ``due_ms`` of a pending timer."""
        ...

    def timers(self) -> list[Timer]:
        """Every pending timer, by ``(due_ms, seq)``."""
        ...

    # --- egress log ---------------------------------------------------------------------

    def egress_append(self, record: EgressRecord) -> int:
        """Log ``record`` (its ``seq`` is ignored); return the new, ever-growing ``seq``."""
        ...

    def egress_list(self, after_seq: int = 0) -> list[EgressRecord]:
        """The logged records with ``seq > after_seq``, oldest first."""
        ...


_ABSENT: Any = object()


class MemoryStore:
    """A :class:`Store` in dictionaries, for tests and the test harness.

    A transaction keeps an undo journal and replays it backwards if the block raises, so a
    reply the engine rejects leaves no trace, as with a SQL store.
    """

    def __init__(self) -> None:
        self._mailbox: dict[Address, list[Envelope]] = {}
        self._in_flight: dict[Address, int] = {}
        self._specs: dict[str, dict[str, StateSpec]] = {}
        self._state: dict[Address, dict[str, StateEntry]] = {}
        self._timers: dict[int, Timer] = {}
        self._tokens: dict[tuple[str, str], int] = {}
        self._egress: list[EgressRecord] = []
        self._seq = itertools.count(1)
        self._journal: Optional[list[Callable[[], object]]] = None

    def transaction(self) -> ContextManager[None]:
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._journal is not None:
            raise RuntimeError("MemoryStore transactions do not nest")
        journal: list[Callable[[], object]] = []
        self._journal = journal
        try:
            yield
        except BaseException:
            for undo in reversed(journal):
                undo()
            raise
        finally:
            self._journal = None

    def _on_rollback(self, undo: Callable[[], object]) -> None:
        if self._journal is not None:
            self._journal.append(undo)

    def _put(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        self._restorer(table, key)
        table[key] = value

    def _pop(self, table: dict[Any, Any], key: Any) -> Any:
        self._restorer(table, key)
        return table.pop(key, _ABSENT)

    def _restorer(self, table: dict[Any, Any], key: Any) -> None:
        old = table.get(key, _ABSENT)

        def undo() -> None:
            if old is _ABSENT:
                table.pop(key, None)
            else:
                table[key] = old

        self._on_rollback(undo)

    # --- mailboxes ----------------------------------------------------------------------

    def mailbox_append(self, envelope: Envelope) -> int:
        seq = next(self._seq)
        queue = self._mailbox.get(envelope.target)
        if queue is None:
            queue = []
            self._put(self._mailbox, envelope.target, queue)
        queue.append(replace(envelope, seq=seq))
        self._on_rollback(queue.pop)
        return seq

    def mailbox_peek(self, address: Address, limit: Optional[int] = None) -> list[Envelope]:
        return self._mailbox.get(address, [])[:limit]

    def mailbox_count(self, address: Address, after_seq: int = 0) -> int:
        queue = self._mailbox.get(address, [])
        return len(queue) - bisect.bisect_right([m.seq for m in queue], after_seq)

    def mailbox_remove(self, address: Address, up_to_seq: int) -> None:
        queue = self._mailbox.get(address)
        if queue is None:
            return
        count = bisect.bisect_right([m.seq for m in queue], up_to_seq)
        removed = queue[:count]
        del queue[:count]

        def undo() -> None:
            queue[:0] = removed

        self._on_rollback(undo)
        if not queue:
            self._pop(self._mailbox, address)

    def mailbox_addresses(self) -> list[Address]:
        return sorted(self._mailbox, key=lambda address: self._mailbox[address][0].seq)

    # --- in flight ----------------------------------------------------------------------

    def in_flight_get(self, address: Address) -> Optional[int]:
        return self._in_flight.get(address)

    def in_flight_set(self, address: Address, last_seq: int) -> None:
        self._put(self._in_flight, address, last_seq)

    def in_flight_clear(self, address: Address) -> None:
        self._pop(self._in_flight, address)

    def in_flight_addresses(self) -> list[Address]:
        return list(self._in_flight)

    # --- specs and state ----------------------------------------------------------------

    def specs_get(self, function_typename: str) -> dict[str, StateSpec]:
        return dict(self._specs.get(function_typename, {}))

    def spec_add(self, function_typename: str, spec: StateSpec) -> None:
        for address, values in self._state.items():
            entry = values.get(spec.name)
            if (
                address.typename == function_typename
                and entry is not None
                and entry.typename != spec.typename
            ):
                raise StateTypeError(
                    f"state {spec.name!r} of {function_typename} has values stored as "
                    f"{entry.typename}; it can not become {spec.typename}"
                )
        self._put(self._specs.setdefault(function_typename, {}), spec.name, spec)

    def specs_forget(self) -> None:
        for specs in self._specs.values():
            for name in list(specs):
                self._pop(specs, name)

    def state_get(self, address: Address) -> dict[str, StateEntry]:
        return dict(self._state.get(address, {}))

    def state_put(self, address: Address, name: str, entry: StateEntry) -> None:
        self._put(self._state.setdefault(address, {}), name, entry)

    def state_delete(self, address: Address, name: str) -> None:
        values = self._state.get(address)
        if values is not None:
            self._pop(values, name)

    # --- timers -------------------------------------------------------------------------

    def timer_add(self, timer: Timer) -> int:
        seq = next(self._seq)
        self._put(self._timers, seq, replace(timer, seq=seq))
        if timer.token:
            self._put(self._tokens, (timer.scope, timer.token), seq)
        return seq

    def timer_pending(self, scope: str, token: str) -> bool:
        return (scope, token) in self._tokens

    def timer_cancel(self, scope: str, token: str) -> bool:
        seq = self._pop(self._tokens, (scope, token))
        if seq is _ABSENT:
            return False
        self._pop(self._timers, seq)
        return True

    def timers_pop_due(self, now_ms: int) -> list[Timer]:
        due = [timer for timer in self.timers() if timer.due_ms <= now_ms]
        for timer in due:
            self._pop(self._timers, timer.seq)
            if timer.token:
                self._pop(self._tokens, (timer.scope, timer.token))
        return due

    def timer_next_due(self) -> Optional[int]:
        return min((timer.due_ms for timer in self._timers.values()), default=None)

    def timers(self) -> list[Timer]:
        return sorted(self._timers.values(), key=lambda timer: (timer.due_ms, timer.seq))

    # --- egress -------------------------------------------------------------------------

    def egress_append(self, record: EgressRecord) -> int:
        seq = next(self._seq)
        self._egress.append(replace(record, seq=seq))
        self._on_rollback(self._egress.pop)
        return seq

    def egress_list(self, after_seq: int = 0) -> list[EgressRecord]:
        start = bisect.bisect_right([record.seq for record in self._egress], after_seq)
        return self._egress[start:]
