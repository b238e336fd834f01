"""statefun-local's Kafka connectors at their edges, in this process, on a real broker (Apache
Kafka from Maven Central, started by the e2e suite's kit and stopped by its PID): where an
ingress starts when nothing says so exactly, a partition found on a later start or while it
runs, what an ingress shows (its lag too) and commits to its group (one commit at a time, the
last ones on stop, again after a failure), both egress semantics (keys, headers, a restart, a
database whose position is behind Kafka's, a record Kafka does not take or does not acknowledge
in time, a position topic Kafka refuses), properties librdkafka does not know or refuses, a
record's trace context and a broker nobody listens on. Then what every connector shares: what
it shows before it starts, backoff, logging a problem once."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import logging
import re
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from statefun_local import LocalRuntime, parse_module
from statefun_local.connector import Connector, connectors
from statefun_local.store import SqliteStore

from statefun_core import Context, Message, StatefulFunctions, StringType, kafka_egress_message
from statefun_core.engine import Address

from .conftest import FunctionServer, run
from .test_runtime import string

KIT = Path(__file__).resolve().parents[2] / "tests" / "e2e" / "kit.py"
ECHO = "com.example/echo"
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OTHER_TRACEPARENT = b"00-11111111111111111111111111111111-2222222222222222-01"


def load_kit() -> Any:
    """tests/e2e/kit.py (the repository's: not a package of statefun-local's tests)."""
    if not KIT.exists():
        pytest.skip("runs from a checkout of the repository (tests/e2e/kit.py starts the broker)")
    spec = importlib.util.spec_from_file_location("statefun_e2e_kit", KIT)
    assert spec is not None and spec.loader is not None
    kit = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = kit  # its dataclasses look their module up
    spec.loader.exec_module(kit)
    return kit


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    kit = load_kit()
    broker = kit.Kafka(tmp_path_factory.mktemp("kafka"))
    try:  # stopped also when it does not start
        try:
            broker.start()
        except kit.Unavailable as error:
            pytest.skip(f"no Kafka broker on this machine: {error}")
        # The group coordinator loaded before the tests: statefun-local's commits, for Kafka's
        # tools, are asynchronous, and two retried while it loads can land out of order.
        broker.create_topics(["warm-up"])
        committed(broker, "warm-up", "warm-up")
        yield broker
    finally:
        broker.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_a_kit_process_that_does_not_start_says_why(tmp_path: Path) -> None:
    """The broker (or kinesalite) exits before it listens: the fixture's error, the one report
    of every test of the module, has the end of its log (this conftest shows only the logs of
    the kit's processes that still run)."""
    kit = load_kit()
    command = [sys.executable, "-c", "print('port in use'); raise SystemExit(3)"]
    process = kit.Process("failing", command, tmp_path / "failing.log")
    try:
        with pytest.raises(
            RuntimeError, match="failing exited with 3; the end of its log:\nport in use"
        ):
            kit.wait_for_port(free_port(), process, 30)
    finally:
        process.stop()


def names() -> str:
    """A prefix of this test's own topics and groups."""
    return f"edges-{uuid.uuid4().hex[:6]}-"


def endpoint(url: str, max_batch: int = 1000) -> str:
    return f"""
kind: io.statefun.endpoints.v2/http
spec:
  functions: com.example/*
  urlPathTemplate: {url}
  maxNumBatchRequests: {max_batch}
"""


def ingress(address: str, topic: str, group: str, startup: str = "{type: earliest}",
            extra: str = "") -> str:  # fmt: skip
    return f"""
---
kind: io.statefun.kafka.v1/ingress
spec:
  id: com.example/in
  address: {address}
  consumerGroupId: {group}
  startupPosition: {startup}
  topics:
    - {{topic: {topic}, valueType: io.statefun.types/string, targets: [{ECHO}]}}
{extra}
"""


def egress(address: str, id_: str = "com.example/out", semantic: str = "{type: at-least-once}",
           extra: str = "") -> str:  # fmt: skip
    return f"""
---
kind: io.statefun.kafka.v1/egress
spec:
  id: {id_}
  address: {address}
  deliverySemantic: {semantic}
{extra}
"""


def echo_functions(seen: list[str], out: str = "", audit: str = "") -> StatefulFunctions:
    """``com.example/echo`` notes ``id:text`` of each message and, given the topic ``out``,
    writes the text there keyed by the id (``nokey``: without a key; ``own``: with a
    ``tracestate`` of its own), with a header ``h`` and a null header; ``audit-…`` texts go to
    the egress ``com.example/audit``, on the topic ``audit``."""
    functions = StatefulFunctions()

    @functions.bind(ECHO)
    def echo(context: Context, message: Message) -> None:
        text = message.as_string()
        seen.append(f"{context.address.id}:{text}")
        if text.startswith("audit-"):
            context.send_egress(kafka_egress_message("com.example/audit", audit, text))
        elif out:
            own = [("tracestate", "mine")] if context.address.id == "own" else []
            key = None if text == "nokey" else context.address.id
            headers = [("h", "v"), ("null", None), *own]
            context.send_egress(
                kafka_egress_message("com.example/out", out, text, key=key, headers=headers)
            )

    return functions


@contextlib.asynccontextmanager
async def running(functions: StatefulFunctions, db: Path, documents: str, max_batch: int = 1000
                  ) -> AsyncIterator[LocalRuntime]:  # fmt: skip
    """A function server and a local runtime (with its connectors) for it on ``db``."""
    async with FunctionServer(functions) as server:
        module = parse_module(endpoint(server.url, max_batch) + documents)
        async with LocalRuntime(module, db, failure_pause=0.05) as runtime:
            yield runtime


def connection(runtime: LocalRuntime, kind: str) -> Any:
    (found,) = [c for c in runtime.connectors if c.kind == kind]
    return found


async def until(condition: Callable[[], bool], what: str, timeout: float = 60,
                poll: float = 0.05) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        await asyncio.sleep(poll)


async def eventually(probe: Callable[[], Any], expected: Any, timeout: float = 60) -> None:
    """Until the blocking ``probe`` (run off the event loop) gives ``expected``."""
    deadline = time.monotonic() + timeout
    while (found := await asyncio.to_thread(probe)) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{found} is still not {expected}")
        await asyncio.sleep(0.1)


async def read(kafka: Any, topic: str, count: int, settle: float = 1) -> list[Any]:
    """The first ``count`` committed records of ``topic``, and any more within ``settle`` s."""
    return await asyncio.to_thread(kafka.read, topic, count, 60, settle)  # type: ignore[no-any-return]


def produce(kafka: Any, topic: str, label: str, partitions: tuple[int, ...] = (0, 1),
            **options: Any) -> None:  # fmt: skip
    """Two records on each partition, keyed and valued ``<label>-<partition>-<n>``
    (``options``: ``timestamp=``)."""
    value = StringType.serializer().serialize
    for partition in partitions:
        keys = [f"{label}-{partition}-{n}" for n in range(2)]
        kafka.produce(topic, [(name, value(name)) for name in keys], partition=partition,
                      **options)  # fmt: skip


def coordinated(call: Callable[[], Any]) -> Any:
    """``call`` (a group's offsets, read or committed), again while the group's coordinator
    is not ready (a broker just started still loads its offsets topic)."""
    from confluent_kafka import KafkaError, KafkaException

    waiting = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
               KafkaError.COORDINATOR_NOT_AVAILABLE}  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            return call()
        except KafkaException as error:
            if error.args[0].code() not in waiting or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def committed(kafka: Any, group: str, topic: str) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    reader = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": group})
    partitions = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    try:
        found = coordinated(lambda: reader.committed(partitions, timeout=30))
    finally:
        reader.close()
    return {p.partition: p.offset for p in found}


# --- where an ingress starts ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("startup", "reset", "taken"),
    [
        # an offset at the end is the end; one past it is autoOffsetResetPosition's
        (
            "{{type: specific-offsets, offsets: [{topic}/0: 2, {topic}/1: 5]}}",
            "earliest",
            ["old-1-0", "old-1-1"],
        ),
        # latest is the end, whatever the reset position
        ("{{type: latest}}", "earliest", []),
        # an offset at the start is the start; a partition not named is where the group
        # committed, here nowhere: at the reset position
        ("{{type: specific-offsets, offsets: [{topic}/0: 0]}}", "latest", ["old-0-0", "old-0-1"]),
        # a date before every record is the first record, whatever the reset position
        (
            "{{type: date, date: '2001-01-01 00:00:00.000 +0000'}}",
            "latest",
            ["old-0-0", "old-0-1", "old-1-0", "old-1-1"],
        ),
        # a date after every record (they are two hours old): the end, whatever the reset
        # position, as the runtime's consumer (FlinkKafkaConsumer) starts a partition with no
        # record at or after the date
        ("{{type: date, date: '{hour_ago}'}}", "earliest", []),
        ("{{type: date, date: '{hour_ago}'}}", "latest", []),
        # nothing committed by the group: autoOffsetResetPosition's
        ("{{type: group-offsets}}", "earliest", ["old-0-0", "old-0-1", "old-1-0", "old-1-1"]),
        ("{{type: group-offsets}}", "latest", []),
    ],
    ids=[
        "offsets-at-the-end-and-past-it",
        "latest",
        "an-offset-at-the-start",
        "date-before-all",
        "date-after-all-earliest",
        "date-after-all-latest",
        "group-offsets-none-earliest",
        "group-offsets-none-latest",
    ],
)
def test_where_an_ingress_starts_without_an_offset_to_start_at(
    kafka: Any, tmp_path: Path, caplog: Any, startup: str, reset: str, taken: list[str]
) -> None:
    """Each partition of the topic ends up read to its end (offset 2), in the database, in
    the ingress' status and in the group's offsets in Kafka; nothing to warn about."""
    prefix = names()
    topic, group = prefix + "in", prefix + "group"
    kafka.create_topics([topic], partitions=2)
    produce(kafka, topic, "old", timestamp=int((time.time() - 7200) * 1000))
    seen: list[str] = []
    # a date must be past: the runtime refuses one still to come
    hour_ago = time.strftime("%Y-%m-%d %H:%M:%S.000 +0000", time.gmtime(time.time() - 3600))
    documents = ingress(kafka.bootstrap, topic, group,
                        startup.format(topic=topic, hour_ago=hour_ago),
                        extra=f"  autoOffsetResetPosition: {reset}")  # fmt: skip

    async def scenario() -> None:
        async with running(echo_functions(seen), tmp_path / "db.sqlite", documents) as runtime:
            connector = connection(runtime, "ingress")
            end = {(topic, 0): 2, (topic, 1): 2}
            await until(lambda: connector.offsets == end, "the ingress at the end")
            await runtime.wait_until_idle()
            assert runtime.store.kafka_offsets("com.example/in") == end
            status = connector.status()
            shown = {k: status[k] for k in ("state", "topics", "group", "partitions", "skipped")}
            assert shown == {"state": "connected", "topics": [topic], "group": group,
                             "partitions": 2, "skipped": []}  # fmt: skip
            assert (status["records"], status["lag"]) == (len(taken), 0)
            # for Kafka's tools: the group's offsets are the database's (committed meanwhile)
            await eventually(lambda: committed(kafka, group, topic), {0: 2, 1: 2})
        assert sorted(text.split(":")[1] for text in seen) == taken

    with caplog.at_level(logging.INFO, logger="statefun_local"):
        run(scenario())
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_group_offset_of_zero_is_where_the_group_committed(kafka: Any, tmp_path: Path) -> None:
    """group-offsets: an offset of 0 the group committed is one (the partition's first
    record); a partition the group committed nothing for is at the reset position (latest)."""
    from confluent_kafka import TopicPartition

    prefix = names()
    topic, group = prefix + "in", prefix + "group"
    kafka.create_topics([topic], partitions=2)
    produce(kafka, topic, "old")
    commit(kafka, group, TopicPartition(topic, 0, 0))
    documents = ingress(kafka.bootstrap, topic, group, "{type: group-offsets}")
    assert read_to_the_end(topic, tmp_path, documents) == ["old-0-0", "old-0-1"]


