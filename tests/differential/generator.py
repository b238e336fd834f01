"""Seeded random requests for the differential test: valid ``ToFunction`` batches whose messages
carry command programs (see ``program.py``).

A :class:`Case` is one request, kept as its parts (function, id, states, invocations) so that
it can be shrunk and printed; ``Case.request()`` encodes it with the protobuf classes of
``statefun_core.protocol``, never with either SDK's serializers, so neither shapes the input.
"""

from __future__ import annotations

import json
import random
import struct
from dataclasses import dataclass, field, replace
from typing import Any, Optional

from statefun_core import protocol

from .program import FUNCTIONS, PROGRAM_TYPENAME, STATES

TYPE_KEYS = ("bool", "int", "long", "float", "double", "string", "json", "pb")
TYPENAMES = {
    "bool": "io.statefun.types/bool",
    "int": "io.statefun.types/int",
    "long": "io.statefun.types/long",
    "float": "io.statefun.types/float",
    "double": "io.statefun.types/double",
    "string": "io.statefun.types/string",
    "json": "fuzz/json",
    "pb": "type.googleapis.com/io.statefun.sdk.reqreply.Address",
}
KEYWORDS = ("int_value", "float_value", "long_value", "str_value", "double_value", "bool_value")

# Deliberate deviations (docs/migration.md): commands the official SDK accepts and we refuse at
# the call with ValueError, because the runtime would fail the job on them.
NEGATIVE_DELAY = "send_after with a negative delay raises ValueError"
EMPTY_CANCELLATION = "cancel_delayed_message('') raises ValueError"
DEVIATIONS = (NEGATIVE_DELAY, EMPTY_CANCELLATION)

_DOUBLE_EDGES = [
    0.0, -0.0, 0.1, -1.5, 1e-300, 5e-324, 1e308, -1e308, float("inf"), float("-inf"),
    3.4028234663852886e38, 3.4028235e38, 3.5e38, -3.5e38, 1e-46, -1e-50, 1.401298464324817e-45,
    2.0**31, 2.0**63, 16777217.0,
]  # fmt: skip
_NAN_BITS = ["7ff8000000000000", "fff8000000000000", "7ff0000000000001", "fff4000000000001"]
_FLOAT32_BITS = [
    "7fc00000", "ffc00000", "7f800001", "ff800000", "7f800000", "80000000", "00000000",
    "00000001", "7f7fffff", "3dcccccd",
]  # fmt: skip
_STRINGS = ["", "a", "hello", "Zoë", "日本語", "🙂", "x" * 130, "é" * 70, "\x00", "line\nbreak"]
_INTS = [
    0, 1, -1, 7, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63 - 1, 2**63, -(2**63), 2**64,
    10**20, 255,
]  # fmt: skip


def _is_nan(spec: list[Any]) -> bool:
    if spec[0] != "f":
        return False
    value: float = struct.unpack(">d", bytes.fromhex(spec[1]))[0]
    return value != value


@dataclass
class Invocation:
    program: list[Any]
    caller: Optional[tuple[str, str, str]] = None


@dataclass
class Case:
    """One request: what a difference's reproduction shows."""

    seed: int
    index: int
    function: str
    id: str
    # name -> None (not sent), or (typename, has_value, value bytes as hex)
    states: dict[str, Optional[tuple[str, bool, str]]]
    invocations: list[Invocation]
    # (deviation, invocation index, command index) of the commands that deviate on purpose
    deviations: list[tuple[str, int, int]] = field(default_factory=list)

    def request(self) -> bytes:
        out = protocol.ToFunction()
        batch = out.invocation
        namespace, name = self.function.rsplit("/", 1)
        batch.target.namespace, batch.target.type, batch.target.id = namespace, name, self.id
        for state_name, sent in self.states.items():
            if sent is None:
                continue
            state = batch.state.add()
            state.state_name = state_name
            typename, has_value, data = sent
            if typename or has_value or data:
                state.state_value.typename = typename
                state.state_value.has_value = has_value
                state.state_value.value = bytes.fromhex(data)
        for invocation in self.invocations:
            item = batch.invocations.add()
            if invocation.caller is not None:
                item.caller.namespace, item.caller.type, item.caller.id = invocation.caller
            item.argument.typename = PROGRAM_TYPENAME
            item.argument.has_value = True
            item.argument.value = json.dumps(invocation.program).encode()
        return bytes(out.SerializeToString())

    def raising(self) -> list[Invocation]:
        """The invocations that raise (a ``["raise"]`` command): in dead-letter mode, the ones
        dead-lettered."""
        return [inv for inv in self.invocations if ["raise"] in inv.program]

    def without_raising(self) -> Case:
        """The same case without the invocations that raise: what is left of it once they are
        dead-lettered."""
        kept = [inv for inv in self.invocations if ["raise"] not in inv.program]
        return replace(self, invocations=kept)

    def without_deviations(self) -> Case:
        """The same case with each deliberately deviating command made a no-op."""
        invocations = [
            Invocation([list(command) for command in inv.program], inv.caller)
            for inv in self.invocations
        ]
        for _, i, j in self.deviations:
            invocations[i].program[j] = ["noop"]
        return replace(self, invocations=invocations, deviations=[])

    def describe(self) -> str:
        lines = [f"seed {self.seed}, request {self.index}: {self.function} id={self.id!r}"]
        for name, sent in self.states.items():
            lines.append(f"  state {name}: {'not sent (missing)' if sent is None else sent}")
        for number, invocation in enumerate(self.invocations):
            lines.append(f"  invocation {number} caller={invocation.caller}")
            for command in invocation.program:
                lines.append(f"    {json.dumps(command)}")
        return "\n".join(lines)


