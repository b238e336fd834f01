"""statefun-local's Kafka ingresses and egresses, on a real broker (confluent-kafka).

**Ingress, exactly once.** Each ``io.statefun.kafka.v1/ingress`` is a consumer in the module's
``consumerGroupId``. A polled batch of records becomes messages (one per target, the record key
as the id) that are queued in the same SQLite transaction that records each partition's next
offset. Offsets live in the database, not in Kafka: after a ``kill -9`` at any moment the
ingress resumes exactly after the last record it queued. (They are also committed to the group
in Kafka, afterwards and one commit at a time, so that Kafka's tools show the lag.) A partition
the database has no offset for starts at the module's ``startupPosition``.

**Egress.** Egress records are written to the SQLite egress log in the transaction that
applies the reply that sent them (the outbox); one producer per Kafka egress reads the log in
order and produces each ``KafkaProducerRecord`` (topic, key, value, headers).

- ``exactly-once``: a transactional producer (``transactional.id``
  ``statefun-local.<instance>.<egress id>``). Each Kafka transaction holds a run of records and
  one more: the log position after them, on a compacted one-partition topic named after it
  (made a legal name, with a digest of it: see ``_topic_for``) that only this producer
  writes. The position is committed if and only if the records are. On start the producer
  fences its predecessor (aborting what it left open) and reads the newest committed position
  back, so a crash between Kafka's commit and the database's copy of the position repeats
  nothing, and the records of an aborted transaction (a crash before the
  commit) are produced again, once.
- ``at-least-once`` (and ``none``): an idempotent producer; the position is saved in the
  database after the broker acknowledged the records, so a crash in between produces those
  records again.

**Trace context.** A record's W3C ``traceparent`` and ``tracestate`` headers (as OpenTelemetry's
Kafka instrumentation writes them) are the trace context of the messages it becomes, when the
``traceparent`` is well-formed (a ``tracestate`` that is not printable ASCII is left out:
no call could carry it). A produced record carries the trace context of the invocation
that sent it in the same two headers, unless the function set either header itself.

A broker that is down or unknown is reported (CLI log, web page, ``/api/status``) and retried
with backoff; a connector never stops the runtime. While it is shown unreachable (or, an
egress, not yet connected), an idle connector asks it again every ``UNREACHABLE_EVERY`` s, and
shows it connected once it answers.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import logging
import math
import re
import time
import uuid
from typing import TYPE_CHECKING, Any, Optional

from statefun_core import protocol
from statefun_core.engine import TraceContext
from statefun_core.tracecontext import TRACEPARENT, TRACESTATE

from .connector import Connector
from .guard import one_line_logger
from .javatext import java_utf8
from .module import Egress, Ingress
from .runtime import UnknownIngressError
from .values import KAFKA_RECORD

if TYPE_CHECKING:
    from .runtime import LocalRuntime

log: logging.Logger = one_line_logger("statefun_local.kafka")
#: librdkafka's own log (its fatal errors), served by a client's poll: a client dropped after a
#: failure, no longer polled, says nothing more (see KafkaEgress._run)
librdkafka_log: logging.Logger = one_line_logger("statefun_local.kafka.librdkafka")

#: how far back from its end the position topic is read first (two offsets a transaction)
CURSOR_WINDOW = 1000
#: records taken per poll, and per egress transaction
BATCH = 1000
#: seconds a poll waits for a full batch
POLL = 0.05
#: seconds between looks for partitions added to the topics
PARTITIONS_EVERY = 30.0
#: seconds between those looks while the broker is shown unreachable: one that works shows it
#: is back (librdkafka says when a connection fails, not when one works again)
UNREACHABLE_EVERY = 2.0
#: seconds a client call may block before the connector starts over with a new client
TIMEOUT = 20
#: seconds a stopping ingress waits for its last commit of the group's offsets
COMMIT_WAIT = 2.0


def _client() -> Any:
    try:
        import confluent_kafka
    except ImportError:  # pragma: no cover - a dependency of statefun-local
        raise RuntimeError(
            "the module names a Kafka broker: install confluent-kafka, or run with --offline"
        ) from None
    return confluent_kafka


def _new(factory: Any, config: dict[str, Any], connector: Connector) -> Any:
    """A librdkafka client for ``config``, without the properties librdkafka does not know
    (module.yaml files carry the Java client's): each is named in the log and left out. The
    Java client's ``sasl.jaas.config`` becomes librdkafka's ``sasl.username`` and
    ``sasl.password`` (see :func:`_from_jaas`)."""
    kafka = _client()
    if _JAAS in config:
        config = _from_jaas(config, connector)
    while True:
        try:
            return factory(config)
        except kafka.KafkaException as error:
            unknown = re.search(r'No such configuration property: "([^"]+)"', str(error))
            if not unknown or unknown.group(1) not in config:
                raise
            connector.warn_once(
                f"property {unknown.group(1)!r} is not one librdkafka knows: left out"
            )
            config = {k: v for k, v in config.items() if k != unknown.group(1)}


# what Kafka refuses in a topic name, and its longest
_NOT_IN_TOPICS = re.compile(r"[^a-zA-Z0-9._-]")
_TOPIC_MAX = 249


def _topic_for(name: str) -> str:
    """A topic name for ``name`` (an egress' position topic): ``name`` with ``/`` as ``.`` and
    any other character Kafka refuses as ``_``, cut to fit, then a digest of ``name``: no two
    names share a topic (``com.example/out`` and ``com/example.out`` would), nor get two that
    Kafka refuses as colliding (names that differ only by ``.`` and ``_``)."""
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    readable = _NOT_IN_TOPICS.sub("_", name.replace("/", "."))
    return f"{readable[: _TOPIC_MAX - len(digest) - 1]}.{digest}"


# what librdkafka's error texts say of each retry: "(after 301ms in state AUTH_REQ)", and of
# a problem it said again: "(after 303ms in state AUTH_REQ, 1 identical error(s) suppressed)"
_RETRY_DETAIL = re.compile(r" \(after \d+ms in state \w+(, \d+ identical error\(s\) suppressed)?\)")
_JAAS = "sasl.jaas.config"
# The Java client's PLAIN and SCRAM login modules, and their options: what librdkafka takes as
# sasl.username and sasl.password (it refuses a JAAS configuration itself).
_JAAS_LOGIN = re.compile(r"\s*(?:\S*\.)?(?:PlainLoginModule|ScramLoginModule)\s+required\b")
_JAAS_OPTION = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')


def _from_jaas(config: dict[str, Any], connector: Connector) -> dict[str, Any]:
    """``config`` with its ``sasl.jaas.config`` turned into ``sasl.username`` and
    ``sasl.password`` (unless set) for a PLAIN or SCRAM login module; any other is left out,
    and named in the log."""
    config = dict(config)
    jaas = str(config.pop(_JAAS))
    options = dict(_JAAS_OPTION.findall(jaas)) if _JAAS_LOGIN.match(jaas) else {}
    if "username" not in options or "password" not in options:
        connector.warn_once(
            "sasl.jaas.config is not a PLAIN or SCRAM login with a username "
            "and password, which is all librdkafka takes of it: left out"
        )
        return config
    config.setdefault("sasl.username", re.sub(r"\\(.)", r"\1", options["username"]))
    config.setdefault("sasl.password", re.sub(r"\\(.)", r"\1", options["password"]))
    return config


def _trace(record: Any) -> Optional[TraceContext]:
    """The trace context in a consumed record's headers (the first of each name), if any."""
    found: dict[str, str] = {}
    for name, value in record.headers() or ():
        if name in (TRACEPARENT, TRACESTATE) and value is not None:
            found.setdefault(name, value.decode("utf-8", "replace"))
    return TraceContext.parse(found.get(TRACEPARENT), found.get(TRACESTATE, ""))


def _trace_headers(trace: Optional[TraceContext], headers: list[tuple[str, Optional[bytes]]]
                   ) -> list[tuple[str, Optional[bytes]]]:  # fmt: skip
    """The headers of a record to produce: the function's, then ``trace`` as ``traceparent``
    and ``tracestate`` (when not empty), unless the function set either: its own wins."""
    if trace is None or any(name in (TRACEPARENT, TRACESTATE) for name, _ in headers):
        return headers
    headers = [*headers, (TRACEPARENT, trace.traceparent.encode())]
    if trace.tracestate:
        headers.append((TRACESTATE, trace.tracestate.encode()))
    return headers


class MissingTopicError(RuntimeError):
    """Records to topics the broker does not have: librdkafka only says they are not
    delivered in time, once its ``message.timeout.ms`` (5 minutes) has passed at that."""

    def __init__(self, topics: list[str], error: Exception) -> None:
        super().__init__(f"no topic {', '.join(topics)} on the broker, which creates none: "
                         f"the records wait until it is created ({type(error).__name__}: "
                         f"{error})")  # fmt: skip


class _KafkaConnector(Connector):
    system = "kafka"

    def __init__(self, runtime: LocalRuntime, id_: str, address: str,
                 properties: tuple[tuple[str, str], ...]) -> None:  # fmt: skip
        super().__init__(runtime, id_, address)
        self.properties = properties

    def config(self, **settings: Any) -> dict[str, Any]:
        # the module's properties first; what the module names (address, group) wins.
        # librdkafka's own log stops at critical: its errors come to error_cb, shown once.
        return {"log_level": 2, "logger": librdkafka_log, **dict(self.properties),
                "bootstrap.servers": self.address, "error_cb": self._on_error,
                **settings}  # fmt: skip

    def _on_error(self, error: Any) -> None:
        """librdkafka's errors (a broker down, unknown, refusing); it retries by itself."""
        text = _RETRY_DETAIL.sub("", error.str())  # the same problem at each retry: logged once
        if error.code() == -187 and self.error is not None:
            return  # _ALL_BROKERS_DOWN follows the problem shown (refused, a failed login)
        if error.code() in (-195, -187, -193):  # _TRANSPORT, _ALL_BROKERS_DOWN, _RESOLVE
            self.problem(f"broker {self.address} unreachable: {text}", "unreachable")
        else:
            self.problem(text)


class KafkaIngress(_KafkaConnector):
    kind = "ingress"
    topics: list[str]
    listed: float
    records: int  # pyright --verifytypes wants Connector's declaration again where it is set

    def __init__(self, runtime: LocalRuntime, ingress: Ingress) -> None:
        super().__init__(runtime, ingress.id, ingress.address, ingress.properties)
        self.ingress = ingress
        self.topics = [topic for topic, _, _ in ingress.routes]
        #: the next offset to read of each partition, as the database has it
        self.offsets: dict[tuple[str, int], int] = {}
        #: start positions resolved on the consumer's thread, not yet in the database
        self.resolved: dict[tuple[str, int], int] = {}
        self.assigned: list[Any] = []
        self.listed = -math.inf  # never (the clock may start near 0): list at once
        self.consumer: Any = None
        self.skipped: list[str] = []
        #: offsets in the database, not yet committed to the group in Kafka
        self.uncommitted: dict[tuple[str, int], int] = {}
        #: the offsets of the commit the broker has not answered yet
        self.committing: dict[tuple[str, int], int] = {}
        self.commit_error: Optional[str] = None

    async def _run(self) -> None:
        kafka = _client()
        self.offsets = self.runtime.store.kafka_offsets(self.id)
        # an offset Kafka no longer has (deleted while the runtime was down) goes on at
        # autoOffsetResetPosition, which the runtime gives its consumer as auto.offset.reset
        self.consumer = consumer = _new(kafka.Consumer, self.config(**{
            "group.id": self.ingress.group, "enable.auto.commit": False,
            "enable.partition.eof": False, "on_commit": self._on_commit,
            "auto.offset.reset": self.ingress.startup.reset,
        }), self)  # fmt: skip
        first = not self.offsets
        # a commit a closed client left unanswered: its outcome will not come, so again
        self.uncommitted, self.committing = {**self.committing, **self.uncommitted}, {}
        try:
            while True:
                every = PARTITIONS_EVERY
                if self.state == "unreachable":
                    every = min(every, UNREACHABLE_EVERY)
                if time.monotonic() - self.listed > every:
                    await self.blocking(self._assign_new, consumer, first)
                    first = False
                    if self.resolved:
                        await self._take([])
                # returns when BATCH records are there or after POLL s: the latency it adds
                records = await self.blocking(consumer.consume, BATCH, POLL)
                if records:
                    await self._take(records)
                self._commit()
        finally:
            if await self.settle():
                await self.blocking(self._close, consumer)
            self.consumer, self.assigned, self.listed = None, [], -math.inf

    def _topics(self, consumer: Any) -> dict[str, Any]:
        """The broker's topics. While no partition is assigned, asked in short tries with
        ``error_cb`` served between them (polling reads no record then), so that a broker that
        cannot be reached is shown at once rather than after ``TIMEOUT``."""
        if self.assigned:
            return consumer.list_topics(timeout=TIMEOUT).topics  # type: ignore[no-any-return]
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                return consumer.list_topics(timeout=1).topics  # type: ignore[no-any-return]
            except _client().KafkaException:
                if time.monotonic() >= deadline:
                    raise
                consumer.poll(0)

    def _assign_new(self, consumer: Any, first: bool) -> None:
        """Take every partition of the topics (as the runtime does: the group only keeps
        committed offsets, it does not share partitions out). A partition the database has no
        offset for starts at the ``startupPosition`` on the first start, and at its earliest
        record when it is found later (a partition added to a topic, or new since the last
        run): either way the position is resolved now and written to the database, so that a
        restart goes on from there."""
        kafka = _client()
        topics = self._topics(consumer)
        found = [kafka.TopicPartition(topic, partition)
                 for topic in self.topics if topic in topics
                 for partition in topics[topic].partitions]  # fmt: skip
        known = {(p.topic, p.partition) for p in self.assigned}
        new = [p for p in found if (p.topic, p.partition) not in known]
        self.listed = time.monotonic()
        if new:
            resolved = {}
            for partition in new:
                where = (partition.topic, partition.partition)
                if where not in self.offsets and where not in self.resolved:
                    resolved[where] = self._start(consumer, partition, first)
            # self.offsets are the database's: the resolved ones join them once written (_take)
            self.resolved.update(resolved)
            positions = {**self.offsets, **self.resolved}
            for partition in new:
                partition.offset = positions[partition.topic, partition.partition]
            self.assigned = [*self.assigned, *new]
            # only the new ones: assigning them all would take the others back to where each
            # started, and their records since would be read again
            consumer.incremental_assign(new)
        if new or (self.assigned and self.state == "unreachable"):
            self.connected()  # the broker answered
        missing = [topic for topic in self.topics if topic not in topics]
        if missing:  # read once created, found at a later listing
            text = (f"no topic {', '.join(missing)} on the broker yet: looked for every "
                    f"{PARTITIONS_EVERY:g} s")  # fmt: skip
            if self.assigned:
                self.warn_once(text)  # the other topics are read meanwhile
            else:
                self.problem(text, "waiting")

    def _start(self, consumer: Any, partition: Any, first: bool) -> int:
        """The offset a partition without one starts at (on the consumer's thread)."""
        kafka = _client()
        startup = self.ingress.startup
        low, high = consumer.get_watermark_offsets(partition, timeout=TIMEOUT)
        reset = low if startup.reset == "earliest" else high
        where = (partition.topic, partition.partition)
        if not first or startup.position == "earliest":
            return int(low)
        if startup.position == "latest":
            return int(high)
        if startup.position == "specific-offsets":
            given = {(t, p): o for t, p, o in startup.offsets}.get(where)
            if given is not None:
                return int(given) if low <= given <= high else int(reset)
            # a partition the offsets do not name: as group-offsets (the runtime's consumer,
            # FlinkKafkaConsumer, falls back to the group's offset for it)
        elif startup.position == "date":
            query = kafka.TopicPartition(partition.topic, partition.partition, startup.date_ms)
            (at,) = consumer.offsets_for_times([query], timeout=TIMEOUT)
            # no record at or after the date: the end, whatever autoOffsetResetPosition says
            return int(at.offset) if at.offset >= 0 else int(high)
        # group-offsets: what the group committed, else autoOffsetResetPosition
        (committed,) = consumer.committed([kafka.TopicPartition(*where)], timeout=TIMEOUT)
        return int(committed.offset) if committed.offset >= 0 else int(reset)

    async def _take(self, records: list[Any]) -> None:
        """Queue the records' messages and move the offsets, in one SQLite transaction."""
        messages = []
        offsets: dict[tuple[str, int], int] = {}
        for record in records:
            if record.error():
                self._on_error(record.error())
                continue
            where = (record.topic(), record.partition())
            offsets[where] = record.offset() + 1
            key, value = record.key(), record.value()
            if value is None:  # the runtime wraps the value unchecked: its NPE fails the job
                self._skip(record, "a record without a value (a tombstone) can not be a message")
                continue
            if key is not None:
                key = java_utf8(key)
            try:
                routed = self.runtime.route_record(self.id, record.topic(), key, value)
            except UnknownIngressError as error:
                self._skip(record, str(error))
                continue
            trace = _trace(record)
            messages += [(target, value, trace) for target, value in routed]
        offsets = {**self.resolved, **offsets}
        self.resolved = {}

        def positions() -> None:
            for (topic, partition), next_offset in offsets.items():
                self.runtime.store.kafka_offset_put(self.id, topic, partition, next_offset)

        await self.enqueue(messages, positions)
        self.offsets.update(offsets)
        self.uncommitted.update(offsets)
        self.records += len(records)
        self.connected()

    def _commit(self) -> None:
        """The database's newest offsets committed to the group, for Kafka's tools (an ingress
        reads its own back). One commit at a time: librdkafka retries a commit by itself, and
        two in flight can land out of order, leaving the group's offsets behind."""
        if self.committing or not self.uncommitted:
            return
        kafka = _client()
        self.consumer.commit(
            offsets=[kafka.TopicPartition(t, p, o) for (t, p), o in self.uncommitted.items()],
            asynchronous=True,
        )
        self.committing, self.uncommitted = self.uncommitted, {}

    def _on_commit(self, error: Any, partitions: Optional[list[Any]]) -> None:
        """A commit's outcome (on the consumer's thread, while it consumes). librdkafka has
        retried what can be; what failed is logged, and the partitions' next offsets commit."""
        self.committing = {}
        refused = [p.error for p in partitions or () if p.error is not None]
        error = error or next(iter(refused), None)
        text = None if error is None else error.str()
        if text is not None and text != self.commit_error:  # logged once until it changes
            log.warning("%s: the group's offsets (for Kafka's tools) not committed: %s",
                        self, text)  # fmt: skip
        self.commit_error = text

    def _close(self, consumer: Any) -> None:
        """The client closed (on its thread), once the newest offsets are committed to the
        group or ``COMMIT_WAIT`` s have passed."""
        try:
            if self.assigned:
                consumer.pause(self.assigned)  # consume then only serves the commits' outcomes
            deadline = time.monotonic() + COMMIT_WAIT
            while (self.committing or self.uncommitted) and time.monotonic() < deadline:
                self._commit()
                consumer.consume(BATCH, POLL)
        except Exception as error:  # only Kafka's tools miss the last offsets: closed anyway
            log.warning("%s: the group's offsets (for Kafka's tools) not committed: %s",
                        self, error)  # fmt: skip
        finally:
            consumer.close()

    def _skip(self, record: Any, why: str) -> None:
        """A record no function can take (no key, no value): reported with where it is, and
        passed over (the real runtime would fail the job on it)."""
        where = f"{record.topic()}/{record.partition()}@{record.offset()}"
        log.error("kafka ingress %s: record %s skipped: %s", self.id, where, why)
        self.skipped = [*self.skipped[-9:], f"{where}: {why}"]

    def status(self) -> dict[str, Any]:
        lag = None
        consumer = self.consumer
        if consumer is not None and self.assigned:
            lag = 0
            for partition in self.assigned:
                try:
                    _, high = consumer.get_watermark_offsets(partition, cached=True)
                except Exception:
                    continue
                where = (partition.topic, partition.partition)
                if high is not None and high >= 0 and where in self.offsets:
                    lag += max(0, high - self.offsets[where])
        return {**super().status(), "group": self.ingress.group, "topics": self.topics,
                "partitions": len(self.assigned), "lag": lag,
                "skipped": self.skipped}  # fmt: skip


class KafkaEgress(_KafkaConnector):
    kind = "egress"
    exactly_once: bool
    cursor_topic: str
    cursor_key: str
    cursor: int  # pyright --verifytypes wants Connector's declaration again where it is set

    def __init__(self, runtime: LocalRuntime, egress: Egress) -> None:
        super().__init__(runtime, egress.id, egress.address, egress.properties)
        self.egress = egress
        self.exactly_once = egress.semantic == "exactly-once"
        self.cursor_topic = ""
        self.cursor_key = f"kafka_egress_cursor:{egress.id}"
        self._initialized = False  # a transactional producer of this connector was

    def _name(self) -> str:
        """This database's name for the egress: its transactional id and its cursor group."""
        store = self.runtime.store
        instance = store.meta_get("instance")
        if instance is None:
            instance = uuid.uuid4().hex
            with store.transaction():
                store.meta_put("instance", instance)
        return f"statefun-local.{instance}.{self.egress.id}"

    async def _run(self) -> None:
        kafka = _client()
        name = self._name()
        self.cursor_topic = _topic_for(name)  # only this producer writes it
        settings: dict[str, Any] = {"enable.idempotence": True}
        if "partitioner" not in dict(self.properties):
            # the Java client's partition for a keyed record (murmur2 of the key), as the
            # runtime's producer picks it; librdkafka's own default hashes with CRC32
            settings["partitioner"] = "murmur2_random"
        if self.exactly_once:
            settings["transactional.id"] = name
            if self.egress.transaction_timeout_ms:
                settings["transaction.timeout.ms"] = self.egress.transaction_timeout_ms
        producer = _new(kafka.Producer, self.config(**settings), self)
        self.cursor = int(self.runtime.store.meta_get(self.cursor_key) or 0)
        try:
            if self.exactly_once:
                await self.blocking(self._create_cursor_topic)
                # fences an earlier producer of ours and aborts what it left open
                await self.blocking(producer.init_transactions, TIMEOUT)
                if self._initialized:  # librdkafka calls that fatal, for the one before
                    log.info("%s: the producer before, which failed, is fenced by this one as "
                             "it should be: what it left open is aborted, its records "
                             "produced again", self)  # fmt: skip
                self._initialized = True
                self.cursor = max(self.cursor, await self.blocking(self._committed_cursor))
                self.connected()
            elif await self.blocking(_answers, producer):
                self.connected()  # else error_cb says why, and a delivery that it connected

            async def deliver(records: list[tuple[bytes, Optional[TraceContext]]], last: int
                              ) -> None:  # fmt: skip
                try:
                    if self.exactly_once:
                        await self.blocking(self._transaction, producer, records, last)
                    else:
                        await self.blocking(self._deliver, producer, records)
                except Exception as error:
                    missing = await self.blocking(self._missing_topics, producer, records)
                    if missing:
                        raise MissingTopicError(missing, error) from error
                    raise

            probed = -math.inf

            async def idle() -> None:
                nonlocal probed
                producer.poll(0)  # serves error_cb: a broker gone shows while idle too
                # not yet connected (no answer within _answers' second) or unreachable
                if self.state != "connected" and time.monotonic() - probed > UNREACHABLE_EVERY:
                    probed = time.monotonic()
                    with contextlib.suppress(kafka.KafkaException):  # still unreachable
                        await self.blocking(producer.list_topics, None, UNREACHABLE_EVERY)
                        self.connected()  # the broker answered

            await self.drain(self.cursor_key, KAFKA_RECORD, deliver, BATCH, idle)
        finally:
            if await self.settle():
                await self.blocking(producer.flush, 5)

    def _create_cursor_topic(self) -> None:
        kafka = _client()
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

        admin = _new(AdminClient, self.config(), self)
        config = {"cleanup.policy": "compact", "segment.ms": "3600000"}
        (future,) = admin.create_topics([NewTopic(self.cursor_topic, 1, -1, config=config)]
                                        ).values()  # fmt: skip
        deadline = time.monotonic() + TIMEOUT
        while True:
            admin.poll(0)  # serves error_cb: a broker that cannot be reached is shown at once
            try:
                future.result(timeout=1)
                return
            except concurrent.futures.TimeoutError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"the broker did not create the topic "
                        f"{self.cursor_topic} within {TIMEOUT} s"
                    ) from None
            except kafka.KafkaException as error:
                if error.args[0].code() != kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
                return

    def _committed_cursor(self) -> int:
        """The newest committed position (0 if none). Only this egress' producer writes its
        topic, and init_transactions has aborted what it left open: the end is stable."""
        kafka = _client()
        reader = _new(kafka.Consumer, self.config(**{
            "group.id": self.cursor_topic, "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }), self)  # fmt: skip
        partition = kafka.TopicPartition(self.cursor_topic, 0)
        try:
            low, end = reader.get_watermark_offsets(partition, timeout=TIMEOUT)
            for start in (max(low, end - CURSOR_WINDOW), low):  # the tail first, then all
                found = self._last_value(reader, kafka.TopicPartition(self.cursor_topic, 0,
                                                                      start), end)  # fmt: skip
                if found is not None:
                    return found
            return 0
        finally:
            reader.close()

    def _last_value(self, reader: Any, start: Any, end: int) -> Optional[int]:
        if end <= start.offset:
            return None
        reader.assign([start])
        found = None
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            for record in reader.consume(BATCH, 0.5):
                if not record.error():
                    found = int(record.value())
            # the position passes the transactions' markers too: it reaches the end
            (position,) = reader.position([start])
            if position.offset >= end:
                return found
        raise RuntimeError(f"could not read {self.cursor_topic} within {TIMEOUT} s")

    def _missing_topics(
        self, producer: Any, records: list[tuple[bytes, Optional[TraceContext]]]
    ) -> list[str]:
        """The topics of ``records`` the broker does not have (none if it does not answer)."""
        wanted = {protocol.KafkaProducerRecord.FromString(raw).topic for raw, _ in records}
        try:
            known = producer.list_topics(timeout=5).topics
        except Exception:
            return []
        return sorted(topic for topic in wanted if topic not in known)

    def _produce(self, producer: Any, records: list[tuple[bytes, Optional[TraceContext]]],
                 failed: list[str]) -> None:  # fmt: skip
        def delivered(error: Any, record: Any) -> None:
            if error is not None:
                failed.append(f"to {record.topic()}: {error.str()}")

        for raw, trace in records:
            record = protocol.KafkaProducerRecord.FromString(raw)
            headers = _trace_headers(trace, [(h.key, bytes(h.value) if h.has_value else None)
                                             for h in record.headers])  # fmt: skip
            while True:
                try:
                    producer.produce(record.topic, value=bytes(record.value_bytes),
                                     key=record.key.encode() if record.key else None,
                                     headers=headers or None, on_delivery=delivered)  # fmt: skip
                    break
                except BufferError:  # the producer's queue is full: let it drain
                    producer.poll(0.1)

    def _transaction(self, producer: Any, records: list[tuple[bytes, Optional[TraceContext]]],
                     last: int) -> None:  # fmt: skip
        failed: list[str] = []
        producer.begin_transaction()
        try:
            self._produce(producer, records, failed)
            # a compacted topic takes only keyed records
            producer.produce(self.cursor_topic, key=b"position", value=str(last).encode())
            producer.commit_transaction(TIMEOUT)
        except BaseException:
            # whatever failed, this producer is done: the connector starts a new one, whose
            # init_transactions fences this one and aborts what it left open
            with contextlib.suppress(Exception):
                producer.abort_transaction(5)
            raise
        if failed:  # pragma: no cover - a failed record fails the commit first
            raise RuntimeError(f"records not produced: {failed[0]}")

    def _deliver(self, producer: Any, records: list[tuple[bytes, Optional[TraceContext]]]
                 ) -> None:  # fmt: skip
        failed: list[str] = []
        self._produce(producer, records, failed)
        waiting = producer.flush(TIMEOUT)
        if failed:
            raise RuntimeError(f"records not produced: {failed[0]}")
        if waiting:
            raise RuntimeError(f"{waiting} records not acknowledged within {TIMEOUT} s")

    def status(self) -> dict[str, Any]:
        return {**super().status(), "semantic": self.egress.semantic, "position": self.cursor}


def _answers(producer: Any) -> bool:
    """Whether the broker answers a metadata request within a second: a producer connects
    only when it has something to send, so an idle at-least-once egress is not said to be
    connected to a broker that can not be reached (its error_cb says so once polled)."""
    try:
        producer.list_topics(timeout=1)
    except _client().KafkaException:
        return False
    return True
