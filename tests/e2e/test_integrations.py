"""The greeter and the failure scenario through every other integration, on each runtime:
Tornado, Flask under gunicorn, Django under gunicorn (WSGI) and under uvicorn (ASGI), and the
core's ASGI application mounted in FastAPI under uvicorn.
(aiohttp runs every scenario: test_scenarios.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import kit
from .conftest import running
from .test_scenarios import by_key, command, string

OTHER_FRAMEWORKS = [framework for framework in kit.FRAMEWORKS if framework != "aiohttp"]


@pytest.fixture(scope="module", params=OTHER_FRAMEWORKS)
def served(
    request: pytest.FixtureRequest,
    kafka: kit.Kafka,
    runtime_name: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[kit.Application]:
    with running(kafka, runtime_name, request.param, tmp_path_factory.mktemp("app")) as app:
        yield app


def test_greeter(served: kit.Application) -> None:
    served.send("names", [(name, string(name)) for name in ["Ann", "Bo", "Ann"]])
    assert by_key(served.read("greetings", 3, settle=2)) == {
        "Ann": ["Hello Ann for the 0th time!", "Hello Ann for the 1th time!"],
        "Bo": ["Hello Bo for the 0th time!"],
    }


def test_failures_are_retried_to_exactly_one_effect(served: kit.Application) -> None:
    served.send("flaky", [("X", command(payload="p1", fail=2))])
    assert by_key(served.read("attempts", 2, settle=3)) == {"X": ["p1:3", "successes=1"]}
