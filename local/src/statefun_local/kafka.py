"""statefun-local's Kafka ingresses and egresses, on a real broker (confluent-kafka).

**Ingress, exactly once.** Each ``io.statefun.kafka.v1/ingress`` is a consumer in the module's
``consumerGroupId``. A polled batch of records becomes messages (one per target, the record key
as the id) that are queued in the same SQLite transaction that records each partition's next
offset. Offsets live in the database, not in Kafka: after a ``kill -9`` at any moment the
ingress resumes exactly after the last record it queued. (They are also committed to the group
in Kafka, afterwards, so that Kafka's tools show the lag.) A partition the database has no
offset for starts at the module's ``startupPosition``.

**Egress.** Egress records are written to the SQLite egress log in the transaction that
applies the reply that sent them (the outbox); one producer per Kafka egress reads the log in
order and produces each ``KafkaProducerRecord`` (topic, key, value, headers).

- ``exactly-once``: a transactional producer (``transactional.id``
  ``statefun-local.<instance>.<egress id>``). Each Kafka transaction holds a run of records and
  one more: the log position after them, keyed by that id, on the compacted topic
  ``statefun-local.egress-cursors``. The position is committed if and only if the records are.
  On start the producer reads the newest committed position back, so a crash between Kafka's
  commit and the database's copy of the position repeats nothing, and the records of an
  aborted transaction (a crash before the commit) are produced again, once.
- ``at-least-once`` (and ``none``): an idempotent producer; the position is saved in the
  database after the broker acknowledged the records, so a crash in between produces those
  records again.

A broker that is down or unknown is reported (CLI log, web page, ``/api/status``) and retried
with backoff; a connector never stops the runtime.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from statefun_core import protocol

from .connector import Connector
from .module import Egress, Ingress
from .runtime import UnknownIngressError

if TYPE_CHECKING:
    from .runtime import LocalRuntime

log = logging.getLogger("statefun_local.kafka")

CURSOR_TOPIC = "statefun-local.egress-cursors"
KAFKA_RECORD = "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord"
#: records taken per poll, and per egress transaction
BATCH = 1000
#: seconds a poll waits for a full batch
POLL = 0.05
#: seconds a client call may block before the connector starts over with a new client
TIMEOUT = 20


def _client() -> Any:
    try:
        import confluent_kafka
    except ImportError:  # pragma: no cover - a dependency of statefun-local
        raise RuntimeError(
            "the module names a Kafka broker: install confluent-kafka, or run with --offline"
        ) from None
    return confluent_kafka


class _KafkaConnector(Connector):
    system = "kafka"

    def __init__(self, runtime: LocalRuntime, id_: str, address: str,
                 properties: tuple[tuple[str, str], ...]) -> None:  # fmt: skip
        super().__init__(runtime, id_, address)
        self.properties = properties

    def config(self, **settings: Any) -> dict[str, Any]:
        # the module's properties first; what the module names (address, group) wins.
        # librdkafka's own log stops at critical: its errors come to error_cb, shown once.
        return {"log_level": 2, **dict(self.properties), "bootstrap.servers": self.address,
                "error_cb": self._on_error, **settings}  # fmt: skip

    def _on_error(self, error: Any) -> None:
        """librdkafka's errors (a broker down, unknown, refusing); it retries by itself."""
        if error.code() in (-195, -187, -193):  # _TRANSPORT, _ALL_BROKERS_DOWN, _RESOLVE
            self.problem(f"broker {self.address} unreachable: {error.str()}", "unreachable")
        else:
            self.problem(error.str())


