"""Reading module.yaml: kinds, defaults, wildcards, durations and error reports."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from pathlib import Path
from string import Template
from typing import Any

import pytest
import yaml
from statefun_local import LocalRuntime, ModuleError, load_module, parse_module
from statefun_local.module import OKHTTP_TRANSPORT, Aws, Tls, parse_duration, split_unix_url

#: the repository's folder, whose examples some tests read (not in statefun-local's sdist)
REPOSITORY = Path(__file__).parents[2]
GREETER_MODULE = REPOSITORY / "examples/greeter/module.yaml"
in_a_checkout = pytest.mark.skipif(
    not GREETER_MODULE.exists(), reason="runs from a checkout of the repository"
)


def problems(text: str) -> list[str]:
    with pytest.raises(ModuleError) as caught:
        parse_module(text, "m.yaml")
    return caught.value.problems


def test_a_missing_key_is_reported_with_the_key_spelled_nearly_so_beside_it() -> None:
    """A key spelled wrong is both missing and unknown; a module with a problem is not loaded,
    so the unknown-key warning is not shown, and the error named only the missing key."""
    assert problems("""
kind: io.statefun.endpoints.v2/http
spec:
  function: com.example.fns/*
  urlPathTemplat: http://127.0.0.1:8000/statefun
  transport: {type: io.statefun.transports.v1/async}
""") == [
        "m.yaml: document 0 (io.statefun.endpoints.v2/http): spec.functions: is required "
        "(given as 'function'?)",
        "m.yaml: document 0 (io.statefun.endpoints.v2/http): spec.urlPathTemplate: is required "
        "(given as 'urlPathTemplat'?)",
    ]
    assert problems("kind: io.statefun.endpoints.v2/http\nspec: {functions: a/b}\n") == [
        "m.yaml: document 0 (io.statefun.endpoints.v2/http): spec.urlPathTemplate: is required"
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10", 0.01),
        (10, 0.01),
        ("500ms", 0.5),
        ("2 min", 120),
        ("2m", 120),
        ("1 minute", 60),
        ("3s", 3),
        ("3 sec", 3),
        ("1h", 3600),
        ("2 hours", 7200),
        ("1d", 86400),
        ("2 days", 172800),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "soon", "10 fortnights", "-5s", "1.5s", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)  # type: ignore[arg-type]


def test_v2_endpoint_defaults_and_url_template() -> None:
    module = parse_module("""
kind: io.statefun.endpoints.v2/http
spec:
  functions: com.example/*
  urlPathTemplate: http://fns:8000/{function.name}
""")
    [endpoint] = module.endpoints
    assert endpoint.max_num_batch_requests == 1000
    assert endpoint.call_timeout == 120 and endpoint.connect_timeout == 20
    assert endpoint.pool_ttl == 15  # the runtime's default
    assert endpoint.url_for("com.example/greeter") == "http://fns:8000/greeter"


def test_exact_binding_wins_over_wildcard_in_any_order() -> None:
    module = parse_module("""
kind: io.statefun.endpoints.v2/http
spec: {functions: com.example/*, urlPathTemplate: "http://all/{function.name}"}
---
kind: io.statefun.endpoints.v2/http
spec: {functions: com.example/special, urlPathTemplate: "http://special/"}
""")
    assert module.endpoint_for("com.example/special").url_path_template == "http://special/"
    assert (
        module.endpoint_for("com.example/other").url_for("com.example/other") == "http://all/other"
    )
    assert module.endpoint_for("org.other/fn") is None


def test_a_typename_splits_at_its_last_slash_so_a_wildcard_does_not_take_a_nested_one() -> None:
    module = parse_module("""
kind: io.statefun.endpoints.v2/http
spec: {functions: com.example/*, urlPathTemplate: "http://all/{function.name}"}
""")
    # namespace com.example/nested, type fn: no endpoint binds that namespace
    assert module.endpoint_for("com.example/nested/fn") is None


def test_transport_timeouts_and_the_nested_compat_form() -> None:
    module = parse_module("""
kind: io.statefun.endpoints.v2/http
spec:
  functions: a/x
  urlPathTemplate: http://x/
  maxNumBatchRequests: 50
  transport: {type: io.statefun.transports.v1/async, call: 30s, connect: 2s}
---
kind: io.statefun.endpoints.v2/http
spec:
  functions: a/y
  urlPathTemplate: http://y/
  transport: {timeouts: {call: 5s}}
---
kind: io.statefun.endpoints.v1/http
spec:
  functions: a/z
  urlPathTemplate: http://z/
  timeouts: {call: 7s, connect: 7s, read: 3s, write: 7s}
""")
    x, y, z = module.endpoints
    assert (x.call_timeout, x.connect_timeout, x.max_num_batch_requests) == (30, 2, 50)
    assert (y.call_timeout, y.connect_timeout) == (5, 10)  # compat defaults: connect 10 s
    assert (z.transport, z.call_timeout, z.connect_timeout) == (OKHTTP_TRANSPORT, 7, 7)


@in_a_checkout
def test_kafka_and_kinesis_io() -> None:
    module = parse_module(
        GREETER_MODULE.read_text()
        + """
---
kind: io.statefun.kinesis.v1/egress
spec:
  id: com.example/stream
  awsRegion: {type: specific, id: us-west-1}
---
kind: io.statefun.kinesis.v1/ingress
spec:
  id: com.example/in
  streams:
    - {stream: s, valueType: com.example/User, targets: [com.example.fns/greeter]}
"""
    )
    assert sorted(module.egresses) == ["com.example/greets", "com.example/stream"]
    assert module.egresses["com.example/greets"].is_kafka
    assert module.ingresses["com.example/names"].routes == (
        ("names", "io.statefun.types/string", ("com.example.fns/greeter",)),
    )


def test_problems_name_file_document_and_field() -> None:
    found = problems("""
kind: io.statefun.endpoints.v2/http
spec:
  functions: com.example/*
  urlPathTemplate: http://x/
---
kind: io.statefun.endpoints.v2/http
spec:
  functions: "com.example/gr*"
  urlPathTemplate: ftp://x/
  transport: {call: soon}
---
kind: io.statefun.kafka.v1/egress
spec:
  address: kafka:9092
  deliverySemantic: {type: exactly-once}
---
kind: io.statefun.unknown/kind
spec: {}
""")
    assert any(p.startswith("m.yaml: document 1") and "spec.functions" in p for p in found)
    assert any("document 1" in p and "spec.urlPathTemplate" in p for p in found)
    assert any("document 1" in p and "spec.transport.call" in p and "soon" in p for p in found)
    assert any("document 2" in p and "spec.id: is required" in p for p in found)
    assert any("document 2" in p and "transactionTimeout: is required" in p for p in found)
    assert any("document 3" in p and "unknown kind 'io.statefun.unknown/kind'" in p for p in found)
    assert len(found) == 6


def test_duplicates_and_legacy_format() -> None:
    assert any(
        "already bound" in p
        for p in problems("""
kind: io.statefun.endpoints.v2/http
spec: {functions: a/b, urlPathTemplate: "http://x/"}
---
kind: io.statefun.endpoints.v2/http
spec: {functions: a/b, urlPathTemplate: "http://y/"}
""")
    )
    assert any("3.0 format" in p for p in problems("module: {meta: {type: remote}}"))
    assert any("not valid YAML" in p for p in problems("kind: [unclosed"))


def test_okhttp_timeouts_may_not_exceed_call() -> None:
    assert any(
        "spec.timeouts.read" in p and "may not exceed" in p
        for p in problems("""
kind: io.statefun.endpoints.v1/http
spec: {functions: a/b, urlPathTemplate: "http://x/", timeouts: {call: 1s, read: 5s}}
""")
    )


def endpoint(transport: str = "", kind: str = "v2") -> str:
    """An endpoint document with ``transport`` (v2) or ``timeouts`` (v1) as given."""
    key = "transport" if kind == "v2" else "timeouts"
    return f"""
kind: io.statefun.endpoints.{kind}/http
spec: {{functions: a/b, urlPathTemplate: "http://x/", {key}: {transport}}}
"""


OKHTTP = "type: io.statefun.transports.v1/okhttp"


@pytest.mark.parametrize(
    ("text", "field", "says"),
    [
        # a call budget of 0 (or under 1 ms) times out every request of the async transport
        (endpoint("{call: 0}"), "spec.transport.call", "must be more than 0, got 0"),
        (endpoint("{call: 0ms}"), "spec.transport.call", "every request would time out"),
        (endpoint("{call: 500us}"), "spec.transport.call", "must be at least 1 ms"),
        # the runtime refuses 0 in the compatibility form and in every OkHttp timeout
        (endpoint("{timeouts: {call: 0}}"), "spec.transport.timeouts.call", "runtime refuses"),
        (endpoint("{timeouts: {connect: 0s}}"), "spec.transport.timeouts.connect", "more than 0"),
        (
            endpoint(f"{{{OKHTTP}, timeouts: {{call: 0}}}}"),
            "spec.transport.timeouts.call",
            "must be more than 0",
        ),
        (
            endpoint("{call: 1s, connect: 1s, read: 1s, write: 0}", "v1"),
            "spec.timeouts.write",
            "must be more than 0",
        ),
        (
            endpoint("{call: 1s, connect: 250us, read: 1s, write: 1s}", "v1"),
            "spec.timeouts.connect",
            "at least 1 ms",
        ),
        # OkHttp checks the defaults too: a call under 10 s needs connect, read and write
        (
            endpoint("{call: 1s}", "v1"),
            "spec.timeouts.connect",
            "(not given: 10 s) may not exceed call (1 s)",
        ),
        (
            endpoint(f"{{{OKHTTP}, timeouts: {{call: 2s, connect: 1s, read: 2s}}}}"),
            "spec.transport.timeouts.write",
            "(not given: 10 s) may not exceed call (2 s)",
        ),
        # what the clients can hold: OkHttp and the connect timeout in a Java int of ms, the
        # async call budget in a long of ns
        (endpoint("{call: 30 days}", "v1"), "spec.timeouts.call", "at most 2147483647 ms"),
        (endpoint("{connect: 25 days}"), "spec.transport.connect", "at most 2147483647 ms"),
        (endpoint("{call: 110000 days}"), "spec.transport.call", "at most 9223372036854 ms"),
        (endpoint("{call: 99999999999999999999}"), "spec.transport.call", "numeric overflow"),
        (
            endpoint("{call: 9999999999999999999999999999999999 d}"),
            "spec.transport.call",
            "numeric overflow",
        ),
        # the flat ones are parsed even when the compatibility form wins
        (endpoint("{call: soon, timeouts: {call: 5s}}"), "spec.transport.call", "soon"),
        # no reply fits in 0 bytes; Netty refuses a negative size; the runtime reads an int
        (
            endpoint("{payload_max_bytes: 0}"),
            "spec.transport.payload_max_bytes",
            "must be at least 1, got 0: no reply would fit",
        ),
        (endpoint("{payload_max_bytes: -1}"), "spec.transport.payload_max_bytes", "got -1"),
        (
            endpoint("{payload_max_bytes: 2147483648}"),
            "spec.transport.payload_max_bytes",
            "32-bit integer",
        ),
        # Netty's fixed channel pool needs at least one connection
        (endpoint("{pool_size: 0}"), "spec.transport.pool_size", "must be at least 1, got 0"),
        (endpoint("{pool_size: -4}"), "spec.transport.pool_size", "got -4"),
        (endpoint("{pool_ttl: soon}"), "spec.transport.pool_ttl", "not a duration"),
        (
            """
kind: io.statefun.endpoints.v2/http
spec: {functions: a/b, urlPathTemplate: "http://x/", maxNumBatchRequests: 2147483648}
""",
            "spec.maxNumBatchRequests",
            "32-bit integer",
        ),
        (
            """
kind: io.statefun.kafka.v1/egress
spec:
  id: com.example/out
  address: broker:9092
  deliverySemantic: {type: exactly-once, transactionTimeout: 0 min}
""",
            "spec.deliverySemantic.transactionTimeout",
            "must be more than 0",
        ),
        (
            """
kind: io.statefun.kinesis.v1/egress
spec:
  id: com.example/out
  awsRegion: {type: default}
  maxOutstandingRecords: 0
""",
            "spec.maxOutstandingRecords",
            "must be at least 1, got 0",
        ),
    ],
)
def test_values_the_runtime_refuses(text: str, field: str, says: str) -> None:
    found = problems(text)
    assert any(f"{field}: " in p and says in p for p in found), found


def test_odd_values_the_runtime_accepts() -> None:
    module = parse_module(
        endpoint("{connect: 0, pool_ttl: 0, pool_size: 1, payload_max_bytes: 1, call: 1ms}")
        # the compatibility form wins: the flat call is not used, so 0 is no harm
        + "---"
        + endpoint("{call: 0, timeouts: {call: 5s}}").replace("a/b", "a/c")
        # an empty compatibility form wins too, with its defaults
        + "---"
        + endpoint("{call: 30s, timeouts: {}}").replace("a/b", "a/d")
        # OkHttp ignores payload_max_bytes and pool_size
        + "---"
        + endpoint(f"{{{OKHTTP}, payload_max_bytes: -1, pool_size: 0}}").replace("a/b", "a/e")
        + "---"
        + endpoint("{call: 2s, connect: 2s, read: 1s, write: 2s}", "v1").replace("a/b", "a/f")
        + """---
kind: io.statefun.endpoints.v2/http
spec: {functions: a/g, urlPathTemplate: "http://x/", maxNumBatchRequests: -1}
"""
    )
    b, c, d, e, f, g = module.endpoints
    assert (b.connect_timeout, b.call_timeout, b.payload_max_bytes) == (0, 0.001, 1)
    assert (b.pool_size, c.pool_size) == (1, 1024)
    assert c.call_timeout == 5
    assert (d.call_timeout, d.connect_timeout) == (60, 10)
    assert (e.transport, e.payload_max_bytes, e.pool_size) == (OKHTTP_TRANSPORT, 33_554_432, 0)
    assert (f.call_timeout, f.connect_timeout, f.pool_size) == (2, 2, 0)
    assert (e.pool_ttl, f.pool_ttl) == (0, 0)  # OkHttp's pool: no time to live of ours
    assert g.max_num_batch_requests == -1  # no back-pressure


def test_load_module_reports_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ModuleError) as caught:
        load_module(tmp_path / "nope.yaml")
    assert caught.value.problems == [f"{tmp_path / 'nope.yaml'}: can not read: No such file or "
                                     "directory"]  # fmt: skip


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# the module\n",
        "---\n---\n",
        """
kind: io.statefun.kafka.v1/egress
spec: {id: com.example/out, address: "kafka:9092"}
""",
    ],
)
def test_load_module_refuses_files_without_a_function_endpoint(tmp_path: Path, text: str
                                                               ) -> None:  # fmt: skip
    """An empty module file (a volume not mounted, the wrong file) ran a runtime that refused
    every message; the runtime refuses a module without functions ("There are no function
    providers defined")."""
    (tmp_path / "module.yaml").write_text(text)
    with pytest.raises(ModuleError) as caught:
        load_module(tmp_path / "module.yaml")
    assert caught.value.problems == [
        f"{tmp_path / 'module.yaml'}: no function endpoint (io.statefun.endpoints.v2/http): the "
        "runtime refuses a module without functions (is this the module file?)"
    ]
    (tmp_path / "functions.yaml").write_text(endpoint())  # beside another file that has them
    assert len(load_module(tmp_path / "module.yaml", tmp_path / "functions.yaml").endpoints) == 1


def test_load_module_names_a_file_that_is_not_utf_8(tmp_path: Path) -> None:
    (tmp_path / "module.yaml").write_bytes(b"\xff\xfe" + endpoint().encode("utf-16-le"))
    with pytest.raises(ModuleError) as caught:
        load_module(tmp_path / "module.yaml")
    [problem] = caught.value.problems
    assert problem.startswith(f"{tmp_path / 'module.yaml'}: can not read: not UTF-8 text (")


def test_unix_socket_urls_need_the_okhttp_transport() -> None:
    assert any(
        "need transport io.statefun.transports.v1/okhttp" in p
        for p in problems("""
kind: io.statefun.endpoints.v2/http
spec: {functions: a/b, urlPathTemplate: "http+unix:///run/fn.sock/statefun"}
""")
    )
    module = parse_module("""
kind: io.statefun.endpoints.v1/http
spec: {functions: a/b, urlPathTemplate: "http+unix:///run/fn.sock/statefun"}
""")
    assert module.endpoints[0].transport == OKHTTP_TRANSPORT


def test_what_the_kafka_connectors_are_given() -> None:
    module = parse_module("""
kind: io.statefun.kafka.v1/ingress
spec:
  id: com.example/in
  address: broker:9092
  consumerGroupId: g
  autoOffsetResetPosition: earliest
  startupPosition:
    type: specific-offsets
    offsets:
      - user-topic/0: 91
      - user/topic/12: 8
  topics:
    - {topic: user-topic, valueType: io.statefun.types/string, targets: [com.example/f]}
  properties:
    - max.poll.records: 5
    - client.id: me
---
kind: io.statefun.kafka.v1/ingress
spec:
  id: com.example/dated
  address: broker:9092
  consumerGroupId: g
  startupPosition: {type: date, date: 2020-02-01 04:15:00.00 Z}
  topics:
    - {topic: t, valueType: io.statefun.types/string, targets: [com.example/f]}
---
kind: io.statefun.kafka.v1/egress
spec:
  id: com.example/out
  address: broker:9092
  deliverySemantic: {type: exactly-once, transactionTimeout: 2min}
  properties: [{linger.ms: 5}]
""")
    ingress = module.ingresses["com.example/in"]
    assert (ingress.address, ingress.group) == ("broker:9092", "g")
    assert ingress.startup.position == "specific-offsets"
    assert ingress.startup.offsets == (("user-topic", 0, 91), ("user/topic", 12, 8))
    assert ingress.startup.reset == "earliest"
    assert ingress.properties == (("max.poll.records", "5"), ("client.id", "me"))
    dated = module.ingresses["com.example/dated"].startup
    assert (dated.position, dated.date_ms, dated.reset) == ("date", 1580530500000, "latest")
    egress = module.egresses["com.example/out"]
    assert (egress.semantic, egress.transaction_timeout_ms) == ("exactly-once", 120000)
    assert egress.properties == (("linger.ms", "5"),)


def test_kafka_defaults_and_bad_startup_positions() -> None:
    module = parse_module("""
kind: io.statefun.kafka.v1/ingress
spec:
  id: com.example/in
  address: b:9092
  consumerGroupId: g
  topics: [{topic: t, valueType: io.statefun.types/string, targets: [com.example/f]}]
""")
    # the runtime's default (protocol.md §10.2): the end of each partition, whatever the group
    # committed
    startup = module.ingresses["com.example/in"].startup
    assert (startup.position, startup.reset) == ("latest", "latest")
    found = problems("""
kind: io.statefun.kafka.v1/ingress
spec:
  id: com.example/in
  address: b:9092
  consumerGroupId: g
  startupPosition: {type: date, date: yesterday}
  topics: [{topic: t, valueType: io.statefun.types/string, targets: [com.example/f]}]
---
kind: io.statefun.kafka.v1/ingress
spec:
  id: com.example/in2
  address: b:9092
  consumerGroupId: g
  startupPosition: {type: specific-offsets, offsets: [{t: 1}]}
  topics: [{topic: t, valueType: io.statefun.types/string, targets: [com.example/f]}]
---
kind: io.statefun.kafka.v1/ingress
spec:
  id: com.example/in3
  address: b:9092
  consumerGroupId: g
  startupPosition: {type: date, date: '2999-01-01 00:00:00.000 Z'}
  topics: [{topic: t, valueType: io.statefun.types/string, targets: [com.example/f]}]
---
kind: io.statefun.kafka.v1/ingress
spec:
  id: com.example/in4
  address: b:9092
  consumerGroupId: g
  startupPosition: {type: date, date: '1969-12-31 23:59:59.999 Z'}
  topics: [{topic: t, valueType: io.statefun.types/string, targets: [com.example/f]}]
""")
    assert any("spec.startupPosition.date: must be a date like" in p for p in found), found
    assert any("offsets[0]: must be 'topic/partition: offset'" in p for p in found), found
    # FlinkKafkaConsumer refuses it ("Startup time ... must be before current time"): the
    # runtime's job does not start
    assert any("spec.startupPosition.date: is still to come" in p for p in found), found
    # and one before 1970 ("The provided value for the startup offsets timestamp is
    # invalid"); Kafka would take its -1 ms for the end of each partition
    assert any("spec.startupPosition.date: is before 1970" in p for p in found), found


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        # Flink reads the number into a long, the duration into a java.time.Duration
        ("9223372036854775807", (2**63 - 1) / 1000),
        ("106751991167300 d", 106751991167300 * 86400),
    ],
)
def test_the_longest_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["9223372036854775808", "106751991167301 d"])
def test_durations_one_past_the_longest_overflow(text: str) -> None:
    with pytest.raises(ValueError, match="numeric overflow"):
        parse_duration(text)


def test_split_unix_url_names_the_socket_file_and_the_runtimes_request() -> None:
    """The request StateFun 3.3 sends (seen in the e2e kit): the path below the socket file as
    one escaped segment, no query, host ``unused``, plain http for https+unix too."""
    assert split_unix_url("http+unix:///run/fn.sock/statefun") == (
        "/run/fn.sock",
        "http://unused/%2Fstatefun",
    )
    assert split_unix_url("https+unix:///tmp/a.sock") == ("/tmp/a.sock", "http://unused/%2F")
    assert split_unix_url("http+unix:///a.sock/cb?to=http://x") == (
        "/a.sock",
        "http://unused/%2Fcb",
    )
    assert split_unix_url("http+unix:///a.sock/caf%C3%A9/x%25y") == (
        "/a.sock",
        "http://unused/%2Fcaf%C3%A9%2Fx%25y",
    )


@pytest.mark.parametrize(
    ("urls", "warned"),
    [
        (["http+unix:///run/a.sock/statefun", "http+unix:///run/b.sock"], True),
        (["http+unix:///run/{function.name}.sock/statefun"], True),
        (["http+unix:///run/a.sock/statefun", "https+unix:///run/a.sock/x"], False),
        (["http+unix:///run/a.sock/statefun", "http://127.0.0.1:8000/statefun"], False),
    ],
)  # fmt: skip
def test_endpoints_on_more_than_one_unix_socket_are_warned_of(
    urls: list[str], warned: bool
) -> None:
    """Apache StateFun 3.3 sent the calls of six endpoints on six unix sockets all down the
    first socket's kept-alive connection (the e2e kit): one OkHttp pool, every socket host
    ``unused``."""
    module = parse_module("---\n".join(f"""
kind: io.statefun.endpoints.v2/http
spec:
  functions: ns{index}/*
  urlPathTemplate: "{url}"
  transport: {{type: {OKHTTP_TRANSPORT}}}
""" for index, url in enumerate(urls)), "m.yaml")  # fmt: skip
    sockets = [w for w in module.warnings if "more than one unix socket" in w]
    assert sockets == ([
        "m.yaml: document 0 (io.statefun.endpoints.v2/http): endpoints on more than one unix "
        f"socket ("
        f"{', '.join(dict.fromkeys(split_unix_url(url)[0] for url in urls if '+unix' in url))}"
        "): Apache StateFun 3.3 pools the connections to every unix socket as one, so its calls "
        "can go to another endpoint's socket; serve them all on one socket (statefun-local calls "
        "each endpoint on its own)"
    ] if warned else [])  # fmt: skip


def test_load_module_reads_every_file_into_one_module(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(endpoint())
    (tmp_path / "b.yaml").write_text("""
kind: io.statefun.kinesis.v1/egress
spec: {id: com.example/out, awsRegion: {type: default}}
""")
    module = load_module(tmp_path / "a.yaml", str(tmp_path / "b.yaml"))
    assert [e.functions for e in module.endpoints] == ["a/b"]
    assert list(module.egresses) == ["com.example/out"]
    (tmp_path / "c.yaml").write_text(endpoint())  # binds a/b again
    with pytest.raises(ModuleError) as caught:
        load_module(tmp_path / "a.yaml", tmp_path / "c.yaml")
    [problem] = caught.value.problems
    assert problem.startswith(f"{tmp_path / 'c.yaml'}: document 0") and "already bound" in problem


def test_empty_documents_are_skipped() -> None:
    module = parse_module("---\n" + endpoint() + "---\n---\n")
    assert [e.functions for e in module.endpoints] == ["a/b"]


def test_the_bounds_of_a_java_int_and_of_a_timeout_are_accepted() -> None:
    module = parse_module(
        endpoint("{connect: 2147483647ms}").replace(
            'http://x/"', 'http://x/", maxNumBatchRequests: 2147483647'
        )
        + "---"
        + endpoint("{payload_max_bytes: 2147483647}")
        .replace("a/b", "a/c")
        .replace('http://x/"', 'http://x/", maxNumBatchRequests: -2147483648')
    )
    b, c = module.endpoints
    assert (b.max_num_batch_requests, b.connect_timeout) == (2**31 - 1, 2147483.647)
    assert (c.max_num_batch_requests, c.payload_max_bytes) == (-(2**31), 2**31 - 1)


KAFKA_EGRESS = """
kind: io.statefun.kafka.v1/egress
spec: {{id: {id}, address: {address}}}
"""
KAFKA_INGRESS = """
kind: io.statefun.kafka.v1/ingress
spec:
  id: com.example/in
  address: b:9092
  consumerGroupId: g
  topics: [{{topic: t, valueType: {value_type}, targets: [{target}]}}]
"""


@pytest.mark.parametrize(
    ("text", "field", "says"),
    [
        (endpoint("5"), "spec.transport", "must be a mapping"),
        (endpoint("[call, 5s]", "v1"), "spec.timeouts", "must be a mapping"),
        (endpoint("{connect: 2147483648ms}"), "spec.transport.connect", "at most 2147483647 ms"),
        (endpoint().replace("http://x/\"", "http://x/\", maxNumBatchRequests: -2147483649"),
         "spec.maxNumBatchRequests", "32-bit integer"),
        (endpoint().replace("http://x/\"", "http://x/\", maxNumBatchRequests: true"),
         "spec.maxNumBatchRequests", "must be an integer"),
        (KAFKA_EGRESS.format(id="noslash", address="b:9092"), "spec.id", "namespace/name"),
        (KAFKA_EGRESS.format(id="com.example/a/b", address="b:9092"), "spec.id", "namespace/name"),
        (KAFKA_EGRESS.format(id="/out", address="b:9092"), "spec.id", "namespace/name"),
        (KAFKA_EGRESS.format(id="com.example/", address="b:9092"), "spec.id", "namespace/name"),
        (KAFKA_EGRESS.format(id="com.example/out", address='""'), "spec.address", "non-empty"),
        (KAFKA_EGRESS.format(id="com.example/out", address="9092"), "spec.address", "non-empty"),
        (KAFKA_INGRESS.format(value_type="string", target="com.example/f"),
         "spec.topics[0].valueType", "namespace/name"),
        (KAFKA_INGRESS.format(value_type="a/string", target="com.example/f/g"),
         "spec.topics[0].targets[0]", "namespace/name"),
    ],
)  # fmt: skip
def test_more_values_the_runtime_refuses(text: str, field: str, says: str) -> None:
    found = problems(text)
    assert any(f"{field}: " in p and says in p for p in found), found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("just text", ["m.yaml: document 0: must be a mapping with 'kind' and 'spec'"]),
        # alone in its file, and holding 'version', but no mapping: not the 3.0 format
        ("[version, module]", ["m.yaml: document 0: must be a mapping with 'kind' and 'spec'"]),
        ("[kind, spec]", ["m.yaml: document 0: must be a mapping with 'kind' and 'spec'"]),
        ("spec: {}", ["m.yaml: document 0: kind: is required"]),
        ("module: {meta: {type: remote}}", [
            'm.yaml: document 0: version: is required in the StateFun 3.0 format: version: "3.0"'
        ]),
        ("kind: io.statefun.endpoints.v2/http\nspec: 5",
         ["m.yaml: document 0: spec: is required and must be a mapping"]),
        ("kind: io.statefun.kafka.v1/egress\nspec: {address: b:9092}",
         ["m.yaml: document 0 (io.statefun.kafka.v1/egress): spec.id: is required"]),
    ],
)  # fmt: skip
def test_each_problem_of_a_document_is_reported_once_with_its_place(
    text: str, expected: list[str]
) -> None:
    assert problems(text) == expected


def document(kind: str, spec: dict[str, object], **changes: object) -> str:
    """A ``kind`` document of ``spec`` with ``changes`` (``None``: the field is left out)."""
    spec = {**spec, **changes}
    return yaml.safe_dump({"kind": kind, "spec": {k: v for k, v in spec.items() if v is not None}})


ROUTE = {"topic": "t", "valueType": "io.statefun.types/string", "targets": ["com.example/f"]}
KAFKA_IN = {"id": "com.example/in", "address": "b:9092", "consumerGroupId": "g", "topics": [ROUTE]}
STREAM = {"stream": "s", "valueType": "io.statefun.types/string", "targets": ["com.example/f"]}
KINESIS = {"id": "com.example/k", "awsRegion": {"type": "default"}}


def kafka_in(**changes: object) -> str:
    return document("io.statefun.kafka.v1/ingress", KAFKA_IN, **changes)


def kafka_out(**changes: object) -> str:
    return document(
        "io.statefun.kafka.v1/egress", {"id": "com.example/out", "address": "b:9092"}, **changes
    )


def kinesis_in(**changes: object) -> str:
    return document("io.statefun.kinesis.v1/ingress", {**KINESIS, "streams": [STREAM]}, **changes)


def kinesis_out(**changes: object) -> str:
    return document("io.statefun.kinesis.v1/egress", KINESIS, **changes)


@pytest.mark.parametrize(
    ("text", "field", "says"),
    [
        # an endpoint needs both its functions and its URL
        (document("io.statefun.endpoints.v2/http", {"urlPathTemplate": "http://x/"}),
         "spec.functions", "is required"),
        (document("io.statefun.endpoints.v2/http", {"functions": "a/b"}),
         "spec.urlPathTemplate", "is required"),
        (document("io.statefun.endpoints.v1/http", {"functions": "a/b"}),
         "spec.urlPathTemplate", "is required"),
        # the flat connect is parsed too when the compatibility form wins
        (endpoint("{connect: soon, timeouts: {call: 5s}}"), "spec.transport.connect", "soon"),
        # an OkHttp timeout given is named with its own value
        (endpoint("{call: 20s, connect: 30s}", "v1"), "spec.timeouts.connect",
         "(30 s) may not exceed call (20 s)"),
        # every field of a Kafka ingress, and of each of its topics, is required
        (kafka_in(id=None), "spec.id", "is required"),
        (kafka_in(address=None), "spec.address", "is required"),
        (kafka_in(consumerGroupId=None), "spec.consumerGroupId", "is required"),
        (kafka_in(topics=None), "spec.topics", "is required and must be a non-empty list"),
        (kafka_in(topics=[]), "spec.topics", "is required and must be a non-empty list"),
        (kafka_in(topics=5), "spec.topics", "is required and must be a non-empty list"),
        (kafka_in(topics=["t"]), "spec.topics[0]", "must be a mapping with topic"),
        (kafka_in(topics=[{**ROUTE, "topic": None}]), "spec.topics[0].topic", "is required"),
        (kafka_in(topics=[{**ROUTE, "valueType": None}]), "spec.topics[0].valueType",
         "is required"),
        (kafka_in(topics=[{**ROUTE, "targets": None}]), "spec.topics[0].targets",
         "is required and must be a non-empty list"),
        (kafka_in(topics=[{**ROUTE, "targets": []}]), "spec.topics[0].targets",
         "is required and must be a non-empty list"),
        (kafka_in(topics=[{**ROUTE, "targets": 5}]), "spec.topics[0].targets",
         "is required and must be a non-empty list"),
        (kafka_in(startupPosition={"type": "specific-offsets"}), "spec.startupPosition.offsets",
         "is required for specific-offsets"),
        (kafka_in(startupPosition={"type": "date"}), "spec.startupPosition.date", "is required"),
        (kafka_in() + "---\n" + kafka_in(), "spec.id", "ingress 'com.example/in' is defined twice"),
        (kafka_in(properties=5), "spec.properties", "must be a list of 'key: value' entries"),
        (kafka_in(properties=[{"a": 1}, 5]), "spec.properties[1]", "must be a 'key: value' entry"),
        (kafka_out(id=None), "spec.id", "is required"),
        (kafka_out(address=None), "spec.address", "is required"),
        (kafka_out() + "---\n" + kafka_out(), "spec.id",
         "egress 'com.example/out' is defined twice"),
        # Kinesis: the region or credentials a type names are required
        (kinesis_in(id=None), "spec.id", "is required"),
        (kinesis_in(streams=None), "spec.streams", "is required and must be a non-empty list"),
        (kinesis_in(streams=[{**STREAM, "stream": None}]), "spec.streams[0].stream",
         "is required"),
        (kinesis_in(startupPosition={"type": "date"}), "spec.startupPosition.date", "is required"),
        (kinesis_out(id=None), "spec.id", "is required"),
        (kinesis_out(awsRegion={"type": "specific"}), "spec.awsRegion.id", "is required"),
        (kinesis_out(awsRegion={"type": "custom-endpoint", "endpoint": "http://k:4566"}),
         "spec.awsRegion.id", "is required"),
        (kinesis_out(awsRegion={"type": "custom-endpoint", "id": "us-east-1"}),
         "spec.awsRegion.endpoint", "is required"),
        (kinesis_in(awsCredentials={"type": "basic", "secretAccessKey": "s"}),
         "spec.awsCredentials.accessKeyId", "is required"),
        (kinesis_in(awsCredentials={"type": "basic", "accessKeyId": "k"}),
         "spec.awsCredentials.secretAccessKey", "is required"),
        (kinesis_in(awsCredentials={"type": "profile"}), "spec.awsCredentials.profileName",
         "is required"),
        (kinesis_in(awsCredentials={"type": "anonymous"}), "spec.awsCredentials.type",
         "must be one of default, basic, profile"),
        (kinesis_in() + "---\n" + kinesis_in(), "spec.id",
         "ingress 'com.example/k' is defined twice"),
        (kinesis_out() + "---\n" + kinesis_out(), "spec.id",
         "egress 'com.example/k' is defined twice"),
    ],
)  # fmt: skip
def test_the_one_problem_of_a_document_missing_a_field(text: str, field: str, says: str) -> None:
    [found] = problems(text)
    assert f": {field}: " in found and says in found, found


@pytest.mark.parametrize(
    ("date", "ms"),
    [
        ("2020-02-01 04:15:00.00 Z", 1580530500000),
        ("2020-02-01 04:15:00Z", 1580530500000),
        ("2020-02-01 04:15:00.5 +01:30", 1580525100500),
        ("2020-02-01 04:15:00.123456 -0530", 1580550300123),
        ("2020-02-01 04:15:00.07 +0000", 1580530500070),
    ],
)
def test_startup_dates_with_their_zone_and_fraction(date: str, ms: int) -> None:
    module = parse_module(
        kafka_in(startupPosition={"type": "date", "date": date})
        + "---\n"
        + kinesis_in(startupPosition={"type": "date", "date": date})
    )
    kafka, kinesis = module.ingresses["com.example/in"], module.ingresses["com.example/k"]
    assert (kafka.startup.position, kafka.startup.date_ms) == ("date", ms)
    assert (kinesis.startup.position, kinesis.startup.date_ms) == ("date", ms)


@pytest.mark.parametrize(
    "date",
    [
        "2020-02-01 04:15:00.00 Z",
        "2020-02-01 04:15:00.000 Z",
        "2020-02-01 04:15:00.000 +01:00",
        "2020-02-01 04:15:00 +0000",
    ],
)
def test_a_startup_date_the_runtime_refuses_is_a_warning(date: str) -> None:
    """Read here, but Java's ``yyyy-MM-dd HH:mm:ss.SSS Z`` takes none of them: the job fails."""
    module = parse_module(
        kafka_in(startupPosition={"type": "date", "date": date})
        + "---\n"
        + kinesis_in(startupPosition={"type": "date", "date": date})
    )
    dates = [w.split(": ", 2)[2] for w in module.warnings if "startupPosition" in w]
    assert dates == 2 * [
        f"spec.startupPosition.date: {date!r} is read here, but Apache StateFun refuses it "
        "(the job fails): it reads only 'yyyy-MM-dd HH:mm:ss.SSS Z', three digits of fraction "
        "and the zone as +HHMM, e.g. '2020-02-01 04:15:00.000 +0000'"
    ]


def test_a_startup_date_in_the_runtimes_form_is_no_warning() -> None:
    date = "2020-02-01 04:15:00.000 -0530"
    module = parse_module(
        kafka_in(startupPosition={"type": "date", "date": date})
        + "---\n"
        + kinesis_in(startupPosition={"type": "date", "date": date})
    )
    assert not [w for w in module.warnings if "startupPosition" in w], module.warnings
    assert module.ingresses["com.example/in"].startup.date_ms == 1580550300000


def test_what_the_kinesis_connectors_are_given() -> None:
    module = parse_module(
        kinesis_in(
            awsRegion={"type": "custom-endpoint", "id": "us-east-1", "endpoint": "http://k:4566"},
            awsCredentials={"type": "basic", "accessKeyId": "key", "secretAccessKey": "secret"},
            startupPosition={"type": "earliest"},
            clientConfigProperties=[{"SocketTimeout": 120}, {"MaxConnections": 2}],
        )
        + "---\n"
        + kinesis_out(
            awsRegion={"type": "specific", "id": "eu-west-1"},
            awsCredentials={"type": "profile", "profileName": "dev"},
            clientConfigProperties={"RecordTtl": 100},
        )
    )
    ingress, egress = module.ingresses["com.example/k"], module.egresses["com.example/k"]
    assert ingress.address == "http://k:4566" and ingress.startup.position == "earliest"
    assert ingress.aws == Aws("us-east-1", "http://k:4566", "key", "secret", "")
    assert ingress.routes == (("s", "io.statefun.types/string", ("com.example/f",)),)
    assert ingress.properties == (("SocketTimeout", "120"), ("MaxConnections", "2"))
    assert egress.aws == Aws("eu-west-1", "", "", "", "dev")
    assert egress.properties == (("RecordTtl", "100"),)
    # the defaults: the SDK's region and credentials, from the end of each shard
    default = parse_module(kinesis_in()).ingresses["com.example/k"]
    assert (default.aws, default.startup.position, default.properties) == (Aws(), "latest", ())


def test_a_kafka_egress_is_given_its_address() -> None:
    egress = parse_module(kafka_out()).egresses["com.example/out"]
    assert (egress.address, egress.semantic, egress.transaction_timeout_ms) == (
        "b:9092",
        "at-least-once",
        0,
    )


@pytest.mark.parametrize(
    "entry", [5, "t/0", {"t/0": 1, "t/1": 2}, {}, {"t/x": 1}, {"/0": 1}, {"t0": 1}, {"t/0": "9"},
              {"t/": 1}, {"t/-1": 1}],
)  # fmt: skip
def test_bad_specific_offsets(entry: object) -> None:
    text = kafka_in(startupPosition={"type": "specific-offsets", "offsets": [{"t/0": 5}, entry]})
    [found] = problems(text)
    assert ": spec.startupPosition.offsets[1]: must be " in found, found


def test_a_topic_or_stream_listed_twice_is_routed_as_its_last_entry_says() -> None:
    """The runtime keeps an ingress' routes in a map by topic (stream): the last entry wins."""
    module = parse_module("""
kind: io.statefun.kafka.v1/ingress
spec:
  id: com.example/names
  address: kafka:9092
  consumerGroupId: g
  topics:
    - {topic: names, valueType: io.statefun.types/string, targets: [com.example/a]}
    - {topic: other, valueType: io.statefun.types/string, targets: [com.example/c]}
    - {topic: names, valueType: io.statefun.types/int, targets: [com.example/b]}
---
kind: io.statefun.kinesis.v1/ingress
spec:
  id: com.example/streams
  awsRegion: {type: specific, id: us-east-1}
  streams:
    - {stream: s, valueType: io.statefun.types/string, targets: [com.example/a]}
    - {stream: s, valueType: io.statefun.types/long, targets: [com.example/b]}
""")
    assert module.ingresses["com.example/names"].routes == (
        ("other", "io.statefun.types/string", ("com.example/c",)),
        ("names", "io.statefun.types/int", ("com.example/b",)),
    )
    assert module.ingresses["com.example/streams"].routes == (
        ("s", "io.statefun.types/long", ("com.example/b",)),
    )


def test_what_the_runtime_would_run_but_likely_not_as_meant_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Keys the runtime ignores (a typo; a pool setting of OkHttp's, which reads none), an
    ingress target that no endpoint serves: warnings, logged when a runtime starts, not errors
    (the runtime runs it)."""
    module = parse_module(
        """
kind: io.statefun.endpoints.v2/http
spec:
  functions: com.example/*
  urlPathTemplate: http://fn:8000/{function.name}
  transport: {type: io.statefun.transports.v1/async, conect: 2s}
---
kind: io.statefun.endpoints.v2/http
spec:
  functions: com.other/f
  urlPathTemplate: http://fn:8000/{function.name}
  transport:
    type: io.statefun.transports.v1/okhttp
    pool_size: 4
    timeouts: {call: 5s, connect: 1s, read: 1s, write: 1s}
---
kind: io.statefun.kafka.v1/ingress
spec:
  id: com.example/in
  address: broker:9092
  consumerGroupId: g
  startupPositon: {type: earliest}
  topics:
    - topic: t
      valueType: io.statefun.types/string
      targets: [com.example/f, com.shp/cart]
      valuetype: x
  properties: [{any.thing: 1}]
""",
        "m.yaml",
    )
    ignored = "not a key of this kind: ignored (a typo?)"
    endpoint = "m.yaml: document 0 (io.statefun.endpoints.v2/http): spec"
    ingress = "m.yaml: document 2 (io.statefun.kafka.v1/ingress)"
    assert module.warnings == [
        f"{endpoint}.transport.conect: {ignored}",
        f"m.yaml: document 1 (io.statefun.endpoints.v2/http): spec.transport.pool_size: {ignored}",
        f"{ingress}: spec.startupPositon: {ignored}",
        f"{ingress}: spec.topics[0].valuetype: {ignored}",
        f"{ingress}: ingress com.example/in, t: no endpoint in the module serves the target "
        "com.shp/cart: its records will fail",
    ]

    async def start() -> None:
        async with LocalRuntime(module, tmp_path / "db.sqlite", offline=True):
            pass

    asyncio.run(start())
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == module.warnings


@in_a_checkout
def test_the_repository_s_modules_hold_nothing_the_runtime_ignores() -> None:
    """The examples', and the e2e suites' (templates, filled in as their kits do)."""
    files = [path for folder in ("examples", "tests/e2e", "benchmarks") for path in
             (REPOSITORY / folder).rglob("module*.yaml")]  # fmt: skip
    assert len(files) >= 3
    values = {
        "functions_url": "http://127.0.0.1:8000/statefun",
        "java_url": "http://127.0.0.1:8001/statefun",
        "js_url": "http://127.0.0.1:8002/statefun",
        "kafka": "k:9092",
        "prefix": "e2e-",
        "sasl_kafka": "k:9093",
        "sasl_jaas": "'PlainLoginModule'",
        "tls": "",
        "dated": "2020-02-01 04:15:00.000 +0000",
    }
    warnings = {str(path): parse_module(Template(path.read_text()).substitute(values)).warnings
                for path in files}  # fmt: skip
    assert warnings == {str(path): [] for path in files}


#: The StateFun 3.0 docs' module, in their format (one document: version, module.meta,
#: module.spec), and the same in kind/spec documents, as the runtime converts it
#: (LegacyRemoteModuleV30).
FORMAT_V30 = """
version: "3.0"
module:
  meta:
    type: remote
  spec:
    endpoints:
      - endpoint:
          meta:
            kind: http
          spec:
            functions: example/*
            urlPathTemplate: https://bar.foo.com/{function.name}
    ingresses:
      - ingress:
          meta:
            type: io.statefun.kafka/ingress
            id: example/names
          spec:
            address: kafka-broker:9092
            consumerGroupId: my-group-id
            topics:
              - topic: names
                valueType: io.statefun.types/string
                targets:
                  - example/greeter
    egresses:
      - egress:
          meta:
            type: io.statefun.kafka/egress
            id: example/greets
          spec:
            address: kafka-broker:9092
            deliverySemantic:
              type: exactly-once
              transactionTimeoutMillis: 100000
"""
KIND_AND_SPEC = """
kind: io.statefun.endpoints.v1/http
spec:
  functions: example/*
  urlPathTemplate: https://bar.foo.com/{function.name}
---
kind: io.statefun.kafka.v1/ingress
spec:
  id: example/names
  address: kafka-broker:9092
  consumerGroupId: my-group-id
  topics:
    - topic: names
      valueType: io.statefun.types/string
      targets:
        - example/greeter
---
kind: io.statefun.kafka.v1/egress
spec:
  id: example/greets
  address: kafka-broker:9092
  deliverySemantic:
    type: exactly-once
    transactionTimeoutMillis: 100000
"""


def test_a_module_in_the_statefun_3_0_format_is_read_as_the_runtime_converts_it() -> None:
    def placeless(module: Any) -> list[Any]:
        """The module's parts without the places they were read at (which differ)."""
        parts = [*module.endpoints, *module.ingresses.values(), *module.egresses.values()]
        return [
            dataclasses.replace(
                part,
                **{
                    field.name: ""
                    for field in dataclasses.fields(part)
                    if str(getattr(part, field.name)).startswith("m.yaml: ")
                },
            )
            for part in parts
        ]

    v30 = parse_module(FORMAT_V30, "m.yaml")
    assert len(v30.endpoints) == len(v30.ingresses) == len(v30.egresses) == 1
    assert v30.egresses["example/greets"].transaction_timeout_ms == 100000
    assert placeless(v30) == placeless(parse_module(KIND_AND_SPEC, "m.yaml"))
    assert v30.endpoints[0].source == (
        "m.yaml: module.spec.endpoints[0].endpoint (io.statefun.endpoints.v1/http)"
    )


def test_a_module_in_the_statefun_3_0_format_is_read_only_alone_in_its_file() -> None:
    found = problems(FORMAT_V30 + "---\n" + KIND_AND_SPEC.split("---")[0])
    assert found == ["m.yaml: document 0: a module in the StateFun 3.0 format must be its file's "
                     "only document"], found  # fmt: skip


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('version: "3.0"', 'version: "3.1"'),
         "m.yaml: version: '3.1' is no format version the runtime reads"),
        (('version: "3.0"', "version: 3.0"),
         "m.yaml: version: must be a string, as in version: \"3.0\" (got 3.0)"),
        (('version: "3.0"', 'version: "2.0"'),
         "m.yaml: version: format 2.0 is no longer read; 3.0 is the oldest"),
        (("type: remote", "type: embedded"),
         "m.yaml: module.meta.type: must be remote, got 'embedded'"),
        (("            id: example/greets\n", ""),
         "m.yaml: module.spec.egresses[0].egress.meta.id: is required"),
        (("            kind: http\n", ""),
         "m.yaml: module.spec.endpoints[0].endpoint.meta.kind: is required"),
        (("address: kafka-broker:9092\n            consumerGroupId", "consumerGroupId"),
         "m.yaml: module.spec.ingresses[0].ingress (io.statefun.kafka.v1/ingress): "
         "spec.address: is required"),
    ],
    ids=["version-3.1", "version-a-number", "version-2.0", "not-remote", "no-egress-id",
         "no-kind", "in-a-spec"],
)  # fmt: skip
def test_each_problem_of_a_module_in_the_statefun_3_0_format_names_its_place(
    change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in FORMAT_V30
    [found] = problems(FORMAT_V30.replace(old, new, 1))
    assert found.startswith(expected), found


# --- found unchecked by mutation testing of module.py ------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # the socket file is the first path segment ending in .sock, as the runtime's
        # UnixDomainHttpEndpoint finds it: not the first ".sock" anywhere in the URL
        ("http+unix:///var/run/my.socks/fn.sock/statefun",
         ("/var/run/my.socks/fn.sock", "http://unused/%2Fstatefun")),
        ("http+unix:///run/a.socket/fn.sock", ("/run/a.socket/fn.sock", "http://unused/%2F")),
    ],
)  # fmt: skip
def test_the_socket_file_is_the_first_segment_ending_in_sock(
    url: str, expected: tuple[str, str]
) -> None:
    assert split_unix_url(url) == expected
    module = parse_module(f"""
kind: io.statefun.endpoints.v1/http
spec: {{functions: a/b, urlPathTemplate: "{url}"}}
""")
    assert module.endpoints[0].url_path_template == url


@pytest.mark.parametrize(
    "url", ["http+unix:///run/fn", "http+unix:///run/fn.socket/x", "https+unix:///run/f?x=.sock"]
)
def test_a_unix_socket_url_without_a_sock_file_is_refused(url: str) -> None:
    """The runtime fails such an endpoint ("Unix Domain Socket path should contain a .sock
    file"): no path segment ends in .sock."""
    [found] = problems(f"""
kind: io.statefun.endpoints.v1/http
spec: {{functions: a/b, urlPathTemplate: "{url}"}}
""")
    assert ": spec.urlPathTemplate: " in found and "ending in .sock" in found, found


def test_a_boolean_is_no_duration() -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(True)  # type: ignore[arg-type]
    assert str(caught.value) == "not a duration: True"


def test_a_negative_number_of_milliseconds_is_no_duration() -> None:
    with pytest.raises(ValueError, match="can not be negative: -5"):
        parse_duration(-5)
    [found] = problems(endpoint("{connect: -5}"))
    assert ": spec.transport.connect: a duration can not be negative" in found, found


def test_a_module_error_says_every_problem_one_a_line() -> None:
    with pytest.raises(ModuleError) as caught:
        parse_module(kafka_out(id=None) + "---\n" + kafka_out(address=None), "m.yaml")
    assert str(caught.value) == "invalid module:\n  " + "\n  ".join(caught.value.problems)
    assert len(caught.value.problems) == 2


def test_load_module_names_the_targets_no_endpoint_serves(tmp_path: Path) -> None:
    other = document(
        "io.statefun.endpoints.v2/http",
        {"functions": "com.example/other", "urlPathTemplate": "http://x/"},
    )
    (tmp_path / "m.yaml").write_text(kafka_in() + "---\n" + other)
    [warning] = load_module(tmp_path / "m.yaml").warnings
    assert warning.endswith("ingress com.example/in, t: no endpoint in the module serves the "
                            "target com.example/f: its records will fail")  # fmt: skip


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (document("io.statefun.endpoints.v2/http", {"functions": 5, "urlPathTemplate": "http://x/"}),
         "spec.functions"),
        (kafka_out(id=12), "spec.id"),
        (kafka_in(topics=[{**ROUTE, "valueType": ["a/b"]}]), "spec.topics[0].valueType"),
        (kafka_in(topics=[{**ROUTE, "targets": [7]}]), "spec.topics[0].targets[0]"),
    ],
)  # fmt: skip
def test_a_typename_that_is_no_string_is_a_problem_of_its_field(text: str, field: str) -> None:
    [found] = problems(text)
    assert f": {field}: must be a typename 'namespace/name', got " in found, found


def test_url_for_refuses_dot_names() -> None:
    spec = {"functions": "a/*", "urlPathTemplate": "http://x/fn/{function.name}"}
    [endpoint] = parse_module(document("io.statefun.endpoints.v2/http", spec)).endpoints
    assert endpoint.url_for("a/b c") == "http://x/fn/b%20c"
    for name in (".", ".."):
        with pytest.raises(ValueError) as caught:
            endpoint.url_for(f"a/{name}")
        assert str(caught.value) == f"'a/{name}': '.' and '..' are not function names"


def test_a_module_in_the_statefun_3_0_format_needs_its_spec() -> None:
    for spec in ("", "\n  spec: [endpoints]"):
        text = f'version: "3.0"\nmodule:\n  meta: {{type: remote}}{spec}\n'
        assert problems(text) == ["m.yaml: module.spec: is required and must be a mapping"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('version: "3.0"', "version: 3.0"),
         'm.yaml: version: must be a string, as in version: "3.0" (got 3.0)'),
        (('version: "3.0"', 'version: "2.0"'),
         "m.yaml: version: format 2.0 is no longer read; 3.0 is the oldest"),
        (('version: "3.0"', 'version: "3.1"'),
         "m.yaml: version: '3.1' is no format version the runtime reads (3.0, or 'kind'/'spec' "
         "documents without a version)"),
        (("type: remote", "type: embedded"),
         "m.yaml: module.meta.type: must be remote, got 'embedded'"),
    ],
    ids=["a-number", "2.0", "3.1", "not-remote"],
)  # fmt: skip
def test_a_module_in_a_format_the_runtime_does_not_read_is_that_one_problem(
    change: tuple[str, str], expected: str
) -> None:
    """Nothing of it is read: its parts' own problems (here an ingress without an address)
    are not reported on top."""
    text = FORMAT_V30.replace("address: kafka-broker:9092\n            consumerGroupId",
                              "consumerGroupId")  # fmt: skip
    assert problems(text.replace(*change)) == [expected]


def test_the_sections_of_a_module_in_the_statefun_3_0_format_are_lists() -> None:
    text = 'version: "3.0"\nmodule:\n  meta: {type: remote}\n  spec: {endpoints: 5, egresses: x}\n'
    assert problems(text) == ["m.yaml: module.spec.endpoints: must be a list",
                              "m.yaml: module.spec.egresses: must be a list"]  # fmt: skip


def test_a_zero_timeout_the_runtime_refuses_says_so() -> None:
    [found] = problems(endpoint("{call: 0}", "v1"))
    assert found.endswith(": spec.timeouts.call: must be more than 0, got 0: the runtime refuses "
                          "a zero timeout"), found  # fmt: skip


def test_a_wildcard_stands_for_a_whole_function_name_only() -> None:
    for functions in ("com.*/f", "*/f", "com.example/gr*"):
        spec = {"functions": functions, "urlPathTemplate": "http://x/"}
        [found] = problems(document("io.statefun.endpoints.v2/http", spec))
        assert ": spec.functions: '*' may only stand for the whole function name" in found, found


