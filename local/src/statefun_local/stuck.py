"""Stuck addresses: a head message that keeps failing, what to do with it, and an audit log.

Beyond the Flink runtime, which retries a failing batch until its call budget runs out and then
restarts the job, again and again. Here every address whose batch fails is listed with the
attempts of its head message (its oldest), the last error and the next retry; it can be retried
now, its head message skipped, or moved to a dead-letter egress, by hand or by a policy after N
attempts. Each of these is written to an audit log. All of it lives in the runtime's SQLite
file, in the same transactions as the mailbox, so it survives ``kill -9``.

A skip or dead-letter asked for while a call to the address is in progress (its retry) is kept
as the address's request, and done once that call ends: if it fails, the head message is
skipped or dead-lettered as asked; if it succeeds, the head message was delivered and the
request is moot. Either way the audit log says so. The request is stored too: a runtime killed
meanwhile does it after its restart, once the call it sends again has ended.

The dead-letter record is the SDK's (:class:`statefun_core.DeadLetterRecord`, JSON), with the
error class ``statefun_local.FailedCall``, the last error as its message and the attempts.
"""

from __future__ import annotations

import datetime
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from statefun_core import DeadLetterEgress, DeadLetterRecord
from statefun_core.engine import Address, EgressRecord, Envelope, TypedValue

from .module import PLAYGROUND_EGRESS, Module
from .store import SqliteStore

__all__ = [
    "DEFAULT_EGRESS",
    "FAILED_CALL",
    "DeadLetterPolicy",
    "HeadChangedError",
    "NotStuckError",
    "Outcome",
    "PolicyError",
    "Request",
]

#: Where dead-letter records go when no egress is named: stored only (``statefun-local egress``).
DEFAULT_EGRESS = "statefun-local/dead-letters"
#: The error class of a record written by statefun-local: the function's call failed.
FAILED_CALL = "statefun_local.FailedCall"

