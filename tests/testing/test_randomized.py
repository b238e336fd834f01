"""Protocol §12's end-to-end check: a seeded interpreter of nested commands (increment, send,
send after, send after then cancel, egress) over many ids, with failing batches and runtime
restarts; every counter must end exactly at what an oracle computed."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from statefun_core import (
    FunctionFailedError,
    IntType,
    StatefulFunctions,
    ValueSpec,
    kafka_egress_message,
    make_json_type,
    message_builder,
)
from statefun_core.testing import Harness

COMMANDS = make_json_type("example/commands")
INTERPRETER = "example/interpreter"
IDS = [f"id-{index}" for index in range(12)]


class Faults:
    def __init__(self, rng: random.Random, rate: float) -> None:
        self.rng, self.rate, self.injected = rng, rate, 0

    def maybe_fail(self) -> None:
        if self.rng.random() < self.rate:
            self.injected += 1
            raise ConnectionError("injected fault")


def interpreter_functions(faults: Faults) -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind(INTERPRETER, specs=[ValueSpec("count", IntType)])
    def interpret(context, message):
        faults.maybe_fail()
        for command in message.as_type(COMMANDS):
            op = command["op"]
            if op == "inc":
                context.storage.count = (context.storage.count or 0) + 1
            elif op == "egress":
                context.send_egress(
                    kafka_egress_message("example/out", "counts", "x", key=context.address.id)
                )
            else:
                nested = message_builder(
                    INTERPRETER, command["to"], value=command["commands"], value_type=COMMANDS
                )
                if op == "send":
                    context.send(nested)
                elif op == "after":
                    context.send_after(timedelta(milliseconds=command["ms"]), nested)
                elif op == "after then cancel":
                    token = command["token"]
                    context.send_after(timedelta(milliseconds=command["ms"]), nested, token)
                    context.cancel_delayed_message(token)

    return functions


class Generator:
    """Random command trees and their expected effects."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.expected: Counter[str] = Counter()
        self.egress: Counter[str] = Counter()
        self.tokens = 0

    def commands(self, target: str, depth: int, delivered: bool = True) -> list[dict[str, Any]]:
        commands = []
        for _ in range(self.rng.randint(1, 4)):
            choice = self.rng.random()
            if choice < 0.4 or depth == 0:
                commands.append({"op": "inc"})
                self.expected[target] += delivered
            elif choice < 0.5:
                commands.append({"op": "egress"})
                self.egress[target] += delivered
            else:
                to = self.rng.choice(IDS)
                op = self.rng.choice(["send", "after", "after then cancel"])
                command: dict[str, Any] = {"op": op, "to": to}
                if op != "send":
                    command["ms"] = self.rng.randint(0, 3_000)
                if op == "after then cancel":
                    self.tokens += 1
                    command["token"] = f"token-{self.tokens}"
                nested_delivered = delivered and op != "after then cancel"
                command["commands"] = self.commands(to, depth - 1, nested_delivered)
                commands.append(command)
        return commands


def run_with_faults(harness: Harness, rng: random.Random, step: Any) -> None:
    """Run ``step`` until it succeeds; after a failure, sometimes restart the runtime."""
    for _ in range(1_000):
        try:
            step()
            return
        except FunctionFailedError:
            if rng.random() < 0.3:
                harness.restart()
    raise AssertionError("the faults never stopped")


@pytest.mark.parametrize("seed", range(6))
def test_every_counter_ends_exactly_as_the_oracle_says(seed):
    rng = random.Random(seed)
    faults = Faults(rng, rate=0.15)
    generator = Generator(rng)
    harness = Harness(interpreter_functions(faults))

    for _ in range(40):
        target = rng.choice(IDS)
        commands = generator.commands(target, depth=3)
        harness.send(INTERPRETER, target, value=commands, value_type=COMMANDS)
        if rng.random() < 0.5:
            run_with_faults(harness, rng, harness.run)
        if rng.random() < 0.3:
            run_with_faults(harness, rng, lambda: harness.advance(rng.randint(0, 1_500)))
    run_with_faults(harness, rng, lambda: harness.advance(timedelta(hours=1)))
    run_with_faults(harness, rng, harness.run)

    assert faults.injected > 0
    assert harness.pending == []
    counts = {id: harness.state(INTERPRETER, id).get("count", 0) for id in IDS}
    assert counts == {id: generator.expected[id] for id in IDS}
    assert Counter(record.key for record in harness.egress) == +generator.egress