def test_an_integer_field_given_a_string_says_it_must_be_an_integer() -> None:
    spec = {"functions": "a/b", "urlPathTemplate": "http://x/", "maxNumBatchRequests": "5"}
    [found] = problems(document("io.statefun.endpoints.v2/http", spec))
    assert found.endswith(": spec.maxNumBatchRequests: must be an integer, got '5'"), found


def test_a_module_in_the_statefun_3_0_format_without_its_meta_type_is_not_remote() -> None:
    assert problems('version: "3.0"\nmodule: {spec: {}}\n') == [
        "m.yaml: module.meta.type: must be remote, got None"
    ]


def test_a_module_in_the_statefun_3_0_format_may_leave_out_sections() -> None:
    """Only endpoints here: no ingresses, no egresses (the runtime reads an absent section as
    an empty one)."""
    text = FORMAT_V30.split("    ingresses:")[0]
    module = parse_module(text, "m.yaml")
    assert [e.functions for e in module.endpoints] == ["example/*"]
    assert (module.ingresses, module.egresses) == ({}, {})


def test_a_kind_document_that_also_holds_a_module_key_is_read_as_its_kind() -> None:
    module = parse_module(endpoint() + "module: {meta: {type: remote}}\n")
    assert [e.functions for e in module.endpoints] == ["a/b"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1000000ns", 0.001), ("1000 us", 0.001), ("1000µs", 0.001), ("7ms", 0.007), ("1 s", 1.0),
     ("1 min", 60.0), ("1h", 3600.0), ("1 day", 86400.0)],
)  # fmt: skip
def test_each_time_unit_exactly(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_an_okhttp_call_timeout_of_10_s_alone_is_accepted() -> None:
    """Connect, read and write not given are 10 s, which may equal call."""
    [endpoint] = parse_module(
        document(
            "io.statefun.endpoints.v1/http",
            {"functions": "a/b", "urlPathTemplate": "http://x/", "timeouts": {"call": "10s"}},
        )
    ).endpoints
    assert (endpoint.call_timeout, endpoint.connect_timeout) == (10, 10)


def test_what_the_module_holds_can_not_be_changed() -> None:
    module = parse_module(endpoint() + "---\n" + kafka_in() + "---\n" + kafka_out())
    parts = [module.endpoints[0], module.ingresses["com.example/in"],
             module.egresses["com.example/out"], Tls()]  # fmt: skip
    for part in parts:
        with pytest.raises(dataclasses.FrozenInstanceError):
            part.source = "elsewhere"  # type: ignore[misc]


def test_an_okhttp_endpoint_without_timeouts_has_the_runtime_s() -> None:
    spec = {"functions": "a/b", "urlPathTemplate": "http://x/"}
    okhttp = {**spec, "transport": {"type": OKHTTP_TRANSPORT}}
    for kind, given in (("v1", spec), ("v2", okhttp)):
        [found] = parse_module(document(f"io.statefun.endpoints.{kind}/http", given)).endpoints
        assert (found.call_timeout, found.connect_timeout) == (60, 10), kind


def test_a_startup_date_a_day_to_come_is_refused() -> None:
    tomorrow = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    date = tomorrow.strftime("%Y-%m-%d %H:%M:%S.000 Z")
    [found] = problems(kafka_in(startupPosition={"type": "date", "date": date}))
    assert ": spec.startupPosition.date: is still to come" in found, found
    an_hour_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    date = an_hour_ago.strftime("%Y-%m-%d %H:%M:%S.000 Z")
    module = parse_module(kafka_in(startupPosition={"type": "date", "date": date}))
    assert module.ingresses["com.example/in"].startup.date_ms == int(
        an_hour_ago.replace(microsecond=0).timestamp() * 1000
    )


@pytest.mark.parametrize(
    ("unit", "ms"),
    [*[(name, 1e-6) for name in ("ns", "nano", "nanos", "nanosecond", "nanoseconds")],
     *[(name, 1e-3) for name in ("us", "µs", "micro", "micros", "microsecond", "microseconds")],
     *[(name, 1.0) for name in ("ms", "milli", "millis", "millisecond", "milliseconds")],
     *[(name, 1e3) for name in ("s", "sec", "secs", "second", "seconds")],
     *[(name, 6e4) for name in ("m", "min", "mins", "minute", "minutes")],
     *[(name, 3.6e6) for name in ("h", "hour", "hours")],
     *[(name, 8.64e7) for name in ("d", "day", "days")]],
)  # fmt: skip
def test_every_spelling_of_a_time_unit(unit: str, ms: float) -> None:
    assert parse_duration(f"3 {unit}") == pytest.approx(3 * ms / 1000, rel=1e-12)
    if unit.isascii():  # µ's capital is Greek: no unit
        assert parse_duration(f"3{unit.upper()}") == pytest.approx(3 * ms / 1000, rel=1e-12)


def test_problems_of_a_text_without_a_file_name_the_module_yaml() -> None:
    with pytest.raises(ModuleError) as caught:
        parse_module("kind: [unclosed")
    assert caught.value.problems[0].startswith("<module.yaml>: not valid YAML: ")


@pytest.mark.parametrize("position", ["group-offsets", "earliest", "latest"])
def test_the_kafka_startup_positions_without_more(position: str) -> None:
    module = parse_module(kafka_in(startupPosition={"type": position}))
    assert module.ingresses["com.example/in"].startup.position == position


@pytest.mark.parametrize("semantic", ["at-least-once", "none"])
def test_the_kafka_delivery_semantics_without_more(semantic: str) -> None:
    module = parse_module(kafka_out(deliverySemantic={"type": semantic}))
    assert module.egresses["com.example/out"].semantic == semantic


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (kafka_in(startupPosition="earliest"), "spec.startupPosition: must be a mapping"),
        (kinesis_in(startupPosition="earliest"), "spec.startupPosition: must be a mapping"),
        (kinesis_in(awsRegion="us-east-1"), "spec.awsRegion: must be a mapping"),
        (kinesis_in(awsCredentials="default"), "spec.awsCredentials: must be a mapping"),
        (kafka_out(deliverySemantic="none"), "spec.deliverySemantic: must be a mapping"),
        (kafka_in(startupPosition={"type": "end"}),
         "spec.startupPosition.type: must be one of group-offsets, earliest, latest, "
         "specific-offsets, date; got 'end'"),
        (kinesis_in(startupPosition={"type": "group-offsets"}),
         "spec.startupPosition.type: must be one of earliest, latest, date; got 'group-offsets'"),
        (kinesis_out(awsRegion={"type": "nearest"}),
         "spec.awsRegion.type: must be one of default, specific, custom-endpoint; got 'nearest'"),
        (kafka_out(deliverySemantic={"type": "once"}),
         "spec.deliverySemantic.type: must be one of exactly-once, at-least-once, none; "
         "got 'once'"),
        (endpoint("{call: 0}"),
         "spec.transport.call: must be more than 0, got 0: every request would time out"),
        (endpoint("{pool_size: 0}"), "spec.transport.pool_size: must be at least 1, got 0: the "
                                     "connection pool would hold no connection"),
        (endpoint("{payload_max_bytes: 0}"),
         "spec.transport.payload_max_bytes: must be at least 1, got 0: no reply would fit"),
        (endpoint("{call: 500us}"), "spec.transport.call: must be at least 1 ms, got '500us' "
                                    "(the runtime counts timeouts in whole milliseconds)"),
        (endpoint("{call: soon}"), "spec.transport.call: not a duration: 'soon' (expected e.g. "
                                   "'10s', '2 min', '500ms')"),
        (endpoint("{call: 10 fortnights}"),
         "spec.transport.call: unknown time unit 'fortnights' in '10 fortnights'"),
        (endpoint("{connect: 106751991167301 d}"),
         "spec.transport.connect: '106751991167301 d' is too long a duration (numeric overflow)"),
        (endpoint("{call: 1 s, connect: 2 s, read: 1 s, write: 1 s}", "v1"),
         "spec.timeouts.connect: (2 s) may not exceed call (1 s)"),
        (kafka_in(autoOffsetResetPosition="none"),
         "spec.autoOffsetResetPosition: must be one of earliest, latest; got 'none'"),
        (kafka_in(topics=[]), "spec.topics: is required and must be a non-empty list"),
        (kafka_in(topics=[{**ROUTE, "targets": []}]),
         "spec.topics[0].targets: is required and must be a non-empty list"),
        (kafka_in(startupPosition={"type": "specific-offsets"}),
         "spec.startupPosition.offsets: is required for specific-offsets"),
        (kafka_in(properties=5), "spec.properties: must be a list of 'key: value' entries"),
        (kafka_in(properties=[5]), "spec.properties[0]: must be a 'key: value' entry"),
        (kinesis_out(maxOutstandingRecords=0), "spec.maxOutstandingRecords: must be at least 1, "
                                               "got 0: the runtime refuses a queue limit under 1"),
        (kafka_out(deliverySemantic={"type": "exactly-once", "transactionTimeout": "0 min"}),
         "spec.deliverySemantic.transactionTimeout: must be more than 0, got '0 min': the "
         "runtime refuses it for exactly-once"),
        (kafka_out(id="a/b/c"), "spec.id: must be a typename 'namespace/name', got 'a/b/c'"),
        (kafka_out(address=""), "spec.address: must be a non-empty string, got ''"),
        (endpoint().replace("http://x/\"", "http://x/\", maxNumBatchRequests: 2147483648"),
         "spec.maxNumBatchRequests: must fit in a 32-bit integer (at most 2147483647), "
         "got 2147483648"),
        (endpoint().replace("http://x/", "ftp://x/"),
         "spec.urlPathTemplate: must be an http://, https:// or http+unix:// URL, got 'ftp://x/'"),
        (endpoint().replace("http://x/", "http+unix:///run/fn"),
         "spec.urlPathTemplate: a http+unix URL names a socket file ending in .sock, got "
         "'http+unix:///run/fn'"),
        (endpoint().replace("http://x/", "http+unix:///run/fn.sock"),
         "spec.urlPathTemplate: unix socket URLs need transport io.statefun.transports.v1/okhttp"),
        (endpoint() + "---" + endpoint(),
         "spec.functions: 'a/b' is already bound by another endpoint"),
    ],
)  # fmt: skip
def test_what_a_problem_of_a_field_says(text: str, message: str) -> None:
    [found] = problems(text)
    assert found.endswith(f"): {message}"), found


