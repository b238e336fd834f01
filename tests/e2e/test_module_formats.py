"""The same application from a module.yaml in the StateFun 3.0 format (``module_v30.yaml``),
which the runtime still reads: statefun-local reads it as the runtime converts it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import kit
from .conftest import running
from .test_scenarios import by_key, string


@pytest.fixture(scope="module")
def served(
    kafka: kit.Kafka, runtime_name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[kit.Application]:
    workdir = tmp_path_factory.mktemp("app")
    with running(kafka, runtime_name, "aiohttp", workdir,
                 template=kit.HERE / "module_v30.yaml") as app:  # fmt: skip
        yield app


def test_the_greeter_from_a_module_in_the_statefun_3_0_format(served: kit.Application) -> None:
    assert served.module is not None and 'version: "3.0"' in served.module.read_text()
    served.send("names", [(name, string(name)) for name in ["Ann", "Bo", "Ann"]])
    assert by_key(served.read("greetings", 3, settle=2)) == {
        "Ann": ["Hello Ann for the 0th time!", "Hello Ann for the 1th time!"],
        "Bo": ["Hello Bo for the 0th time!"],
    }
