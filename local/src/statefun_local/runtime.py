"""The local runtime: drives the core's engine with a SQLite store, HTTP and the wall clock.

The rules (mailboxes, batching, discovery, TTL, timers, the order a reply is applied in) are
the engine's (:mod:`statefun_core.engine`); this module only moves bytes and time:

- a dispatcher takes every batch the engine offers and calls the function over HTTP, one
  task per batch (the engine keeps one batch in flight per address);
- each good reply goes back to the engine, which applies it and consumes the batch in one
  SQLite transaction;
- a timer task fires delayed messages when they fall due;
- a call that finally fails (or a reply the engine or :mod:`statefun_local.replies` refuses,
  or one the database could not take) is logged and listed in
  :attr:`LocalRuntime.failures`; the batch stays in flight and is retried after a pause, as
  the reference runtime replays it after restoring. Its address is listed as stuck (see
  :mod:`statefun_local.stuck`): the retry sends its head message alone, and the head message
  can be retried now, skipped or dead-lettered, by hand or by a :class:`DeadLetterPolicy`. A
  skip or dead-letter asked for while its retry is being called is done when that call ends
  (moot if it succeeds): the batch in flight is never taken from under its call.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import dataclasses
import datetime
import errno
import itertools
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional, TextIO, Union

from google.protobuf.message import Message

from statefun_core.engine import (
    Address,
    Batch,
    Clock,
    Completion,
    Engine,
    EngineError,
    StaleBatchError,
    TraceContext,
    TypedValue,
)
from statefun_core.plugins.logcontext import log_line
from statefun_core.tracecontext import TRACERESPONSE

from . import editing, stuck
from .guard import json_line, one_line_logger, typename_problem
from .inspection import SHOWN, address_view, egress_view
from .module import (
    KAFKA_EGRESS,
    KAFKA_INGRESS,
    PLAYGROUND_EGRESS,
    PLAYGROUND_EGRESS_ID,
    PLAYGROUND_INGRESS,
    Egress,
    Endpoint,
    Ingress,
    Module,
)
from .replies import check_reply
from .store import SqliteStore
from .stuck import DeadLetterPolicy, HeadChangedError, NotStuckError, Outcome
from .transport import CallFailedError, HttpTransport
from .values import playground_record

__all__ = ["Failure", "LocalRuntime", "UnknownFunctionError", "UnknownIngressError", "WallClock"]

log: logging.Logger = one_line_logger("statefun_local")
#: How often at most a call's failed attempts are written to the database (ms), after its first
RETRY_WRITE_MS = 1000


class _Retrying(NamedTuple):
    """A call under way whose attempts failed so far."""

    attempts: int
    reason: str  # the last attempt's
    written_ms: Optional[int]  # when they were last written to the database (None: not yet)


#: the batch the current task calls its function with (each call is a task), in a list emptied
#: when the call ends: a connection the call opens keeps a copy of the task's context while it
#: is pooled, which must not keep the batch (its request) alive
_calling: contextvars.ContextVar[Optional[list[Batch]]] = contextvars.ContextVar(
    "statefun_local_calling", default=None
)


async def wait_event(event: asyncio.Event, timeout: Optional[float]) -> None:
    """Until ``event`` is set, or ``timeout`` s have passed. Not ``asyncio.wait_for``: before
    Python 3.12 it loses a cancellation that comes as the event is set (bpo-42130), and a task
    that waits in a loop then never ends: a runtime stopping would wait for it for ever."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait([waiter], timeout=timeout)
    finally:
        waiter.cancel()


class WallClock:
    """Processing time: milliseconds since the epoch (timers survive restarts)."""

    def now_ms(self) -> int:
        return int(time.time() * 1000)


class UnknownFunctionError(ValueError):
    """A message for a function type no endpoint in the module serves."""


class UnknownIngressError(ValueError):
    """A record for an ingress, topic or stream the module does not define."""