class KafkaIngress(_KafkaConnector):
    kind = "ingress"

    def __init__(self, runtime: LocalRuntime, ingress: Ingress) -> None:
        super().__init__(runtime, ingress.id, ingress.address, ingress.properties)
        self.ingress = ingress
        self.topics = [topic for topic, _, _ in ingress.routes]
        self.offsets: dict[tuple[str, int], int] = {}
        self.assigned: list[Any] = []
        self.consumer: Any = None
        self.skipped: list[str] = []

    async def _run(self) -> None:
        kafka = _client()
        self.offsets = self.runtime.store.kafka_offsets(self.id)
        self.consumer = kafka.Consumer(self.config(**{
            "group.id": self.ingress.group, "enable.auto.commit": False,
            "auto.offset.reset": self.ingress.startup.reset, "enable.partition.eof": False,
        }))  # fmt: skip
        try:
            self.consumer.subscribe(self.topics, on_assign=self._on_assign,
                                    on_revoke=self._on_revoke)  # fmt: skip
            while True:
                # returns when BATCH records are there or after POLL s: the latency it adds
                records = await self.blocking(self.consumer.consume, BATCH, POLL)
                if records:
                    await self._take(records)
        finally:
            await self.settle()
            consumer, self.consumer, self.assigned = self.consumer, None, []
            await self.blocking(consumer.close)

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        """Where each assigned partition starts: the database's offset, else the module's
        ``startupPosition`` (runs on the consumer's thread, inside ``consume``)."""
        kafka = _client()
        startup = self.ingress.startup
        for partition in partitions:
            stored = self.offsets.get((partition.topic, partition.partition))
            if stored is not None:
                partition.offset = stored
            elif startup.position == "earliest":
                partition.offset = kafka.OFFSET_BEGINNING
            elif startup.position == "latest":
                partition.offset = kafka.OFFSET_END
            elif startup.position == "specific-offsets":
                given = {(t, p): o for t, p, o in startup.offsets}
                partition.offset = given.get((partition.topic, partition.partition),
                                             kafka.OFFSET_STORED)  # fmt: skip
            elif startup.position == "date":
                partition.offset = self._offset_at(consumer, partition, startup.date_ms)
            else:  # group-offsets; auto.offset.reset where the group has none
                partition.offset = kafka.OFFSET_STORED
        consumer.assign(partitions)
        self.assigned = partitions
        self.connected()

    def _offset_at(self, consumer: Any, partition: Any, date_ms: int) -> int:
        kafka = _client()
        query = kafka.TopicPartition(partition.topic, partition.partition, date_ms)
        (found,) = consumer.offsets_for_times([query], timeout=30)
        # no record at or after the date: the reset position, as the runtime falls back to
        reset = kafka.OFFSET_BEGINNING if self.ingress.startup.reset == "earliest" else None
        return int(found.offset) if found.offset >= 0 else (reset or kafka.OFFSET_END)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self.assigned = []

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
            key = record.key()
            try:
                messages += self.runtime.route_record(
                    self.id, record.topic(), key.decode("utf-8") if key else "", record.value()
                )
            except (UnknownIngressError, UnicodeDecodeError) as error:
                self._skip(record, str(error))
        def positions() -> None:
            for (topic, partition), next_offset in offsets.items():
                self.runtime.store.kafka_offset_put(self.id, topic, partition, next_offset)

        await self.enqueue(messages, positions)
        self.offsets.update(offsets)
        self.records += len(records)
        self.connected()
        if offsets:  # for Kafka's tools; the database's offsets are the ones read back
            kafka = _client()
            self.consumer.commit(
                offsets=[kafka.TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                asynchronous=True,
            )

    def _skip(self, record: Any, why: str) -> None:
        """A record no function can take (no key, a key that is not UTF-8): reported with
        where it is, and passed over (the real runtime would fail the job on it)."""
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

    def __init__(self, runtime: LocalRuntime, egress: Egress) -> None:
        super().__init__(runtime, egress.id, egress.address, egress.properties)
        self.egress = egress
        self.exactly_once = egress.semantic == "exactly-once"
        self.cursor = 0
        self.cursor_key = f"kafka_egress_cursor:{egress.id}"

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
        settings: dict[str, Any] = {"enable.idempotence": True}
        if self.exactly_once:
            settings["transactional.id"] = name
            if self.egress.transaction_timeout_ms:
                settings["transaction.timeout.ms"] = self.egress.transaction_timeout_ms
        producer = kafka.Producer(self.config(**settings))
        self.cursor = int(self.runtime.store.meta_get(self.cursor_key) or 0)
        try:
            if self.exactly_once:
                await self.blocking(self._create_cursor_topic)
                # fences an earlier producer of ours and aborts what it left open
                await self.blocking(producer.init_transactions, TIMEOUT)
                self.cursor = max(self.cursor, await self.blocking(self._committed_cursor, name))
            self.connected()
            while True:
                records = self.runtime.store.egress_list(self.cursor, limit=BATCH)
                if not records:
                    producer.poll(0)  # serves error_cb: a broker gone shows while idle too
                    await self.runtime._wait_progress(1.0)
                    continue
                last = records[-1].seq
                mine = [r.argument.value for r in records
                        if r.egress == self.id and r.argument.typename == KAFKA_RECORD]  # fmt: skip
                if mine and self.exactly_once:
                    await self.blocking(self._transaction, producer, name, mine, last)
                elif mine:
                    await self.blocking(self._deliver, producer, mine)
                with self.runtime.store.transaction():
                    self.runtime.store.meta_put(self.cursor_key, last)
                self.cursor = last
                self.records += len(mine)
                self.connected()
        finally:
            await self.settle()
            await self.blocking(producer.flush, 5)

    def _create_cursor_topic(self) -> None:
        kafka = _client()
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

        admin = AdminClient(self.config())
        topic = NewTopic(CURSOR_TOPIC, 1, -1, config={"cleanup.policy": "compact"})
        (future,) = admin.create_topics([topic]).values()
        try:
            future.result(timeout=TIMEOUT)
        except kafka.KafkaException as error:
            if error.args[0].code() != kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                raise

    def _committed_cursor(self, name: str) -> int:
        """The newest position committed under ``name`` (0 if none), read_committed."""
        kafka = _client()
        reader = kafka.Consumer(self.config(**{
            "group.id": name, "enable.auto.commit": False, "isolation.level": "read_committed",
        }))  # fmt: skip
        try:
            _, end = reader.get_watermark_offsets(kafka.TopicPartition(CURSOR_TOPIC, 0),
                                                  timeout=TIMEOUT)  # fmt: skip
            if end <= 0:
                return 0
            # the position passes the transactions' markers too: it reaches the end
            reader.assign([kafka.TopicPartition(CURSOR_TOPIC, 0, kafka.OFFSET_BEGINNING)])
            cursor, key = 0, name.encode()
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                (position,) = reader.position([kafka.TopicPartition(CURSOR_TOPIC, 0)])
                if position.offset >= end:
                    return cursor
                for record in reader.consume(BATCH, 0.5):
                    if not record.error() and record.key() == key:
                        cursor = int(record.value())
            raise RuntimeError(f"could not read {CURSOR_TOPIC} within {TIMEOUT} s")
        finally:
            reader.close()

    def _produce(self, producer: Any, records: list[bytes], failed: list[str]) -> None:
        def delivered(error: Any, _: Any) -> None:
            if error is not None:
                failed.append(error.str())

        for raw in records:
            record = protocol.KafkaProducerRecord.FromString(raw)
            headers = [(h.key, bytes(h.value) if h.has_value else None) for h in record.headers]
            while True:
                try:
                    producer.produce(record.topic, value=bytes(record.value_bytes),
                                     key=record.key.encode() if record.key else None,
                                     headers=headers or None, on_delivery=delivered)  # fmt: skip
                    break
                except BufferError:  # the producer's queue is full: let it drain
                    producer.poll(0.1)

    def _transaction(self, producer: Any, name: str, records: list[bytes], last: int) -> None:
        failed: list[str] = []
        producer.begin_transaction()
        try:
            self._produce(producer, records, failed)
            producer.produce(CURSOR_TOPIC, key=name.encode(), value=str(last).encode())
            producer.commit_transaction(TIMEOUT)
        except BaseException:
            # whatever failed, this producer is done: the connector starts a new one, whose
            # init_transactions fences this one and aborts what it left open
            with contextlib.suppress(Exception):
                producer.abort_transaction(5)
            raise
        if failed:  # pragma: no cover - a failed record fails the commit first
            raise RuntimeError(f"records not produced: {failed[0]}")

    def _deliver(self, producer: Any, records: list[bytes]) -> None:
        failed: list[str] = []
        self._produce(producer, records, failed)
        if producer.flush(TIMEOUT):
            raise RuntimeError(f"records not acknowledged within {TIMEOUT} s")
        if failed:
            raise RuntimeError(f"records not produced: {failed[0]}")

    def status(self) -> dict[str, Any]:
        return {**super().status(), "semantic": self.egress.semantic, "position": self.cursor}
