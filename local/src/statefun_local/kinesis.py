"""statefun-local's Kinesis ingresses and egresses, on a Kinesis API endpoint (boto3).

**Ingress, exactly once.** Each ``io.statefun.kinesis.v1/ingress`` reads every shard of its
streams. A batch of records becomes messages (one per target, the partition key as the id)
queued in the same SQLite transaction that records the shard's last sequence number; after a
crash the shard is read again after that number. On the ingress' first start each shard starts
at the module's ``startupPosition`` (earliest, latest or date), a shard found later (a reshard,
while running or while down) at its start; either way the position is written to the database
at once (``latest`` as the moment it was taken), so that a restart goes on from there. A
shard is read once its parents (a split's one, a merge's two) are read to their end, as the
Kinesis Client Library does, so that one key's records keep their order across a reshard.

**Egress, at least once** (as the runtime's Kinesis egress): records are put in the order of
the database's egress log, and the log position is saved once Kinesis accepted them; a record
put just before a crash is put again.

The connection follows ``awsRegion`` (``custom-endpoint`` for a local Kinesis API such as
kinesalite) and ``awsCredentials``; needs ``boto3`` (``pip install statefun-local[kinesis]``).
"""

from __future__ import annotations

import datetime
import math
import time
from typing import TYPE_CHECKING, Any, Optional

from statefun_core import protocol
from statefun_core.engine import TraceContext

from .connector import Connector
from .module import Aws, Egress, Ingress
from .runtime import UnknownIngressError
from .values import KINESIS_RECORD

if TYPE_CHECKING:
    from .runtime import LocalRuntime

#: records read per shard and call, and put per call (Kinesis' own limits: 10,000 and 500,
#: and 5 MiB a put)
READ_BATCH = 1000
PUT_BATCH = 500
PUT_BYTES = 4 * 1024 * 1024
PUT_ATTEMPTS = 6
# a shard's position, when no record was read from it yet (a sequence number is digits)
_TRIM_HORIZON, _LATEST, _AT = "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP:"
#: seconds between reads of the shard list (and at once when a shard is read to its end), and
#: between polls that found nothing
SHARDS_EVERY = 30.0
IDLE = 0.2


def _client(aws: Aws) -> Any:
    """A boto3 Kinesis client (``clientConfigProperties`` are the Java SDK's: not applied)."""
    try:
        import boto3
    except ImportError:
        raise RuntimeError(
            "the module names a Kinesis stream: pip install 'statefun-local[kinesis]' (boto3), "
            "or run with --offline"
        ) from None
    from botocore.config import Config

    session = boto3.session.Session(profile_name=aws.profile or None)
    options: dict[str, Any] = {
        "region_name": aws.region or None,
        "config": Config(connect_timeout=10, read_timeout=30, retries={"max_attempts": 3}),
    }
    if aws.endpoint:
        options["endpoint_url"] = aws.endpoint
    if aws.access_key_id:
        options["aws_access_key_id"] = aws.access_key_id
        options["aws_secret_access_key"] = aws.secret_access_key
    return session.client("kinesis", **options)