def test_the_kinesis_kinds_of_the_statefun_3_0_format() -> None:
    text = """version: "3.0"
module:
  meta: {type: remote}
  spec:
    ingresses:
      - ingress:
          meta: {type: io.statefun.kinesis/ingress, id: com.example/in}
          spec:
            awsRegion: {type: default}
            streams: [{stream: s, valueType: io.statefun.types/string, targets: [com.example/f]}]
    egresses:
      - egress:
          meta: {type: io.statefun.kinesis/egress, id: com.example/out}
          spec: {awsRegion: {type: default}}
"""
    module = parse_module(text)
    assert module.ingresses["com.example/in"].kind == "io.statefun.kinesis.v1/ingress"
    assert module.egresses["com.example/out"].kind == "io.statefun.kinesis.v1/egress"


def test_an_unknown_kind_names_the_kinds_known() -> None:
    assert problems("kind: io.statefun.kafka.v2/ingress\nspec: {}") == [
        "m.yaml: document 0: kind: unknown kind 'io.statefun.kafka.v2/ingress' (known: "
        "io.statefun.endpoints.v1/http, io.statefun.endpoints.v2/http, "
        "io.statefun.kafka.v1/egress, io.statefun.kafka.v1/ingress, "
        "io.statefun.kinesis.v1/egress, io.statefun.kinesis.v1/ingress, "
        "io.statefun.playground.v1/egress, io.statefun.playground.v1/ingress)"
    ]


