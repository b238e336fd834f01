"""The functions served over mutual TLS, module.yaml giving the async transport its TLS files
(``trust_cacerts``, ``client_cert``, ``client_key``, ``client_key_password``) as the StateFun
docs show them: the same file on each runtime, statefun-local included."""

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
    pki = kit.make_pki(tmp_path_factory.mktemp("pki"))
    workdir = tmp_path_factory.mktemp("app")
    with running(kafka, runtime_name, "aiohttp", workdir, tls=pki) as app:
        yield app


def test_the_greeter_behind_mutual_tls(served: kit.Application) -> None:
    assert served.module is not None and "client_key_password:" in served.module.read_text()
    served.send("names", [(name, string(name)) for name in ["Ann", "Bo", "Ann"]])
    assert by_key(served.read("greetings", 3, settle=2)) == {
        "Ann": ["Hello Ann for the 0th time!", "Hello Ann for the 1th time!"],
        "Bo": ["Hello Bo for the 0th time!"],
    }