@dataclasses.dataclass(frozen=True)
class Failure:
    """A batch that could not be delivered or whose reply was rejected."""

    time: str
    address: str
    error: str
    messages: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class LocalRuntime:
    """A durable, single-process StateFun runtime for one module.

    Use as ``async with LocalRuntime(module, "app.db") as runtime: await runtime.send(...)``,
    or call :meth:`start` and :meth:`stop`.
    """

    db: Path
    egress_jsonl: Optional[Path]
    delivered: int
    dead_letters: DeadLetterPolicy

    def __init__(
        self,
        module: Module,
        db: Union[str, Path] = "statefun-local.db",
        *,
        synchronous: str = "NORMAL",
        egress_jsonl: Union[str, Path, None] = None,
        failure_pause: float = 1.0,
        clock: Optional[Clock] = None,
        module_name: str = "",
        transport: Optional[HttpTransport] = None,
        offline: bool = False,
        dead_letters: Optional[DeadLetterPolicy] = None,
    ) -> None:
        self.module = module
        self.db = Path(db)
        self.synchronous = synchronous
        self.egress_jsonl = Path(egress_jsonl) if egress_jsonl else None
        self.failure_pause = failure_pause
        self.clock: Clock = clock or WallClock()
        self.module_name = module_name
        self.failures: collections.deque[Failure] = collections.deque(maxlen=100)
        self.delivered = 0
        self.delivered_by_type: collections.Counter[str] = collections.Counter()
        # deliveries per whole second of the monotonic clock, the last few seconds only
        self._throughput: collections.deque[list[int]] = collections.deque(maxlen=8)
        self._store: Optional[SqliteStore] = None
        self._engine: Optional[Engine] = None
        # a transport given to us is shared (its connections outlive this runtime)
        self._own_transport = transport is None
        self._transport = transport
        self._tasks: list[asyncio.Task[None]] = []
        self._calls: set[asyncio.Task[None]] = set()
        self._parked: dict[Address, int] = {}  # consecutive failures per address
        self._retrying: dict[Address, _Retrying] = {}  # the calls whose attempts failed
        # (URL, function type) whose calls fail, none answered since: the address whose failed
        # attempts are logged (None: the next to fail), and the others whose calls failed
        # meanwhile, counted rather than logged (a function server down: every address fails)
        self._failing: dict[tuple[str, str], tuple[Optional[Address], set[Address]]] = {}
        self._counted: set[Address] = set()  # parked among those counted: logged at debug
        #: function types of messages no endpoint serves: their failures logged once a run
        self._unserved: set[str] = set()
        self._started_at = 0.0
        self._lock: Optional[_DatabaseLock] = None
        self._counts: Optional[tuple[float, dict[str, int], dict[Address, int]]] = None
        #: without Kafka: records come over HTTP only, and egress records are only stored
        self.offline = offline
        self.connectors: list[Any] = []  # connector.Connector: Kafka and Kinesis I/O
        self.dead_letters = dead_letters or DeadLetterPolicy()
        self.dead_letters.check(module)
        self._stuck: set[Address] = set()  # addresses with a row in the stuck table
        # the parked batch of each stuck address waiting for its retry, and what wakes it
        self._waiting: dict[Address, tuple[Batch, asyncio.Event]] = {}

    def __repr__(self) -> str:
        running = "stopped" if self._store is None else "running"
        return f"LocalRuntime({str(self.db)!r}, {running}{', offline' if self.offline else ''})"

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> LocalRuntime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self.egress_jsonl is not None:
            _append_private(self.egress_jsonl).close()  # a path we can not write fails here
        self._lock = _lock_database(self.db)
        try:
            self._store = SqliteStore.open(self.db, self.synchronous, self.clock.now_ms)
        except BaseException:  # a database the store refuses: free for another try
            if self._lock is not None:
                self._lock.release()
                self._lock = None
            raise
        with self._store.transaction():
            self._store.specs_forget()  # as the runtime does on restart (protocol §5)
        stuck.ensure_schema(self._store.conn)
        self._stuck = stuck.addresses(self._store.conn)
        self._unserved.clear()
        self._engine = Engine(self._store, self.clock, egress_ids=self.module.egresses.keys())
        if self._own_transport:
            self._transport = HttpTransport(on_retry=self._on_retry)
        self._wake = asyncio.Event()
        self._timer_wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._started_at = time.monotonic()
        for warning in self.module.warnings:
            log.warning("%s", warning)
        resumed = len(self._store.in_flight_addresses())
        if resumed:
            log.info("resuming: %d batch(es) were in flight, sending them again", resumed)
        self._tasks = [asyncio.create_task(self._dispatch()), asyncio.create_task(self._timers())]
        if self.egress_jsonl is not None:
            self._tasks.append(asyncio.create_task(self._sink_jsonl(self.egress_jsonl)))
        if not self.offline:
            from .connector import connectors

            self.connectors = connectors(self)
            self._tasks += [asyncio.create_task(connector.run()) for connector in self.connectors]
        self._wake.set()
        self._timer_wake.set()

    async def stop(self) -> None:
        """Stop calling functions; what is in flight stays in flight for the next start."""
        for task in [*self._tasks, *self._calls]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._calls, return_exceptions=True)
        self._tasks, self._calls = [], set()
        if self._transport is not None and self._own_transport:
            await self._transport.close()
            self._transport = None
        if self._store is not None:
            with contextlib.suppress(sqlite3.Error):  # e.g. locked: the next start does it
                stuck.calls_ended(self._store.conn)  # the calls cancelled above
            self._store.close()
            self._store = self._engine = None  # the engine would work on the closed store
        if self._lock is not None:  # after the store: see _RUNNING_ON
            self._lock.release()
            self._lock = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the runtime is not started")
        return self._engine

    @property
    def store(self) -> SqliteStore:
        if self._store is None:
            raise RuntimeError("the runtime is not started")
        return self._store

    # --- input --------------------------------------------------------------------------

    async def send(
        self, target: Address, value: TypedValue, trace: Optional[TraceContext] = None
    ) -> int:
        """Queue a message from outside (an ingress); durable when this returns. Waits while
        the target has ``maxNumBatchRequests`` messages buffered. ``trace`` is where the
        message comes from (the ingress request's ``traceparent``), when known."""
        self.check_target(target)
        (seq,) = await self.send_all([(target, value, trace)])
        return seq

    async def send_record(
        self,
        ingress_id: str,
        source: str,
        key: Optional[str],
        value: bytes,
        trace: Optional[TraceContext] = None,
    ) -> list[int]:
        """Deliver a record as the Kafka or Kinesis ingress ``ingress_id`` would (protocol §9):
        one message per target of the topic (stream) ``source``, to the id ``key``, typed as
        the topic's ``valueType``, the bytes unwrapped; all of them or none."""
        routed = self.route_record(ingress_id, source, key, value)
        for target, _ in routed:
            self.check_target(target)
        return await self.send_all([(target, message, trace) for target, message in routed])

    async def send_all(
        self,
        messages: Sequence[tuple[Address, TypedValue, Optional[TraceContext]]],
        also: Callable[[], None] = lambda: None,
    ) -> list[int]:
        """Queue messages from outside (each with its trace context, if any) in one SQLite
        transaction, with ``also``'s store writes (an ingress' read position), once no target
        has its ``maxNumBatchRequests`` buffered: a crash queues all of them or none."""
        targets = {target for target, _, _ in messages}
        while any(self._backpressured(target) for target in targets):
            await self._wait_progress()
        with self.store.transaction():
            seqs = [self.engine.send(target, value, trace=trace)
                    for target, value, trace in messages]  # fmt: skip
            also()
        self._wake.set()
        return seqs

    def _backpressured(self, target: Address) -> bool:
        endpoint = self.module.endpoint_for(target.typename)
        return endpoint is not None and self.engine.is_backpressured(
            target, endpoint.max_num_batch_requests
        )

    def route_record(
        self, ingress_id: str, source: str, key: Optional[str], value: bytes
    ) -> list[tuple[Address, TypedValue]]:
        """The messages a record of ``source`` becomes: one per target, to the id ``key`` (the
        empty key too, as the runtime does). Raises :class:`UnknownIngressError` for a record
        no route takes, and for one without a key (the runtime fails the job on it)."""
        ingress = self.module.ingresses.get(ingress_id)
        if ingress is None:
            known = ", ".join(sorted(self.module.ingresses)) or "none"
            raise UnknownIngressError(f"no ingress {ingress_id!r} in the module (known: {known})")
        if ingress.kind == PLAYGROUND_INGRESS:
            raise UnknownIngressError(
                f"ingress {ingress_id!r} takes no records: it takes messages on its own port, "
                f"PUT /<namespace>/<type>/<id> on port {ingress.port}"
            )
        routes = [route for route in ingress.routes if route[0] == source]
        if not routes:
            names = ", ".join(route[0] for route in ingress.routes)
            raise UnknownIngressError(
                f"ingress {ingress_id!r} does not read {source!r} (it reads {names})"
            )
        if key is None:
            raise UnknownIngressError("a record without a key can not be routed to an id")
        _, value_type, targets = routes[0]
        message = TypedValue(value_type, value, True)
        return [(Address(target, key), message) for target in targets]

    def check_target(self, target: Address) -> Endpoint:
        """The endpoint serving ``target``; raises :class:`UnknownFunctionError` if none."""
        problem = typename_problem(target.typename)
        if problem is not None:
            raise UnknownFunctionError(problem)
        endpoint = self.module.endpoint_for(target.typename)
        if endpoint is None:
            raise UnknownFunctionError(
                f"no endpoint in the module serves function type {target.typename!r}"
            )
        return endpoint

    async def _wait_progress(self, timeout: Optional[float] = None) -> None:
        await wait_event(self._progress, timeout)

    def _notify_progress(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    async def wait_until_idle(self, timeout: float = 30.0, timers: bool = False) -> None:
        """Wait until nothing is queued or in flight (and, with ``timers``, no delayed message
        is pending). Raises ``TimeoutError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not (self.engine.is_idle() and not (timers and self.engine.pending_timers())):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the runtime did not go idle within {timeout} s: "
                                   f"{self._busy()}")  # fmt: skip
            await self._wait_progress(min(remaining, 0.05))

    def _busy(self) -> str:
        """What keeps the runtime busy: the addresses in flight, with how their calls fare."""
        failed = {failure.address: failure.error for failure in self.failures}
        shown = []
        in_flight = self.store.in_flight_addresses()
        for address in in_flight[:5]:
            if address in self._retrying:
                live = self._retrying[address]
                shown.append(f"{address} ({live.attempts} attempt(s) failed, the last: "
                             f"{live.reason})")  # fmt: skip
            elif address in self._parked and str(address) in failed:
                shown.append(f"{address} (failed: {failed[str(address)]})")
            else:
                shown.append(str(address))
        more = f" and {len(in_flight) - 5} more" if len(in_flight) > 5 else ""
        queued = sum(self.store.queue_depths().values())
        timers = len(self.engine.pending_timers())
        return (f"{len(in_flight)} address(es) in flight ({', '.join(shown) or 'none'}{more}), "
                f"{queued} message(s) queued (in flight included), {timers} delayed")  # fmt: skip

    # --- the dispatcher -----------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                self._start_calls()
            except sqlite3.OperationalError as error:  # e.g. another process holds the lock
                await self._database_pause("taking batches", error)
                self._wake.set()

    def _start_calls(self) -> None:
        """A call for each batch ready; in its own frame, so that the dispatcher, waiting, holds
        none of them (nor their requests)."""
        for batch in self.engine.next_batches():
            task = asyncio.create_task(self._call(batch))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    async def _database_pause(self, doing: str, error: sqlite3.Error) -> None:
        log.error("%s failed: %s; trying again in %.1f s", doing, error, self.failure_pause)
        await asyncio.sleep(self.failure_pause)

    async def _call(self, batch: Batch) -> None:
        """Call the function with ``batch`` and apply its reply, or park the batch. Should
        even recording a failure fail (the database locked for longer than its busy timeout),
        the batch is offered again after a pause: it never stays in flight for good."""
        try:
            await self._call_and_apply(batch)
        except Exception:
            log_line(log, logging.ERROR, "%s: handling the batch failed; looking again in %.1f s",
                     batch.address, self.failure_pause, fields=_trace_of(batch),
                     exc_info=True)  # fmt: skip
            await asyncio.sleep(self.failure_pause)
            try:
                self.engine.fail(batch)
                log.info("%s: the batch is offered again", batch.address)
            except StaleBatchError:  # its reply was applied: what failed was after that
                log.info("%s: the batch's reply was applied", batch.address)
            self._wake.set()
            self._notify_progress()

    async def _call_and_apply(self, batch: Batch) -> None:
        address = batch.address
        endpoint = self.module.endpoint_for(address.typename)
        if endpoint is None:  # the module's for this run: logged once, not at each retry
            if address.typename not in self._unserved:
                self._unserved.add(address.typename)
                log.error("%s: no endpoint in the module serves it: its messages are kept and "
                          "retried, its addresses listed as stuck, their failures not logged "
                          "one by one", address.typename)  # fmt: skip
            await self._park(batch, f"no endpoint in the module serves {address.typename!r}",
                             quiet=True)  # fmt: skip
            return
        try:
            endpoint.url_for(address.typename)
        except ValueError as error:  # a name no URL holds ('..'): as above, logged once
            if address.typename not in self._unserved:
                self._unserved.add(address.typename)
                log.error("%s: its messages are kept and retried, its addresses listed as "
                          "stuck, their failures not logged one by one", error)  # fmt: skip
            await self._park(batch, str(error), quiet=True)
            return
        reply_headers: dict[str, str] = {}
        try:
            reply = await self._post_batch(endpoint, batch, reply_headers)
        except CallFailedError as error:
            failing = self._failing.get((error.url, address.typename))
            if failing is not None and failing[0] == address:  # the next to fail is logged
                self._failing[(error.url, address.typename)] = (None, failing[1])
            counted = failing is not None and address in failing[1] and _unreachable(error.reason)
            await self._park(batch, str(error), quiet=counted)
            return
        except Exception as error:  # a bug or a bad URL: still the address's visible failure
            log_line(log, logging.ERROR, "%s: calling %s failed", address,
                     endpoint.url_path_template, fields=_trace_of(batch),
                     exc_info=True)  # fmt: skip
            await self._park(batch, f"{type(error).__name__}: {error}")
            return
        self._answered(endpoint.url_for(address.typename), address.typename)
        trace = TraceContext.parse(reply_headers.get(TRACERESPONSE))
        try:
            check_reply(address, reply, self.module)
            completion = self.engine.complete(batch, reply, trace)
        except EngineError as error:  # refused: nothing of the reply is applied
            await self._park(batch, f"{type(error).__name__}: {error}")
            return
        except Exception as error:  # e.g. the database locked by another process: rolled back
            log_line(log, logging.ERROR, "%s: applying the reply failed", address,
                     fields=_trace_of(batch), exc_info=True)  # fmt: skip
            await self._park(batch, f"{type(error).__name__}: {error}")
            return
        self._completed(completion)

    async def _post_batch(
        self, endpoint: Endpoint, batch: Batch, reply_headers: dict[str, str]
    ) -> Message:
        """Call the function with ``batch`` (its reply, a parsed ``FromFunction``): its failed
        attempts are shown (:meth:`_on_retry`) while the call lasts, not in the pause before the
        next one (:meth:`_park`)."""
        assert self._transport is not None
        calling = [batch]  # for _on_retry: this task calls with this batch only
        _calling.set(calling)
        try:
            return await self._transport.call(
                endpoint, batch.address.typename, batch.request, batch.headers, reply_headers
            )
        finally:
            calling.clear()
            self._retrying.pop(batch.address, None)

    def _completed(self, completion: Completion) -> None:
        # answered, a discovery reply too (it names every state not sent): the function's
        # states are all registered now (a write the first time only)
        self.store.mark_called(completion.batch.address.typename)
        if completion.scheduled:
            self._timer_wake.set()
        self._wake.set()
        # a discovery round (after each restart too) delivers nothing: a failing address
        # stays failing, its attempts counted on
        if not completion.incomplete:
            self._delivered(completion.batch)
        self._notify_progress()

    def _delivered(self, batch: Batch) -> None:
        address = batch.address
        if self._parked.pop(address, None) is not None:
            level = logging.DEBUG if address in self._counted else logging.INFO
            log.log(level, "%s: delivered again after failing", address)
        self._counted.discard(address)
        if address in self._stuck:
            request = stuck.request_of(self.store.conn, address)
            with self.store.transaction():
                stuck.clear(self.store, address)
                if request is not None:  # asked for during this call: moot
                    stuck.audit(self.store, self.clock.now_ms(), address, request.action,
                                request.message_seq, request.actor,
                                f"not done: asked for while a call was in progress, which "
                                f"delivered message #{request.message_seq}")  # fmt: skip
            if request is not None:
                log.warning("%s: the %s of message #%d by %s was not done: the call in "
                            "progress delivered it", address, request.action,
                            request.message_seq, request.actor)  # fmt: skip
            self._stuck.discard(address)
        count = len(batch.messages)
        self.delivered += count
        self.delivered_by_type[address.typename] += count
        second = int(time.monotonic())
        if self._throughput and self._throughput[-1][0] == second:
            self._throughput[-1][1] += count
        else:
            self._throughput.append([second, count])

    async def _park(self, batch: Batch, error: str, *, quiet: bool = False) -> None:
        """Record a failed batch, keep it in flight for a while, then offer it again;
        ``quiet``: logged at debug level, as one of the calls counted while a function
        server is down (:meth:`_on_retry`), not one by one."""
        address = batch.address
        failures = self._parked.get(address, 0) + 1
        self._parked[address] = failures
        stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self.failures.append(Failure(stamp, str(address), error, len(batch.messages)))
        pause = min(self.failure_pause * 2 ** (failures - 1), 60.0)
        head = batch.messages[0]
        now_ms = self.clock.now_ms()
        with self.store.transaction():
            attempts = stuck.record_failure(
                self.store, address, head.seq, error, now_ms, now_ms + int(pause * 1000)
            )
            if len(batch.messages) > 1:  # the retry sends the head alone: is it the one?
                self.store.in_flight_set(address, head.seq)
        self._stuck.add(address)
        removal: Optional[tuple[str, str, str]] = None  # the head's end: action, actor, why
        request = stuck.request_of(self.store.conn, address)
        after = self.dead_letters.after_for(address.typename)
        if request is not None and request.message_seq == head.seq:  # asked for during the call
            removal = (request.action, request.actor,
                       "asked for while a call was in progress, which failed")  # fmt: skip
        elif after is not None and attempts >= after:
            removal = ("dead-letter", "policy", f"after {attempts} attempts")
        if quiet:
            self._counted.add(address)
        log_line(log, logging.DEBUG if quiet else logging.ERROR,
                 "%s: batch of %d message(s) failed: %s%s", address, len(batch.messages), error,
                 "" if removal else f" (retrying in {pause:.1f} s)",
                 fields=_trace_of(batch))  # fmt: skip
        if removal is not None:
            self._remove_head(batch, *removal)
            return
        self._notify_progress()
        wake = asyncio.Event()
        self._waiting[address] = (batch, wake)
        try:
            await wait_event(wake, pause)
        finally:
            self._waiting.pop(address, None)
        with contextlib.suppress(StaleBatchError):  # skipped or dead-lettered meanwhile
            self.engine.fail(batch)
        self._wake.set()

    # --- stuck addresses ----------------------------------------------------------------

    def stuck(
        self, limit: Optional[int] = None, after: Optional[str] = None
    ) -> list[dict[str, Any]]:
        """The addresses whose head message keeps failing, oldest failure first (the first
        ``limit``, after the ``position`` ``after``): attempts, last error, next retry; a call
        in progress with all its failed attempts so far (the database may have fewer)."""
        entries = stuck.listing(self.store, limit, after=after)
        if self._retrying:
            retrying = {str(address): live for address, live in self._retrying.items()}
            for entry in entries:
                live = retrying.get(entry["address"])
                if live is not None and entry["call_attempts"]:
                    entry["call_attempts"], entry["last_error"] = live.attempts, live.reason
        return entries

    def audit_log(self, limit: int = 100, before: Optional[int] = None) -> list[dict[str, Any]]:
        """What was done to stuck addresses, newest first (before the entry ``before``)."""
        return stuck.audit_listing(self.store.conn, limit, before)

    def retry_now(self, address: Address, actor: str, message_seq: Optional[int] = None) -> Outcome:
        """Retry the head message of a stuck address now, not at its next retry (only if it
        is ``message_seq``, when given: see :meth:`dead_letter`)."""
        entry = self._stuck_entry(address, message_seq)
        waiting = self._waiting.get(address)
        detail = "" if waiting else "a call was in progress already"
        with self.store.transaction():
            stuck.set_next_retry(self.store, address, self.clock.now_ms())
            stuck.audit(
                self.store,
                self.clock.now_ms(),
                address,
                "retry",
                entry["message_seq"],
                actor,
                detail,
            )
        if waiting is not None:
            waiting[1].set()
        return Outcome("retrying", detail)

    def skip(self, address: Address, actor: str, message_seq: Optional[int] = None) -> Outcome:
        """Drop the head message of a stuck address; the messages after it go on. While a call
        to the address is in progress, it is done once that call has failed (see
        :meth:`dead_letter`)."""
        return self._act(address, "skip", actor, message_seq)

    def dead_letter(
        self, address: Address, actor: str, message_seq: Optional[int] = None
    ) -> Outcome:
        """Move the head message of a stuck address to the dead-letter egress. Given
        ``message_seq`` (the message the person asking saw), only if the head message is still
        that one: else :class:`~statefun_local.stuck.HeadChangedError`, and nothing is done.

        While a call to the address is in progress (its retry), the request is stored and the
        outcome is ``pending``: it is done as soon as that call fails, and is moot if the call
        succeeds (the head message was delivered). The audit log says which."""
        return self._act(address, "dead-letter", actor, message_seq)

    # --- editing state -------------------------------------------------------------------

    def edit_state(
        self, address: Address, values: Mapping[str, Any], deleted: Sequence[str], actor: str
    ) -> str:
        """Set states of ``address`` (values as JSON, encoded by their registered types) and
        delete others, with an audit entry, in one transaction; return the entry's detail.
        :class:`~statefun_local.editing.StateEditError` for an edit that can not be done,
        :class:`~statefun_local.editing.AddressBusyError` while a batch of the address is
        being called (its reply could write over the edit); either way nothing is changed. A
        stuck address waiting for its retry is not being called: the retry carries the
        edit."""
        edit = editing.encode(self.store, address, values, deleted)
        if self.engine.is_handed_out(address) and address not in self._waiting:
            raise editing.AddressBusyError(
                f"{address}: a batch of it is being called, with its state as it was: nothing "
                "changed; edit once the call has ended (try again)"
            )
        detail = editing.apply(self.store, edit, actor, self.clock.now_ms())
        log.info("%s: state edited by %s: %s", address, actor, detail)
        return detail

    def _stuck_entry(self, address: Address, message_seq: Optional[int]) -> dict[str, Any]:
        entry = stuck.get(self.store, address) if address in self._stuck else None
        if entry is None:
            raise NotStuckError(f"{address} is not stuck: no failing message to act on")
        if message_seq is not None and entry["message_seq"] != message_seq:
            raise HeadChangedError(
                f"{address}: its failing head message is #{entry['message_seq']} now, not "
                f"#{message_seq}: nothing done (look at it again)"
            )
        return entry

    def _act(
        self, address: Address, action: str, actor: str, message_seq: Optional[int]
    ) -> Outcome:
        entry = self._stuck_entry(address, message_seq)
        waiting = self._waiting.get(address)
        if waiting is not None:
            batch, wake = waiting
            self._remove_head(batch, action, actor, "")
            wake.set()
            return Outcome("skipped" if action == "skip" else "dead-lettered")
        # a call to the address is in progress: the batch stays with it until it ends
        seq = entry["message_seq"]
        earlier = stuck.request_of(self.store.conn, address)
        with self.store.transaction():
            stuck.keep_request(self.store, address, action, seq, actor, self.clock.now_ms())
        done = "skipped" if action == "skip" else "moved to the dead-letter egress"
        detail = (f"a call to {address} is in progress: if it fails, message #{seq} is "
                  f"{done}; if it succeeds, the message was delivered and the {action} is "
                  f"not done (the audit log will say which)")  # fmt: skip
        if earlier is not None and (earlier.action, earlier.actor) != (action, actor):
            detail += f"; this replaces the {earlier.action} asked for by {earlier.actor}"
        log.info("%s: %s of message #%d by %s pending: a call is in progress",
                 address, action, seq, actor)  # fmt: skip
        return Outcome("pending", detail)

    def _remove_head(self, batch: Batch, action: str, actor: str, detail: str) -> None:
        """Take the head message out of a failed batch's mailbox, for good (``skip``) or to
        the dead-letter egress (``dead-letter``), and write why to the audit log; all in one
        transaction. The rest of the mailbox is sent on as for an idle address: its oldest message
        alone, then the others as one batch."""
        address, head = batch.address, batch.messages[0]
        row = self.store.conn.execute(
            "SELECT attempts, last_error FROM stuck WHERE target_type = ? AND target_id = ?",
            (address.typename, address.id),
        ).fetchone()
        attempts, error = (row[0], row[1]) if row else (0, "")
        record = None
        if action == "dead-letter":
            record = stuck.dead_letter_record(self.dead_letters.egress, head, error, attempts)
            where = f"to {self.dead_letters.egress.typename}"
            detail = f"{detail}, {where}" if detail else where
        with contextlib.suppress(StaleBatchError):
            self.engine.fail(batch)
        with self.store.transaction():
            self.store.mailbox_remove(address, head.seq)
            self.store.in_flight_clear(address)
            if record is not None:
                self.store.egress_append(record)
            stuck.clear(self.store, address)
            stuck.audit(self.store, self.clock.now_ms(), address, action, head.seq, actor, detail)
        self._stuck.discard(address)
        self._parked.pop(address, None)
        log.warning(
            "%s: message #%d %s by %s (%s)",
            address,
            head.seq,
            "skipped" if action == "skip" else "dead-lettered",
            actor,
            detail or error,
        )
        self._wake.set()
        self._notify_progress()

    def _on_retry(self, url: str, attempt: int, reason: str) -> None:
        """A failed attempt of the call the current task makes: shown until the call ends."""
        calling = _calling.get()
        batch = calling[0] if calling else None
        address = None if batch is None else batch.address
        others: set[Address] = set()
        if batch is not None:
            now_ms = self.clock.now_ms()
            before = self._retrying.get(batch.address)
            written_ms = None if before is None else before.written_ms
            self._retrying[batch.address] = _Retrying(attempt, reason, written_ms)
            # Listed as stuck from the call's first failed attempt on. The attempts after it
            # come in a burst (the backoff starts at 2 ms), and a restart needs none of them:
            # they are written at most once a second (for the CLI), and stuck() shows them all.
            if written_ms is None or not 0 <= now_ms - written_ms < RETRY_WRITE_MS:
                self._write_retry(batch, attempt, reason, now_ms)
        if address is not None and _unreachable(reason):
            reporter, others = self._failing.get((url, address.typename), (None, others))
            if reporter is None:
                reporter = address
                others.discard(address)
                self._failing[(url, address.typename)] = (address, others)
            if reporter != address:
                others.add(address)
                log.debug("%s: POST %s: attempt %d failed (%s); retrying",
                          address, url, attempt, reason)  # fmt: skip
                return
        level = logging.WARNING if attempt == 1 or attempt % 10 == 0 else logging.DEBUG
        also = (f" (as the calls of {len(others)} other address(es) of {address.typename})"
                if others and address is not None else "")  # fmt: skip
        log.log(level, "%s: POST %s: attempt %d failed (%s); retrying%s",
                address, url, attempt, reason, also)  # fmt: skip

    def _write_retry(self, batch: Batch, attempt: int, reason: str, now_ms: int) -> None:
        try:
            with self.store.transaction():
                stuck.record_retry(self.store, batch.address, batch.messages[0].seq, attempt,
                                   reason, now_ms)  # fmt: skip
        except sqlite3.OperationalError as error:  # written at the next attempt; call on
            log.debug("%s: the failed attempt could not be written: %s", batch.address, error)
            return
        self._retrying[batch.address] = _Retrying(attempt, reason, now_ms)
        self._stuck.add(batch.address)

    def _answered(self, url: str, typename: str) -> None:
        """A call of ``typename`` at ``url`` was answered: the failures counted are told."""
        _, others = self._failing.pop((url, typename), (None, set()))
        if others:
            log.info(
                "%s: POST %s answered again; the calls of %d other address(es) had failed "
                "meanwhile (retried, not logged one by one)",
                typename,
                url,
                len(others),
            )

    # --- timers -------------------------------------------------------------------------

    async def _timers(self) -> None:
        while True:
            self._timer_wake.clear()
            due = self.engine.next_timer_due_ms()
            if due is None:
                await self._timer_wake.wait()
                continue
            delay = (due - self.clock.now_ms()) / 1000.0
            if delay > 0:
                await wait_event(self._timer_wake, delay)
                continue
            try:
                fired = self.engine.fire_due_timers()
            except sqlite3.OperationalError as error:  # e.g. another process holds the lock
                await self._database_pause("firing delayed messages", error)
                continue
            if fired:
                self._wake.set()

    # --- egress -------------------------------------------------------------------------

    async def _sink_jsonl(self, path: Path) -> None:
        """Append every egress record to ``path`` as one JSON line, resuming after restarts
        from a cursor kept in the database (at least once: a crash between writing and saving
        the cursor repeats a few lines)."""
        key = f"jsonl_cursor:{path.resolve()}"
        cursor = int(self.store.meta_get(key) or 0)
        with _append_private(path) as sink:
            while True:
                records = self.store.egress_list(cursor, limit=1000)
                if not records:
                    await self._wait_progress(1.0)
                    continue
                for record in records:
                    sink.write(json_line(egress_view(record)) + "\n")
                sink.flush()
                cursor = records[-1].seq
                with self.store.transaction():
                    self.store.meta_put(key, cursor)

    def egress_records(self, after_seq: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        return [egress_view(r) for r in self.store.egress_list(after_seq, limit=limit)]

    async def wait_egress(self, after_seq: int, timeout: float) -> list[dict[str, Any]]:
        """The records after ``after_seq``, waiting up to ``timeout`` s for one to arrive."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.egress_records(after_seq)
            remaining = deadline - time.monotonic()
            if records or remaining <= 0:
                return records
            await self._wait_progress(remaining)

    def take_playground_record(self, topic: str) -> Optional[bytes]:
        """The payload of the playground egress' next record to ``topic`` not taken yet, or
        None; taken for good (the position is kept in the database, unlike the playground
        image's queue, which a restart empties)."""
        key = f"playground_cursor:{topic}"
        start = cursor = int(self.store.meta_get(key) or 0)
        found = None
        while found is None:
            records = self.store.egress_list(cursor, limit=1000)
            if not records:
                break
            for record in records:
                cursor = record.seq
                if record.egress != PLAYGROUND_EGRESS_ID:
                    continue
                try:
                    record_topic, payload = playground_record(record.argument.value)
                except ValueError:  # a reply with such a record is refused: none is stored
                    continue
                if record_topic == topic:
                    # JSON may escape half a surrogate pair: '?', as the image's Java writes it
                    found = payload.encode("utf-8", "replace")
                    break
        if cursor != start:
            with self.store.transaction():
                self.store.meta_put(key, cursor)
        return found

    # --- inspection ---------------------------------------------------------------------

    def inspect(self, address: Address, limit: int = SHOWN) -> dict[str, Any]:
        return address_view(self.store, address, self.clock.now_ms(), limit)

    def messages_per_second(self, window: int = 5) -> float:
        """Deliveries per second over the last ``window`` whole seconds."""
        now = int(time.monotonic())
        recent = sum(count for second, count in self._throughput if now - window <= second < now)
        return recent / max(1, min(window, now - int(self._started_at)))

    def _table_counts(self, max_age: float = 2.0) -> tuple[dict[str, int], dict[Address, int]]:
        """Addresses with state per function type, and pending timers per address: whole-
        table scans, so computed at most every ``max_age`` seconds for the polling page."""
        now = time.monotonic()
        if self._counts is None or now - self._counts[0] > max_age:
            conn = self.store.conn
            by_type = dict(
                conn.execute(
                    "SELECT target_type, COUNT(DISTINCT target_id) FROM state GROUP BY 1"
                ).fetchall()
            )
            timers = {
                Address(t, i): n
                for t, i, n in conn.execute(
                    "SELECT target_type, target_id, COUNT(*) FROM timers GROUP BY 1, 2"
                )
            }
            self._counts = (now, by_type, timers)
        return self._counts[1], self._counts[2]

    def status(self, top: int = 20, egress: int = 10) -> dict[str, Any]:
        """What the web page shows: functions, busiest addresses, throughput, latest egress
        records and failures."""
        store = self.store
        depths = store.queue_depths()
        in_flight = set(store.in_flight_addresses())
        addresses_by_type, timers_by_address = self._table_counts()
        specs = store.all_specs()
        typenames = sorted(
            {e.functions for e in self.module.endpoints if not e.is_wildcard}
            | set(specs)
            | {a.typename for a in depths}
            | set(addresses_by_type)
            | set(self.delivered_by_type)
        )
        functions = []
        for typename in typenames:
            endpoint = self.module.endpoint_for(typename)
            url, problem = _url(endpoint, typename)
            functions.append(
                {
                    "typename": typename,
                    "endpoint": url,
                    "endpoint_problem": problem,
                    "states": sorted(specs.get(typename, {})),
                    "delivered": self.delivered_by_type.get(typename, 0),
                    "addresses": addresses_by_type.get(typename, 0),
                    "queued": sum(n for a, n in depths.items() if a.typename == typename),
                    "in_flight": sum(1 for a in in_flight if a.typename == typename),
                }
            )
        busiest = sorted(depths.items(), key=lambda item: -item[1])[:top]
        failing = {str(address) for address in self._parked}
        last_seq = store.conn.execute("SELECT MAX(seq) FROM egress").fetchone()[0] or 0
        return {
            "module": self.module_name,
            "db": str(self.db),
            "uptime_s": int(time.monotonic() - self._started_at),
            "messages_per_second": self.messages_per_second(),
            "totals": {
                "delivered": self.delivered,
                "queued": sum(depths.values()),
                "in_flight": len(in_flight),
                "timers": store.conn.execute("SELECT COUNT(*) FROM timers").fetchone()[0],
                "egress": last_seq,
                "retrying": len(self._retrying),
                "stuck": stuck.count(store),
                "audit": stuck.audit_size(store.conn),
            },
            "functions": functions,
            "addresses": [
                {
                    "address": str(a),
                    "queued": n,
                    "in_flight": a in in_flight,
                    "timers": timers_by_address.get(a, 0),
                }
                for a, n in busiest
            ],
            "egress": list(reversed(self.egress_records(max(0, last_seq - egress), egress))),
            # an address that recovered is no longer shown as failing
            "failures": [f.to_json() for f in reversed(self.failures) if f.address in failing],
            # calls under way whose attempts failed so far (retried within the call budget)
            "retrying": [
                {"address": str(address), "attempts": live.attempts, "error": live.reason}
                for address, live in itertools.islice(self._retrying.items(), SHOWN)
            ],
            # the page polls this: the first of many, all of them counted in "totals"
            "stuck": self.stuck(SHOWN),
            "audit": self.audit_log(20),
            "connections": [connector.status() for connector in self.connectors],
            **self.module_view(),
        }

    def module_view(self) -> dict[str, Any]:
        """The module's ingresses (with their topics or streams and targets) and egresses."""
        ingresses = [
            {
                "id": ingress.id,
                "kind": _SYSTEMS.get(ingress.kind, "kinesis"),
                "address": _where(ingress),
                "routes": [
                    {"source": source, "type": value_type, "targets": list(targets)}
                    for source, value_type, targets in ingress.routes
                ],
            }
            for ingress in self.module.ingresses.values()
        ]
        egresses = [
            {
                "id": egress.id,
                "kind": _SYSTEMS.get(egress.kind, "kinesis"),
                "address": _where(egress),
                # the playground's: its topics, which the page shows there
                "semantic": ", ".join(egress.topics) or egress.semantic,
            }
            for egress in self.module.egresses.values()
        ]
        return {"ingresses": ingresses, "egresses": egresses}


#: what the web page calls an ingress or egress of each kind (the others: kinesis)
_SYSTEMS = {KAFKA_INGRESS: "kafka", KAFKA_EGRESS: "kafka", PLAYGROUND_INGRESS: "playground",
            PLAYGROUND_EGRESS: "playground"}  # fmt: skip


def _where(io: Union[Ingress, Egress]) -> str:
    """Where an ingress or egress connects to, or listens (the playground's)."""
    if io.port:
        return f"port {io.port}"
    return io.address or io.aws.endpoint or io.aws.region


def _url(endpoint: Optional[Endpoint], typename: str) -> tuple[Optional[str], Optional[str]]:
    """The URL ``typename`` is called at, or why there is none (a function may send to a
    typename its endpoint's URL can not name, such as ``ns/..``)."""
    if endpoint is None:
        return None, "no endpoint"
    try:
        return endpoint.url_for(typename), None
    except ValueError as error:
        return None, str(error)


#: The databases this process's runtimes run on, by device and inode. A second runtime here
#: on one of them is refused before it opens the file: closing a descriptor of it would drop
#: the POSIX locks SQLite holds on it for the first (they are the process's, not the
#: descriptor's).
_RUNNING_ON: set[tuple[int, int]] = set()


class _DatabaseLock:
    """An open descriptor of the database file, locked with ``flock``."""

    def __init__(self, fd: int, key: tuple[int, int]) -> None:
        self._fd = fd
        self._key = key

    def release(self) -> None:
        """Once the runtime's connection is closed (see ``_RUNNING_ON``)."""
        os.close(self._fd)
        _RUNNING_ON.discard(self._key)


def runtime_runs_on(db: Union[str, Path]) -> bool:
    """Whether a runtime runs on the database ``db`` (in this process or another: it holds the
    file's lock; held here for an instant, which a runtime starting waits out). To be
    asked before this process opens a connection to it: closing the descriptor used here would
    drop that connection's SQLite locks (see ``_RUNNING_ON``)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock to tell by
        return True
    try:
        found = os.stat(db)
        if (found.st_dev, found.st_ino) in _RUNNING_ON:  # then not to be opened and closed here
            return True
        fd = os.open(db, os.O_RDONLY)
    except OSError:  # no such file (or not ours to read): no runtime is on it
        return False
    try:
        try:  # released at once, by the close below
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as error:  # not EWOULDBLOCK: no flock here, on which no runtime runs
            return error.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
        return False
    finally:
        os.close(fd)


@contextlib.contextmanager
def unless_runtime_runs(db: Union[str, Path]) -> Iterator[bool]:
    """Whether no runtime runs on the database ``db`` (which must exist); while the body
    runs, none starts on it: the lock taken here is held, and a runtime starting waits it
    out, as it waits out :func:`runtime_runs_on`'s. The body closes every connection it opens
    to ``db`` before it ends (see ``_RUNNING_ON``)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock to tell by
        yield False
        return
    found = os.stat(db)
    if (found.st_dev, found.st_ino) in _RUNNING_ON:
        yield False
        return
    fd = os.open(db, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            free = True
        except OSError as error:  # not EWOULDBLOCK: no flock here, on which no runtime runs
            free = error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN)
        yield free
    finally:
        os.close(fd)


#: a reader's probe (``runtime_runs_on``) holds the lock for microseconds, a runtime for as long
#: as it runs: 20 tries 10 ms apart tell the one from the other
_LOCK_TRIES = 20


def _append_private(path: Path) -> TextIO:
    """``path`` opened to append text to, created readable by its owner only, as the database
    is: it holds the same egress records."""
    return open(path, "a", encoding="utf-8", opener=lambda name, flags: os.open(name, flags, 0o600))


def _lock_database(db: Path) -> Optional[_DatabaseLock]:
    """Hold an exclusive ``flock`` of the database file itself while running: two runtimes on
    one database would both send every batch. Being the file's, it is met through any path to
    it (a symbolic link, a hard link, another mount), and it goes with the process however it
    ends. ``flock`` locks are apart from the POSIX (``fcntl``) locks SQLite takes on the file
    (on local file systems; NFS makes one of the other, but SQLite's WAL mode needs a local
    file system anyway)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        return None
    if not db.parent.is_dir():
        raise FileNotFoundError(f"the database {db}: its directory {db.parent} does not exist")
    try:
        found = os.stat(db)
    except OSError:
        found = None  # created below
    if found is not None and (found.st_dev, found.st_ino) in _RUNNING_ON:
        raise RuntimeError(
            f"another statefun-local is running on {db}, in this process: stop it first "
            "(await runtime.stop()); a notebook cell that starts a runtime again can stop the "
            'one it started before (statefun-local\'s README, "In a notebook")'
        )
    try:  # read-only suffices to flock, and a read-only database is refused by the store
        fd = os.open(db, os.O_RDONLY | os.O_CREAT, 0o600)
    except OSError as error:  # a directory we may not write in
        raise type(error)(f"the database {db}: can not open it: {error.strerror}") from None
    try:
        for tries_left in reversed(range(_LOCK_TRIES)):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not tries_left:
                    raise
                time.sleep(0.01)
    except OSError as error:
        os.close(fd)  # this process has no connection to it (_RUNNING_ON)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise RuntimeError(f"another statefun-local is running on {db}") from None
        # e.g. ENOLCK on an NFS mount without its lock service: no lock to be had there
        raise RuntimeError(
            f"can not lock the database {db}: {error.strerror}: its file system does not "
            "support flock, which keeps a second runtime off the database (a network or "
            "shared folder?); put the database on a local disk, which SQLite's WAL mode needs "
            "too (--db)"
        ) from None
    opened = os.fstat(fd)
    if opened.st_nlink > 1:
        log.warning(
            "the database %s has %d hard links: SQLite names its write-ahead log after the "
            "path, so a run through another link after a crash would not see the one this "
            "run leaves (its last transactions lost, the file damaged when both are replayed); "
            "run on one name only, and back it up with a copy, not a link",
            db, opened.st_nlink,
        )  # fmt: skip
    key = (opened.st_dev, opened.st_ino)
    _RUNNING_ON.add(key)
    return _DatabaseLock(fd, key)


def describe_module(module: Module, kafka: bool = False) -> Iterable[str]:
    """Lines that say what a module holds, for the CLI's banner (``kafka``: what the Kafka
    and Kinesis ingresses and egresses connect to)."""
    for endpoint in module.endpoints:
        yield f"  functions {endpoint.functions} -> {endpoint.url_path_template}"
    for ingress in module.ingresses.values():
        if ingress.kind == PLAYGROUND_INGRESS:
            continue  # the CLI says where it listens
        source, key = (
            ("topic", "key") if ingress.kind == KAFKA_INGRESS else ("stream", "partition_key")
        )
        for name, _, targets in ingress.routes:
            yield (
                f"  ingress {ingress.id} {source} {name} -> {', '.join(targets)} "
                f"(POST /records/{ingress.id}?{source}={name}&{key}=<id>)"
            )
        if kafka and ingress.kind == KAFKA_INGRESS:
            yield (
                f"    reads Kafka {ingress.address}, group {ingress.group}, "
                f"from {ingress.startup.position}"
            )
        elif kafka:
            yield (
                f"    reads Kinesis {ingress.aws.endpoint or ingress.aws.region or '(default)'}"
                f", from {ingress.startup.position}"
            )
    for egress in module.egresses.values():
        if egress.kind == PLAYGROUND_EGRESS:
            continue
        if kafka and egress.is_kafka:
            yield f"  egress {egress.id} -> Kafka {egress.address} ({egress.semantic}), stored"
        elif kafka:
            where = egress.aws.endpoint or egress.aws.region or "(default)"
            yield f"  egress {egress.id} -> Kinesis {where} (at-least-once), stored"
        else:
            yield f"  egress {egress.id} (stored; follow with 'statefun-local egress --follow')"


def _trace_of(batch: Batch) -> dict[str, Optional[str]]:
    """The ``extra`` of a log line about ``batch``: its ``trace_id``, the trace it is sent in
    (None without one), as the record of a line of the SDK's carries it."""
    trace = batch.trace
    return {"trace_id": None if trace is None else trace.traceparent[3:35]}


def _unreachable(reason: str) -> bool:
    """Whether a failed attempt says the function server is not there (no answer, or a
    proxy's 502, 503 or 504 for it), which every address of its functions meets alike; not a
    failure of the function itself (its 500), which is each address's own."""
    return not reason.startswith("HTTP ") or reason.startswith(("HTTP 502", "HTTP 503", "HTTP 504"))