def test_a_partition_the_specific_offsets_do_not_name_starts_where_the_group_committed(
    kafka: Any, tmp_path: Path
) -> None:
    """As the runtime's consumer (FlinkKafkaConsumer) starts it: at the group's offset, as
    group-offsets would, not at the reset position."""
    from confluent_kafka import TopicPartition

    prefix = names()
    topic, group = prefix + "in", prefix + "group"
    kafka.create_topics([topic], partitions=2)
    produce(kafka, topic, "old")
    commit(kafka, group, TopicPartition(topic, 1, 1))
    startup = f"{{type: specific-offsets, offsets: [{topic}/0: 1]}}"
    documents = ingress(kafka.bootstrap, topic, group, startup,
                        extra="  autoOffsetResetPosition: earliest")  # fmt: skip
    assert read_to_the_end(topic, tmp_path, documents) == ["old-0-1", "old-1-1"]


def commit(kafka: Any, group: str, *offsets: Any) -> None:
    """Commit ``offsets`` (``TopicPartition``s) for ``group``, as another consumer would."""
    from confluent_kafka import Consumer

    committer = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": group})
    coordinated(lambda: committer.commit(offsets=list(offsets), asynchronous=False))
    committer.close()


def read_to_the_end(topic: str, tmp_path: Path, documents: str) -> list[str]:
    """What an ingress of ``documents`` reads of the two partitions of ``topic`` (two records
    each) until it is at their end, sorted."""
    seen: list[str] = []

    async def scenario() -> None:
        async with running(echo_functions(seen), tmp_path / "db.sqlite", documents) as runtime:
            connector = connection(runtime, "ingress")
            end = {(topic, 0): 2, (topic, 1): 2}
            await until(lambda: connector.offsets == end, "the ingress at the end")
            await runtime.wait_until_idle()

    run(scenario())
    return sorted(text.split(":")[1] for text in seen)


def test_an_ingress_that_read_nothing_goes_on_after_a_restart_from_where_it_started(
    kafka: Any, tmp_path: Path
) -> None:
    """The startup position is resolved on the first start and written to the database before
    any record comes: records produced while the runtime is down are read on the next start
    (``latest`` is not resolved again)."""
    prefix = names()
    topic = prefix + "in"
    kafka.create_topics([topic], partitions=1)
    produce(kafka, topic, "old", partitions=(0,))
    seen: list[str] = []
    documents = ingress(kafka.bootstrap, topic, prefix + "group", "{type: latest}")
    db = tmp_path / "db.sqlite"

    async def first() -> None:
        async with running(echo_functions(seen), db, documents) as runtime:
            await until(lambda: runtime.store.kafka_offsets("com.example/in") == {(topic, 0): 2},
                        "the start position in the database")  # fmt: skip

    async def second() -> None:
        async with running(echo_functions(seen), db, documents) as runtime:
            connector = connection(runtime, "ingress")
            await until(lambda: connector.offsets == {(topic, 0): 4}, "the new records read")
            await runtime.wait_until_idle()

    run(first())
    produce(kafka, topic, "down", partitions=(0,))
    run(second())
    assert sorted(text.split(":")[1] for text in seen) == ["down-0-0", "down-0-1"]


def test_an_offset_kafka_no_longer_has_goes_on_at_the_reset_position(
    kafka: Any, tmp_path: Path
) -> None:
    """Records deleted while the runtime was down, beyond its position: it goes on at
    ``autoOffsetResetPosition`` (here earliest: the first record kept), which the runtime
    gives its consumer as ``auto.offset.reset`` (librdkafka's own default is the end)."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    prefix = names()
    topic = prefix + "in"
    kafka.create_topics([topic], partitions=1)
    produce(kafka, topic, "old", partitions=(0,))
    seen: list[str] = []
    documents = ingress(kafka.bootstrap, topic, prefix + "group",
                        extra="  autoOffsetResetPosition: earliest")  # fmt: skip
    db = tmp_path / "db.sqlite"

    async def first() -> None:
        async with running(echo_functions(seen), db, documents) as runtime:
            await until(lambda: runtime.store.kafka_offsets("com.example/in") == {(topic, 0): 2},
                        "the old records read")  # fmt: skip
            await runtime.wait_until_idle()

    async def second() -> None:
        async with running(echo_functions(seen), db, documents) as runtime:
            connector = connection(runtime, "ingress")
            await until(lambda: connector.offsets == {(topic, 0): 5}, "the last record read")
            await runtime.wait_until_idle()

    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    if not hasattr(admin, "delete_records"):  # local_oldest's confluent-kafka 2.3
        pytest.skip("deleting records takes AdminClient.delete_records: confluent-kafka >= 2.4")
    run(first())
    produce(kafka, topic, "down", partitions=(0,))  # offsets 2 and 3
    (deleted,) = admin.delete_records([TopicPartition(topic, 0, 3)]).values()
    deleted.result(timeout=30)  # the partition starts at offset 3 now: 2 is gone
    kafka.produce(topic, [("last", StringType.serializer().serialize("last"))], partition=0)
    seen.clear()
    run(second())
    assert sorted(text.split(":")[1] for text in seen) == ["down-0-1", "last"]


def test_the_groups_offsets_in_kafka_are_the_databases_as_soon_as_the_ingress_stops(
    kafka: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """Records read one a batch, faster than the broker answers commits, are committed to the
    group one commit at a time, the newest offsets last; the runtime stopped right after the
    last one is read commits its offset before the client closes."""
    from statefun_local import kafka as kafka_connectors

    monkeypatch.setattr(kafka_connectors, "BATCH", 1)
    prefix = names()
    topic, group = prefix + "in", prefix + "group"
    kafka.create_topics([topic], partitions=2)
    seen: list[str] = []
    documents = ingress(kafka.bootstrap, topic, group)

    async def scenario() -> None:
        async with running(echo_functions(seen), tmp_path / "db.sqlite", documents) as runtime:
            connector = connection(runtime, "ingress")
            for batch in range(3):
                await asyncio.to_thread(produce, kafka, topic, f"b{batch}")
                end = {(topic, 0): 2 * batch + 2, (topic, 1): 2 * batch + 2}
                # stopped as soon as the last record is read: its commit not even sent yet
                await until(lambda end=end: connector.offsets == end, f"batch {batch}", poll=0)
            assert runtime.store.kafka_offsets("com.example/in") == end
        assert connector.uncommitted == connector.committing == {}

    run(scenario())
    assert committed(kafka, group, topic) == {0: 6, 1: 6}


def test_offsets_read_while_a_commit_was_in_flight_are_committed_before_the_client_closes(
    kafka: Any, tmp_path: Path
) -> None:
    """The runtime stopped just as the broker answered a commit, newer offsets waiting for it:
    those are committed (and answered) before the client closes."""
    prefix = names()
    topic, group = prefix + "in", prefix + "group"
    kafka.create_topics([topic], partitions=2)
    produce(kafka, topic, "old")
    seen: list[str] = []
    documents = ingress(kafka.bootstrap, topic, group)

    async def scenario() -> None:
        async with running(echo_functions(seen), tmp_path / "db.sqlite", documents) as runtime:
            connector = connection(runtime, "ingress")
            await eventually(lambda: committed(kafka, group, topic), {0: 2, 1: 2})
            await until(lambda: not connector.uncommitted and not connector.committing,
                        "the last commit answered")  # fmt: skip
            connector.committing = {(topic, 0): 2}  # a commit in flight: the next ones wait
            await asyncio.to_thread(produce, kafka, topic, "new")
            end = {(topic, 0): 4, (topic, 1): 4}
            await until(lambda: connector.uncommitted == end, "the new offsets waiting")
            assert await asyncio.to_thread(committed, kafka, group, topic) == {0: 2, 1: 2}
            connector.committing = {}  # answered, as the runtime stops
        assert connector.uncommitted == connector.committing == {}

    run(scenario())
    assert committed(kafka, group, topic) == {0: 4, 1: 4}
    assert len(seen) == 8


def test_a_commit_is_sent_once_the_broker_answered_the_one_before(
    kafka: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """Many records read one a batch, each moving the offsets: the consumer (the real client,
    watched) sends each commit of the group's offsets only once the broker answered the one
    before, each with offsets past the ones sent before, the newest the database's; no
    automatic commit comes between, whatever the module's properties say."""
    import confluent_kafka
    from statefun_local import kafka as kafka_connectors

    events: list[str] = []
    sent: list[dict[tuple[str, int], int]] = []

    class Watched(confluent_kafka.Consumer):  # type: ignore[misc]
        def __init__(self, config: dict[str, Any]) -> None:
            answer = config.get("on_commit")
            if answer is not None:

                def answered(error: Any, partitions: Any) -> None:
                    events.append("answered")
                    answer(error, partitions)

                config = {**config, "on_commit": answered}
            super().__init__(config)

        def commit(self, *args: Any, **kwargs: Any) -> Any:
            events.append("sent")
            sent.append({(p.topic, p.partition): p.offset for p in kwargs["offsets"]})
            return super().commit(*args, **kwargs)

    monkeypatch.setattr(kafka_connectors, "BATCH", 1)
    monkeypatch.setattr(confluent_kafka, "Consumer", Watched)
    prefix = names()
    topic, group = prefix + "in", prefix + "group"
    kafka.create_topics([topic], partitions=2)
    value = StringType.serializer().serialize
    for partition in (0, 1):
        kafka.produce(topic, [(f"k{n}", value(f"v{n}")) for n in range(100)], partition=partition)
    seen: list[str] = []
    # the Java client's automatic commits, asked for by the module: the ingress' own setting wins
    auto = "  properties: [{enable.auto.commit: true}, {auto.commit.interval.ms: 10}]"
    documents = ingress(kafka.bootstrap, topic, group, extra=auto)

    async def scenario() -> None:
        async with running(echo_functions(seen), tmp_path / "db.sqlite", documents) as runtime:
            connector = connection(runtime, "ingress")
            end = {(topic, 0): 100, (topic, 1): 100}
            await until(lambda: connector.offsets == end, "every record read")
            await eventually(lambda: committed(kafka, group, topic), {0: 100, 1: 100})

    run(scenario())
    assert len(seen) == 200
    assert len(sent) > 1
    assert events == ["sent", "answered"] * len(sent)
    newest: dict[tuple[str, int], int] = {}
    for offsets in sent:
        assert all(offset > newest.get(where, -1) for where, offset in offsets.items()), sent
        newest.update(offsets)
    assert newest == {(topic, 0): 100, (topic, 1): 100}


