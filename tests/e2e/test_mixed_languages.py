"""Our Python functions, a Java function of the official Java SDK (statefun-sdk-java 3.3.0,
``java/MixedFunction.java``) and a JavaScript function of the official JavaScript SDK
(apache-flink-statefun 3.3.0, ``js/mixed_function.js``) in one application, on Apache Flink
StateFun 3.3 and on statefun-local with the same ``module_mixed.yaml``: messages both ways
between Python and each of the others, and egress records from each, with every built-in type
and a custom JSON and protobuf type read the same on each side.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from string import Template
from typing import Optional

import pytest

from . import kit
from .conftest import runtime_or_skip
from .test_scenarios import by_key, command

#: each other SDK's function: how the kit starts it
OTHER_SDKS: dict[str, Callable[[Path, str], tuple[kit.Process, int]]] = {
    "java": kit.start_java_function,
    "js": kit.start_js_function,
}


class MixedApplication:
    """The Python functions (aiohttp), the Java and the JavaScript function and a runtime, on
    topics of its own."""

    def __init__(self, kafka: kit.Kafka, runtime_name: str, workdir: Path) -> None:
        self.kafka = kafka
        self.runtime_name = runtime_name
        self.workdir = workdir
        self.prefix = f"mixed-{runtime_name}-{uuid.uuid4().hex[:6]}-"
        self.processes: list[kit.Process] = []
        #: sdk: why its function cannot be had here (its test is skipped)
        self.unavailable: dict[str, str] = {}

    def start(self) -> None:
        runtime: Optional[kit.Runtime] = None
        if self.runtime_name != kit.LOCAL.name:
            runtime = runtime_or_skip(self.runtime_name)
        urls = {}
        for sdk, start in OTHER_SDKS.items():
            try:
                process, port = start(self.workdir, self.prefix)
            except kit.Unavailable as error:
                self.unavailable[sdk] = str(error)
                port = 9  # never called: the test of this SDK is skipped
            else:
                self.processes.append(process)
            urls[f"{sdk}_url"] = f"http://127.0.0.1:{port}/statefun"
        python, python_port = kit.start_function_server("aiohttp", self.workdir, self.prefix)
        self.processes.append(python)
        self.kafka.create_topics(
            self.prefix + name
            for name in ("commands", *(f"from-{sdk}" for sdk in OTHER_SDKS),
                         *(f"{sdk}-seen" for sdk in OTHER_SDKS))
        )  # fmt: skip
        module = self.workdir / "module.yaml"
        module.write_text(Template((kit.HERE / "module_mixed.yaml").read_text()).substitute(
            functions_url=f"http://127.0.0.1:{python_port}/statefun", **urls,
            kafka=self.kafka.bootstrap, prefix=self.prefix,
        ))  # fmt: skip
        if runtime is None:
            self.processes.append(kit.LOCAL.start(module, self.workdir)[0])
        else:
            self.processes.append(runtime.start(module, self.workdir))

    def stop(self) -> None:
        for process in reversed(self.processes):  # the runtime first
            process.stop()


@pytest.fixture(scope="module", params=[kit.APACHE.name, kit.LOCAL.name])
def mixed(
    kafka: kit.Kafka, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MixedApplication]:
    app = MixedApplication(kafka, str(request.param), tmp_path_factory.mktemp("mixed"))
    try:
        app.start()
        yield app
    finally:
        app.stop()


KINDS = {
    "int": "io.statefun.types/int",
    "long": "io.statefun.types/long",
    "float": "io.statefun.types/float",
    "double": "io.statefun.types/double",
    "bool": "io.statefun.types/bool",
    "string": "io.statefun.types/string",
    "json": "e2e/profile",
    "protobuf": "type.googleapis.com/google.protobuf.Timestamp",
}
#: kind: (the value sent as Java read it, the answer as Python read it), for
#: functions.TO_OTHER_SDK; JavaScript reads each the same (its long a BigInt), but for READ_IN_JS
VALUES = {
    "int": ("-2147483648", "-1073741824"),  # / 2
    "long": ("9007199254740993", "18014398509481986"),  # * 2, more than a double holds
    "float": ("1.5", "3.0"),  # * 2
    "double": ("-0.1", "-0.30000000000000004"),  # * 3
    "bool": ("true", "False"),
    "string": ("héllo ✓ 𝄞 (9 code points)", "'HÉLLO ✓ 𝄞'"),
    "json": (
        '{"name":"Ånn","tags":["a","b","c"]}',
        '{"name": "ÅNN", "seen": 7, "tags": ["c", "b", "a"]}',
    ),
    "protobuf": ("seconds=1700000000 nanos=5", "seconds=3400000000 nanos=10"),
}
#: the same for each type's zero: no bytes on the wire (but a JSON document), a zero answered
ZEROS = {
    "int": ("0", "0"),
    "long": ("0", "0"),
    "float": ("0.0", "0.0"),
    "double": ("0.0", "0.0"),
    "bool": ("false", "True"),
    "string": (" (0 code points)", "''"),
    "json": ('{"name":"","tags":[]}', '{"name": "", "seen": 15, "tags": []}'),
    "protobuf": ("seconds=0 nanos=0", "seconds=0 nanos=0"),
}
#: (kind, as Java shows it): as JavaScript shows it, where that differs (a whole Number)
READ_IN_JS = {("float", "0.0"): "0", ("double", "0.0"): "0"}


@pytest.mark.parametrize("sdk", sorted(OTHER_SDKS))
def test_python_and_other_sdk_functions_exchange_every_type(
    mixed: MixedApplication, sdk: str
) -> None:
    """e2e.fns/mixed sends e2e.<sdk>/mixed a value of each type (functions.TO_OTHER_SDK), then
    each type's zero. The other SDK's function writes each as it read it to an egress record of
    its own, with its count of messages so far (its state), and answers each with a value it
    computed from it (halved, doubled, negated, upper case, tags reversed with that count,
    ...), which the Python function writes to the egress as it read it."""
    if sdk in mixed.unavailable:
        pytest.skip(f"the {sdk} SDK's function cannot be had here: {mixed.unavailable[sdk]}")
    other = f"e2e.{sdk}/mixed"

    def answers(count: int) -> dict[str, list[str]]:
        return by_key(mixed.kafka.read(mixed.prefix + f"from-{sdk}", count, settle=1))

    def expected(table: dict[str, tuple[str, str]]) -> dict[str, list[str]]:
        return {f"M.{kind}": [f"{KINDS[kind]} {answer} from {other}/M"]
                for kind, (_, answer) in table.items()}  # fmt: skip

    def as_read(kind: str, text: str) -> str:
        return READ_IN_JS.get((kind, text), text) if sdk == "js" else text

    mixed.kafka.produce(mixed.prefix + "commands", [("M", command(op="send", to=sdk))])
    assert answers(len(VALUES)) == expected(VALUES)
    mixed.kafka.produce(mixed.prefix + "commands", [("M", command(op="send", to=sdk, zeros=True))])
    assert {key: texts[1:] for key, texts in answers(2 * len(ZEROS)).items()} == expected(ZEROS)
    read = [
        f"{KINDS[kind]} {as_read(kind, sent)}"
        for table in (VALUES, ZEROS)
        for kind, (sent, _) in table.items()
    ]
    seen = by_key(mixed.kafka.read(mixed.prefix + f"{sdk}-seen", len(read), settle=1))
    assert seen == {"M": [f"{n} {text}" for n, text in enumerate(read, start=1)]}
