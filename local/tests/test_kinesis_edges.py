"""statefun-local's Kinesis connectors at their edges, in this process, on a real Kinesis API
(kinesalite, from the npm registry, run by Node, in memory; started by the e2e suite's kit and
stopped by its PID): where an ingress starts (earliest, latest, a date between two records) on
every shard, a restart going on after the last record read, a shard split while the ingress
runs, what each connector shows; records put by the egress on two streams in order, with their
partition and explicit hash keys, more than one call's worth of them (by count and by size), a
restart that puts nothing again; the credentials a profile names, and boto3 missing."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import logging
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from statefun_local import LocalRuntime
from statefun_local.connector import connectors
from statefun_local.module import Aws, parse_module

from statefun_core import Context, Message, StatefulFunctions, StringType, kinesis_egress_message
from statefun_core.engine import Address

from .conftest import run
from .test_kafka_edges import connection, endpoint, load_kit, running, until
from .test_runtime import string

pytest.importorskip("boto3", reason="the Kinesis connectors need boto3 (statefun-local[kinesis])")

ECHO = "com.example/echo"
SENDER = "com.example/sender"
#: an explicit hash key in each half of the hash key range: the first and the second shard of
#: a stream of two (or the two shards a split at 2**127 makes of one)
HASHES = ("0", str(2**127 + 1))


@pytest.fixture(scope="module")
def kinesis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    for program in ("node", "npm"):
        if shutil.which(program) is None:
            pytest.skip(f"no {program} on PATH: kinesalite (the Kinesis API) runs on Node")
    kit = load_kit()
    server = kit.Kinesis(tmp_path_factory.mktemp("kinesis"))
    try:  # stopped also when it does not start
        try:
            server.start()
        except kit.Unavailable as error:
            pytest.skip(f"no kinesalite on this machine: {error}")
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def no_streams_left(kinesis: Any) -> Iterator[None]:
    """Each test's streams deleted after it: kinesalite allows ten shards in all."""
    yield
    client = kinesis.client()
    for stream in client.list_streams()["StreamNames"]:
        client.delete_stream(StreamName=stream)
    deadline = time.monotonic() + 60
    while client.list_streams()["StreamNames"]:
        assert time.monotonic() < deadline, "kinesalite never deleted the test's streams"
        time.sleep(0.1)


@pytest.fixture(autouse=True)
def no_aws_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only what the module says reaches boto3: none of the machine's AWS settings."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def names() -> str:
    """A prefix of this test's own streams."""
    return f"edges-{uuid.uuid4().hex[:6]}-"


def streams(kinesis: Any, *names: str, shards: int = 2) -> None:
    kinesis.create_streams(names, shards=shards)


BASIC = "{type: basic, accessKeyId: local, secretAccessKey: local}"


def kinesis_in(kinesis: Any, stream: str, startup: str = "{type: earliest}",
               credentials: str = BASIC) -> str:  # fmt: skip
    return f"""
---
kind: io.statefun.kinesis.v1/ingress
spec:
  id: com.example/kin
  awsRegion: {{type: custom-endpoint, endpoint: "{kinesis.endpoint}", id: us-east-1}}
  awsCredentials: {credentials}
  startupPosition: {startup}
  streams:
    - {{stream: {stream}, valueType: io.statefun.types/string, targets: [{ECHO}]}}
"""


def kinesis_out(kinesis: Any) -> str:
    return f"""
---
kind: io.statefun.kinesis.v1/egress
spec:
  id: com.example/kout
  awsRegion: {{type: custom-endpoint, endpoint: "{kinesis.endpoint}", id: us-east-1}}
  awsCredentials: {BASIC}
"""


def functions(seen: list[str]) -> StatefulFunctions:
    """``com.example/echo`` notes ``id:text`` of each message; ``com.example/sender`` puts the
    records a message lists (JSON: stream, partition key, explicit hash key or null, and the
    text, or a size for a value of that many bytes) to the egress ``com.example/kout``."""
    bound = StatefulFunctions()

    @bound.bind(ECHO)
    def echo(context: Context, message: Message) -> None:
        seen.append(f"{context.address.id}:{message.as_string()}")

    @bound.bind(SENDER)
    def sender(context: Context, message: Message) -> None:
        for stream, key, hash_key, text in json.loads(message.as_string()):
            value = text.encode() if isinstance(text, str) else bytes([text % 251]) * text
            record = kinesis_egress_message("com.example/kout", stream, value, key,
                                            explicit_hash_key=hash_key)  # fmt: skip
            context.send_egress(record)

    return bound