class KinesisIngress(Connector):
    system = "kinesis"
    kind = "ingress"
    streams: list[str]
    records: int  # pyright --verifytypes wants Connector's declaration again where it is set

    def __init__(self, runtime: LocalRuntime, ingress: Ingress) -> None:
        super().__init__(runtime, ingress.id, ingress.aws.endpoint or ingress.aws.region)
        self.ingress = ingress
        self.streams = [stream for stream, _, _ in ingress.routes]
        self.iterators: dict[tuple[str, str], Optional[str]] = {}  # None: read to its end
        self.waiting: dict[tuple[str, str], list[tuple[str, str]]] = {}  # shard: its parents

    async def _run(self) -> None:
        client = _client(self.ingress.aws)
        self.iterators, self.waiting = {}, {}
        positions = self.runtime.store.kinesis_positions(self.id)
        listed, first = -math.inf, not positions  # -inf: never (the clock may start near 0)
        last_read: dict[tuple[str, str], float] = {}
        try:
            while True:
                if time.monotonic() - listed > SHARDS_EVERY:
                    await self._list(client, positions, first)
                    listed, first = time.monotonic(), False
                    self.connected()
                read = 0
                for (stream, shard), iterator in list(self.iterators.items()):
                    # Kinesis allows five reads a second per shard
                    since = time.monotonic() - last_read.get((stream, shard), -math.inf)
                    if iterator is None or since < 0.2:
                        continue
                    last_read[stream, shard] = time.monotonic()
                    read += await self._read(client, stream, shard, iterator, positions)
                    if self.iterators[stream, shard] is None:  # a reshard's: list its children
                        listed = -math.inf  # (and start them: _list starts what is ready)
                if not read:
                    await self.runtime._wait_progress(IDLE)
        finally:
            await self.settle()

    @staticmethod
    def _shards(client: Any, stream: str) -> dict[str, list[str]]:
        """Each shard of ``stream``, with the parents it was split or merged from."""
        shards: dict[str, list[str]] = {}
        token = None
        while True:
            page = client.list_shards(**({"NextToken": token} if token else {"StreamName": stream}))
            for shard in page["Shards"]:
                shards[shard["ShardId"]] = [shard[parent] for parent in
                                            ("ParentShardId", "AdjacentParentShardId")
                                            if shard.get(parent)]  # fmt: skip
            token = page.get("NextToken")
            if not token:
                return shards

    async def _list(self, client: Any, positions: dict[tuple[str, str], str], first: bool
                    ) -> None:  # fmt: skip
        """The shards not listed before: the positions of those new to the database written
        to it, then each read once its parents are (a parent past the stream's retention, no
        longer listed, is not waited for)."""
        found: dict[tuple[str, str], str] = {}
        live: dict[tuple[str, str], str] = {}
        for stream in self.streams:
            listed = await self.blocking(self._shards, client, stream)
            for shard, parents in listed.items():
                if (stream, shard) in self.iterators or (stream, shard) in self.waiting:
                    continue
                self.waiting[stream, shard] = [(stream, p) for p in parents if p in listed]
                if (stream, shard) not in positions:
                    live[stream, shard], found[stream, shard] = self._start(first)
        if found:

            def write() -> None:
                for (stream, shard), stored in found.items():
                    self.runtime.store.kinesis_position_put(self.id, stream, shard, stored)

            await self.enqueue([], write)
            positions.update(found)
        await self._start_ready(client, positions, live)

    async def _start_ready(self, client: Any, positions: dict[tuple[str, str], str],
                           live: dict[tuple[str, str], str]) -> None:  # fmt: skip
        """An iterator for each waiting shard whose parents are read to their end: where
        :meth:`_start` put it if that was just now (``live``), else at its position in the
        database."""
        for (stream, shard), parents in list(self.waiting.items()):
            if all(parent in self.iterators and self.iterators[parent] is None
                   for parent in parents):  # fmt: skip
                position = live.get((stream, shard)) or positions[stream, shard]
                self.iterators[stream, shard] = await self.blocking(
                    self._iterator, client, stream, shard, position
                )
                del self.waiting[stream, shard]

    def _start(self, first: bool) -> tuple[str, str]:
        """Where a shard the database has no position for starts, and the position to write:
        on the first start the ``startupPosition``; a shard found later from its start.
        ``latest`` is written as the moment it was taken."""
        startup = self.ingress.startup
        if startup.position == "earliest" or not first:
            return _TRIM_HORIZON, _TRIM_HORIZON
        if startup.position == "date":
            return f"{_AT}{startup.date_ms}", f"{_AT}{startup.date_ms}"
        return _LATEST, f"{_AT}{int(time.time() * 1000)}"

    @staticmethod
    def _iterator(client: Any, stream: str, shard: str, position: str) -> str:
        """A shard's iterator at ``position``: a sequence number (read after it), or where
        :meth:`_start` put the shard."""
        where: dict[str, Any] = {"StreamName": stream, "ShardId": shard}
        if position in (_TRIM_HORIZON, _LATEST):
            where["ShardIteratorType"] = position
        elif position.startswith(_AT):
            seconds = int(position[len(_AT) :]) / 1000
            moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
            where.update(ShardIteratorType="AT_TIMESTAMP", Timestamp=moment)
        else:
            where.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                         StartingSequenceNumber=position)  # fmt: skip
        return str(client.get_shard_iterator(**where)["ShardIterator"])

    async def _read(self, client: Any, stream: str, shard: str, iterator: str,
                    positions: dict[tuple[str, str], str]) -> int:  # fmt: skip
        reply = await self.blocking(lambda: client.get_records(ShardIterator=iterator,
                                                               Limit=READ_BATCH))  # fmt: skip
        self.iterators[stream, shard] = reply.get("NextShardIterator")
        records = reply["Records"]
        if not records:
            return 0
        messages = []
        for record in records:
            try:
                routed = self.runtime.route_record(self.id, stream, record["PartitionKey"],
                                                   bytes(record["Data"]))  # fmt: skip
                messages += [(target, value, None) for target, value in routed]  # no headers
            except UnknownIngressError as error:  # pragma: no cover - Kinesis requires a key
                self.problem(f"record {stream}/{shard}@{record['SequenceNumber']}: {error}")
        last = records[-1]["SequenceNumber"]

        def position() -> None:
            self.runtime.store.kinesis_position_put(self.id, stream, shard, last)

        await self.enqueue(messages, position)
        positions[stream, shard] = last
        self.records += len(records)
        return len(records)

    def status(self) -> dict[str, Any]:
        open_shards = sum(1 for iterator in self.iterators.values() if iterator is not None)
        return {**super().status(), "topics": self.streams, "group": "",
                "partitions": open_shards, "lag": None, "skipped": []}  # fmt: skip


