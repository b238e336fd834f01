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

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import ContextManager, Optional, Protocol

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

    def mailbox_peek(self, address: Address) -> list[Envelope]:
        """The messages queued for ``address``, oldest first."""
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

    def spec_add(self, function_typename: str, spec: StateSpec) -> None: ...

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


_Tables = tuple[
    dict[Address, list[Envelope]],
    dict[Address, int],
    dict[str, dict[str, StateSpec]],
    dict[Address, dict[str, StateEntry]],
    list[Timer],
    list[EgressRecord],
]


class MemoryStore:
    """A :class:`Store` in dictionaries, for tests and the test harness.

    A transaction snapshots the data and restores it if the block raises, so a reply the
    engine rejects leaves no trace, as with a SQL store.
    """

    def __init__(self) -> None:
        self._mailbox: dict[Address, list[Envelope]] = {}
        self._in_flight: dict[Address, int] = {}
        self._specs: dict[str, dict[str, StateSpec]] = {}
        self._state: dict[Address, dict[str, StateEntry]] = {}
        self._timers: list[Timer] = []
        self._egress: list[EgressRecord] = []
        self._seq = itertools.count(1)
        self._in_transaction = False

    def transaction(self) -> ContextManager[None]:
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._in_transaction:
            raise RuntimeError("MemoryStore transactions do not nest")
        saved = self._snapshot()
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._restore(saved)
            raise
        finally:
            self._in_transaction = False

    def _snapshot(self) -> _Tables:
        # Rows are immutable, so copying the containers is a full snapshot.
        return (
            {address: list(queue) for address, queue in self._mailbox.items()},
            dict(self._in_flight),
            {typename: dict(specs) for typename, specs in self._specs.items()},
            {address: dict(values) for address, values in self._state.items()},
            list(self._timers),
            list(self._egress),
        )

    def _restore(self, saved: _Tables) -> None:
        (self._mailbox, self._in_flight, self._specs, self._state, self._timers, self._egress) = (
            saved
        )

    def mailbox_append(self, envelope: Envelope) -> int:
        seq = next(self._seq)
        self._mailbox.setdefault(envelope.target, []).append(replace(envelope, seq=seq))
        return seq

    def mailbox_peek(self, address: Address) -> list[Envelope]:
        return list(self._mailbox.get(address, ()))

    def mailbox_count(self, address: Address, after_seq: int = 0) -> int:
        return sum(1 for m in self._mailbox.get(address, ()) if m.seq > after_seq)

    def mailbox_remove(self, address: Address, up_to_seq: int) -> None:
        kept = [m for m in self._mailbox.get(address, ()) if m.seq > up_to_seq]
        if kept:
            self._mailbox[address] = kept
        else:
            self._mailbox.pop(address, None)

    def mailbox_addresses(self) -> list[Address]:
        return sorted(self._mailbox, key=lambda address: self._mailbox[address][0].seq)

    def in_flight_get(self, address: Address) -> Optional[int]:
        return self._in_flight.get(address)

    def in_flight_set(self, address: Address, last_seq: int) -> None:
        self._in_flight[address] = last_seq

    def in_flight_clear(self, address: Address) -> None:
        self._in_flight.pop(address, None)

    def in_flight_addresses(self) -> list[Address]:
        return list(self._in_flight)

    def specs_get(self, function_typename: str) -> dict[str, StateSpec]:
        return dict(self._specs.get(function_typename, {}))

    def spec_add(self, function_typename: str, spec: StateSpec) -> None:
        self._specs.setdefault(function_typename, {})[spec.name] = spec

    def state_get(self, address: Address) -> dict[str, StateEntry]:
        return dict(self._state.get(address, {}))

    def state_put(self, address: Address, name: str, entry: StateEntry) -> None:
        self._state.setdefault(address, {})[name] = entry

    def state_delete(self, address: Address, name: str) -> None:
        self._state.get(address, {}).pop(name, None)

    def timer_add(self, timer: Timer) -> int:
        seq = next(self._seq)
        self._timers.append(replace(timer, seq=seq))
        self._timers.sort(key=lambda t: (t.due_ms, t.seq))
        return seq

    def timer_pending(self, scope: str, token: str) -> bool:
        return any(t.scope == scope and t.token == token for t in self._timers)

    def timer_cancel(self, scope: str, token: str) -> bool:
        kept = [t for t in self._timers if not (t.scope == scope and t.token == token)]
        cancelled = len(kept) < len(self._timers)
        self._timers = kept
        return cancelled

    def timers_pop_due(self, now_ms: int) -> list[Timer]:
        due = [t for t in self._timers if t.due_ms <= now_ms]
        self._timers = self._timers[len(due) :]
        return due

    def timer_next_due(self) -> Optional[int]:
        return self._timers[0].due_ms if self._timers else None

    def timers(self) -> list[Timer]:
        return list(self._timers)

    def egress_append(self, record: EgressRecord) -> int:
        seq = next(self._seq)
        self._egress.append(replace(record, seq=seq))
        return seq

    def egress_list(self, after_seq: int = 0) -> list[EgressRecord]:
        return [r for r in self._egress if r.seq > after_seq]