def put(kinesis: Any, stream: str, records: list[tuple[str, str, int]]) -> dict[str, str]:
    """Put (partition key, text, shard: 0 or 1 of ``HASHES``); the last sequence number put to
    each shard."""
    value = StringType.serializer().serialize
    entries = [{"PartitionKey": key, "Data": value(text), "ExplicitHashKey": HASHES[shard]}
               for key, text, shard in records]  # fmt: skip
    reply = kinesis.client().put_records(StreamName=stream, Records=entries)
    assert not reply["FailedRecordCount"], reply
    return {r["ShardId"]: r["SequenceNumber"] for r in reply["Records"]}


def read(kinesis: Any, stream: str, count: int) -> list[Any]:
    """Every record of ``stream`` once ``count`` are there (each shard in order)."""
    return kinesis.read(stream, count, 60)  # type: ignore[no-any-return]


def shard_ids(kinesis: Any, stream: str) -> list[str]:
    return [s["ShardId"] for s in kinesis.client().list_shards(StreamName=stream)["Shards"]]


def split(kinesis: Any, stream: str, shard: str) -> None:
    """``shard`` split in two at the middle of the hash key range, the stream active again."""
    client = kinesis.client()
    client.split_shard(StreamName=stream, ShardToSplit=shard, NewStartingHashKey=str(2**127))
    while client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"][
        "StreamStatus"] != "ACTIVE":  # fmt: skip
        time.sleep(0.1)


def merge(kinesis: Any, stream: str) -> None:
    """The two shards of ``stream`` merged into one, the stream active again."""
    client = kinesis.client()
    low, high = shard_ids(kinesis, stream)
    client.merge_shards(StreamName=stream, ShardToMerge=low, AdjacentShardToMerge=high)
    while client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"][
        "StreamStatus"] != "ACTIVE":  # fmt: skip
        time.sleep(0.1)


def sorted_texts(seen: list[str]) -> list[str]:
    return sorted(seen)


def label_records(label: str) -> list[tuple[str, str, int]]:
    """Two records on each of the two shards: ``<label>-<shard>-<n>`` keyed the same."""
    return [(f"{label}-{shard}-{n}", f"{label}-{shard}-{n}", shard)
            for shard in (0, 1) for n in range(2)]  # fmt: skip


def seen_of(label: str) -> list[str]:
    return sorted(f"{name}:{name}" for name, _, _ in label_records(label))


# --- where an ingress starts ------------------------------------------------------------------


def next_second_after_now() -> datetime.datetime:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.replace(microsecond=0) + datetime.timedelta(seconds=1)


@pytest.mark.parametrize("startup", ["earliest", "latest", "date"])
def test_where_an_ingress_starts_on_each_shard(
    kinesis: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, startup: str
) -> None:
    """``old`` records are put before the runtime starts; for ``date``, ``dated`` ones after
    the date and before the start; ``new`` ones once it runs. Earliest takes all, latest only
    the new ones, a date only what came at or after it; each record once, though the shard
    list is read again and again (a shard already being read goes on where it is). The
    database holds each shard's last sequence number; the status shows both shards."""
    from statefun_local import kinesis as connectors_module

    monkeypatch.setattr(connectors_module, "SHARDS_EVERY", 0.0)
    stream = names() + "in"
    streams(kinesis, stream)
    put(kinesis, stream, label_records("old"))
    expected = {"earliest": seen_of("old"), "latest": [], "date": []}[startup]
    position = "{type: " + startup + "}"
    if startup == "date":
        moment = next_second_after_now()  # after every old record: whole seconds, as boto3 sends
        while datetime.datetime.now(datetime.timezone.utc) <= moment:
            time.sleep(0.05)
        put(kinesis, stream, label_records("dated"))
        expected = seen_of("dated")
        position = f"{{type: date, date: '{moment:%Y-%m-%d %H:%M:%S}.000 +0000'}}"
    seen: list[str] = []
    documents = kinesis_in(kinesis, stream, position)

    async def scenario() -> None:
        async with running(functions(seen), tmp_path / "db.sqlite", documents) as runtime:
            connector = connection(runtime, "ingress")
            await until(lambda: connector.state == "connected", "the shards listed")
            last = await asyncio.to_thread(put, kinesis, stream, label_records("new"))
            # a shard is read in order: once the new records are in, nothing before them comes
            await until(lambda: runtime.store.kinesis_positions("com.example/kin")
                        == {(stream, shard): seq for shard, seq in last.items()},
                        "each shard read to its end")  # fmt: skip
            await runtime.wait_until_idle()
            status = connector.status()
            assert status == {
                "system": "kinesis", "kind": "ingress", "id": "com.example/kin",
                "broker": kinesis.endpoint, "state": "connected", "error": None,
                "records": len(expected) + 4, "topics": [stream], "group": "",
                "partitions": 2, "lag": None, "skipped": [],
            }  # fmt: skip

    run(scenario())
    assert sorted_texts(seen) == sorted(expected + seen_of("new"))


