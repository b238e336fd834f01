"""What the CLI and the web page show, read straight from the store as JSON-friendly dicts."""

from __future__ import annotations

from typing import Any

from statefun_core.engine import Address, EgressRecord, Envelope, Timer

from .store import SqliteStore
from .values import describe

__all__ = ["SHOWN", "address_ids", "address_view", "egress_view", "parse_address"]


def parse_address(text: str) -> Address:
    """``namespace/type/id`` (the id may itself contain slashes, or be empty as a Kafka
    record's empty key makes it: ``namespace/type/``)."""
    parts = text.split("/", 2)
    if len(parts) != 3 or not (parts[0] and parts[1]):
        raise ValueError(f"expected an address 'namespace/type/id', got {text!r}")
    return Address(f"{parts[0]}/{parts[1]}", parts[2])


def _message_view(message: Envelope) -> dict[str, Any]:
    return {
        "seq": message.seq,
        "caller": str(message.caller) if message.caller else None,
        "type": message.argument.typename,
        "value": describe(message.argument.typename, message.argument.value),
        "traceparent": message.trace.traceparent if message.trace else None,
    }


def _timer_view(timer: Timer, now_ms: int) -> dict[str, Any]:
    return {
        "seq": timer.seq,
        "target": str(timer.target),
        "due_in_ms": max(0, timer.due_ms - now_ms),
        "caller": str(timer.caller),
        "cancellation_token": timer.token,
        "type": timer.argument.typename,
        "value": describe(timer.argument.typename, timer.argument.value),
    }


#: How many of an address's messages, and of its delayed messages, a look at it shows.
SHOWN = 100


def address_view(
    store: SqliteStore, address: Address, now_ms: int, limit: int = SHOWN
) -> dict[str, Any]:
    """An address's state (decoded by type, expired values marked), its queued messages, its
    batch in flight and the delayed messages waiting for it: the first ``limit`` messages of
    its mailbox and the ``limit`` delayed messages due soonest, ``totals`` counting them all.
    A value is ``declared`` when its function registered its name since the runtime started,
    not when the function answered since then without registering it, and ``None`` (not yet
    known) before its first answer (calls that failed tell nothing). ``without_value``: the
    states its function declares that have no value at the address (which an edit can set),
    ``None`` while what it declares is not known."""
    specs = store.specs_get(address.typename)
    known = store.specs_known(address.typename)
    stored = store.state_get(address)
    state = {}
    for name, entry in sorted(stored.items()):
        spec = specs.get(name)
        state[name] = {
            "type": entry.typename,
            "value": describe(entry.typename, entry.value),
            "expired": bool(spec and entry.expired(spec, now_ms)),
            "declared": True if spec is not None else False if known else None,
        }
    in_flight = store.in_flight_get(address)
    mailbox = store.mailbox_peek(address, limit)
    queued = store.mailbox_count(address, after_seq=in_flight or 0)
    return {
        "address": str(address),
        "state": state,
        "without_value": {
            name: {"type": spec.typename}
            for name, spec in sorted(specs.items())
            if name not in stored
        }
        if known or specs
        else None,
        "in_flight": [_message_view(m) for m in mailbox if in_flight and m.seq <= in_flight],
        "queued": [_message_view(m) for m in mailbox if not in_flight or m.seq > in_flight],
        "timers": [_timer_view(t, now_ms) for t in store.timers_of(address, limit)],
        "totals": {
            "in_flight": store.mailbox_count(address) - queued,
            "queued": queued,
            "timers": store.timer_count(address),
        },
    }


def egress_view(record: EgressRecord) -> dict[str, Any]:
    """An egress record; Kafka and Kinesis records opened to topic/stream, key and value."""
    return {
        "seq": record.seq,
        "egress": record.egress,
        "type": record.argument.typename,
        "record": describe(record.argument.typename, record.argument.value),
        "traceparent": record.trace.traceparent if record.trace else None,
        "tracestate": record.trace.tracestate or None if record.trace else None,
    }


def address_ids(store: SqliteStore, typename: str, after: str = "", limit: int = 100) -> list[str]:
    """The ids of ``typename`` that have state, queued messages or delayed messages, in order,
    after the id ``after``: a page of at most ``limit``."""
    rows = store.conn.execute(
        "SELECT target_id FROM state WHERE target_type = ?1 AND target_id > ?2"
        " UNION SELECT target_id FROM mailbox WHERE target_type = ?1 AND target_id > ?2"
        " UNION SELECT target_id FROM timers WHERE target_type = ?1 AND target_id > ?2"
        " ORDER BY 1 LIMIT ?3",
        (typename, after, limit),
    )
    return [row[0] for row in rows]
