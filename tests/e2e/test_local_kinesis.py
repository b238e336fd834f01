"""statefun-local's Kinesis ingress and egress on a Kinesis API (kinesalite, from the npm
registry): records in from every shard, results out, a ``kill -9`` in the middle."""

from __future__ import annotations

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
kind: io.statefun.kinesis.v1/ingress
spec:
  id: e2e/kinesis-in
  awsRegion: {{type: custom-endpoint, endpoint: "{endpoint}", id: us-east-1}}
  awsCredentials: {{type: basic, accessKeyId: local, secretAccessKey: local}}
  startupPosition: {startup}
  streams:
    - stream: {prefix}kinesis-in
      valueType: io.statefun.types/string
      targets: [e2e.fns/kinesis-counter]
---
kind: io.statefun.kinesis.v1/egress
spec:
  id: e2e/kinesis-out
  awsRegion: {{type: custom-endpoint, endpoint: "{endpoint}", id: us-east-1}}
  awsCredentials: {{type: basic, accessKeyId: local, secretAccessKey: local}}
"""


@pytest.fixture(scope="module")
def kinesis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kit.Kinesis]:
    server = kit.Kinesis(tmp_path_factory.mktemp("kinesis"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


class Local(kit.LocalWithFunctions):
    def __init__(self, kinesis: kit.Kinesis, workdir: Path) -> None:
        super().__init__(workdir)
        self.kinesis = kinesis
        self.inbox, self.outbox = self.prefix + "kinesis-in", self.prefix + "kinesis-counts"
        kinesis.create_streams([self.inbox, self.outbox])

    def start(self, startup: str = "{type: earliest}") -> None:
        self.start_module(MODULE.format(url=self.url, endpoint=self.kinesis.endpoint,
                                        startup=startup, prefix=self.prefix))  # fmt: skip

    def counts(self, count: int, settle: float = 2) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for record in self.kinesis.read(self.outbox, count, settle=settle):
            found.setdefault(record.key or "", []).append(int(record.text))
        return found


@pytest.fixture
def local(kinesis: kit.Kinesis, tmp_path: Path) -> Iterator[Local]:
    app = Local(kinesis, tmp_path)
    try:
        yield app
    finally:
        app.stop()


def test_every_shard_in_and_out_across_a_kill_9(local: Local) -> None:
    keys = [f"k{n}" for n in range(6)]  # over both shards
    local.kinesis.put(local.inbox, [(keys[n % 6], string("+1")) for n in range(30)])
    local.start()
    assert local.counts(30) == {key: [1, 2, 3, 4, 5] for key in keys}
    assert local.runtime is not None
    local.runtime.kill9()
    local.kinesis.put(local.inbox, [(keys[n % 6], string("+1")) for n in range(30)])
    local.start()
    counts = local.counts(60)
    # the ingress took each record once (counters exact); the egress is at least once, as
    # the runtime's: a result put just before the kill may be put again
    assert {key: sorted(set(values)) for key, values in counts.items()} == {
        key: list(range(1, 11)) for key in keys
    }


def test_latest_takes_only_what_comes_after_it_starts(local: Local) -> None:
    local.kinesis.put(local.inbox, [("old", string("+1"))])
    local.start("{type: latest}")
    time.sleep(3)  # the shard iterators are taken at start
    local.kinesis.put(local.inbox, [("new", string("+1"))])
    assert local.counts(1) == {"new": [1]}