def test_a_commit_the_broker_refuses_is_logged_once_and_the_next_offsets_commit(
    kafka: Any, tmp_path: Path, caplog: Any
) -> None:
    """A commit the broker refuses (an offset of a topic it does not know) is logged, once
    however often it is refused (and again once one went through); the next records' offsets
    are committed, and the ingress reads on."""
    prefix = names()
    topic, group = prefix + "in", prefix + "group"
    kafka.create_topics([topic], partitions=2)
    seen: list[str] = []
    documents = ingress(kafka.bootstrap, topic, group)

    async def scenario() -> None:
        async with running(echo_functions(seen), tmp_path / "db.sqlite", documents) as runtime:
            connector = connection(runtime, "ingress")
            await until(lambda: connector.state == "connected", "connected")
            for _ in range(2):
                connector.uncommitted[prefix + "gone", 0] = 5
                await until(lambda: not connector.uncommitted and not connector.committing,
                            "the commit answered")  # fmt: skip
            assert connector.commit_error == "Broker: Unknown topic or partition"
            await asyncio.to_thread(produce, kafka, topic, "new")
            await eventually(lambda: committed(kafka, group, topic), {0: 2, 1: 2})
            assert (connector.commit_error, connector.state) == (None, "connected")
            # refused again after a commit went through: logged again
            connector.uncommitted[prefix + "gone", 0] = 6
            await until(lambda: connector.commit_error is not None, "the commit refused again")
        assert len(seen) == 4

    with caplog.at_level(logging.INFO, logger="statefun_local"):
        run(scenario())
    refusals = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert refusals == ["kafka ingress com.example/in: the group's offsets (for Kafka's tools) "
                        "not committed: Broker: Unknown topic or partition"] * 2  # fmt: skip


