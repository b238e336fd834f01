"""The engine's :class:`~statefun_core.engine.Store` on one SQLite file (WAL mode).

Mailboxes, in-flight markers, state specs, state, timers and the egress log live in one
database, so the engine's transactions (one per event: an ingress message, taking batches,
applying a reply, firing timers) are SQLite transactions, and a ``kill -9`` at any moment
leaves the file at the last committed event.

Messages, delayed messages and egress records keep the W3C trace context of what sent them
(``traceparent``, ``tracestate``: nullable columns, added to a database made before them when
it is opened).

Which addresses have queued messages, the in-flight markers and the specs are also kept in
memory (written through, reloaded after a rollback): the engine asks for them on every round.

The specs are those registered since the runtime started: it forgets them when it starts, as
the reference runtime does on a restart (protocol §5); the state values stay. Which function
types answered a call since then (``called``) tells a value no longer declared from one whose
function has not yet said.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ContextManager, Optional, Union

from statefun_core.engine import (
    Address,
    EgressRecord,
    Envelope,
    ExpireMode,
    StateEntry,
    StateSpec,
    StateTypeError,
    Timer,
    TraceContext,
    TypedValue,
)

__all__ = ["SCHEMA_VERSION", "SqliteStore", "connect"]

#: Raised when a version writes what an older one can not (2: the stuck table's call_attempts,
#: which version 1's code inserts rows without): the older refuses the database when it opens
#: it. A database is upgraded when opened; it is never downgraded.
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mailbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    target_type TEXT NOT NULL, target_id TEXT NOT NULL,
    caller_type TEXT, caller_id TEXT,
    arg_typename TEXT NOT NULL, arg_has_value INTEGER NOT NULL, arg_value BLOB NOT NULL,
    created_ms INTEGER NOT NULL DEFAULT 0,
    traceparent TEXT, tracestate TEXT
);
CREATE INDEX IF NOT EXISTS mailbox_by_address ON mailbox (target_type, target_id, seq);
CREATE TABLE IF NOT EXISTS in_flight (
    target_type TEXT NOT NULL, target_id TEXT NOT NULL, last_seq INTEGER NOT NULL,
    set_order INTEGER NOT NULL,
    PRIMARY KEY (target_type, target_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS specs (
    function_type TEXT NOT NULL, name TEXT NOT NULL, typename TEXT NOT NULL,
    expire_mode INTEGER NOT NULL, expire_after_ms INTEGER NOT NULL,
    PRIMARY KEY (function_type, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS called (function_type TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (
    target_type TEXT NOT NULL, target_id TEXT NOT NULL, name TEXT NOT NULL,
    typename TEXT NOT NULL, value BLOB NOT NULL,
    written_ms INTEGER NOT NULL, accessed_ms INTEGER NOT NULL,
    PRIMARY KEY (target_type, target_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS timers (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    due_ms INTEGER NOT NULL,
    target_type TEXT NOT NULL, target_id TEXT NOT NULL,
    caller_type TEXT NOT NULL, caller_id TEXT NOT NULL,
    arg_typename TEXT NOT NULL, arg_has_value INTEGER NOT NULL, arg_value BLOB NOT NULL,
    token TEXT, scope TEXT NOT NULL,
    traceparent TEXT, tracestate TEXT
);
CREATE INDEX IF NOT EXISTS timers_by_due ON timers (due_ms, seq);
CREATE INDEX IF NOT EXISTS timers_by_token ON timers (scope, token) WHERE token IS NOT NULL;
CREATE INDEX IF NOT EXISTS timers_by_target ON timers (target_type, target_id, due_ms, seq);
CREATE TABLE IF NOT EXISTS kafka_offsets (
    ingress TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (ingress, topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kinesis_positions (
    ingress TEXT NOT NULL, stream TEXT NOT NULL, shard TEXT NOT NULL,
    sequence_number TEXT NOT NULL,
    PRIMARY KEY (ingress, stream, shard)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS egress (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    egress TEXT NOT NULL,
    arg_typename TEXT NOT NULL, arg_has_value INTEGER NOT NULL, arg_value BLOB NOT NULL,
    created_ms INTEGER NOT NULL DEFAULT 0,
    traceparent TEXT, tracestate TEXT
);
"""
#: Columns added to version 1 after it shipped: (table, column, type), added when missing.
_ADDED_COLUMNS = [
    (table, column, "TEXT")
    for table in ("mailbox", "timers", "egress")
    for column in ("traceparent", "tracestate")
]