#: Sequence numbers are SQLite integers.
_MAX_SEQ = 2**63 - 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS stuck (
    target_type TEXT NOT NULL, target_id TEXT NOT NULL,
    head_seq INTEGER NOT NULL, attempts INTEGER NOT NULL, last_error TEXT NOT NULL,
    first_failed_ms INTEGER NOT NULL, last_failed_ms INTEGER NOT NULL,
    next_retry_ms INTEGER NOT NULL,
    call_attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (target_type, target_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS stuck_by_first_failure
    ON stuck (first_failed_ms, target_type, target_id);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms INTEGER NOT NULL, address TEXT NOT NULL, action TEXT NOT NULL,
    message_seq INTEGER, actor TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stuck_requests (
    target_type TEXT NOT NULL, target_id TEXT NOT NULL,
    message_seq INTEGER NOT NULL, action TEXT NOT NULL, actor TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    PRIMARY KEY (target_type, target_id)
) WITHOUT ROWID;
"""


class PolicyError(ValueError):
    """A dead-letter policy that can not work with the module (found at start-up)."""


class NotStuckError(ValueError):
    """The address has no failing head message."""


class HeadChangedError(ValueError):
    """The address's failing head message is not the one the action was asked for (delivered,
    skipped or dead-lettered meanwhile): nothing is done."""


@dataclass(frozen=True)
class Outcome:
    """What an action on a stuck address did: ``done`` is ``retrying``, ``skipped``,
    ``dead-lettered``, or ``pending`` (a call to the address is in progress: the action is
    done if that call fails, and is moot if it succeeds); ``detail`` says more."""

    done: str
    detail: str = ""


@dataclass(frozen=True)
class Request:
    """A skip or dead-letter of ``message_seq`` asked for while a call was in progress."""

    action: str
    message_seq: int
    actor: str
    time_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "message_seq": self.message_seq,
            "by": self.actor,
            "time": _iso(self.time_ms),
        }


@dataclass(frozen=True)
class DeadLetterPolicy:
    """Where dead letters go, and after how many attempts a head message is moved there.

    ``after`` applies to every function type, ``by_type`` overrides it per function type
    (0: never by itself); None or 0 everywhere: only by hand.
    """

    egress: DeadLetterEgress = field(default_factory=lambda: DeadLetterEgress(DEFAULT_EGRESS))
    after: Optional[int] = None
    by_type: Mapping[str, int] = field(default_factory=dict)

    def after_for(self, typename: str) -> Optional[int]:
        after = self.by_type.get(typename, self.after)
        return after or None

    def check(self, module: Module) -> None:
        """Fail at start-up, not at the first dead letter, for an egress the module lacks."""
        for count in (self.after, *self.by_type.values()):
            if count is not None and count < 0:
                raise PolicyError(f"dead letters: attempts must be 0 or more, got {count}")
        if self.egress.typename == DEFAULT_EGRESS:
            return
        egress = module.egresses.get(self.egress.typename)
        if egress is None:
            known = ", ".join(sorted(module.egresses)) or "none"
            raise PolicyError(
                f"dead letters: no egress {self.egress.typename!r} in the module (known: {known})"
            )
        if egress.kind == PLAYGROUND_EGRESS:
            raise PolicyError(
                f"dead letters: {egress.id} takes the playground's records only; name a Kafka "
                "or Kinesis egress, or none (stored only)"
            )
        if egress.is_kafka and self.egress.topic is None:
            raise PolicyError(f"dead letters: {egress.id} is a Kafka egress; name its topic")
        if not egress.is_kafka and self.egress.stream is None:
            raise PolicyError(f"dead letters: {egress.id} is a Kinesis egress; name its stream")

    @classmethod
    def load(cls, path: Union[str, Path]) -> DeadLetterPolicy:
        """Read a policy file (YAML)::

        egress: com.example/dead-letters   # an egress of the module (default: stored only)
        topic: dead-letters                # for a Kafka egress (stream: for Kinesis)
        after: 5                           # attempts, for every function type
        functions:                         # per function type (0: only by hand)
          com.example/greeter: 3
        """
        import yaml

        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise PolicyError(f"{path}: expected a mapping")
        unknown = set(data) - {"egress", "topic", "stream", "after", "functions"}
        if unknown:
            raise PolicyError(f"{path}: unknown keys {', '.join(sorted(unknown))}")
        functions = data.get("functions") or {}
        if not isinstance(functions, dict) or not all(
            isinstance(n, int) for n in functions.values()
        ):
            raise PolicyError(f"{path}: functions maps function types to attempts")
        try:
            egress = DeadLetterEgress(
                str(data.get("egress", DEFAULT_EGRESS)), data.get("topic"), data.get("stream")
            )
        except ValueError as error:
            raise PolicyError(f"{path}: {error}") from None
        return cls(egress, data.get("after"), {str(k): v for k, v in functions.items()})


def ensure_schema(conn: sqlite3.Connection) -> None:
    """The tables, and (the runtime starting) no call in progress."""
    conn.executescript(SCHEMA)
    if not _has_call_attempts(conn):  # a database from before they were shown
        conn.execute("ALTER TABLE stuck ADD COLUMN call_attempts INTEGER NOT NULL DEFAULT 0")
    calls_ended(conn)  # a runtime killed during a call left its attempts


def calls_ended(conn: sqlite3.Connection) -> None:
    """No call is in progress (the runtime starts or stops): none is shown being retried. The
    next start sends the batch again in a new call."""
    conn.execute("UPDATE stuck SET call_attempts = 0 WHERE call_attempts > 0")


def _has_call_attempts(conn: sqlite3.Connection) -> bool:
    return any(row[1] == "call_attempts" for row in conn.execute("PRAGMA table_info(stuck)"))


def _has_requests(conn: sqlite3.Connection) -> bool:
    return conn.execute("PRAGMA table_info(stuck_requests)").fetchone() is not None


def _iso(ms: int) -> str:
    stamp = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return stamp.isoformat(timespec="seconds")


def record_failure(
    store: SqliteStore, address: Address, head_seq: int, error: str, now_ms: int, next_retry_ms: int
) -> int:
    """Count one more failed call of the head message (its call's retries are over); return
    its attempts so far."""
    row = store.conn.execute(
        "SELECT head_seq, attempts, first_failed_ms FROM stuck"
        " WHERE target_type = ? AND target_id = ?",
        (address.typename, address.id),
    ).fetchone()
    attempts, first = (row[1] + 1, row[2]) if row and row[0] == head_seq else (1, now_ms)
    store._write(
        "INSERT OR REPLACE INTO stuck VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
        (address.typename, address.id, head_seq, attempts, error, first, now_ms, next_retry_ms),
    )
    return int(attempts)


def record_retry(
    store: SqliteStore, address: Address, head_seq: int, call_attempts: int, error: str, now_ms: int
) -> None:
    """The call in progress with the head message failed ``call_attempts`` times so far and is
    retried within its budget: the address is listed as stuck from its first failed attempt,
    not only once the call has failed for good (:func:`record_failure`)."""
    updated = store._write(
        "UPDATE stuck SET call_attempts = ?, last_error = ?, last_failed_ms = ?,"
        " next_retry_ms = ? WHERE target_type = ? AND target_id = ? AND head_seq = ?",
        (call_attempts, error, now_ms, now_ms, address.typename, address.id, head_seq),
    )
    if updated.rowcount == 0:
        store._write(
            "INSERT OR REPLACE INTO stuck VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?)",
            (address.typename, address.id, head_seq, error, now_ms, now_ms, now_ms, call_attempts),
        )


def clear(store: SqliteStore, address: Address) -> None:
    """The address is not stuck (any more): forget its failures and any request on it."""
    for table in ("stuck", "stuck_requests"):
        store._write(
            f"DELETE FROM {table} WHERE target_type = ? AND target_id = ?",
            (address.typename, address.id),
        )


def keep_request(
    store: SqliteStore, address: Address, action: str, message_seq: int, actor: str, now_ms: int
) -> None:
    """Keep ``action`` on the head message of ``address`` until its call in progress ends (it
    takes the place of an earlier request)."""
    store._write(
        "INSERT OR REPLACE INTO stuck_requests VALUES (?, ?, ?, ?, ?, ?)",
        (address.typename, address.id, message_seq, action, actor, now_ms),
    )


def request_of(conn: sqlite3.Connection, address: Address) -> Optional[Request]:
    """The action asked for on ``address`` while a call to it was in progress, if any."""
    try:
        row = conn.execute(
            "SELECT action, message_seq, actor, time_ms FROM stuck_requests"
            " WHERE target_type = ? AND target_id = ?",
            (address.typename, address.id),
        ).fetchone()
    except sqlite3.OperationalError:  # a database from before these requests: none
        return None
    return None if row is None else Request(*row)


def set_next_retry(store: SqliteStore, address: Address, next_retry_ms: int) -> None:
    store._write(
        "UPDATE stuck SET next_retry_ms = ? WHERE target_type = ? AND target_id = ?",
        (next_retry_ms, address.typename, address.id),
    )


def audit(
    store: SqliteStore,
    now_ms: int,
    address: Address,
    action: str,
    message_seq: Optional[int],
    actor: str,
    detail: str,
) -> None:
    store._write(
        "INSERT INTO audit (time_ms, address, action, message_seq, actor, detail)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (now_ms, str(address), action, message_seq, actor, detail),
    )


def get(store: SqliteStore, address: Address) -> Optional[dict[str, Any]]:
    entries = listing(store, of=address)
    return entries[0] if entries else None


def addresses(conn: sqlite3.Connection) -> set[Address]:
    try:
        rows = conn.execute("SELECT target_type, target_id FROM stuck").fetchall()
    except sqlite3.OperationalError:  # a database from before stuck addresses: none
        return set()
    return {Address(t, i) for t, i in rows}


def listing(
    store: SqliteStore,
    limit: Optional[int] = None,
    *,
    of: Optional[Address] = None,
    after: Optional[str] = None,
) -> list[dict[str, Any]]:
    """The stuck addresses whose head message is still queued (the first ``limit``; those
    after the entry whose ``position`` is ``after``; ``of`` only that address), oldest
    failure first:
    ``attempts`` counts its calls that failed for good, ``call_attempts`` the failed attempts
    of the call in progress, retried within its budget (0: none in progress)."""
    where = ""
    parameters: tuple[Union[str, int], ...] = ()
    if of is not None:
        where = " WHERE s.target_type = ? AND s.target_id = ?"
        parameters = (of.typename, of.id)
    elif after is not None:
        where = " WHERE (s.first_failed_ms, s.target_type, s.target_id) > (?, ?, ?)"
        parameters = _parse_position(after)
    # a database from before these, read by the CLI: no call in progress, no request shown
    call_attempts = "s.call_attempts" if _has_call_attempts(store.conn) else "0"
    request, requests = "NULL, NULL, NULL, NULL", ""
    if _has_requests(store.conn):
        # a skip or dead-letter of the head message, waiting for the call in progress to end
        request = "r.action, r.message_seq, r.actor, r.time_ms"
        requests = (
            " LEFT JOIN stuck_requests r ON r.target_type = s.target_type"
            " AND r.target_id = s.target_id AND r.message_seq = s.head_seq"
        )
    try:
        rows = store.conn.execute(
            "SELECT s.target_type, s.target_id, s.head_seq, s.attempts, s.last_error,"
            " s.first_failed_ms, s.last_failed_ms, s.next_retry_ms, m.arg_typename,"
            f" m.caller_type, m.caller_id, {call_attempts}, {request}"
            f" FROM stuck s JOIN mailbox m ON m.seq = s.head_seq{requests}{where}"
            " ORDER BY s.first_failed_ms, s.target_type, s.target_id LIMIT ?",
            (*parameters, -1 if limit is None else limit),
        ).fetchall()
    except sqlite3.OperationalError:
        return []
    return [_entry(*row) for row in rows]


def _entry(
    t: str, i: str, seq: int, attempts: int, error: str, first: int, last: int,
    next_retry: int, typename: str, ct: Optional[str], ci: Optional[str], calls: int,
    *request: Any,
) -> dict[str, Any]:  # fmt: skip
    return {
        "address": str(Address(t, i)),
        "message_seq": seq,
        "message_type": typename,
        "caller": None if ct is None else str(Address(ct, ci or "")),
        "attempts": attempts,
        "call_attempts": calls,
        "last_error": error,
        "first_failed": _iso(first),
        "last_failed": _iso(last),
        "next_retry": _iso(next_retry),
        "next_retry_ms": next_retry,
        # a skip or dead-letter of the head message waiting for the call in progress to end
        "pending": None if request[0] is None else Request(*request).to_json(),
        "position": f"{first}/{t}//{i}",
    }


def _parse_position(position: str) -> tuple[int, str, str]:
    """``first_failed_ms/typename//id`` (a typename has no empty part, so no ``//``): where a
    stuck address is in :func:`listing`'s order."""
    first, _, rest = position.partition("/")
    typename, separator, id_ = rest.partition("//")
    if not (first.isascii() and first.isdigit() and int(first) <= _MAX_SEQ) or not (
        typename and separator
    ):
        raise ValueError(f"{position!r} is not the position of a stuck address, as 'next' gives it")
    return int(first), typename, id_


def count(store: SqliteStore) -> int:
    """How many addresses :func:`listing` lists."""
    try:
        row = store.conn.execute(
            "SELECT COUNT(*) FROM stuck s JOIN mailbox m ON m.seq = s.head_seq"
        ).fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(row[0])


def audit_listing(
    conn: sqlite3.Connection, limit: int = 100, before: Optional[int] = None
) -> list[dict[str, Any]]:
    """The latest entries of the audit log (those before the entry ``before``), newest
    first."""
    try:
        rows = conn.execute(
            "SELECT seq, time_ms, address, action, message_seq, actor, detail FROM audit"
            " WHERE seq < ? ORDER BY seq DESC LIMIT ?",
            (_MAX_SEQ if before is None else before, limit),
        ).fetchall()
    except sqlite3.OperationalError:
        return []
    return [
        {
            "seq": seq,
            "time": _iso(time_ms),
            "address": address,
            "action": action,
            "message_seq": message_seq,
            "by": actor,
            "detail": detail,
        }
        for seq, time_ms, address, action, message_seq, actor, detail in rows
    ]


def audit_size(conn: sqlite3.Connection) -> int:
    """How many entries the audit log has: its last entry's number (none is ever deleted)."""
    try:
        row = conn.execute("SELECT MAX(seq) FROM audit").fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(row[0] or 0)


def dead_letter_record(
    egress: DeadLetterEgress, head: Envelope, error: str, attempts: int
) -> EgressRecord:
    """The SDK's dead-letter record of ``head``, as an egress record for ``egress``."""
    caller = head.caller
    record = DeadLetterRecord(
        function_type=head.target.typename,
        function_id=head.target.id,
        caller_type=None if caller is None else caller.typename,
        caller_id=None if caller is None else caller.id,
        message_typename=head.argument.typename,
        message_value=head.argument.value if head.argument.has_value else None,
        error_class=FAILED_CALL,
        error_message=error,
        time=_now_ms(),
        attempts=attempts,
    )
    message = record.to_egress(egress)
    return EgressRecord(
        egress.typename, TypedValue.from_proto(message.typed_value), trace=head.trace
    )  # the record goes on in the message's trace


def _now_ms() -> datetime.datetime:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