def add_raises(case: Case, rng: random.Random) -> None:
    """Make one or two invocations of half the cases raise where they stand (for dead-letter
    mode), but for cases with a deliberate deviation, whose positions must stay as they are."""
    if case.deviations or rng.random() < 0.5:
        return
    for invocation in rng.sample(case.invocations, min(len(case.invocations), rng.choice([1, 2]))):
        if ["raise"] not in invocation.program:
            invocation.program.insert(rng.randint(0, len(invocation.program)), ["raise"])


class Generator:
    """Random cases from one seed; the same seed gives the same cases."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)

    def cases(self, count: int) -> list[Case]:
        return [self.case(index) for index in range(count)]

    def case(self, index: int) -> Case:
        rng = self.rng
        function = rng.choice(list(FUNCTIONS))
        _, names = FUNCTIONS[function]
        complete = rng.random() < 0.85
        states: dict[str, Optional[tuple[str, bool, str]]] = {}
        for name in names:
            states[name] = (
                self.received(STATES[name][0]) if complete or rng.random() < 0.5 else None
            )
        if rng.random() < 0.1:  # a state the function does not declare: ignored by both
            states["undeclared"] = self.received(rng.choice(TYPE_KEYS))
        case = Case(self.seed, index, function, self.id(), states, [])
        for number in range(rng.choice([1, 1, 1, 2, 2, 3, 4, 6, 10])):
            case.invocations.append(Invocation(self.program(case, number), self.caller()))
        if not case.deviations and rng.random() < 0.02:  # an uncaught error: the batch fails
            program = case.invocations[rng.randrange(len(case.invocations))].program
            program.insert(rng.randint(0, len(program)), ["raise"])
        return case

    # --- parts ----------------------------------------------------------------------------

    def id(self) -> str:
        return self.rng.choice(["a", "user-1", "42", "Zoë", "日本", "with space", "x" * 40])

    def caller(self) -> Optional[tuple[str, str, str]]:
        choice = self.rng.random()
        if choice < 0.5:
            return None
        if choice < 0.55:
            return ("", "", "")  # an empty caller: none, for both
        return (self.rng.choice(["fuzz", "ns", "a.b"]), self.rng.choice(["f", "g"]), self.id())

    def received(self, key: str) -> tuple[str, bool, str]:
        """What the runtime sends for a state of type ``key``: usually a value of that type,
        sometimes none, rarely one of another type (a mismatch both SDKs refuse on read)."""
        rng = self.rng
        if rng.random() < 0.25:
            return (TYPENAMES[key], False, "")
        if rng.random() < 0.03:
            key = rng.choice(TYPE_KEYS)
            return (TYPENAMES[key] + ("-other" if rng.random() < 0.5 else ""), True, "0d05000000")
        return (TYPENAMES[key], True, self.encoded(key).hex())

    def encoded(self, key: str) -> bytes:
        rng = self.rng
        if key == "bool":
            return rng.choice([b"", b"\x08\x01", b"\x08\x02"])
        if key in ("int", "long"):
            bits = 32 if key == "int" else 64
            number = rng.choice(
                [0, 1, -1, 2 ** (bits - 1) - 1, -(2 ** (bits - 1)), rng.randint(-999, 999)]
            )
            wrapper = protocol.IntWrapper if key == "int" else protocol.LongWrapper
            return bytes(wrapper(value=number).SerializeToString())
        if key == "float":
            if rng.random() < 0.2:
                return b""
            bits = rng.choice([*_FLOAT32_BITS, f"{rng.getrandbits(32):08x}"])
            return b"\x0d" + bytes.fromhex(bits)[::-1]
        if key == "double":
            if rng.random() < 0.2:
                return b""
            return b"\x09" + struct.pack("<d", self.double())
        if key == "string":
            return bytes(protocol.StringWrapper(value=rng.choice(_STRINGS)).SerializeToString())
        if key == "json":
            return json.dumps(self.plain(2)).encode()
        return bytes(
            protocol.Address(
                namespace=self.id(), type=rng.choice(["", "t"]), id=self.id()
            ).SerializeToString()
        )

    def double(self) -> float:
        rng = self.rng
        choice = rng.random()
        if choice < 0.4:
            return rng.choice(_DOUBLE_EDGES)
        if choice < 0.5:
            return float(struct.unpack(">d", bytes.fromhex(rng.choice(_NAN_BITS)))[0])
        if choice < 0.6:
            return float(struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0])
        return rng.uniform(-1, 1) * 10.0 ** rng.randint(-40, 40)

    def plain(self, depth: int) -> Any:
        """A JSON document as a Python value (lists, dicts, numbers, text, None)."""
        rng = self.rng
        choice = rng.randrange(7 if depth else 5)
        if choice == 0:
            return rng.choice(_INTS)
        if choice == 1:
            return rng.choice([0.5, -2.25, 1e300, 0.1])
        if choice == 2:
            return rng.choice(_STRINGS)
        if choice == 3:
            return rng.choice([True, False, None])
        if choice == 4:
            return rng.randint(-5, 5)
        if choice == 5:
            return [self.plain(depth - 1) for _ in range(rng.randrange(4))]
        return {rng.choice(_STRINGS[:6]): self.plain(depth - 1) for _ in range(rng.randrange(4))}

    def value(self, key: Optional[str] = None) -> list[Any]:
        """A value description (``program.make_value``): one that fits type ``key`` most of
        the time, any value otherwise (to meet each type's conversions and refusals)."""
        rng = self.rng
        if key is None or rng.random() < 0.3:
            key = rng.choice(
                ["bool", "int", "double", "string", "json", "pb", "bytes", "none", "tuple", "odd"]
            )
        if key == "bool":
            return ["b", rng.random() < 0.5] if rng.random() < 0.8 else ["i", rng.choice(_INTS)]
        if key in ("int", "long"):
            if rng.random() < 0.7:
                bits = 32 if key == "int" else 64
                return [
                    "i",
                    rng.randint(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) >> rng.randrange(bits),
                ]
            return ["i", rng.choice(_INTS)]
        if key in ("float", "double"):
            return ["f", struct.pack(">d", self.double()).hex()]
        if key == "string":
            return ["s", rng.choice(_STRINGS)] if rng.random() < 0.97 else ["surrogate"]
        if key == "json":
            return self.json_value(2)
        if key == "pb":
            return ["pb", self.id(), rng.choice(["", "t"]), self.id()]
        if key == "bytes":
            return ["bytes", rng.choice(["", "616263", "ff00"])]
        if key == "none":
            return ["none"]
        if key == "tuple":
            return ["tuple", [["i", 1], ["s", "two"]]]
        return ["object"]

    def json_value(self, depth: int) -> list[Any]:
        rng = self.rng
        choice = rng.randrange(8 if depth else 5)
        if choice == 0:
            return ["i", rng.choice(_INTS)]
        if choice == 1:
            return ["f", struct.pack(">d", rng.choice([0.5, 0.1, -0.0, 1e300])).hex()]
        if choice == 2:
            return ["s", rng.choice(_STRINGS)]
        if choice == 3:
            return ["b", rng.random() < 0.5]
        if choice == 4:
            return ["none"]
        if choice == 5:
            return ["tuple", [self.json_value(depth - 1) for _ in range(rng.randrange(3))]]
        if choice == 6:
            return ["list", [self.json_value(depth - 1) for _ in range(rng.randrange(4))]]
        return ["dict", [[rng.choice(_STRINGS[:5]), self.json_value(depth - 1)] for _ in range(3)]]

    def program(self, case: Case, number: int) -> list[Any]:
        rng = self.rng
        _, names = FUNCTIONS[case.function]
        program: list[Any] = []
        for position in range(rng.choice([0, 1, 2, 3, 4, 5, 6, 8])):
            op = rng.choices(
                [
                    "get", "set", "del", "add", "mutate", "set_mutate", "send", "send_after",
                    "cancel", "kafka", "kinesis", "egress", "caller", "address",
                ],
                [20, 20, 5, 8, 6, 5, 10, 6, 3, 4, 3, 3, 3, 2],
            )[0]  # fmt: skip
            if op in ("get", "set", "del", "add", "mutate", "set_mutate"):
                if not names or rng.random() < 0.02:
                    name, key = "not_a_state", None  # AttributeError, for both
                else:
                    name = rng.choice(names)
                    key = STATES[name][0]
                if op in ("get", "del", "mutate"):
                    program.append([op, name])
                elif op == "add":
                    amount = self.value(key if key not in ("json", "pb", None) else None)
                    while _is_nan(amount):
                        # NaN + NaN keeps either payload, depending on how the interpreter
                        # added them (a specialized instruction may swap the operands)
                        amount = self.value(key if key not in ("json", "pb", None) else None)
                    program.append([op, name, amount])
                else:
                    program.append([op, name, self.value(key)])
            elif op == "send":
                program.append(["send", *self.message()])
            elif op == "send_after":
                delay = rng.choice([0, 1, 999, 60_000, rng.randrange(10**9)])
                token = rng.choice([None, "", "tok-1", "tok-2", "Zoë"])
                if rng.random() < 0.02:
                    delay = -rng.randint(1, 5000)
                    case.deviations.append((NEGATIVE_DELAY, number, position))
                program.append(["send_after", delay, token, *self.message()])
            elif op == "cancel":
                token = rng.choice(["tok-1", "tok-2", "Zoë", "never-sent"])
                if rng.random() < 0.05:
                    token = ""
                    case.deviations.append((EMPTY_CANCELLATION, number, position))
                program.append(["cancel", token])
            elif op == "kafka":
                type_key = rng.choice([None, None, *TYPE_KEYS])
                program.append(
                    [
                        "kafka",
                        rng.choice(["fuzz/kafka", "e/k"]),
                        rng.choice(["topic", "t-2", "Zoë", ""]),
                        rng.choice([None, "", "key", "日本"]),
                        self.value(type_key) if type_key else self.egress_value(),
                        type_key,
                    ]
                )
            elif op == "kinesis":
                type_key = rng.choice([None, None, *TYPE_KEYS])
                program.append(
                    [
                        "kinesis",
                        rng.choice(["fuzz/kinesis", "e/k"]),
                        rng.choice(["stream", "s-2", ""]),
                        rng.choice([None, "", "pk", "日本"]),
                        self.value(type_key) if type_key else self.egress_value(),
                        type_key,
                        rng.choice([None, None, "", "123"]),
                    ]
                )
            elif op == "egress":
                type_key = rng.choice(TYPE_KEYS)
                program.append(["egress", "fuzz/egress", self.value(type_key), type_key])
            else:
                program.append([op])
        return program

    def egress_value(self) -> list[Any]:
        """A value a Kafka or Kinesis record takes without a type: text, bytes, int, float."""
        rng = self.rng
        return rng.choice(
            [
                ["s", rng.choice(_STRINGS)],
                ["bytes", "00ff"],
                ["i", rng.choice(_INTS)],
                ["f", struct.pack(">d", self.double()).hex()],
                ["b", True],
                ["none"],
                ["list", []],
            ]
        )

    def message(self) -> list[Any]:
        """target, id, how (a keyword or a type key), value."""
        rng = self.rng
        target = rng.choice(["fuzz/other", "ns/fn", "a/b/c", "fuzz/other"])
        id = self.id() if rng.random() < 0.98 else ""
        how = rng.choice([*KEYWORDS, *TYPE_KEYS])
        key = {
            "int_value": "int", "float_value": "float", "long_value": "long",
            "str_value": "string", "double_value": "double", "bool_value": "bool",
        }.get(how, how)  # fmt: skip
        return [target, id, how, self.value(key)]