def test_formats_1_0_and_2_0_are_no_longer_read() -> None:
    for version in ("1.0", "2.0"):
        [found] = problems(FORMAT_V30.replace('version: "3.0"', f'version: "{version}"'))
        assert found == f"m.yaml: version: format {version} is no longer read; 3.0 is the oldest"


def test_an_https_unix_url_is_taken_with_okhttp() -> None:
    spec = {"functions": "a/b", "urlPathTemplate": "https+unix:///run/fn.sock/statefun"}
    [found] = parse_module(document("io.statefun.endpoints.v1/http", spec)).endpoints
    assert found.url_path_template == "https+unix:///run/fn.sock/statefun"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http+unix:///tmp/my%20fns/fn.sock/statefun", ("/tmp/my fns/fn.sock", "http://unused/%2Fstatefun")),
        ("http+unix://localhost/run/fn.sock/x", ("/run/fn.sock", "http://unused/%2Fx")),
        ("http+unix://run/fn.sock", ("/fn.sock", "http://unused/%2F")),
        ("http+unix://user@h:99/tmp/a.sock/q?x#y", ("/tmp/a.sock", "http://unused/%2Fq")),
        ("http+unix:///tmp/a%2Fb.sock/x", ("/tmp/a/b.sock", "http://unused/%2Fx")),
        ("http+unix:///tmp/a.sock%2Fb/c", ("/tmp/a.sock", "http://unused/%2Fb%2Fc")),
        ("http+unix:////tmp//a.sock//x//", ("/tmp/a.sock", "http://unused/%2Fx")),
        ("HTTP+UNIX:///tmp/a.sock", ("/tmp/a.sock", "http://unused/%2F")),
    ],
)  # fmt: skip
def test_the_socket_file_is_read_from_the_decoded_path_without_the_host(
    url: str, expected: tuple[str, str]
) -> None:
    """As the runtime's UnixDomainHttpEndpoint reads URI.getPath() with Paths.get (each case
    checked with java.net.URI, java.nio.file.Paths and OkHttp 3.14's addPathSegment)."""
    assert split_unix_url(url) == expected