def test_an_ingress_started_again_after_a_failure_reads_on_and_commits_with_its_new_client(
    kafka: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """A failure while records are taken (here: routing one) closes the client, and the
    ingress starts again with a new one: it reads the failed batch again from the database's
    offsets (each record queued once) and commits the group's offsets again, a commit the old
    client left unanswered notwithstanding."""
    prefix = names()
    topic, group = prefix + "in", prefix + "group"
    kafka.create_topics([topic], partitions=2)
    produce(kafka, topic, "old")
    seen: list[str] = []
    documents = ingress(kafka.bootstrap, topic, group)

    async def scenario() -> None:
        async with running(echo_functions(seen), tmp_path / "db.sqlite", documents) as runtime:
            connector = connection(runtime, "ingress")
            await eventually(lambda: committed(kafka, group, topic), {0: 2, 1: 2})
            await until(lambda: not connector.uncommitted and not connector.committing,
                        "the last commit answered")  # fmt: skip
            route = runtime.route_record
            failed: list[str] = []

            def route_once_failing(*args: Any) -> Any:
                if not failed:
                    failed.append(args[2])
                    raise RuntimeError("routing failed")
                return route(*args)

            monkeypatch.setattr(runtime, "route_record", route_once_failing)
            # as if the broker had not answered the last commit when the client closed
            connector.committing = {(topic, 0): 2}
            await asyncio.to_thread(produce, kafka, topic, "new")
            await eventually(lambda: committed(kafka, group, topic), {0: 4, 1: 4})
            await runtime.wait_until_idle()
            assert connector.state == "connected"
            assert runtime.store.kafka_offsets("com.example/in") == {(topic, 0): 4, (topic, 1): 4}
            assert len(failed) == 1

    run(scenario())
    assert sorted(text.split(":")[1] for text in seen) == [
        f"{label}-{partition}-{n}" for label in ("new", "old") for partition in (0, 1)
        for n in (0, 1)
    ]  # fmt: skip


def test_the_offsets_of_a_commit_a_closed_client_left_unanswered_are_committed_by_the_next(
    kafka: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """A failure (here: routing a record of partition 1) closes the client while the broker
    has not answered its commit of partition 0's offset: the ingress started again commits
    that offset too, though nothing new comes on partition 0."""
    prefix = names()
    topic, group = prefix + "in", prefix + "group"
    kafka.create_topics([topic], partitions=2)
    produce(kafka, topic, "old")
    seen: list[str] = []
    documents = ingress(kafka.bootstrap, topic, group)

    async def scenario() -> None:
        async with running(echo_functions(seen), tmp_path / "db.sqlite", documents) as runtime:
            connector = connection(runtime, "ingress")
            await eventually(lambda: committed(kafka, group, topic), {0: 2, 1: 2})
            await until(lambda: not connector.uncommitted and not connector.committing,
                        "the last commit answered")  # fmt: skip
            connector.committing = {(topic, 0): 2}  # a commit in flight: the next ones wait
            await asyncio.to_thread(produce, kafka, topic, "new", (0,))
            await until(lambda: connector.uncommitted == {(topic, 0): 4}, "partition 0 read")
            # sent, and never answered: the client closes first
            connector.committing, connector.uncommitted = connector.uncommitted, {}
            route = runtime.route_record

            def route_failing_once(*args: Any) -> Any:
                monkeypatch.setattr(runtime, "route_record", route)
                raise RuntimeError("routing failed")

            monkeypatch.setattr(runtime, "route_record", route_failing_once)
            await asyncio.to_thread(produce, kafka, topic, "new", (1,))
            await eventually(lambda: committed(kafka, group, topic), {0: 4, 1: 4})
            await runtime.wait_until_idle()

    run(scenario())
    assert len(seen) == 8


def test_a_newer_offset_waiting_behind_a_commit_a_closed_client_left_unanswered_is_committed(
    kafka: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """A failure (here: routing a record of partition 1) closes the client while the broker
    has not answered its commit of partition 0's offset and a newer offset of partition 0
    waits for that answer: the ingress started again commits the newer one."""
    prefix = names()
    topic, group = prefix + "in", prefix + "group"
    kafka.create_topics([topic], partitions=2)
    produce(kafka, topic, "old")
    seen: list[str] = []
    documents = ingress(kafka.bootstrap, topic, group)

    async def scenario() -> None:
        async with running(echo_functions(seen), tmp_path / "db.sqlite", documents) as runtime:
            connector = connection(runtime, "ingress")
            await eventually(lambda: committed(kafka, group, topic), {0: 2, 1: 2})
            await until(lambda: not connector.uncommitted and not connector.committing,
                        "the last commit answered")  # fmt: skip
            connector.committing = {(topic, 0): 2}  # sent, and never answered
            await asyncio.to_thread(produce, kafka, topic, "new", (0,))
            await until(lambda: connector.uncommitted == {(topic, 0): 4}, "partition 0 read")
            route = runtime.route_record

            def route_failing_once(*args: Any) -> Any:
                monkeypatch.setattr(runtime, "route_record", route)
                raise RuntimeError("routing failed")

            monkeypatch.setattr(runtime, "route_record", route_failing_once)
            await asyncio.to_thread(produce, kafka, topic, "new", (1,))
            await eventually(lambda: committed(kafka, group, topic), {0: 4, 1: 4})
            await runtime.wait_until_idle()

    run(scenario())
    assert len(seen) == 8


def test_the_lag_is_what_the_ingress_read_and_can_not_queue_yet(kafka: Any, tmp_path: Path) -> None:
    """While its target has its ``maxNumBatchRequests`` buffered, the ingress holds what it
    read: the lag shows it (the partition's end in Kafka, past the database's offset), and is
    0 again once the function goes on."""
    prefix = names()
    topic = prefix + "in"
    kafka.create_topics([topic], partitions=1)
    value = StringType.serializer().serialize
    seen: list[str] = []
    functions = StatefulFunctions()
    held: list[asyncio.Event] = []

    @functions.bind(ECHO)
    async def hold(context: Context, message: Message) -> None:
        seen.append(message.as_string())
        await held[0].wait()

    def send(*texts: str) -> None:
        kafka.produce(topic, [("a", value(text)) for text in texts])

    async def scenario() -> None:
        held.append(asyncio.Event())
        documents = ingress(kafka.bootstrap, topic, prefix + "group")
        async with running(functions, tmp_path / "db.sqlite", documents, max_batch=1) as runtime:
            connector = connection(runtime, "ingress")
            await asyncio.to_thread(send, "r0")
            await until(lambda: seen == ["r0"], "the function holding the first record")
            await asyncio.to_thread(send, "r1", "r2", "r3")
            await until(lambda: connector.offsets == {(topic, 0): 4}, "three more queued")
            await asyncio.to_thread(send, "r4", "r5")
            await until(lambda: connector.status()["lag"] == 2, "two records held")
            assert connector.offsets == {(topic, 0): 4}
            held[0].set()
            await until(lambda: connector.offsets == {(topic, 0): 6}, "the held records queued")
            await runtime.wait_until_idle()
            assert connector.status()["lag"] == 0
        assert seen == ["r0", "r1", "r2", "r3", "r4", "r5"]

    run(scenario())


def test_a_partition_found_on_a_later_start_starts_at_its_earliest_record(
    kafka: Any, tmp_path: Path
) -> None:
    """``startupPosition`` is for the first start only: a partition added to the topic while
    the runtime was down is read from its first record, the others go on from the database."""
    from confluent_kafka.admin import NewPartitions

    prefix = names()
    topic = prefix + "in"
    kafka.create_topics([topic], partitions=1)
    produce(kafka, topic, "old", partitions=(0,))
    seen: list[str] = []
    documents = ingress(kafka.bootstrap, topic, prefix + "group", "{type: latest}")
    db = tmp_path / "db.sqlite"

    async def first() -> None:
        async with running(echo_functions(seen), db, documents) as runtime:
            connector = connection(runtime, "ingress")
            await until(lambda: connector.offsets == {(topic, 0): 2}, "the ingress at the end")
            produce(kafka, topic, "first", partitions=(0,))
            await until(lambda: connector.offsets == {(topic, 0): 4}, "the new records taken")
            await runtime.wait_until_idle()

    async def second() -> None:
        async with running(echo_functions(seen), db, documents) as runtime:
            connector = connection(runtime, "ingress")
            end = {(topic, 0): 6, (topic, 1): 2}
            await until(lambda: connector.offsets == end, "both partitions at their end")
            # the new partition's start is written once: later records move only their own
            produce(kafka, topic, "third", partitions=(0,))
            end = {(topic, 0): 8, (topic, 1): 2}
            await until(lambda: connector.offsets == end, "the third records taken")
            await runtime.wait_until_idle()
            assert runtime.store.kafka_offsets("com.example/in") == end
            assert connector.status()["partitions"] == 2

    run(first())
    admin = kafka.admin()  # kept until its future is done: its futures die with it
    (future,) = admin.create_partitions([NewPartitions(topic, 2)]).values()
    future.result(timeout=30)
    produce(kafka, topic, "second", partitions=(0, 1))
    run(second())
    assert sorted(text.split(":")[1] for text in seen) == [
        "first-0-0", "first-0-1", "second-0-0", "second-0-1", "second-1-0", "second-1-1",
        "third-0-0", "third-0-1",
    ]  # fmt: skip


def test_a_partition_added_while_the_ingress_runs_is_read_from_its_first_record(
    kafka: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """The ingress looks for partitions added to its topics every ``PARTITIONS_EVERY`` s: one
    found while it runs is read from its first record, whatever the ``startupPosition``
    (``latest`` here, for the partition there at the first start)."""
    from confluent_kafka.admin import NewPartitions
    from statefun_local import kafka as kafka_connectors

    prefix = names()
    topic = prefix + "in"
    kafka.create_topics([topic], partitions=1)
    produce(kafka, topic, "old", partitions=(0,))
    seen: list[str] = []
    documents = ingress(kafka.bootstrap, topic, prefix + "group", "{type: latest}")

    def add_a_partition() -> None:
        admin = kafka.admin()  # kept until its future is done: its futures die with it
        (future,) = admin.create_partitions([NewPartitions(topic, 2)]).values()
        future.result(timeout=30)
        produce(kafka, topic, "new", partitions=(1,))

    async def scenario() -> None:
        async with running(echo_functions(seen), tmp_path / "db.sqlite", documents) as runtime:
            connector = connection(runtime, "ingress")
            await until(lambda: connector.offsets == {(topic, 0): 2}, "the ingress at the end")
            await asyncio.to_thread(add_a_partition)
            monkeypatch.setattr(kafka_connectors, "PARTITIONS_EVERY", 0.0)  # time to look
            end = {(topic, 0): 2, (topic, 1): 2}
            await until(lambda: connector.offsets == end, "the new partition read")
            await runtime.wait_until_idle()
            assert runtime.store.kafka_offsets("com.example/in") == end
            assert connector.status()["partitions"] == 2

    run(scenario())
    assert sorted(text.split(":")[1] for text in seen) == ["new-1-0", "new-1-1"]


def test_a_partition_found_while_the_ingress_runs_leaves_the_others_where_they_are(
    kafka: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """The partitions read since the start go on from where they are when another one is
    found (a topic created, a partition added): none is read again from where it started."""
    from statefun_local import kafka as kafka_connectors

    prefix = names()
    topic, late = prefix + "in", prefix + "late"
    kafka.create_topics([topic], partitions=1)
    seen: list[str] = []
    routes = f"    - {{topic: {late}, valueType: io.statefun.types/string, targets: [{ECHO}]}}"
    documents = ingress(kafka.bootstrap, topic, prefix + "group", extra=routes)

    async def scenario() -> None:
        async with running(echo_functions(seen), tmp_path / "db.sqlite", documents) as runtime:
            connector = connection(runtime, "ingress")
            await until(lambda: connector.state == "connected", "the first topic assigned")
            await asyncio.to_thread(produce, kafka, topic, "before", (0,))
            await until(lambda: len(seen) == 2, "the first records")
            await asyncio.to_thread(kafka.create_topics, [late], 1)
            monkeypatch.setattr(kafka_connectors, "PARTITIONS_EVERY", 0.0)  # time to look
            await until(lambda: connector.status()["partitions"] == 2, "the topic found")
            await asyncio.to_thread(produce, kafka, topic, "after", (0,))
            await until(lambda: any("after-0-1" in text for text in seen), "the last record")

    run(scenario())
    # in the order of the partition: the records before would come again before the last
    assert [text.split(":")[1] for text in seen] == ["before-0-0", "before-0-1", "after-0-0",
                                                     "after-0-1"]  # fmt: skip


# --- the egress --------------------------------------------------------------------------------


def test_an_at_least_once_egress_produces_each_record_once_across_a_restart(
    kafka: Any, tmp_path: Path
) -> None:
    """Keys, values and headers (a null one too) as the function wrote them, a record without
    a key, only this egress' records on its topics (another Kafka egress has its own), and
    the position in the database: a restart produces nothing again. The producer's queue
    holds one record: a batch waits for room, record by record."""
    prefix = names()
    out, audit = prefix + "out", prefix + "audit"
    kafka.create_topics([out, audit], partitions=1)
    seen: list[str] = []
    functions = echo_functions(seen, out=out, audit=audit)
    documents = egress(kafka.bootstrap, extra="  properties: [{queue.buffering.max.messages: 1}]")
    documents += egress(kafka.bootstrap, "com.example/audit", "{type: at-least-once}")
    db = tmp_path / "db.sqlite"

    def message(id_: str, text: str) -> tuple[Address, Any, None]:
        return Address(ECHO, id_), string(text), None

    async def first() -> None:
        async with running(functions, db, documents) as runtime:
            await runtime.send_all([message(f"k{n}", f"v{n}") for n in range(5)])
            await runtime.send_all([message("a", "audit-1"), message("x", "nokey")])
            await runtime.wait_until_idle()
            records = await read(kafka, out, 6)
            assert [(r.key, r.text, r.headers) for r in records] == [
                *[(f"k{n}", f"v{n}", [("h", b"v"), ("null", None)]) for n in range(5)],
                (None, "nokey", [("h", b"v"), ("null", None)]),
            ]
            assert [(r.key, r.text) for r in await read(kafka, audit, 1)] == [(None, "audit-1")]
            connector = next(c for c in runtime.connectors if c.id == "com.example/out")
            last = runtime.store.egress_list()[-1].seq
            await until(lambda: connector.cursor == last, "the egress at the log's end")
            status = connector.status()
            assert (status["semantic"], status["position"], status["records"]) == (
                "at-least-once", last, 6)  # fmt: skip
            assert (status["state"], status["error"]) == ("connected", None)
            assert runtime.store.meta_get("kafka_egress_cursor:com.example/out") == last

    async def second() -> None:
        async with running(functions, db, documents) as runtime:
            await runtime.send_all([message("k9", "v9")])
            await runtime.wait_until_idle()
            records = await read(kafka, out, 7, settle=2)
            assert [r.text for r in records] == [*[f"v{n}" for n in range(5)], "nokey", "v9"]

    run(first())
    run(second())


def test_an_idle_at_least_once_egress_is_connected_once_its_broker_answers(
    kafka: Any, tmp_path: Path, caplog: Any
) -> None:
    """Its producer has sent nothing, but the broker answered: connected, and said once."""

    async def scenario() -> None:
        async with running(echo_functions([]), tmp_path / "db.sqlite",
                           egress(kafka.bootstrap)) as runtime:  # fmt: skip
            connector = connection(runtime, "egress")
            await until(lambda: connector.state == "connected", "connected")
            assert connector.error is None

    with caplog.at_level(logging.INFO, logger="statefun_local.connectors"):
        run(scenario())
    assert [m for m in caplog.messages if "connected" in m] == [
        f"kafka egress com.example/out: connected to {kafka.bootstrap}"
    ]


@pytest.mark.parametrize(
    ("semantic", "partitioner"),
    [("exactly-once", None), ("at-least-once", None), ("at-least-once", "consistent")],
)
def test_a_keyed_record_goes_to_the_partition_the_java_client_picks(
    kafka: Any, tmp_path: Path, semantic: str, partitioner: Optional[str]
) -> None:
    """As the runtime's Java producer places it: murmur2 of the key (librdkafka's own default,
    ``consistent_random``, hashes with CRC32); a ``partitioner`` among the module's properties
    wins (``consistent``: CRC32 of the key)."""
    import zlib

    kit = load_kit()
    out = names() + "out"
    kafka.create_topics([out], partitions=2)
    extra = f"  properties: [{{partitioner: {partitioner}}}]" if partitioner else ""
    timeout = ", transactionTimeout: 1min" if semantic == "exactly-once" else ""
    documents = egress(kafka.bootstrap, semantic=f"{{type: {semantic}{timeout}}}", extra=extra)
    ids = [f"k{n}" for n in range(16)]

    def expected(key: bytes) -> int:
        return zlib.crc32(key) % 2 if partitioner else int(kit.java_partition(key, 2))

    async def scenario() -> None:
        async with running(echo_functions([], out=out), tmp_path / "db.sqlite", documents
                           ) as runtime:  # fmt: skip
            await runtime.send_all([(Address(ECHO, id_), string(id_), None) for id_ in ids])
            await runtime.wait_until_idle()
            placed = {r.key: r.partition for r in await read(kafka, out, len(ids))}
            assert placed == {id_: expected(id_.encode()) for id_ in ids}

    run(scenario())


def test_an_exactly_once_egress_goes_on_from_kafkas_position_when_the_database_is_behind(
    kafka: Any, tmp_path: Path
) -> None:
    """The position committed with the records, on the egress' own compacted topic, is the one
    a restart goes on from when the database's copy is behind (a crash between the two
    commits): nothing is produced twice. The newest committed position counts, not one in a
    transaction a crashed producer left open (aborted by the next one, with its records)."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import ConfigResource

    prefix = names()
    out = prefix + "out"
    kafka.create_topics([out], partitions=1)
    seen: list[str] = []
    functions = echo_functions(seen, out=out)
    documents = egress(kafka.bootstrap, semantic="{type: exactly-once, transactionTimeout: 1min}")
    db = tmp_path / "db.sqlite"
    cursor_key = "kafka_egress_cursor:com.example/out"

    async def first() -> str:
        async with running(functions, db, documents) as runtime:
            for n in range(3):  # a transaction each: the newest position is the one read back
                await runtime.send(Address(ECHO, f"k{n}"), string(f"v{n}"))
                await runtime.wait_until_idle()
                last = runtime.store.egress_list()[-1].seq
                await until(lambda last=last: runtime.store.meta_get(cursor_key) == last,
                            "the position saved")  # fmt: skip
            assert [r.text for r in await read(kafka, out, 3)] == ["v0", "v1", "v2"]
            connector = connection(runtime, "egress")
            status = connector.status()
            assert (status["semantic"], status["position"], status["records"]) == (
                "exactly-once", last, 3)  # fmt: skip
            instance = runtime.store.meta_get("instance")
            assert re.fullmatch("[0-9a-f]{32}", instance)
            assert re.fullmatch(rf"statefun-local\.{instance}\.com\.example\.out\.[0-9a-f]{{16}}",
                                connector.cursor_topic)  # fmt: skip
            return str(connector.cursor_topic)

    async def second() -> None:
        async with running(functions, db, documents) as runtime:
            connector = connection(runtime, "egress")
            await until(lambda: connector.state == "connected", "the egress connected")
            assert connector.cursor == last
            await runtime.send(Address(ECHO, "k3"), string("v3"))
            await runtime.wait_until_idle()
            records = await read(kafka, out, 4, settle=2)
            assert [r.text for r in records] == ["v0", "v1", "v2", "v3"]

    cursor_topic = run(first())
    store = SqliteStore.open(db)
    last = store.meta_get(cursor_key)
    instance = store.meta_get("instance")
    with store.transaction():
        store.meta_put(cursor_key, 0)  # as if the runtime died before the database's copy
    store.close()
    positions = kafka.read(cursor_topic, 3)
    assert [(r.key, r.text) for r in positions][-1:] == [("position", str(last))]
    admin = kafka.admin()
    (described,) = admin.describe_configs([ConfigResource("topic", cursor_topic)]).values()
    config = described.result(timeout=30)
    assert (config["cleanup.policy"].value, config["segment.ms"].value) == ("compact", "3600000")
    assert len(admin.list_topics(cursor_topic, timeout=30).topics[cursor_topic].partitions) == 1
    # the egress' producer died with a transaction open, a record and a position in it
    name = f"statefun-local.{instance}.com.example/out"  # the egress' transactional.id
    crashed = Producer({"bootstrap.servers": kafka.bootstrap, "transactional.id": name})
    crashed.init_transactions(30)
    crashed.begin_transaction()
    crashed.produce(out, key=b"k9", value=StringType.serializer().serialize("v9"))
    crashed.produce(cursor_topic, key=b"position", value=str(last + 1000).encode())
    assert crashed.flush(30) == 0
    run(second())


def test_a_transaction_timeout_the_broker_does_not_allow_fails_the_egress_and_says_why(
    kafka: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The module's transactionTimeout is the producer's: past the broker's
    transaction.max.timeout.ms (15 minutes unless set) its transactions can not start."""
    documents = egress(kafka.bootstrap, semantic="{type: exactly-once, transactionTimeout: 20min}")

    async def scenario() -> str:
        async with running(echo_functions([]), tmp_path / "db.sqlite", documents) as runtime:
            connector = connection(runtime, "egress")
            await until(lambda: connector.state == "failed", "the egress failed")
            return str(connector.error)

    error = run(scenario())
    assert error.startswith("KafkaException: ") and "INVALID_TRANSACTION_TIMEOUT" in error
    # librdkafka's own FATAL line, for the producer the egress dropped, no longer goes to
    # stderr beside our log: its log is served by the client's poll, and that one is done
    assert "FATAL" not in capfd.readouterr().err


def test_an_exactly_once_producer_that_failed_is_fenced_by_the_next_and_the_log_says_so(
    kafka: Any, tmp_path: Path, caplog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its transaction holds a record to a topic the broker does not have (yet): it fails,
    and the producer made next fences it, as it should (librdkafka calls that fatal, for the
    one fenced); our log says so in plain words, and the record is produced once the topic is
    there."""
    from statefun_local import kafka as connectors_module

    monkeypatch.setattr(connectors_module, "TIMEOUT", 3)
    out = names() + "out"
    documents = egress(kafka.bootstrap, semantic="{type: exactly-once, transactionTimeout: 1min}")

    async def scenario() -> None:
        async with running(echo_functions([], out=out), tmp_path / "db.sqlite",
                           documents) as runtime:  # fmt: skip
            connector = connection(runtime, "egress")
            await runtime.send(Address(ECHO, "k"), string("v"))
            await until(lambda: connector.state == "failed", "the egress failed")
            await until(lambda: any("fenced by this one" in m for m in caplog.messages),
                        "the next producer initialized")  # fmt: skip
            await asyncio.to_thread(kafka.create_topics, [out], 1)
            await until(lambda: connector.records == 1, "the record produced")

    with caplog.at_level(logging.INFO, logger="statefun_local"):
        run(scenario())
    assert [r.text for r in kafka.read(out, 1, settle=1)] == ["v"]
    said = {m for m in caplog.messages if "fenced" in m}
    assert said == {
        "kafka egress com.example/out: the producer before, which failed, is fenced "
        "by this one as it should be: what it left open is aborted, its records "
        "produced again"
    }


@pytest.mark.parametrize("id_", ["com.example/out put", "com.example/" + "o" * 300])
def test_an_exactly_once_egress_whose_id_is_no_topic_name_has_a_position_topic_all_the_same(
    kafka: Any, tmp_path: Path, id_: str
) -> None:
    """The position topic is named after the egress' id: one with a character Kafka refuses
    in a topic name (a space), or too long for one, gets a legal name of its own, and its
    records are produced, once across a restart."""
    out = names() + "out"
    kafka.create_topics([out], partitions=1)
    documents = egress(kafka.bootstrap, id_, "{type: exactly-once, transactionTimeout: 1min}")
    functions = StatefulFunctions()

    @functions.bind(ECHO)
    def send(context: Context, message: Message) -> None:
        text = message.as_string()
        context.send_egress(kafka_egress_message(id_, out, text, key=context.address.id))

    async def session(text: str) -> str:
        async with running(functions, tmp_path / "db.sqlite", documents) as runtime:
            connector = connection(runtime, "egress")
            await runtime.send(Address(ECHO, "k"), string(text))
            await runtime.wait_until_idle()
            await until(lambda: connector.records == 1, "the record produced")
            return str(connector.cursor_topic)

    topics = [run(session("v0")), run(session("v1"))]
    assert topics[0] == topics[1]
    assert re.fullmatch(r"[a-zA-Z0-9._-]{1,249}", topics[0]), topics[0]
    assert [r.text for r in kafka.read(out, 2, 60, 2)] == ["v0", "v1"]


def test_an_exactly_once_egress_logs_in_with_every_client_it_has(
    kafka: Any, tmp_path: Path
) -> None:
    """librdkafka's own login properties (``sasl.username``, ``sasl.password``) are those of
    each of an exactly-once egress' clients, on a listener that takes nobody without them: the
    producer, and the clients that create its position topic and read it back on a restart."""
    kit = sys.modules["statefun_e2e_kit"]
    out = names() + "out"
    kafka.create_topics([out], partitions=1)
    login = f"""  properties:
    - security.protocol: SASL_PLAINTEXT
    - sasl.mechanism: PLAIN
    - sasl.username: {kit.SASL_USER}
    - sasl.password: {kit.SASL_PASSWORD}
"""
    semantic = "{type: exactly-once, transactionTimeout: 1min}"
    documents = egress(kafka.sasl_bootstrap, semantic=semantic, extra=login)

    async def session(text: str) -> None:
        async with running(echo_functions([], out=out), tmp_path / "db.sqlite",
                           documents) as runtime:  # fmt: skip
            connector = connection(runtime, "egress")
            await runtime.send(Address(ECHO, "k"), string(text))
            await runtime.wait_until_idle()
            await until(lambda: connector.records == 1, "the record produced")

    run(session("v0"))
    run(session("v1"))
    assert [r.text for r in kafka.read(out, 2, 60, 2)] == ["v0", "v1"]


def test_a_position_topic_not_created_in_time_fails_the_exactly_once_egress_and_says_so(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The position topic is created first: a broker that has not created it ``TIMEOUT`` s
    after it was asked for (nobody listens at the address here) fails the egress, which says
    which topic, to start over with a new client."""
    from statefun_local import kafka as kafka_connectors

    monkeypatch.setattr(kafka_connectors, "TIMEOUT", 1)
    semantic = "{type: exactly-once, transactionTimeout: 1min}"
    documents = egress(f"127.0.0.1:{free_port()}", semantic=semantic)

    async def scenario() -> tuple[str, str]:
        async with running(echo_functions([]), tmp_path / "db.sqlite", documents) as runtime:
            connector = connection(runtime, "egress")
            await until(lambda: connector.state == "failed", "the egress failed")
            return str(connector.error), str(runtime.store.meta_get("instance"))

    error, instance = run(scenario())
    topic = kafka_connectors._topic_for(f"statefun-local.{instance}.com.example/out")
    assert error.startswith(
        f"TimeoutError: the broker did not create the topic {topic} within 1 s"
    ), error


def test_a_position_topic_kafka_refuses_to_create_fails_the_egress_and_says_why(
    kafka: Any, tmp_path: Path
) -> None:
    """Kafka refuses a topic whose name is another's with a ``.`` for a ``_`` (their metrics
    would have one name): the exactly-once egress does not go on without its position topic,
    it fails and shows what Kafka said."""
    db = tmp_path / "db.sqlite"
    instance = uuid.uuid4().hex
    store = SqliteStore.open(db)
    with store.transaction():
        store.meta_put("instance", instance)
    store.close()
    from statefun_local.kafka import _topic_for

    other = _topic_for(f"statefun-local.{instance}.com.example/out").replace(".", "_")
    kafka.create_topics([other], partitions=1)
    semantic = "{type: exactly-once, transactionTimeout: 1min}"
    documents = egress(kafka.bootstrap, semantic=semantic)

    async def scenario() -> str:
        async with running(echo_functions([]), db, documents) as runtime:
            connector = connection(runtime, "egress")
            await until(lambda: connector.state == "failed", "the egress failed")
            return str(connector.error)

    error = run(scenario())
    assert error.startswith("KafkaException: "), error
    assert f"collides with existing topic: {other}" in error, error


def test_a_position_not_among_the_newest_offsets_of_its_topic_is_read_from_its_start(
    kafka: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """The position is looked for in the last ``CURSOR_WINDOW`` offsets of its topic (two
    here); when they hold no committed one (the record of a transaction a crashed producer left
    open, and the marker that aborts it), in the whole topic: the newest committed position
    still counts, and nothing is produced twice."""
    from confluent_kafka import Producer
    from statefun_local import kafka as kafka_connectors

    monkeypatch.setattr(kafka_connectors, "CURSOR_WINDOW", 2)
    out = names() + "out"
    kafka.create_topics([out], partitions=1)
    semantic = "{type: exactly-once, transactionTimeout: 1min}"
    documents = egress(kafka.bootstrap, semantic=semantic)
    db = tmp_path / "db.sqlite"
    cursor_key = "kafka_egress_cursor:com.example/out"

    async def first() -> str:
        async with running(echo_functions([], out=out), db, documents) as runtime:
            for n in range(2):  # a transaction each
                await runtime.send(Address(ECHO, f"k{n}"), string(f"v{n}"))
                await runtime.wait_until_idle()
                last = runtime.store.egress_list()[-1].seq
                await until(lambda last=last: runtime.store.meta_get(cursor_key) == last,
                            "the position saved")  # fmt: skip
            return str(connection(runtime, "egress").cursor_topic)

    async def second() -> None:
        async with running(echo_functions([], out=out), db, documents) as runtime:
            connector = connection(runtime, "egress")
            await until(lambda: connector.state == "connected", "the egress connected")
            assert connector.cursor == last
            await runtime.send(Address(ECHO, "k2"), string("v2"))
            await runtime.wait_until_idle()
            records = await read(kafka, out, 3, settle=2)
            assert [r.text for r in records] == ["v0", "v1", "v2"]

    cursor_topic = run(first())
    store = SqliteStore.open(db)
    last = store.meta_get(cursor_key)
    instance = store.meta_get("instance")
    with store.transaction():
        store.meta_put(cursor_key, 0)  # as if the runtime died before the database's copy
    store.close()
    name = f"statefun-local.{instance}.com.example/out"  # the egress' transactional.id
    crashed = Producer({"bootstrap.servers": kafka.bootstrap, "transactional.id": name})
    crashed.init_transactions(30)
    crashed.begin_transaction()
    crashed.produce(cursor_topic, key=b"position", value=str(last + 1000).encode())
    assert crashed.flush(30) == 0
    run(second())


def test_a_position_topic_name_is_the_id_made_legal_then_its_digest() -> None:
    """``/`` becomes ``.``, a character Kafka refuses ``_``, at most 249 characters, then the
    first 16 hex digits of the id's SHA-256: ids Kafka would confuse get topics of their own."""
    from statefun_local.kafka import _topic_for

    def digest(name: str) -> str:
        return hashlib.sha256(name.encode()).hexdigest()[:16]

    assert _topic_for("com.example/out") == "com.example.out." + digest("com.example/out")
    assert _topic_for("com.example/my out") == "com.example.my_out." + digest("com.example/my out")
    assert _topic_for("x" * 250) == "x" * 232 + "." + digest("x" * 250)
    assert len(_topic_for("x" * 250)) == 249
    confused = ["com.example/out", "com/example.out", "com.example/my_out", "com.example/my.out"]
    topics = [_topic_for(name) for name in confused]
    # Kafka refuses a topic whose name differs from another's only by "." and "_"
    assert len({topic.replace(".", "_") for topic in topics}) == len(confused)


def test_two_exactly_once_egresses_whose_ids_kafka_would_confuse_each_keep_their_own_position(
    kafka: Any, tmp_path: Path
) -> None:
    """``com.example/out`` and ``com/example.out``: each egress' position is its own (they
    shared one topic, and one then went on from the other's position, skipping records)."""
    prefix = names()
    out_a, out_b = prefix + "a", prefix + "b"
    kafka.create_topics([out_b], partitions=1)  # A's topic is not there yet: A fails
    functions = StatefulFunctions()

    @functions.bind(ECHO)
    def send(context: Context, message: Message) -> None:
        text = message.as_string()
        out = ("com.example/out", out_a) if text.startswith("a") else ("com/example.out", out_b)
        context.send_egress(kafka_egress_message(out[0], out[1], text))

    exactly_once = "{type: exactly-once, transactionTimeout: 1min}"
    documents = (egress(kafka.bootstrap, "com.example/out", exactly_once,
                        extra="  properties: [{message.timeout.ms: 1000}]")
                 + egress(kafka.bootstrap, "com/example.out", exactly_once))  # fmt: skip

    async def scenario() -> None:
        async with running(functions, tmp_path / "db.sqlite", documents) as runtime:
            a, b = (next(c for c in runtime.connectors if c.id == id_)
                    for id_ in ("com.example/out", "com/example.out"))  # fmt: skip
            await runtime.send(Address(ECHO, "k"), string("a1"))
            await until(lambda: a.state == "failed", "A failed: its topic is not there")
            for text in ("b1", "b2"):
                await runtime.send(Address(ECHO, "k"), string(text))
            await until(lambda: b.records == 2, "B's records produced")
            assert a.cursor_topic != b.cursor_topic
            await asyncio.to_thread(kafka.create_topics, [out_a], 1)
            await until(lambda: a.records == 1, "A's record produced")

    run(scenario())
    assert [r.text for r in kafka.read(out_a, 1, 60, 1)] == ["a1"]
    assert [r.text for r in kafka.read(out_b, 2, 60, 1)] == ["b1", "b2"]


def test_the_status_keeps_the_last_ten_records_skipped(kafka: Any, tmp_path: Path) -> None:
    prefix = names()
    topic = prefix + "in"
    kafka.create_topics([topic], partitions=1)
    kafka.produce(topic, [(f"t{n}", None) for n in range(12)])
    documents = ingress(kafka.bootstrap, topic, prefix + "group")

    async def scenario() -> dict[str, Any]:
        async with running(echo_functions([]), tmp_path / "db.sqlite", documents) as runtime:
            connector = connection(runtime, "ingress")
            await until(lambda: connector.offsets == {(topic, 0): 12}, "every record read")
            return connector.status()  # type: ignore[no-any-return]

    status = run(scenario())
    why = "a record without a value (a tombstone) can not be a message"
    assert status["skipped"] == [f"{topic}/0@{n}: {why}" for n in range(2, 12)]
    assert status["records"] == 12


def test_properties_librdkafka_does_not_know_are_named_and_left_out(
    kafka: Any, tmp_path: Path, caplog: Any
) -> None:
    """A module.yaml written for the Java client: its own properties (one by one, however
    many) are named in the log, once however many clients a connector makes (an exactly-once
    egress has three: its producer, and those that create and read its position topic), and
    left out; the others kept."""
    prefix = names()
    topic, out = prefix + "in", prefix + "out"
    kafka.create_topics([topic, out], partitions=1)
    produce(kafka, topic, "old", partitions=(0,))
    seen: list[str] = []
    java = "  properties: [{key.serializer: x}, {client.id: mine}, {key.deserializer: y}]"
    documents = ingress(kafka.bootstrap, topic, prefix + "group", extra=java)
    kerberos = "com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true;"
    documents += egress(kafka.bootstrap, semantic="{type: exactly-once, transactionTimeout: 1min}",
                        extra="  properties: [{value.serializer: z}, "
                        f"{{sasl.jaas.config: '{kerberos}'}}]")  # fmt: skip

    async def scenario() -> None:
        with caplog.at_level(logging.WARNING, logger="statefun_local.kafka"):
            async with running(echo_functions(seen, out=out), tmp_path / "db.sqlite",
                               documents) as runtime:  # fmt: skip
                records = await read(kafka, out, 2, settle=0)
                assert [r.text for r in records] == ["old-0-0", "old-0-1"]
                assert [c.state for c in runtime.connectors] == ["connected", "connected"]

    run(scenario())
    left_out = sorted(r.getMessage() for r in caplog.records if "left out" in r.getMessage())
    assert left_out == [
        "kafka egress com.example/out: property 'value.serializer' is not one librdkafka "
        "knows: left out",
        "kafka egress com.example/out: sasl.jaas.config is not a PLAIN or SCRAM login with a "
        "username and password, which is all librdkafka takes of it: left out",
        "kafka ingress com.example/in: property 'key.deserializer' is not one librdkafka "
        "knows: left out",
        "kafka ingress com.example/in: property 'key.serializer' is not one librdkafka "
        "knows: left out",
    ]


@pytest.mark.parametrize("semantic", ["at-least-once", "exactly-once, transactionTimeout: 1min"])
def test_a_record_kafka_does_not_take_fails_the_egress_until_it_does(
    kafka: Any, tmp_path: Path, semantic: str
) -> None:
    """A record to a topic that is not there (the broker creates none) fails its batch: shown,
    the position kept, and tried again until the topic is there; then it is there once."""
    prefix = names()
    out = prefix + "out"
    seen: list[str] = []
    documents = egress(kafka.bootstrap, semantic=f"{{type: {semantic}}}",
                       extra="  properties: [{message.timeout.ms: 1000}]")  # fmt: skip

    async def scenario() -> None:
        async with running(echo_functions(seen, out=out), tmp_path / "db.sqlite",
                           documents) as runtime:  # fmt: skip
            connector = connection(runtime, "egress")
            await runtime.send(Address(ECHO, "k"), string("v"))
            await until(lambda: connector.state == "failed", "the egress failed")
            assert connector.error.startswith(f"MissingTopicError: no topic {out} on the broker")
            if semantic == "at-least-once":
                assert f"(RuntimeError: records not produced: to {out}: " in connector.error
            else:  # the transaction's commit fails (then it is aborted), saying why
                assert "(KafkaException: " in connector.error, connector.error
                assert "1 message(s) failed delivery" in connector.error
            assert connector.cursor == 0
            assert runtime.store.meta_get("kafka_egress_cursor:com.example/out") is None
            await asyncio.to_thread(kafka.create_topics, [out], 1)
            records = await read(kafka, out, 1, settle=2)
            assert [(r.key, r.text) for r in records] == [("k", "v")]
            await until(lambda: connector.state == "connected", "the egress connected again")
            assert connector.cursor == runtime.store.egress_list()[-1].seq

    run(scenario())


@pytest.mark.parametrize("semantic", ["at-least-once", "exactly-once, transactionTimeout: 1min"])
def test_a_record_to_a_topic_the_broker_does_not_have_fails_the_egress_naming_the_topic(
    kafka: Any, tmp_path: Path, semantic: str, monkeypatch: Any
) -> None:
    """librdkafka gives up on such a record only after its ``message.timeout.ms`` (5 minutes),
    and says no more of it before than that it is not delivered: the failure names the topic
    (as the Java client does, which the runtime's job fails with)."""
    from statefun_local import kafka as kafka_connectors

    monkeypatch.setattr(kafka_connectors, "TIMEOUT", 5)
    out = names() + "out"
    seen: list[str] = []
    documents = egress(kafka.bootstrap, semantic=f"{{type: {semantic}}}")

    async def scenario() -> None:
        async with running(echo_functions(seen, out=out), tmp_path / "db.sqlite",
                           documents) as runtime:  # fmt: skip
            connector = connection(runtime, "egress")
            await runtime.send(Address(ECHO, "k"), string("v"))
            await until(lambda: connector.state == "failed", "the egress failed")
            assert connector.error.startswith(
                f"MissingTopicError: no topic {out} on the broker, which creates none: the "
                "records wait until it is created ("
            ), connector.error
            assert connector.cursor == 0

    run(scenario())


def test_a_record_not_acknowledged_in_time_fails_the_at_least_once_egress(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A record the broker has not acknowledged ``TIMEOUT`` s after it was produced (nobody
    listens at the address here) fails its batch, to be produced again by a new producer: the
    position stays where it was."""
    from statefun_local import kafka as kafka_connectors

    monkeypatch.setattr(kafka_connectors, "TIMEOUT", 1)
    seen: list[str] = []
    documents = egress(f"127.0.0.1:{free_port()}")

    async def scenario() -> None:
        async with running(echo_functions(seen, out="out"), tmp_path / "db.sqlite",
                           documents) as runtime:  # fmt: skip
            connector = connection(runtime, "egress")
            await runtime.send(Address(ECHO, "k"), string("v"))
            failure = "RuntimeError: 1 records not acknowledged within 1 s"
            await until(lambda: str(connector.error).startswith(failure), "the batch failed")
            assert connector.cursor == 0
            assert runtime.store.meta_get("kafka_egress_cursor:com.example/out") is None

    run(scenario())
    assert seen == ["k:v"]


def test_a_property_librdkafka_refuses_fails_the_connector_and_says_why(tmp_path: Path) -> None:
    seen: list[str] = []
    bad = "  properties: [{session.timeout.ms: soon}]"
    documents = ingress(f"127.0.0.1:{free_port()}", "in", "group", extra=bad)

    async def scenario() -> None:
        async with running(echo_functions(seen), tmp_path / "db.sqlite", documents) as runtime:
            connector = connection(runtime, "ingress")
            await until(lambda: connector.state == "failed", "the ingress failed")
            assert connector.error.startswith("KafkaException: ")
            assert 'Invalid value for configuration property "session.timeout.ms"' in (
                connector.error
            )

    run(scenario())


def java_sasl(password: str) -> str:
    """The properties a module.yaml for the Java client (the StateFun runtime's) logs in with."""
    kit = sys.modules["statefun_e2e_kit"]
    login = "org.apache.kafka.common.security.plain.PlainLoginModule required"
    return f"""  properties:
    - security.protocol: SASL_PLAINTEXT
    - sasl.mechanism: PLAIN
    - sasl.jaas.config: '{login} username="{kit.SASL_USER}" password="{password}";'
"""


def test_the_java_clients_sasl_jaas_config_logs_in(kafka: Any, tmp_path: Path) -> None:
    """librdkafka refuses a JAAS configuration: its PLAIN login's username and password are
    what it is given, for the ingress and the egress; a wrong password is shown, not taken."""
    kit = sys.modules["statefun_e2e_kit"]
    prefix = names()
    topic, out = prefix + "in", prefix + "out"
    kafka.create_topics([topic, out], partitions=1)
    produce(kafka, topic, "old", partitions=(0,))
    seen: list[str] = []
    sasl = java_sasl(kit.SASL_PASSWORD)
    documents = ingress(kafka.sasl_bootstrap, topic, prefix + "group", extra=sasl) + egress(
        kafka.sasl_bootstrap, extra=sasl
    )

    async def scenario() -> list[Any]:
        async with running(echo_functions(seen, out), tmp_path / "db.sqlite", documents):
            return await read(kafka, out, 2)

    records = run(scenario())
    assert seen == ["old-0-0:old-0-0", "old-0-1:old-0-1"]
    assert [(record.key, record.text) for record in records] == [
        ("old-0-0", "old-0-0"), ("old-0-1", "old-0-1"),
    ]  # fmt: skip

    wrong = ingress(kafka.sasl_bootstrap, topic, prefix + "other", extra=java_sasl("wrong"))

    async def refused() -> str:
        async with running(echo_functions(seen), tmp_path / "other.sqlite", wrong) as runtime:
            connector = connection(runtime, "ingress")
            await until(lambda: connector.state == "failed", "the login refused")
            return str(connector.error)

    error = run(refused())
    assert error.startswith("KafkaException: "), error
    assert error.endswith("SASL authentication error: Authentication failed: Invalid username "
                          "or password)"), error  # fmt: skip
    assert "wrong" not in error and kit.SASL_PASSWORD not in error
    assert len(seen) == 2


def test_a_records_trace_context_is_the_first_well_formed_one_and_a_functions_own_wins(
    kafka: Any, tmp_path: Path
) -> None:
    """The first ``traceparent`` and the first ``tracestate`` with a value are the trace
    context; no ``tracestate`` header when it is empty, or not printable ASCII; a function
    that sets either header keeps its own, alone (the function server here adds no trace of
    its own)."""
    prefix = names()
    topic, out = prefix + "in", prefix + "out"
    kafka.create_topics([topic, out], partitions=1)
    value = StringType.serializer().serialize
    records = {
        "first": [("tracestate", None), ("traceparent", TRACEPARENT),
                  ("traceparent", OTHER_TRACEPARENT), ("tracestate", b"a=1"),
                  ("tracestate", b"b=2")],
        "nostate": [("traceparent", TRACEPARENT)],
        "own": [("traceparent", TRACEPARENT), ("tracestate", b"a=1")],
        "malformed": [("traceparent", b"00-not-a-trace"), ("tracestate", b"a=1")],
        # not a header a call could carry: sent on, every attempt of the call would fail
        "control": [("traceparent", TRACEPARENT), ("tracestate", b"a=1\r\nx: y\x01")],
    }  # fmt: skip
    for key, headers in records.items():
        kafka.produce(topic, [(key, value(key))], headers=headers)
    seen: list[str] = []
    documents = ingress(kafka.bootstrap, topic, prefix + "group") + egress(kafka.bootstrap)

    async def scenario() -> dict[str, Any]:
        async with running(echo_functions(seen, out=out), tmp_path / "db.sqlite", documents):
            return {r.key: r.headers[2:] for r in await read(kafka, out, 5, settle=0)}

    assert run(scenario()) == {
        "first": [("traceparent", TRACEPARENT), ("tracestate", b"a=1")],
        "nostate": [("traceparent", TRACEPARENT)],
        "own": [("tracestate", b"mine")],
        "malformed": [],
        "control": [("traceparent", TRACEPARENT)],
    }


def test_before_its_first_attempt_each_connector_shows_what_it_is(tmp_path: Path) -> None:
    """The status right after the start, before any connector ran: connecting, no lag yet
    (no partition assigned), the egress at position 0."""
    address = f"127.0.0.1:{free_port()}"
    documents = ingress(address, "in", "group") + egress(address)

    async def scenario() -> list[dict[str, Any]]:
        async with running(echo_functions([]), tmp_path / "db.sqlite", documents) as runtime:
            return runtime.status()["connections"]  # type: ignore[no-any-return]

    shared = {"system": "kafka", "broker": address, "state": "connecting", "error": None,
              "records": 0}  # fmt: skip
    assert run(scenario()) == [
        {**shared, "kind": "ingress", "id": "com.example/in", "group": "group", "topics": ["in"],
         "partitions": 0, "lag": None, "skipped": []},
        {**shared, "kind": "egress", "id": "com.example/out", "semantic": "at-least-once",
         "position": 0},
    ]  # fmt: skip


@pytest.mark.parametrize("semantic", ["at-least-once", "exactly-once, transactionTimeout: 1min"])
def test_a_broker_shown_unreachable_is_shown_connected_once_it_answers_though_all_is_idle(
    kafka: Any, tmp_path: Path, semantic: str
) -> None:
    """librdkafka says when a connection fails, never when one works again, and it can say it
    late: after the broker came back and the connector had started over (seen when the broker
    restarts). With no record to read or produce, each connector asks the broker again, and
    shows it connected when it answers."""
    from confluent_kafka import KafkaError

    prefix = names()
    topic = prefix + "in"
    kafka.create_topics([topic], partitions=1)
    documents = (ingress(kafka.bootstrap, topic, prefix + "group")
                 + egress(kafka.bootstrap, semantic=f"{{type: {semantic}}}"))  # fmt: skip
    refused = KafkaError(KafkaError._TRANSPORT, f"{kafka.bootstrap}/bootstrap: Connect to "
                         f"ipv4#{kafka.bootstrap} failed: Connection refused")  # fmt: skip

    async def back(runtime: LocalRuntime, kind: str) -> None:
        connector = connection(runtime, kind)
        await until(lambda: connector.state == "connected", f"the {kind} connected")
        connector._on_error(refused)  # as librdkafka calls it, a connection late
        assert connector.state == "unreachable"
        await until(lambda: connector.state == "connected", f"the {kind} back", 20)
        assert connector.error is None

    async def scenario() -> None:
        async with running(echo_functions([]), tmp_path / "db.sqlite", documents) as runtime:
            for kind in ("ingress", "egress"):
                await back(runtime, kind)

    run(scenario())


def test_an_egress_whose_broker_is_unreachable_stays_so_while_it_passes_others_records(
    tmp_path: Path, caplog: Any
) -> None:
    """Moving its position past another egress' records asks nothing of its broker: it goes on
    showing it unreachable (it was shown, and logged, connected, until librdkafka said it
    again: a log of "connected to" and "unreachable" for every record of another egress)."""
    address = f"127.0.0.1:{free_port()}"
    documents = egress(address) + egress(address, id_="com.example/audit")

    async def scenario() -> None:
        async with running(echo_functions([], out="out", audit="audit"), tmp_path / "db.sqlite",
                           documents) as runtime:  # fmt: skip
            out = next(c for c in runtime.connectors if c.id == "com.example/out")
            await until(lambda: out.state == "unreachable", "the broker shown unreachable")
            await runtime.send(Address(ECHO, "k"), string("audit-1"))
            await until(lambda: out.cursor == 1, "the audit record passed")
            assert out.state == "unreachable", out.state

    with caplog.at_level(logging.INFO, logger="statefun_local"):
        run(scenario())
    said = [r.getMessage() for r in caplog.records if "egress com.example/out" in r.getMessage()]
    first = next(n for n, line in enumerate(said) if "unreachable" in line)
    assert not [line for line in said[first:] if "connected to" in line], said


def test_a_problem_librdkafka_says_again_with_how_often_it_kept_quiet_is_logged_once(
    tmp_path: Path, caplog: Any
) -> None:
    """librdkafka says a problem again with when, and how many times it kept quiet: "(after
    303ms in state AUTH_REQ, 1 identical error(s) suppressed)", as confluent-kafka 2.3 said of
    a refused login. That is the same problem: shown without it, and not logged again."""
    from confluent_kafka import KafkaError

    address = f"127.0.0.1:{free_port()}"
    refused = f"{address}/bootstrap: Connect to ipv4#{address} failed: Connection refused"
    retries = ["after 1021ms in state CONNECT, 1 identical error(s) suppressed",
               "after 3ms in state CONNECT, 7 identical error(s) suppressed"]  # fmt: skip

    async def scenario() -> None:
        async with running(echo_functions([]), tmp_path / "db.sqlite", egress(address)) as runtime:
            out = connection(runtime, "egress")
            await until(lambda: out.state == "unreachable", "the broker shown unreachable")
            for retry in retries:
                out._on_error(KafkaError(KafkaError._TRANSPORT, f"{refused} ({retry})"))
                assert out.error == f"broker {address} unreachable: {refused}"

    with caplog.at_level(logging.WARNING, logger="statefun_local"):
        run(scenario())
    said = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert said == [f"kafka egress com.example/out: broker {address} unreachable: {refused} "
                    "(retrying)"]  # fmt: skip


def test_an_at_least_once_egress_whose_broker_is_down_at_start_is_not_shown_connected(
    tmp_path: Path, caplog: Any
) -> None:
    """Records of another egress waiting in the log when it starts: passing them asked nothing
    of its broker, nobody listening there. It was shown, and logged, "connected to" it (before
    librdkafka said it was unreachable), as a connector still connecting was."""
    address = f"127.0.0.1:{free_port()}"
    documents = egress(address) + egress(address, id_="com.example/audit")
    db = tmp_path / "db.sqlite"

    async def scenario() -> None:
        async with FunctionServer(echo_functions([], out="out", audit="audit")) as server:
            module = parse_module(endpoint(server.url) + documents)
            async with LocalRuntime(module, db, offline=True) as runtime:  # only stored
                await runtime.send(Address(ECHO, "k"), string("audit-1"))
                await runtime.wait_until_idle()
        async with running(echo_functions([]), db, documents) as runtime:
            out = next(c for c in runtime.connectors if c.id == "com.example/out")
            await until(lambda: out.cursor == 1, "the audit record passed")
            await until(lambda: out.state == "unreachable", "the broker shown unreachable")

    with caplog.at_level(logging.INFO, logger="statefun_local"):
        run(scenario())
    said = [r.getMessage() for r in caplog.records if "egress com.example/out" in r.getMessage()]
    assert not [line for line in said if "connected to" in line], said


def test_an_at_least_once_egress_whose_broker_answers_late_is_connected_once_it_answers(
    kafka: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker did not answer the egress' first look within its second (``_answers``, made
    to say so here: a broker that slow can not be had on demand), and librdkafka reports no
    error: the egress, idle, asks again, and is connected once the broker answers. (It stayed
    connecting until it had records to pass.)"""
    from statefun_local import kafka as connectors_module

    monkeypatch.setattr(connectors_module, "_answers", lambda producer: False)

    async def scenario() -> None:
        async with running(echo_functions([]), tmp_path / "db.sqlite",
                           egress(kafka.bootstrap)) as runtime:  # fmt: skip
            connector = connection(runtime, "egress")
            await until(lambda: connector.state == "connected", "connected", timeout=20)
            assert connector.error is None

    run(scenario())


@pytest.mark.parametrize(
    ("address", "says"),
    [(f"127.0.0.1:{free_port()}", "Connection refused"), ("broker.invalid:9092", "resolve")],
    ids=["refused", "unresolved"],
)
def test_a_broker_nobody_listens_on_is_shown_and_the_runtime_runs_on(
    tmp_path: Path, caplog: Any, address: str, says: str
) -> None:
    """Each of librdkafka's words for it (the connection refused, a name that does not
    resolve) is "unreachable", and "every broker is down", which follows, says nothing more; an
    idle egress shows it too (its producer is polled while nothing is new), and is not said to
    be connected first (it was, in the log, before its producer had tried the broker)."""
    seen: list[str] = []
    shown = f"kafka egress com.example/out: broker {address} unreachable: "

    def said() -> list[str]:
        lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        return [line for line in lines if line.startswith("kafka egress")]

    async def scenario() -> None:
        async with running(echo_functions(seen), tmp_path / "db.sqlite",
                           egress(address)) as runtime:  # fmt: skip
            connector = connection(runtime, "egress")
            await until(lambda: any(says in line for line in said()), "the problem said")
            assert connector.state == "unreachable"
            assert connector.error.startswith(f"broker {address} unreachable: ")
            status = runtime.status()["connections"][0]
            assert (status["state"], status["position"]) == ("unreachable", 0)
            await runtime.send(Address(ECHO, "x"), string("hi"))
            await runtime.wait_until_idle()
        assert seen == ["x:hi"]
        assert all(line.startswith(shown) for line in said()), said()
        assert not any("brokers are down" in line for line in said()), said()
        # its producer had nothing to send: it was never connected, nor said to be
        assert not any("connected" in r.getMessage() for r in caplog.records), caplog.messages

    with caplog.at_level(logging.INFO, logger="statefun_local.connectors"):
        run(scenario())


# --- what every connector shares ---------------------------------------------------------------


class Flaky(Connector):
    """A connector whose client fails ``failures`` times, then connects and returns."""

    system, kind = "kafka", "ingress"

    def __init__(self, failures: int) -> None:
        super().__init__(runtime=None, id_="com.example/in", address="broker:9092")  # type: ignore[arg-type]
        self.failures = failures
        self.attempts = 0

    async def _run(self) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionError(f"attempt {self.attempts}")
        self.connected()


def test_the_backoff_doubles_from_one_failure_to_the_next(caplog: Any) -> None:
    connector = Flaky(failures=3)

    async def scenario() -> None:
        task = asyncio.ensure_future(connector.run())
        await until(lambda: connector.attempts == 4, "a fourth attempt")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.INFO, logger="statefun_local.connectors"):
        run(scenario())
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "kafka ingress com.example/in: ConnectionError: attempt 1; starting again in 1 s",
        "kafka ingress com.example/in: ConnectionError: attempt 2; starting again in 2 s",
        "kafka ingress com.example/in: ConnectionError: attempt 3; starting again in 4 s",
        "kafka ingress com.example/in: connected to broker:9092",
    ]
    assert (connector.state, connector.error) == ("connected", None)


class Closing(Connector):
    """A connector whose client call is under way when it is cancelled."""

    system, kind = "kafka", "egress"

    def __init__(self) -> None:
        super().__init__(runtime=None, id_="com.example/out", address="broker:9092")  # type: ignore[arg-type]
        self.events: list[str] = []

    def call(self) -> None:
        self.events.append("call started")
        time.sleep(0.3)
        self.events.append("call returned")

    async def _run(self) -> None:
        try:
            await self.blocking(self.call)
        finally:
            await self.settle()
            self.events.append("closed")


def test_settling_with_no_client_call_under_way_returns() -> None:
    connector = Closing()
    run(connector.settle())
    assert connector.events == []


def test_a_cancelled_connector_closes_its_client_once_its_call_returned() -> None:
    """What :meth:`Connector.settle` is for (its docstring: "a cancelled caller does not stop
    it: settle waits for it before the client is closed"): librdkafka's calls go on in their
    thread when the caller is cancelled, as on the runtime's stop."""
    connector = Closing()

    async def scenario() -> None:
        task = asyncio.ensure_future(connector.run())
        await until(lambda: connector.events == ["call started"], "the call under way")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    assert connector.events == ["call started", "call returned", "closed"]


def test_a_problem_is_logged_once_until_it_changes(caplog: Any) -> None:
    connector = Flaky(failures=0)
    with caplog.at_level(logging.INFO, logger="statefun_local.connectors"):
        connector.problem("down", "unreachable")
        connector.problem("down", "unreachable")
        assert (connector.state, connector.error) == ("unreachable", "down")
        connector.problem("refused")
        assert (connector.state, connector.error) == ("error", "refused")
        connector.connected()
        connector.connected()
        connector.problem("refused")
    assert [r.getMessage() for r in caplog.records] == [
        "kafka ingress com.example/in: down (retrying)",
        "kafka ingress com.example/in: refused (retrying)",
        "kafka ingress com.example/in: connected to broker:9092",
        "kafka ingress com.example/in: refused (retrying)",
    ]
    assert connector.status() == {
        "system": "kafka", "kind": "ingress", "id": "com.example/in", "broker": "broker:9092",
        "state": "error", "error": "refused", "records": 0,
    }  # fmt: skip


def test_each_kafka_and_kinesis_ingress_and_egress_gets_its_connector(tmp_path: Path) -> None:
    kinesis = """
---
kind: io.statefun.kinesis.v1/{kind}
spec:
  id: com.example/k{kind}
  awsRegion: {{type: custom-endpoint, endpoint: "http://127.0.0.1:1", id: us-east-1}}
  {streams}
"""
    streams = "streams: [{stream: s, valueType: io.statefun.types/string, targets: [a.b/c]}]"
    text = "".join([
        endpoint("http://127.0.0.1:1/"), ingress("b:9092", "t", "g"), egress("b:9092"),
        kinesis.format(kind="ingress", streams=streams), kinesis.format(kind="egress", streams=""),
    ])  # fmt: skip
    made = connectors(LocalRuntime(parse_module(text), tmp_path / "db.sqlite"))
    assert sorted((str(c), type(c).__name__) for c in made) == [
        ("kafka egress com.example/out", "KafkaEgress"),
        ("kafka ingress com.example/in", "KafkaIngress"),
        ("kinesis egress com.example/kegress", "KinesisEgress"),
        ("kinesis ingress com.example/kingress", "KinesisIngress"),
    ]
    only_kafka = endpoint("http://127.0.0.1:1/") + egress("b:9092")
    assert [str(c) for c in connectors(LocalRuntime(parse_module(only_kafka),
                                                     tmp_path / "other.sqlite"))] == [
        "kafka egress com.example/out"
    ]  # fmt: skip


@pytest.mark.parametrize("kind", ["ingress", "egress"])
def test_a_broker_nobody_answers_at_is_shown_while_the_first_call_still_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The ingress' listing of the topics and the exactly-once egress' creation of its position
    topic wait for the broker in short tries, serving librdkafka's error callback between
    them: the broker is shown unreachable at once, not once the call gives up."""
    from statefun_local import kafka as connectors_module

    monkeypatch.setattr(connectors_module, "TIMEOUT", 30)  # the call is still under way below
    address = f"127.0.0.1:{free_port()}"  # nobody listens
    exactly_once = "{type: exactly-once, transactionTimeout: 1min}"
    documents = (ingress(address, "in", "group") if kind == "ingress"
                 else egress(address, semantic=exactly_once))  # fmt: skip

    async def scenario() -> None:
        async with running(echo_functions([]), tmp_path / "db.sqlite", documents) as runtime:
            connector = connection(runtime, kind)
            await until(lambda: connector.state == "unreachable", "the broker shown unreachable",
                        timeout=20)  # fmt: skip
            assert connector._pending is not None and not connector._pending.done()
            assert connector.error.startswith(f"broker {address} unreachable: ")

    run(scenario())


class JustBooted:
    """The ``time`` module of a machine up for a second: its monotonic clock starts near 0."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def monotonic(self) -> float:
        return time.monotonic() - self.started + 1.0

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def test_an_ingress_lists_its_topics_at_once_on_a_machine_just_booted(
    kafka: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first listing does not wait until the monotonic clock passes ``PARTITIONS_EVERY``
    (it starts at the boot): the partitions are taken at once."""
    from statefun_local import kafka as connectors_module

    monkeypatch.setattr(connectors_module, "time", JustBooted())
    prefix = names()
    kafka.create_topics([prefix + "in"], partitions=2)
    documents = ingress(kafka.bootstrap, prefix + "in", prefix + "group")

    async def scenario() -> None:
        async with running(echo_functions([]), tmp_path / "db.sqlite", documents) as runtime:
            connector = connection(runtime, "ingress")
            await until(lambda: connector.status()["partitions"] == 2, "the partitions taken",
                        timeout=10)  # fmt: skip

    run(scenario())


def test_an_ingress_whose_topic_is_not_there_yet_says_so_and_reads_it_once_created(
    kafka: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not "connecting" for ever: the ingress shows that the broker has no such topic yet, and
    reads it from its first record once it is created (found at a later listing)."""
    from statefun_local import kafka as connectors_module

    monkeypatch.setattr(connectors_module, "PARTITIONS_EVERY", 0.2)
    prefix = names()
    topic = prefix + "in"
    seen: list[str] = []
    documents = ingress(kafka.bootstrap, topic, prefix + "group")

    async def scenario() -> None:
        async with running(echo_functions(seen), tmp_path / "db.sqlite", documents) as runtime:
            connector = connection(runtime, "ingress")
            await until(lambda: connector.state == "waiting", "the topic missed")
            assert connector.error == f"no topic {topic} on the broker yet: looked for every 0.2 s"
            await asyncio.to_thread(kafka.create_topics, [topic], 1)
            await asyncio.to_thread(produce, kafka, topic, "new", (0,))
            await until(lambda: len(seen) == 2, "the records of the topic created")
            assert (connector.state, connector.error) == ("connected", None)

    run(scenario())
    assert sorted(text.split(":")[1] for text in seen) == ["new-0-0", "new-0-1"]