def connect(
    path: Union[str, Path], *, readonly: bool = False, synchronous: str = "NORMAL"
) -> sqlite3.Connection:
    """Open the runtime's database (creating it unless ``readonly``) in WAL mode.

    ``synchronous=NORMAL`` survives any crash of the process (``kill -9``); ``FULL`` also
    survives a power loss, at an fsync per commit. A file SQLite can not use (not a database,
    a directory) is refused with its path.
    """
    if readonly:
        if not Path(path).exists():
            raise FileNotFoundError(f"no database at {path}")
        try:
            conn = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
        except sqlite3.DatabaseError as error:  # a directory
            raise _with_path(path, error) from None
        with _named(path, conn):
            conn.execute("PRAGMA busy_timeout = 5000")
            _read_as_this_version(path, conn)
        return conn
    if Path(path).is_file() and not os.access(path, os.W_OK):  # SQLite would open it read-only
        raise PermissionError(
            f"the database {path} is read-only to this user: the runtime "
            "writes to it, as state --set does (state, egress, stuck and audit only read it)"
        )
    _create_private(path)
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    except sqlite3.DatabaseError as error:
        raise _with_path(path, error) from None
    with _named(path, conn):
        conn.execute("PRAGMA busy_timeout = 5000")
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        if tables and "meta" not in tables:  # every statefun-local database has it
            conn.close()
            raise _not_ours(path, tables)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.executescript(_SCHEMA)
        for table, column, sql_type in _ADDED_COLUMNS:
            columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            if column not in columns:  # nullable: older statefun-local versions still read it
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = None if row is None else row[0]
        if version is None or (isinstance(version, int) and version < SCHEMA_VERSION):
            # new, or an older version's: what it lacks is added (here, and the stuck table's
            # columns when the runtime starts); from now on that older version refuses it
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                         (SCHEMA_VERSION,))  # fmt: skip
            version = SCHEMA_VERSION
    if version != SCHEMA_VERSION:
        conn.close()
        raise RuntimeError(
            f"{path} has schema version {version!r}, written by a newer statefun-local (this "
            f"one uses {SCHEMA_VERSION}): run that version on it, or use another --db file"
        )
    return conn


def _read_as_this_version(path: Union[str, Path], conn: sqlite3.Connection) -> None:
    """Refuse (read-only: no upgrade) a database this version can not read: not
    statefun-local's, or of a newer schema. An older one is read as it is: the columns added
    since read as empty (NULL) through temporary views, which shadow its tables on this
    connection only."""
    tables = [name for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]  # fmt: skip
    row = None
    if "meta" in tables:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        conn.close()
        raise _not_ours(path, tables)
    version = row[0]
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        conn.close()
        raise RuntimeError(
            f"{path} has schema version {version!r}, written by a newer statefun-local (this "
            f"one reads up to {SCHEMA_VERSION}): read it with that version"
        )
    for table in sorted({table for table, _, _ in _ADDED_COLUMNS} & set(tables)):
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        missing = [c for t, c, _ in _ADDED_COLUMNS if t == table and c not in columns]
        if missing:
            nulls = "".join(f", NULL AS {column}" for column in missing)
            conn.execute(f"CREATE TEMP VIEW {table} AS SELECT *{nulls} FROM main.{table}")


def _not_ours(path: Union[str, Path], tables: list[str]) -> RuntimeError:
    more = ", ..." if len(tables) > 5 else ""
    held = f"the tables {', '.join(tables[:5])}{more}" if tables else "no tables"
    return RuntimeError(f"the database {path} is not statefun-local's (it holds {held}): give "
                        "another --db")  # fmt: skip


@contextmanager
def _named(path: Union[str, Path], conn: sqlite3.Connection) -> Iterator[None]:
    """SQLite's errors opening ``path`` ("file is not a database") say which file, and leave
    no connection open."""
    try:
        yield
    except sqlite3.DatabaseError as error:
        conn.close()
        raise _with_path(path, error) from None