def test_a_unix_socket_url_with_a_path_below_its_host_only_is_refused() -> None:
    """``http+unix://fn.sock`` names the host ``fn.sock`` and an empty path: the runtime finds
    no .sock file there."""
    [found] = problems("""
kind: io.statefun.endpoints.v1/http
spec: {functions: a/b, urlPathTemplate: "http+unix://fn.sock"}
""")
    assert "spec.urlPathTemplate: a http+unix URL names a socket file ending in .sock" in found


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://fn:8000/{function.namespace}/{function.name}",
         "{function.namespace} is not replaced (the runtime replaces {function.name} only), "
         "and its URI parser (java.net.URI) refuses a brace: every call would fail"),
        ("http://fn:8000/{function.name",
         "{function.name is not replaced (the runtime replaces {function.name} only), "
         "and its URI parser (java.net.URI) refuses a brace: every call would fail"),
        ("http://fn:8000/my fns/{function.name}",
         "' ' in 'http://fn:8000/my fns/{function.name}' is refused by the runtime's URI "
         "parser (java.net.URI): every call would fail; percent-encode it (a space is %20)"),
        ("http+unix:///run/my fns/fn.sock",
         "' ' in 'http+unix:///run/my fns/fn.sock' is refused by the runtime's URI parser "
         "(java.net.URI): every call would fail; percent-encode it (a space is %20)"),
        ("http://fn:8000/100%",
         "'%' in 'http://fn:8000/100%' is refused by the runtime's URI parser (java.net.URI): "
         "every call would fail; percent-encode it (a % is %25)"),
        ("http://fn:8000/a|b", "'|' in 'http://fn:8000/a|b' is refused by the runtime's URI "
         "parser (java.net.URI): every call would fail; percent-encode it (a space is %20)"),
    ],
)  # fmt: skip
def test_a_url_the_runtime_can_not_parse_is_refused(url: str, problem: str) -> None:
    """The runtime makes each function's URL with URI.create (UrlPathTemplate), which throws
    "Illegal character" or "Malformed escape pair" for these (checked with java.net.URI): every
    call of the endpoint would fail. (A placeholder other than {function.name} was a warning
    that said it is sent as it is.)"""
    assert problems(f"""
kind: io.statefun.endpoints.v2/http
spec: {{functions: a/*, urlPathTemplate: "{url}"}}
""") == [f"m.yaml: document 0 (io.statefun.endpoints.v2/http): spec.urlPathTemplate: "
         f"{problem}"]  # fmt: skip


@pytest.mark.parametrize(
    "url", ["http://fn:8000/{function.name}", "http://fn:8000/caf%C3%A9/é?q=a%20b#top"]
)
def test_a_url_the_runtime_parses_is_taken(url: str) -> None:
    assert (
        parse_module(f"""
kind: io.statefun.endpoints.v2/http
spec: {{functions: a/*, urlPathTemplate: "{url}"}}
""")
        .endpoints[0]
        .url_path_template
        == url
    )