def test_a_restart_goes_on_after_the_last_record_read(kinesis: Any, tmp_path: Path) -> None:
    """Records read before a stop are not read again; those put while the runtime was down
    are, each once (three on each shard a batch, so the last one is what counts)."""
    stream = names() + "in"
    streams(kinesis, stream)
    seen: list[str] = []
    documents = kinesis_in(kinesis, stream, "{type: latest}")
    db = tmp_path / "db.sqlite"
    batch = [(f"{label}{n}", f"{label}{n}", shard)
             for label, shard in (("a", 0), ("b", 1)) for n in range(3)]  # fmt: skip
    later = [(f"later-{key}", text, shard) for key, text, shard in batch]

    async def first() -> None:
        async with running(functions(seen), db, documents) as runtime:
            connector = connection(runtime, "ingress")
            await until(lambda: connector.state == "connected", "the shards listed")
            last = await asyncio.to_thread(put, kinesis, stream, batch)
            expected = {(stream, shard): seq for shard, seq in last.items()}
            await until(lambda: runtime.store.kinesis_positions("com.example/kin") == expected,
                        "each shard read to its end")  # fmt: skip
            await runtime.wait_until_idle()

    async def second() -> None:
        async with running(functions(seen), db, documents) as runtime:
            await until(lambda: len(seen) >= 12, "the records put while down")
            await runtime.wait_until_idle()
            assert runtime.store.kinesis_positions("com.example/kin") == {
                (stream, shard): seq for shard, seq in last.items()
            }

    run(first())
    last = put(kinesis, stream, later)
    run(second())
    assert sorted(seen) == sorted(f"{key}:{text}" for key, text, _ in batch + later)


