"""Every scenario on each real runtime, the functions served by statefun-aiohttp: Kafka in,
Kafka out (read_committed), nothing but what a user of the runtime sees."""

from __future__ import annotations

import json

from statefun_core import StringType

from .kit import Application


def string(value: str) -> bytes:
    """A record value for an ``io.statefun.types/string`` ingress topic: the type's bytes."""
    return StringType.serializer().serialize(value)


def command(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def by_key(records: list) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for record in records:
        out.setdefault(record.key, []).append(record.text)
    return out


def test_greeter_keeps_state_across_messages(application: Application) -> None:
    application.send("names", [(name, string(name)) for name in ["Ann", "Bo", "Ann", "Ann"]])
    greetings = by_key(application.read("greetings", 4, settle=2))
    assert greetings == {
        "Ann": [f"Hello Ann for the {n}th time!" for n in range(3)],
        "Bo": ["Hello Bo for the 0th time!"],
    }
