"""statefun-local against a real broker: where each ingress starts (every ``startupPosition``),
a record no function can take, and the broker going away and coming back mid-run.

(Every scenario of test_scenarios.py, and the kill -9 of test_crash.py, also run on
statefun-local, Kafka in and Kafka out.)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import kit
from .test_scenarios import string

MODULE = """
kind: io.statefun.endpoints.v2/http
spec:
  functions: e2e.fns/*
  urlPathTemplate: {url}
---
kind: io.statefun.kafka.v1/ingress
spec:
  id: e2e/in
  address: {kafka}
  consumerGroupId: {group}
  startupPosition: {startup}
  topics:
    - topic: {prefix}counter
      valueType: io.statefun.types/string
      targets: [e2e.fns/counter]
---
kind: io.statefun.kafka.v1/egress
spec:
  id: e2e/out
  address: {kafka}
  deliverySemantic: {{type: exactly-once, transactionTimeout: 1min}}
"""


class Local(kit.LocalWithFunctions):
    """statefun-local with the counter function on its own topics: each record's key is its
    own id, so the keys of the ``counts`` records are the records it took."""

    def __init__(self, kafka: kit.Kafka, workdir: Path) -> None:
        super().__init__(workdir)
        self.kafka = kafka
        self.inbox = self.prefix + "counter"
        kafka.create_topics([self.inbox, self.prefix + "counts"], partitions=2)

    def start(self, startup: str = "{type: earliest}", group: str = "") -> None:
        self.start_module(MODULE.format(
            url=self.url, kafka=self.kafka.bootstrap, group=group or self.prefix + "group",
            startup=startup, prefix=self.prefix,
        ))  # fmt: skip

    def taken(self, count: int, settle: float = 2) -> list[str]:
        """The keys of the records the ingress took (each record counted once, as 1)."""
        records = self.kafka.read(self.prefix + "counts", count, timeout=60, settle=settle)
        assert all(record.text == "1" for record in records), [r.text for r in records]
        return sorted(record.key or "" for record in records)


@pytest.fixture
def local(kafka: kit.Kafka, tmp_path: Path) -> Iterator[Local]:
    app = Local(kafka, tmp_path)
    try:
        yield app
    finally:
        app.stop()


def produce_before(local: Local, label: str) -> None:
    """Two records on each partition, keyed ``<label>-<partition>-<n>``."""
    for partition in (0, 1):
        local.kafka.produce(local.inbox, [(f"{label}-{partition}-{n}", string("+1"))
                                          for n in range(2)], partition=partition)  # fmt: skip


def everything(label: str) -> list[str]:
    return sorted(f"{label}-{partition}-{n}" for partition in (0, 1) for n in range(2))


def test_earliest(local: Local) -> None:
    produce_before(local, "old")
    local.start("{type: earliest}")
    assert local.taken(4) == everything("old")


def test_latest_takes_only_what_comes_after_it_starts(local: Local) -> None:
    produce_before(local, "old")
    local.start("{type: latest}")
    local.wait_for("ingress", partitions=2)
    time.sleep(1)  # the end offsets are fetched just after the assignment
    produce_before(local, "new")
    assert local.taken(4) == everything("new")


def test_group_offsets_start_where_the_group_committed(local: Local) -> None:
    from confluent_kafka import Consumer, TopicPartition

    produce_before(local, "old")
    group = local.prefix + "committed"
    committer = Consumer({"bootstrap.servers": local.kafka.bootstrap, "group.id": group})
    committer.commit(offsets=[TopicPartition(local.inbox, 0, 1), TopicPartition(local.inbox, 1, 2)],
                     asynchronous=False)  # fmt: skip
    committer.close()
    local.start("{type: group-offsets}", group=group)
    assert local.taken(1) == ["old-0-1"]


def test_specific_offsets(local: Local) -> None:
    produce_before(local, "old")
    local.start(f"{{type: specific-offsets, offsets: [{local.inbox}/0: 1, {local.inbox}/1: 0]}}")
    assert local.taken(3) == ["old-0-1", "old-1-0", "old-1-1"]


def test_date(local: Local) -> None:
    now = int(time.time() * 1000)
    for partition in (0, 1):
        local.kafka.produce(local.inbox, [(f"before-{partition}", string("+1"))],
                            partition=partition, timestamp=now - 3_600_000)  # fmt: skip
        local.kafka.produce(local.inbox, [(f"after-{partition}", string("+1"))],
                            partition=partition, timestamp=now)  # fmt: skip
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now / 1000 - 60))
    local.start(f"{{type: date, date: '{stamp}.000 Z'}}")
    assert local.taken(2) == ["after-0", "after-1"]


def test_a_record_without_a_key_is_reported_and_passed_over(local: Local) -> None:
    local.kafka.produce(local.inbox, [("first", string("+1"))], partition=0)
    local.kafka.produce(local.inbox, [(None, string("+1"))], partition=0)
    local.kafka.produce(local.inbox, [("third", string("+1"))], partition=0)
    local.start()
    assert local.taken(2) == ["first", "third"]
    skipped = local.connection("ingress")["skipped"]
    assert skipped == [f"{local.inbox}/0@1: a record without a key can not be routed to an id"]


def test_the_broker_going_away_and_coming_back(tmp_path: Path) -> None:
    kafka = kit.Kafka(tmp_path / "broker")
    (tmp_path / "broker").mkdir()
    kafka.start()
    local = Local(kafka, tmp_path)
    try:
        local.start()
        kafka.produce(local.inbox, [(f"before-{n}", string("+1")) for n in range(20)])
        assert len(local.taken(20, settle=0)) == 20
        kafka.process.stop()  # type: ignore[union-attr]
        local.wait_for("ingress", timeout=90, state="unreachable")
        assert local.runtime.alive()
        kafka.restart()
        kafka.produce(local.inbox, [(f"after-{n}", string("+1")) for n in range(20)])
        expected = [f"{when}-{n}" for when in ("before", "after") for n in range(20)]
        assert local.taken(40, settle=3) == sorted(expected)
        assert local.wait_for("ingress", state="connected")["error"] is None
    finally:
        local.stop()
        kafka.stop()


CHROMIUM = shutil.which("chromium")


def chromium(url: str, profile: Path, *options: str) -> str:
    """What headless Chromium makes of ``url`` once its scripts ran: the DOM (or a file)."""
    assert CHROMIUM is not None, "chromium is not installed (.ci/run installs Debian's)"
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=4000",
               *options, url]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


def test_the_web_page_shows_the_connections_in_a_browser(local: Local, tmp_path: Path) -> None:
    local.kafka.produce(local.inbox, [("Ann", string("+1"))])
    local.start()
    assert local.taken(1, settle=0) == ["Ann"]
    local.wait_for("egress", state="connected")
    url = f"http://127.0.0.1:{local.port}/"
    dom = chromium(url, tmp_path / "profile", "--dump-dom")
    rows = re.findall(r"<tr>(.*?)</tr>", dom.split('id="connections"')[1].split("</tbody>")[0])
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in rows]
    assert [row[:4] for row in cells] == [
        ["ingress", "e2e/in", local.kafka.bootstrap, "connected"],
        ["egress", "e2e/out", local.kafka.bootstrap, "connected"],
    ]
    assert cells[0][4] == f"{local.inbox} · {local.prefix}group" and cells[0][5] == "1"
    assert cells[1][4] == "exactly-once" and cells[1][5] == "1"
    assert f"topic={local.prefix}counts key=Ann value=1" in dom
    screenshot = tmp_path / "page.png"  # for a person to look at: pytest keeps tmp_path
    chromium(url, tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1280,900")
    assert screenshot.stat().st_size > 10_000