def test_a_shard_split_while_the_ingress_runs_is_found_when_its_parent_ends_and_read_from_its_start(
    kinesis: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``latest``: the old record is not read; the parent is read to its end, and then
    the shard list is read again at once (not ``SHARDS_EVERY`` after the last time): the two
    new shards are read from their first record, put before they were found."""
    from statefun_local import kinesis as connectors_module

    monkeypatch.setattr(connectors_module, "SHARDS_EVERY", 0.0)
    stream = names() + "in"
    streams(kinesis, stream, shards=1)
    (parent,) = shard_ids(kinesis, stream)
    put(kinesis, stream, [("old", "old", 0)])
    seen: list[str] = []
    documents = kinesis_in(kinesis, stream, "{type: latest}")

    async def scenario() -> None:
        async with running(functions(seen), tmp_path / "db.sqlite", documents) as runtime:
            connector = connection(runtime, "ingress")
            await until(lambda: connector.state == "connected", "the shard listed")
            monkeypatch.setattr(connectors_module, "SHARDS_EVERY", 600.0)  # not by the clock
            await asyncio.to_thread(put, kinesis, stream, [("before", "before", 0)])
            await until(lambda: seen == ["before:before"], "the record before the split")
            await asyncio.to_thread(split, kinesis, stream, parent)
            await asyncio.to_thread(put, kinesis, stream, [("low", "low", 0), ("high", "high", 1)])
            await until(lambda: len(seen) == 3, "the new shards read")
            await runtime.wait_until_idle()
            assert connector.status()["partitions"] == 2

    run(scenario())
    assert sorted(seen) == ["before:before", "high:high", "low:low"]


def test_a_shard_split_while_the_runtime_is_down_is_read_from_its_start(
    kinesis: Any, tmp_path: Path
) -> None:
    """As a Kafka partition added while the runtime is down (and as the runtime restoring a
    checkpoint): the startupPosition is for the first start; on a restart a shard the database
    does not know yet is a reshard's, read from its start."""
    stream = names() + "in"
    streams(kinesis, stream, shards=1)
    (parent,) = shard_ids(kinesis, stream)
    seen: list[str] = []
    documents = kinesis_in(kinesis, stream, "{type: latest}")
    db = tmp_path / "db.sqlite"

    async def first() -> None:
        async with running(functions(seen), db, documents) as runtime:
            connector = connection(runtime, "ingress")
            await until(lambda: connector.state == "connected", "the shard listed")
            await asyncio.to_thread(put, kinesis, stream, [("before", "before", 0)])
            await until(lambda: seen == ["before:before"], "the record before the split")
            await runtime.wait_until_idle()

    async def second() -> None:
        async with running(functions(seen), db, documents) as runtime:
            connector = connection(runtime, "ingress")
            await until(lambda: connector.status()["partitions"] == 2, "the new shards listed")
            await asyncio.to_thread(put, kinesis, stream, [("after", "after", 0)])
            await until(lambda: "after:after" in seen, "a record put after the restart")
            await runtime.wait_until_idle()

    run(first())
    split(kinesis, stream, parent)
    put(kinesis, stream, [("low", "low", 0), ("high", "high", 1)])
    run(second())
    assert sorted(seen) == ["after:after", "before:before", "high:high", "low:low"]


@pytest.mark.parametrize("reshard", ["split", "merge"])
def test_a_key_s_records_keep_their_order_across_a_reshard(
    kinesis: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reshard: str
) -> None:
    """A shard is read once its parents are read to their end (a split's one, a merge's
    two), so the records of a key put before the reshard reach its function before those put
    after, however many reads the parents take (one record a read here)."""
    from statefun_local import kinesis as connectors_module

    monkeypatch.setattr(connectors_module, "READ_BATCH", 1)
    stream = names() + "in"
    streams(kinesis, stream, shards=1 if reshard == "split" else 2)
    keys = ["k"] if reshard == "split" else ["k", "j"]

    def records(label: str) -> list[tuple[str, str, int]]:
        return [(key, f"{label}{n}", shard) for shard, key in enumerate(keys) for n in range(3)]

    put(kinesis, stream, records("before"))
    if reshard == "split":
        split(kinesis, stream, shard_ids(kinesis, stream)[0])
    else:
        merge(kinesis, stream)
    put(kinesis, stream, records("after"))
    seen: list[str] = []

    async def scenario() -> None:
        async with running(functions(seen), tmp_path / "db.sqlite", kinesis_in(kinesis, stream)):
            await until(lambda: len(seen) == 6 * len(keys), "every record")

    run(scenario())
    for key in keys:
        assert [text for text in seen if text.startswith(f"{key}:")] == [
            f"{key}:{label}{n}" for label in ("before", "after") for n in range(3)
        ]


def test_an_ingress_lists_its_shards_at_once_on_a_machine_just_booted(
    kinesis: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first listing does not wait until the monotonic clock (from the boot) passes
    ``SHARDS_EVERY``."""
    from statefun_local import kinesis as connectors_module

    from .test_kafka_edges import JustBooted

    monkeypatch.setattr(connectors_module, "time", JustBooted())
    stream = names() + "in"
    streams(kinesis, stream, shards=1)

    async def scenario() -> None:
        async with running(functions([]), tmp_path / "db.sqlite", kinesis_in(kinesis, stream)
                           ) as runtime:  # fmt: skip
            connector = connection(runtime, "ingress")
            await until(lambda: connector.state == "connected", "the shards listed", timeout=10)

    run(scenario())


def test_records_put_while_down_on_a_shard_not_read_yet_are_read_after_a_restart(
    kinesis: Any, tmp_path: Path
) -> None:
    """``latest`` is where the first start begins: as the Kafka ingress (which writes the
    position it resolved at once), a restart goes on from there, not from a new latest, nor
    from before it (the records put before the first start are not read)."""
    stream = names() + "in"
    streams(kinesis, stream)
    seen: list[str] = []
    documents = kinesis_in(kinesis, stream, "{type: latest}")
    db = tmp_path / "db.sqlite"

    async def session(label: str) -> None:
        async with running(functions(seen), db, documents) as runtime:
            connector = connection(runtime, "ingress")
            await until(lambda: connector.state == "connected", "the shards listed")
            if label:
                await asyncio.to_thread(put, kinesis, stream, label_records(label))
                await until(lambda: len(seen) >= 8, "the records put while down, and after")
                await runtime.wait_until_idle()

    put(kinesis, stream, label_records("old"))
    # the first start in a later second: botocore before 1.43 (Python 3.9's) sends the moment
    # in whole seconds, so records of the same second before the start would be read
    moment = next_second_after_now()
    while datetime.datetime.now(datetime.timezone.utc) <= moment:
        time.sleep(0.05)
    run(session(""))
    put(kinesis, stream, label_records("down"))
    run(session("up"))
    assert sorted(seen) == sorted(seen_of("down") + seen_of("up"))


# --- the egress -------------------------------------------------------------------------------


def send(runtime: LocalRuntime, records: list[Any], id_: str = "s") -> Any:
    return runtime.send(Address(SENDER, id_), string(json.dumps(records)))


def test_an_egress_puts_each_stream_in_order_with_its_keys_and_once_across_a_restart(
    kinesis: Any, tmp_path: Path
) -> None:
    """Records for two streams, interleaved, arrive each stream in order; an explicit hash
    key chooses the shard (the partition key would choose the other); the status shows the
    egress log position saved, and a restart after a stop puts nothing again."""
    prefix = names()
    one, two = prefix + "one", prefix + "two"
    streams(kinesis, one, two)
    documents = kinesis_out(kinesis)
    db = tmp_path / "db.sqlite"
    first_batch = [[one if n % 2 == 0 else two, "k", None, f"r{n}"] for n in range(6)]
    # the key "k" hashes to one shard: the explicit hash keys put a record on each
    hashed = [[two, "k", HASHES[0], "h0"], [two, "k", HASHES[1], "h1"]]
    later = [[one, "k", None, "r6"], [two, "k", None, "r7"]]

    async def session(batch: list[Any], total: int) -> dict[str, Any]:
        async with running(functions([]), db, documents) as runtime:
            await send(runtime, batch)
            egress = connection(runtime, "egress")
            await until(lambda: egress.records == total, "the records put")
            status = egress.status()
            assert status["position"] == int(runtime.store.meta_get(egress.cursor_key))
            return status  # type: ignore[no-any-return]

    status = run(session(first_batch + hashed, 8))
    assert status == {
        "system": "kinesis", "kind": "egress", "id": "com.example/kout",
        "broker": kinesis.endpoint, "state": "connected", "error": None, "records": 8,
        "semantic": "at-least-once", "position": status["position"],
    }  # fmt: skip
    assert status["position"] >= 1
    run(session(later, 2))
    out_one = [r.text for r in read(kinesis, one, 4)]
    out_two = read(kinesis, two, 6)
    assert out_one == ["r0", "r2", "r4", "r6"]
    assert [r.text for r in out_two if r.text.startswith("r")] == ["r1", "r3", "r5", "r7"]
    shard_of = {r.text: r.partition for r in out_two}
    assert (shard_of["h0"], shard_of["h1"]) == (0, 1)
    assert len(out_two) == 6


def test_more_records_than_one_put_takes_arrive_each_once_in_order(
    kinesis: Any, tmp_path: Path
) -> None:
    """501 records (Kinesis puts at most 500 a call), and six of a million bytes each (5 MiB
    a call: kinesalite takes at most 7 MiB of JSON, about 5 MiB of data): all arrive once, in
    order."""
    prefix = names()
    many, big = prefix + "many", prefix + "big"
    streams(kinesis, many, big, shards=1)
    documents = kinesis_out(kinesis)
    records = [[many, f"k{n}", None, f"m{n}"] for n in range(501)]
    large = [[big, f"b{n}", None, 1_000_000 + n] for n in range(6)]

    async def scenario() -> None:
        async with running(functions([]), tmp_path / "db.sqlite", documents) as runtime:
            await send(runtime, records, "many")
            await send(runtime, large, "big")
            egress = connection(runtime, "egress")
            await until(lambda: egress.records == 507, "the records put")
            assert egress.error is None

    run(scenario())
    assert [r.text for r in read(kinesis, many, 501)] == [f"m{n}" for n in range(501)]
    out = read(kinesis, big, 6)
    assert [(r.key, len(r.value), r.value[:1]) for r in out] == [
        (f"b{n}", 1_000_000 + n, bytes([(1_000_000 + n) % 251])) for n in range(6)
    ]


# --- the connection ---------------------------------------------------------------------------


def test_the_credentials_a_profile_names_are_used(
    kinesis: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``awsCredentials: {type: profile}``: the profile's keys, from the shared credentials
    file (the machine has no other credentials: a record read proves they were used)."""
    credentials = tmp_path / "credentials"
    credentials.write_text("[kin]\naws_access_key_id = local\naws_secret_access_key = local\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    stream = names() + "in"
    streams(kinesis, stream)
    put(kinesis, stream, [("one", "one", 0)])
    seen: list[str] = []
    documents = kinesis_in(kinesis, stream, credentials="{type: profile, profileName: kin}")

    async def scenario() -> None:
        async with running(functions(seen), tmp_path / "db.sqlite", documents) as runtime:
            connector = connection(runtime, "ingress")
            await until(lambda: seen == ["one:one"] or connector.state == "failed",
                        "the record read, or a failure")  # fmt: skip
            assert (connector.state, connector.error) == ("connected", None)

    run(scenario())


def test_before_its_first_attempt_each_connector_shows_what_it_is(
    kinesis: Any, tmp_path: Path
) -> None:
    documents = endpoint("http://127.0.0.1:1/") + kinesis_in(kinesis, "s") + kinesis_out(kinesis)
    made = connectors(LocalRuntime(parse_module(documents), tmp_path / "db.sqlite"))
    shared = {"system": "kinesis", "broker": kinesis.endpoint, "state": "connecting",
              "error": None, "records": 0}  # fmt: skip
    assert [c.status() for c in made] == [
        {**shared, "kind": "ingress", "id": "com.example/kin", "topics": ["s"], "group": "",
         "partitions": 0, "lag": None, "skipped": []},
        {**shared, "kind": "egress", "id": "com.example/kout", "semantic": "at-least-once",
         "position": 0},
    ]  # fmt: skip


def test_without_boto3_the_connector_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from statefun_local.kinesis import _client

    with monkeypatch.context() as patched:
        patched.setitem(sys.modules, "boto3", None)  # import boto3: ImportError
        with pytest.raises(RuntimeError, match=r"pip install 'statefun-local\[kinesis\]'"):
            _client(Aws(region="us-east-1"))


# --- what kinesalite never does: a Kinesis API in the middle --------------------------------


class KinesisInTheMiddle:
    """A Kinesis API on 127.0.0.1 that hands each call to kinesalite and its answer back, but
    for what kinesalite never does and Kinesis does: a PutRecords call's records for which
    ``refuse(data)`` is true are refused (not put; ``ProvisionedThroughputExceededException``
    in their place in the answer, as for a shard over its limit); ListShards answers one shard a
    page (with a NextToken for the next), without the shards in ``hidden`` (as shards past the
    stream's retention); and an iterator named in ``expire`` (the one the next GetRecords uses,
    once ``expire_next`` is set) is refused from then on, as an iterator older than five
    minutes. ``puts`` holds the data of each PutRecords call's records, ``listings`` counts the
    shard lists asked for (their first pages)."""

    def __init__(self, kinesis: Any, refuse: Callable[[bytes], bool] = lambda data: False
                 ) -> None:  # fmt: skip
        self.kinesis, self.refuse = kinesis, refuse
        self.puts: list[list[bytes]] = []
        self.expire: set[str] = set()
        self.expire_next = False
        self.hidden: set[str] = set()
        self.listings = 0
        self.endpoint = ""

    async def __aenter__(self) -> KinesisInTheMiddle:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/", self._handle)
        self._session = aiohttp.ClientSession()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()
        await self._session.close()

    async def _handle(self, request: web.Request) -> web.Response:
        call = json.loads(await request.read())
        action = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        refused: list[bool] = []
        if action == "PutRecords":
            self.puts.append([base64.b64decode(r["Data"]) for r in call["Records"]])
            refused = [self.refuse(data) for data in self.puts[-1]]
            call["Records"] = [r for r, no in zip(call["Records"], refused) if not no]
        if action == "GetRecords" and (self.expire_next or call["ShardIterator"] in self.expire):
            self.expire_next = False
            self.expire.add(call["ShardIterator"])
            error = {"__type": "ExpiredIteratorException", "message": "Iterator expired"}
            return web.json_response(error, status=400, content_type="application/x-amz-json-1.1")
        self.listings += action == "ListShards" and "StreamName" in call
        if action == "ListShards" and "NextToken" in call and "StreamName" not in call:
            stream, after = json.loads(call.pop("NextToken"))
            call.update(StreamName=stream, ExclusiveStartShardId=after)
        answer: dict[str, Any] = {"FailedRecordCount": 0, "Records": []}
        if call.get("Records", True):  # (kinesalite refuses a PutRecords of none)
            headers = {name: value for name, value in request.headers.items()
                       if name.lower() not in ("host", "content-length")}  # fmt: skip
            async with self._session.post(self.kinesis.endpoint, data=json.dumps(call),
                                          headers=headers) as reply:  # fmt: skip
                if reply.status != 200:
                    return web.Response(status=reply.status, body=await reply.read(),
                                        content_type="application/x-amz-json-1.1")  # fmt: skip
                answer = json.loads(await reply.read())
        if action == "PutRecords":
            taken = iter(answer["Records"])
            refusal = {"ErrorCode": "ProvisionedThroughputExceededException",
                       "ErrorMessage": "Rate exceeded for shard"}  # fmt: skip
            answer = {"FailedRecordCount": sum(refused),
                      "Records": [refusal if no else next(taken) for no in refused]}  # fmt: skip
        if action == "ListShards":
            answer["Shards"] = [s for s in answer["Shards"] if s["ShardId"] not in self.hidden]
        if action == "ListShards" and len(answer["Shards"]) > 1:
            first = answer["Shards"][0]
            token = json.dumps([call["StreamName"], first["ShardId"]])
            answer = {"Shards": [first], "NextToken": token}
        return web.json_response(answer, content_type="application/x-amz-json-1.1")


async def put_through_the_middle(kinesis: Any, tmp_path: Path, refuse: Callable[[bytes], bool],
                                 records: list[Any]) -> list[list[bytes]]:  # fmt: skip
    """``records`` put by the egress through a :class:`KinesisInTheMiddle` that refuses what
    ``refuse`` says, until every one is taken and the egress connected; the data of each put."""
    async with KinesisInTheMiddle(kinesis, refuse) as middle:
        async with running(functions([]), tmp_path / "db.sqlite", kinesis_out(middle)
                           ) as runtime:  # fmt: skip
            await send(runtime, records)
            egress = connection(runtime, "egress")
            await until(lambda: egress.records == len(records), "the records put")
            assert (egress.state, egress.error) == ("connected", None)
        return middle.puts


def test_records_kinesis_refuses_are_put_again_alone_until_it_takes_them(
    kinesis: Any, tmp_path: Path, caplog: Any
) -> None:
    """Kinesis may refuse some records of a call (a shard over its limit): those, and only
    those, are put again, in their order, so each record arrives once; the refusal is logged
    and the egress shown connected once they are taken."""
    stream = names() + "out"
    streams(kinesis, stream, shards=1)
    refused: set[bytes] = set()

    def refuse(data: bytes) -> bool:  # the odd ones, the first time
        if int(data[1:]) % 2 == 0 or data in refused:
            return False
        refused.add(data)
        return True

    records = [[stream, "k", None, f"r{n}"] for n in range(8)]

    with caplog.at_level(logging.WARNING, logger="statefun_local"):
        puts = run(put_through_the_middle(kinesis, tmp_path, refuse, records))
    assert puts == [[f"r{n}".encode() for n in range(8)], [b"r1", b"r3", b"r5", b"r7"]]
    assert [r.text for r in read(kinesis, stream, 8)] == [f"r{n}" for n in (0, 2, 4, 6, 1, 3, 5, 7)]
    assert (f"4 records to {stream} refused: ProvisionedThroughputExceededException: "
            "Rate exceeded for shard") in caplog.text  # fmt: skip


def test_a_record_refused_at_every_attempt_fails_the_egress_which_puts_the_batch_again(
    kinesis: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """A record Kinesis refuses ``PUT_ATTEMPTS`` times fails the egress; it starts again from
    the log position it saved, so the batch is put again (at least once: the record taken the
    first time arrives twice), and the refused record, taken now, once."""
    from statefun_local import kinesis as connectors_module

    monkeypatch.setattr(connectors_module, "PUT_ATTEMPTS", 2)
    stream = names() + "out"
    streams(kinesis, stream, shards=1)
    refusals: list[bytes] = []

    def refuse(data: bytes) -> bool:  # "x", twice
        if data == b"x" and len(refusals) < 2:
            refusals.append(data)
            return True
        return False

    records = [[stream, "k", None, "a"], [stream, "k", None, "x"]]
    with caplog.at_level(logging.WARNING, logger="statefun_local"):
        puts = run(put_through_the_middle(kinesis, tmp_path, refuse, records))
    assert puts == [[b"a", b"x"], [b"x"], [b"a", b"x"]]
    assert [r.text for r in read(kinesis, stream, 3)] == ["a", "a", "x"]
    assert f"RuntimeError: 1 records to {stream} refused 2 times" in caplog.text


def test_shards_listed_over_pages_are_each_read_after_their_parents(
    kinesis: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream's shards come a page at a time (ListShards' NextToken, one shard a page
    here): every one is read, a split's shards after their parent, listed on another page."""
    from statefun_local import kinesis as connectors_module

    monkeypatch.setattr(connectors_module, "READ_BATCH", 1)
    stream = names() + "in"
    streams(kinesis, stream, shards=1)
    put(kinesis, stream, [("k", f"before{n}", 0) for n in range(3)])
    split(kinesis, stream, shard_ids(kinesis, stream)[0])
    put(kinesis, stream, [("k", "low", 0), ("j", "high", 1)])
    seen: list[str] = []

    async def scenario() -> None:
        async with KinesisInTheMiddle(kinesis) as middle:
            documents = kinesis_in(middle, stream)
            async with running(functions(seen), tmp_path / "db.sqlite", documents) as runtime:
                await until(lambda: len(seen) == 5, "every record")
                await runtime.wait_until_idle()
                assert connection(runtime, "ingress").status()["partitions"] == 2

    run(scenario())
    assert [text for text in seen if text.startswith("k:")] == [
        "k:before0", "k:before1", "k:before2", "k:low"
    ]  # fmt: skip
    assert "j:high" in seen


def test_an_expired_iterator_fails_the_ingress_which_starts_again_from_the_database(
    kinesis: Any, tmp_path: Path
) -> None:
    """An iterator Kinesis no longer takes (older than five minutes: the runtime was held up)
    fails the ingress; it starts again with new iterators at the positions in the database, so
    the records after the last one read come, each once."""
    stream = names() + "in"
    streams(kinesis, stream, shards=1)
    seen: list[str] = []

    async def scenario() -> None:
        async with KinesisInTheMiddle(kinesis) as middle:
            documents = kinesis_in(middle, stream)
            async with running(functions(seen), tmp_path / "db.sqlite", documents) as runtime:
                connector = connection(runtime, "ingress")
                await asyncio.to_thread(put, kinesis, stream, [("a", "a", 0)])
                await until(lambda: seen == ["a:a"], "the first record")
                middle.expire_next = True
                await asyncio.to_thread(put, kinesis, stream, [("b", "b", 0)])
                await until(lambda: seen == ["a:a", "b:b"], "the record after it")
                await until(lambda: connector.state == "connected", "connected again")
                assert len(middle.expire) == 1  # the ingress failed on it, once

    run(scenario())


def test_a_shard_whose_parent_is_no_longer_listed_is_read_at_once(
    kinesis: Any, tmp_path: Path
) -> None:
    """A split's shards whose parent is past the stream's retention (no longer listed: hidden
    here) do not wait for it: they are read from their start; the parent's records are not."""
    stream = names() + "in"
    streams(kinesis, stream, shards=1)
    (parent,) = shard_ids(kinesis, stream)
    put(kinesis, stream, [("k", "gone", 0)])
    split(kinesis, stream, parent)
    put(kinesis, stream, [("k", "low", 0), ("j", "high", 1)])
    seen: list[str] = []

    async def scenario() -> None:
        async with KinesisInTheMiddle(kinesis) as middle:
            middle.hidden.add(parent)
            documents = kinesis_in(middle, stream)
            async with running(functions(seen), tmp_path / "db.sqlite", documents) as runtime:
                await until(lambda: len(seen) == 2, "the records of the split's shards")
                await runtime.wait_until_idle()
                assert connection(runtime, "ingress").status()["partitions"] == 2

    run(scenario())
    assert sorted(seen) == ["j:high", "k:low"]


def test_the_shard_list_is_read_at_the_start_and_when_a_shard_ends(
    kinesis: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``SHARDS_EVERY`` far away, the shard list is read once at the start, however many
    records come, and once more when a shard (a split's parent) is read to its end, for its
    children; not on every poll."""
    from statefun_local import kinesis as connectors_module

    monkeypatch.setattr(connectors_module, "SHARDS_EVERY", 600.0)
    stream = names() + "in"
    streams(kinesis, stream, shards=1)
    (parent,) = shard_ids(kinesis, stream)
    seen: list[str] = []

    async def scenario() -> None:
        async with KinesisInTheMiddle(kinesis) as middle:
            documents = kinesis_in(middle, stream)
            async with running(functions(seen), tmp_path / "db.sqlite", documents) as runtime:
                connector = connection(runtime, "ingress")
                for n in range(1, 4):
                    await asyncio.to_thread(put, kinesis, stream, [("k", f"r{n}", 0)])
                    await until(lambda n=n: len(seen) == n, "the record read")
                assert (connector.state, middle.listings) == ("connected", 1)
                await asyncio.to_thread(split, kinesis, stream, parent)
                await asyncio.to_thread(put, kinesis, stream, [("k", "low", 0), ("j", "high", 1)])
                await until(lambda: len(seen) == 5, "the split's shards read")
                await runtime.wait_until_idle()
                assert middle.listings == 2

    run(scenario())


def test_a_key_s_records_keep_their_order_across_a_split_and_then_a_merge(
    kinesis: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard split, and its two shards merged again: the merged shard waits for both of
    its parents, which wait for theirs (not read yet when the merged shard is listed); each
    key's records come in the order they were put, over the three generations."""
    from statefun_local import kinesis as connectors_module

    monkeypatch.setattr(connectors_module, "READ_BATCH", 1)
    stream = names() + "in"
    streams(kinesis, stream, shards=1)
    client = kinesis.client()
    put(kinesis, stream, [("k", f"first{n}", 0) for n in range(2)])
    split(kinesis, stream, shard_ids(kinesis, stream)[0])
    # more on the merge's adjacent parent (the high one) than on the other
    put(kinesis, stream, [(key, f"second{n}", shard) for shard, key in enumerate("kj")
                          for n in range(2 + 6 * shard)])  # fmt: skip
    low, high = shard_ids(kinesis, stream)[1:]
    client.merge_shards(StreamName=stream, ShardToMerge=low, AdjacentShardToMerge=high)
    while client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"][
        "StreamStatus"] != "ACTIVE":  # fmt: skip
        time.sleep(0.1)
    put(kinesis, stream, [(key, f"third{n}", shard) for shard, key in enumerate("kj")
                          for n in range(2)])  # fmt: skip
    seen: list[str] = []

    async def scenario() -> None:
        async with running(functions(seen), tmp_path / "db.sqlite", kinesis_in(kinesis, stream)):
            await until(lambda: len(seen) == 16, "every record")

    run(scenario())
    assert [text for text in seen if text.startswith("k:")] == [
        f"k:{label}{n}" for label in ("first", "second", "third") for n in range(2)
    ]
    assert [text for text in seen if text.startswith("j:")] == [
        *(f"j:second{n}" for n in range(8)),
        "j:third0",
        "j:third1",
    ]