def _with_path(path: Union[str, Path], error: sqlite3.DatabaseError) -> sqlite3.DatabaseError:
    return type(error)(f"the database {path}: {error}")


def _trace(traceparent: Optional[str], tracestate: Optional[str]) -> Optional[TraceContext]:
    return None if traceparent is None else TraceContext(traceparent, tracestate or "")


def _trace_columns(trace: Optional[TraceContext]) -> tuple[Optional[str], Optional[str]]:
    return (None, None) if trace is None else (trace.traceparent, trace.tracestate or None)


def _create_private(path: Union[str, Path]) -> None:
    """Create the database file readable and writable by its owner only (0600), if it is not
    there: SQLite gives its -wal and -shm files the database file's permissions."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


@functools.lru_cache(maxsize=65536)
def _address(typename: Optional[str], id_: Optional[str]) -> Optional[Address]:
    """The caller column pair as an address, shared between rows (callers repeat a lot)."""
    return None if typename is None or id_ is None else Address(typename, id_)


class SqliteStore:
    """The engine's store on a SQLite connection (see :func:`connect`)."""

    def __init__(self, conn: sqlite3.Connection, clock_ms: Any = None) -> None:
        self.conn = conn
        self._clock_ms = clock_ms or (lambda: 0)
        self._in_transaction = False
        self._begun = False
        self._load_caches()

    @classmethod
    def open(
        cls,
        path: Union[str, Path],
        synchronous: str = "NORMAL",
        clock_ms: Any = None,
        *,
        readonly: bool = False,
    ) -> SqliteStore:
        conn = connect(path, readonly=readonly, synchronous=synchronous)
        with _named(path, conn):  # a damaged page is found reading the tables
            return cls(conn, clock_ms)

    def close(self) -> None:
        self.conn.close()

    def _load_caches(self) -> None:
        # address -> [oldest seq, count] of its queued messages
        self._queued: dict[Address, list[int]] = {
            Address(t, i): [oldest, count]
            for t, i, oldest, count in self.conn.execute(
                "SELECT target_type, target_id, MIN(seq), COUNT(*) FROM mailbox GROUP BY 1, 2"
            )
        }
        self._in_flight: dict[Address, int] = {
            Address(t, i): last
            for t, i, last in self.conn.execute(
                "SELECT target_type, target_id, last_seq FROM in_flight ORDER BY set_order"
            )
        }
        rows = self.conn.execute("SELECT MAX(set_order) FROM in_flight").fetchone()
        self._in_flight_order = rows[0] or 0
        self._specs: dict[str, dict[str, StateSpec]] = {}
        for function_type, name, typename, mode, after in self.conn.execute(
            "SELECT function_type, name, typename, expire_mode, expire_after_ms FROM specs"
        ):
            self._specs.setdefault(function_type, {})[name] = StateSpec(
                name, typename, ExpireMode(mode), after
            )
        try:
            self._called = {row[0] for row in self.conn.execute("SELECT function_type FROM called")}
        except sqlite3.OperationalError:  # read-only, made by a version without the table
            self._called = set()

    # --- transactions -------------------------------------------------------------------

    def transaction(self) -> ContextManager[None]:
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # The SQL transaction starts at the first write: the engine's read-only calls (is
        # there a batch to take? a timer due?) then cost no lock. Reads before that first
        # write see the latest commit, as this store is the database's only writer.
        if self._in_transaction:
            # joins the enclosing one: a Kafka ingress enqueues its records (each an engine
            # transaction) and writes their offsets as one commit
            yield
            return
        self._in_transaction = True
        try:
            yield
            if self._begun:
                self.conn.execute("COMMIT")
        except BaseException:
            # SQLite has rolled back by itself on some errors (a full disk): only what is left
            if self._begun and self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self._load_caches()
            raise
        finally:
            self._in_transaction = self._begun = False

    def _write(self, sql: str, parameters: tuple[Any, ...]) -> sqlite3.Cursor:
        if self._in_transaction and not self._begun:
            self.conn.execute("BEGIN IMMEDIATE")
            self._begun = True
        return self.conn.execute(sql, parameters)

    # --- mailboxes ----------------------------------------------------------------------

    def mailbox_append(self, envelope: Envelope) -> int:
        caller = envelope.caller
        argument = envelope.argument
        cursor = self._write(
            "INSERT INTO mailbox (target_type, target_id, caller_type, caller_id, arg_typename,"
            " arg_has_value, arg_value, created_ms, traceparent, tracestate)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                envelope.target.typename,
                envelope.target.id,
                caller.typename if caller else None,
                caller.id if caller else None,
                argument.typename,
                argument.has_value,
                argument.value,
                self._clock_ms(),
                *_trace_columns(envelope.trace),
            ),
        )
        seq = int(cursor.lastrowid or 0)
        queued = self._queued.get(envelope.target)
        if queued is None:
            self._queued[envelope.target] = [seq, 1]
        else:
            queued[1] += 1
        return seq

    def mailbox_peek(self, address: Address, limit: Optional[int] = None) -> list[Envelope]:
        if address not in self._queued:
            return []
        rows = self.conn.execute(
            "SELECT seq, caller_type, caller_id, arg_typename, arg_has_value, arg_value,"
            " traceparent, tracestate"
            " FROM mailbox WHERE target_type = ? AND target_id = ? ORDER BY seq LIMIT ?",
            (address.typename, address.id, -1 if limit is None else limit),  # -1: no limit
        )
        return [
            Envelope(
                address,
                TypedValue(typename, bytes(value), bool(has_value)),
                _address(caller_type, caller_id),
                seq,
                _trace(parent, state),
            )
            for seq, caller_type, caller_id, typename, has_value, value, parent, state in rows
        ]

    def mailbox_count(self, address: Address, after_seq: int = 0) -> int:
        queued = self._queued.get(address)
        if queued is None:
            return 0
        if after_seq < queued[0]:
            return queued[1]
        row = self.conn.execute(
            "SELECT COUNT(*) FROM mailbox WHERE target_type = ? AND target_id = ? AND seq > ?",
            (address.typename, address.id, after_seq),
        ).fetchone()
        return int(row[0])

    def mailbox_remove(self, address: Address, up_to_seq: int) -> None:
        if address not in self._queued:
            return
        self._write(
            "DELETE FROM mailbox WHERE target_type = ? AND target_id = ? AND seq <= ?",
            (address.typename, address.id, up_to_seq),
        )
        oldest, count = self.conn.execute(
            "SELECT MIN(seq), COUNT(*) FROM mailbox WHERE target_type = ? AND target_id = ?",
            (address.typename, address.id),
        ).fetchone()
        if count:
            self._queued[address] = [oldest, count]
        else:
            del self._queued[address]

    def mailbox_addresses(self) -> list[Address]:
        return sorted(self._queued, key=lambda address: self._queued[address][0])

    def queue_depths(self) -> dict[Address, int]:
        """How many messages each address has queued (in flight included)."""
        return {address: queued[1] for address, queued in self._queued.items()}

    # --- in-flight markers --------------------------------------------------------------

    def in_flight_get(self, address: Address) -> Optional[int]:
        return self._in_flight.get(address)

    def in_flight_set(self, address: Address, last_seq: int) -> None:
        self._in_flight_order += 1
        self._write(
            "INSERT INTO in_flight VALUES (?, ?, ?, ?) ON CONFLICT (target_type, target_id)"
            " DO UPDATE SET last_seq = excluded.last_seq",
            (address.typename, address.id, last_seq, self._in_flight_order),
        )
        self._in_flight[address] = last_seq

    def in_flight_clear(self, address: Address) -> None:
        if self._in_flight.pop(address, None) is not None:
            self._write(
                "DELETE FROM in_flight WHERE target_type = ? AND target_id = ?",
                (address.typename, address.id),
            )

    def in_flight_addresses(self) -> list[Address]:
        return list(self._in_flight)

    # --- specs --------------------------------------------------------------------------

    def specs_get(self, function_typename: str) -> dict[str, StateSpec]:
        return dict(self._specs.get(function_typename, {}))

    def spec_add(self, function_typename: str, spec: StateSpec) -> None:
        # values outlive their spec: registering the name again with another type would send
        # them labelled with the new one (protocol §6: fails, as restoring a snapshot does)
        stored = self.conn.execute(
            "SELECT typename FROM state WHERE target_type = ? AND name = ? AND typename <> ?"
            " LIMIT 1",
            (function_typename, spec.name, spec.typename),
        ).fetchone()
        if stored is not None:
            raise StateTypeError(
                f"state {spec.name!r} of {function_typename} has values stored as {stored[0]}; "
                f"it can not become {spec.typename}"
            )
        self._write(
            "INSERT OR REPLACE INTO specs VALUES (?, ?, ?, ?, ?)",
            (
                function_typename,
                spec.name,
                spec.typename,
                int(spec.expire_mode),
                spec.expire_after_ms,
            ),
        )
        self._specs.setdefault(function_typename, {})[spec.name] = spec

    def specs_forget(self) -> None:
        """Forget every registered spec, and which function types were called; the state
        values stay."""
        self._write("DELETE FROM specs", ())
        self._write("DELETE FROM called", ())
        self._specs.clear()
        self._called.clear()

    def specs_known(self, function_typename: str) -> bool:
        """Whether ``function_typename`` answered a call since the specs were forgotten: then
        every state it declares is registered, and a value of another name is no longer
        declared."""
        return function_typename in self._called

    def mark_called(self, function_typename: str) -> None:
        """``function_typename`` answered a call (a discovery reply too)."""
        if function_typename not in self._called:
            self._write("INSERT OR IGNORE INTO called VALUES (?)", (function_typename,))
            self._called.add(function_typename)

    def all_specs(self) -> dict[str, dict[str, StateSpec]]:
        return {typename: dict(specs) for typename, specs in self._specs.items()}

    # --- state --------------------------------------------------------------------------

    def state_get(self, address: Address) -> dict[str, StateEntry]:
        return {
            name: StateEntry(typename, bytes(value), written, accessed)
            for name, typename, value, written, accessed in self.conn.execute(
                "SELECT name, typename, value, written_ms, accessed_ms FROM state"
                " WHERE target_type = ? AND target_id = ?",
                (address.typename, address.id),
            )
        }

    def state_put(self, address: Address, name: str, entry: StateEntry) -> None:
        self._write(
            "INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                address.typename,
                address.id,
                name,
                entry.typename,
                entry.value,
                entry.written_ms,
                entry.accessed_ms,
            ),
        )

    def state_delete(self, address: Address, name: str) -> None:
        self._write(
            "DELETE FROM state WHERE target_type = ? AND target_id = ? AND name = ?",
            (address.typename, address.id, name),
        )

    # --- timers -------------------------------------------------------------------------

    _TIMER_COLUMNS = (
        "seq, due_ms, target_type, target_id, caller_type, caller_id, arg_typename,"
        " arg_has_value, arg_value, token, scope, traceparent, tracestate"
    )

    @staticmethod
    def _timer(row: tuple[Any, ...]) -> Timer:
        (
            seq,
            due,
            t_type,
            t_id,
            c_type,
            c_id,
            typename,
            has_value,
            value,
            token,
            scope,
            traceparent,
            tracestate,
        ) = row
        return Timer(
            due,
            Address(t_type, t_id),
            TypedValue(typename, bytes(value), bool(has_value)),
            Address(c_type, c_id),
            token,
            scope,
            seq,
            _trace(traceparent, tracestate),
        )

    def timer_add(self, timer: Timer) -> int:
        cursor = self._write(
            "INSERT INTO timers (due_ms, target_type, target_id, caller_type, caller_id,"
            " arg_typename, arg_has_value, arg_value, token, scope, traceparent, tracestate)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                timer.due_ms,
                timer.target.typename,
                timer.target.id,
                timer.caller.typename,
                timer.caller.id,
                timer.argument.typename,
                timer.argument.has_value,
                timer.argument.value,
                timer.token,
                timer.scope,
                *_trace_columns(timer.trace),
            ),
        )
        return int(cursor.lastrowid or 0)

    def timer_pending(self, scope: str, token: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM timers WHERE scope = ? AND token = ? LIMIT 1", (scope, token)
        ).fetchone()
        return row is not None

    def timer_cancel(self, scope: str, token: str) -> bool:
        cursor = self._write("DELETE FROM timers WHERE scope = ? AND token = ?", (scope, token))
        return cursor.rowcount > 0

    def timers_pop_due(self, now_ms: int) -> list[Timer]:
        rows = self.conn.execute(
            f"SELECT {self._TIMER_COLUMNS} FROM timers WHERE due_ms <= ? ORDER BY due_ms, seq",
            (now_ms,),
        ).fetchall()
        if rows:
            self._write("DELETE FROM timers WHERE due_ms <= ?", (now_ms,))
        return [self._timer(row) for row in rows]

    def timer_next_due(self) -> Optional[int]:
        row = self.conn.execute("SELECT MIN(due_ms) FROM timers").fetchone()
        return None if row[0] is None else int(row[0])

    def timers(self) -> list[Timer]:
        return [
            self._timer(row)
            for row in self.conn.execute(
                f"SELECT {self._TIMER_COLUMNS} FROM timers ORDER BY due_ms, seq"
            )
        ]

    def timers_of(self, address: Address, limit: Optional[int] = None) -> list[Timer]:
        """The delayed messages waiting for ``address``, the soonest due first (at most
        ``limit``)."""
        rows = self.conn.execute(
            f"SELECT {self._TIMER_COLUMNS} FROM timers WHERE target_type = ? AND target_id = ?"
            " ORDER BY due_ms, seq LIMIT ?",
            (address.typename, address.id, -1 if limit is None else limit),
        )
        return [self._timer(row) for row in rows]

    def timer_count(self, address: Address) -> int:
        row = self.conn.execute(
            "SELECT COUNT(*) FROM timers WHERE target_type = ? AND target_id = ?",
            (address.typename, address.id),
        ).fetchone()
        return int(row[0])

    # --- egress -------------------------------------------------------------------------

    def egress_append(self, record: EgressRecord) -> int:
        cursor = self._write(
            "INSERT INTO egress (egress, arg_typename, arg_has_value, arg_value, created_ms,"
            " traceparent, tracestate) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.egress,
                record.argument.typename,
                record.argument.has_value,
                record.argument.value,
                self._clock_ms(),
                *_trace_columns(record.trace),
            ),
        )
        return int(cursor.lastrowid or 0)

    def egress_list(self, after_seq: int = 0, limit: Optional[int] = None) -> list[EgressRecord]:
        rows = self.conn.execute(
            "SELECT seq, egress, arg_typename, arg_has_value, arg_value, traceparent,"
            " tracestate FROM egress WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, -1 if limit is None else limit),
        )
        return [
            EgressRecord(
                egress,
                TypedValue(typename, bytes(value), bool(has_value)),
                seq,
                _trace(traceparent, tracestate),
            )
            for seq, egress, typename, has_value, value, traceparent, tracestate in rows
        ]

    # --- Kafka ingress offsets ------------------------------------------------------------

    def kafka_offsets(self, ingress: str) -> dict[tuple[str, int], int]:
        """The next offset to read of each partition ``ingress`` has taken records from."""
        return {
            (topic, partition): next_offset
            for topic, partition, next_offset in self.conn.execute(
                "SELECT topic, partition, next_offset FROM kafka_offsets WHERE ingress = ?",
                (ingress,),
            )
        }

    def kafka_offset_put(self, ingress: str, topic: str, partition: int, next_offset: int) -> None:
        self._write("INSERT OR REPLACE INTO kafka_offsets VALUES (?, ?, ?, ?)",
                    (ingress, topic, partition, next_offset))  # fmt: skip

    # --- Kinesis ingress positions -----------------------------------------------------------

    def kinesis_positions(self, ingress: str) -> dict[tuple[str, str], str]:
        """The last sequence number ``ingress`` took from each shard it has read."""
        return {
            (stream, shard): sequence_number
            for stream, shard, sequence_number in self.conn.execute(
                "SELECT stream, shard, sequence_number FROM kinesis_positions WHERE ingress = ?",
                (ingress,),
            )
        }

    def kinesis_position_put(self, ingress: str, stream: str, shard: str, sequence: str) -> None:
        self._write("INSERT OR REPLACE INTO kinesis_positions VALUES (?, ?, ?, ?)",
                    (ingress, stream, shard, sequence))  # fmt: skip

    # --- the runtime's own bookkeeping ---------------------------------------------------

    def meta_get(self, key: str) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def meta_put(self, key: str, value: Any) -> None:
        self._write("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