class KinesisEgress(Connector):
    system = "kinesis"
    kind = "egress"
    cursor_key: str
    cursor: int  # pyright --verifytypes wants Connector's declaration again where it is set

    def __init__(self, runtime: LocalRuntime, egress: Egress) -> None:
        super().__init__(runtime, egress.id, egress.aws.endpoint or egress.aws.region)
        self.egress = egress
        self.cursor_key = f"kinesis_egress_cursor:{egress.id}"

    async def _run(self) -> None:
        client = _client(self.egress.aws)
        self.cursor = int(self.runtime.store.meta_get(self.cursor_key) or 0)

        async def deliver(records: list[tuple[bytes, Optional[TraceContext]]], last: int) -> None:
            await self.blocking(self._put, client, [value for value, _ in records])

        try:
            await self.drain(self.cursor_key, KINESIS_RECORD, deliver, PUT_BATCH)
        finally:
            await self.settle()

    def _put(self, client: Any, raw: list[bytes]) -> None:
        """Put the records, stream by stream in log order, in calls within Kinesis' limits;
        what Kinesis refuses is put again a few times, then the connector starts over."""
        pending = [protocol.KinesisEgressRecord.FromString(data) for data in raw]
        while pending:
            stream = pending[0].stream
            entries: list[dict[str, Any]] = []
            size = 0
            while pending and pending[0].stream == stream and len(entries) < PUT_BATCH:
                record = pending[0]
                entry = {"Data": bytes(record.value_bytes), "PartitionKey": record.partition_key}
                if record.explicit_hash_key:
                    entry["ExplicitHashKey"] = record.explicit_hash_key
                entry_size = len(entry["Data"]) + len(record.partition_key)
                if entries and size + entry_size > PUT_BYTES:
                    break
                entries.append(entry)
                size += entry_size
                pending.pop(0)
            for attempt in range(PUT_ATTEMPTS):
                reply = client.put_records(StreamName=stream, Records=entries)
                if not reply.get("FailedRecordCount"):
                    break
                refused = [(entry, result) for entry, result in zip(entries, reply["Records"])
                           if "ErrorCode" in result]  # fmt: skip
                self.problem(
                    f"{len(refused)} records to {stream} refused: "
                    f"{refused[0][1]['ErrorCode']}: {refused[0][1].get('ErrorMessage')}"
                )
                entries = [entry for entry, _ in refused]
                time.sleep(0.2 * 2**attempt)
            else:
                raise RuntimeError(f"{len(entries)} records to {stream} refused "
                                   f"{PUT_ATTEMPTS} times")  # fmt: skip

    def status(self) -> dict[str, Any]:
        return {**super().status(), "semantic": "at-least-once", "position": self.cursor}
