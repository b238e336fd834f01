"""Our Python functions and a Java function of the official Java SDK (statefun-sdk-java 3.3.0,
``java/MixedFunction.java``) in one application, on Apache Flink StateFun 3.3 and on
statefun-local with the same ``module_mixed.yaml``: messages both ways and egress records from
both, with every built-in type and a custom JSON and protobuf type read the same on each side.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from string import Template
from typing import Optional

import pytest

from . import kit
from .conftest import runtime_or_skip
from .test_scenarios import by_key, command


class MixedApplication:
    """The Python functions (aiohttp), the Java function and a runtime, on topics of its own."""

    def __init__(self, kafka: kit.Kafka, runtime_name: str, workdir: Path) -> None:
        self.kafka = kafka
        self.runtime_name = runtime_name
        self.workdir = workdir
        self.prefix = f"mixed-{runtime_name}-{uuid.uuid4().hex[:6]}-"
        self.processes: list[kit.Process] = []

    def start(self) -> None:
        runtime: Optional[kit.Runtime] = None
        if self.runtime_name != kit.LOCAL.name:
            runtime = runtime_or_skip(self.runtime_name)
        try:
            java, java_port = kit.start_java_function(self.workdir, self.prefix)
        except kit.Unavailable as error:
            pytest.skip(f"the Java SDK's function cannot be built here: {error}")
        self.processes.append(java)
        python, python_port = kit.start_function_server("aiohttp", self.workdir, self.prefix)
        self.processes.append(python)
        self.kafka.create_topics(
            self.prefix + name for name in ("to-java", "from-java", "java-seen")
        )
        module = self.workdir / "module.yaml"
        module.write_text(Template((kit.HERE / "module_mixed.yaml").read_text()).substitute(
            functions_url=f"http://127.0.0.1:{python_port}/statefun",
            java_url=f"http://127.0.0.1:{java_port}/statefun",
            kafka=self.kafka.bootstrap, prefix=self.prefix,
        ))  # fmt: skip
        if runtime is None:
            self.processes.append(kit.LOCAL.start(module, self.workdir)[0])
        else:
            self.processes.append(runtime.start(module, self.workdir))

    def stop(self) -> None:
        for process in reversed(self.processes):  # the runtime first
            process.stop()


@pytest.fixture(params=[kit.APACHE.name, kit.LOCAL.name])
def mixed(
    kafka: kit.Kafka, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[MixedApplication]:
    app = MixedApplication(kafka, str(request.param), tmp_path)
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
#: kind: (the value sent as Java read it, the answer as Python read it), for functions.TO_JAVA
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


def test_python_and_java_functions_exchange_every_type(mixed: MixedApplication) -> None:
    """e2e.fns/mixed sends e2e.java/mixed a value of each type (functions.TO_JAVA), then each
    type's zero. The Java function writes each as it read it to an egress record of its own,
    with its count of messages so far (its state), and answers each with a value it computed
    from it (halved, doubled, negated, upper case, tags reversed with that count, ...), which
    the Python function writes to the egress as it read it."""

    def answers(count: int) -> dict[str, list[str]]:
        return by_key(mixed.kafka.read(mixed.prefix + "from-java", count, settle=1))

    def expected(table: dict[str, tuple[str, str]]) -> dict[str, list[str]]:
        return {f"M.{kind}": [f"{KINDS[kind]} {answer} from e2e.java/mixed/M"]
                for kind, (_, answer) in table.items()}  # fmt: skip

    mixed.kafka.produce(mixed.prefix + "to-java", [("M", command(op="send"))])
    assert answers(len(VALUES)) == expected(VALUES)
    mixed.kafka.produce(mixed.prefix + "to-java", [("M", command(op="send", zeros=True))])
    assert {key: texts[1:] for key, texts in answers(2 * len(ZEROS)).items()} == expected(ZEROS)
    read = [
        f"{KINDS[kind]} {sent}" for table in (VALUES, ZEROS) for kind, (sent, _) in table.items()
    ]
    seen = by_key(mixed.kafka.read(mixed.prefix + "java-seen", len(read), settle=1))
    assert seen == {"M": [f"{n} {text}" for n, text in enumerate(read, start=1)]}
