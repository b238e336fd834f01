"""The request bodies, encoded here with the standard library only.

The driver builds every ``ToFunction`` once and hands the same bytes to every implementation,
so no implementation's protobuf (or its serializer's field order) shapes the input. Each
request carries the function's full state, so no state-discovery round trip happens.
"""

from __future__ import annotations

import struct

GREETER = "com.example.fns/greeter"
STATE10 = "com.example.fns/state10"
FANOUT = "com.example.fns/fanout"
INBOX = "com.example.fns/inbox"
KAFKA_EGRESS = "com.example.fns/greetings"
KAFKA_TOPIC = "greetings"

INT = "io.statefun.types/int"
STRING = "io.statefun.types/string"

STATE10_NAMES = tuple(f"s{i}" for i in range(10))
STATE10_SIZE = 1024

# payload name -> invocations in its request
INVOCATIONS = {"greeter": 1, "batch100": 100, "state10": 1, "fanout": 1}

# payload name -> what it exercises (shown in the README and the table)
PAYLOADS = {
    "greeter": "1 invocation, 1 int state read and written, 1 message sent",
    "batch100": "100 invocations to one address (the greeter), 100 messages sent",
    "state10": "1 invocation, 10 string states of 1 KiB, all rewritten",
    "fanout": "1 invocation, 10 messages and 1 Kafka egress record sent",
}


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (strings, bytes, messages)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _text(number: int, value: str) -> bytes:
    return _field(number, value.encode("utf-8")) if value else b""


def _address(typename: str, id: str) -> bytes:
    namespace, _, name = typename.rpartition("/")
    return _text(1, namespace) + _text(2, name) + _text(3, id)


def _typed_value(typename: str, value: bytes) -> bytes:
    return _text(1, typename) + _varint(2 << 3) + b"\x01" + (_field(3, value) if value else b"")


def int_value(value: int) -> bytes:
    """``IntWrapper`` (``sfixed32 value = 1``) as its canonical proto3 encoding."""
    return b"\x0d" + struct.pack("<i", value) if value else b""


def string_value(value: str) -> bytes:
    """``StringWrapper`` (``string value = 1``)."""
    return _text(1, value)


def to_function(
    typename: str,
    id: str,
    states: list[tuple[str, str, bytes]],
    arguments: list[tuple[str, bytes]],
) -> bytes:
    """A ``ToFunction`` invocation batch: ``states`` as (name, typename, value) and one
    invocation per (typename, value) argument, each from an ingress (no caller)."""
    batch = _field(1, _address(typename, id))
    for name, state_type, value in states:
        batch += _field(2, _text(1, name) + _field(2, _typed_value(state_type, value)))
    for argument_type, value in arguments:
        batch += _field(3, _field(2, _typed_value(argument_type, value)))
    return _field(100, batch)


def state10_value(index: int) -> str:
    """1 KiB of ASCII text, different for each state."""
    line = f"state {index} " + "abcdefghijklmnopqrstuvwxyz0123456789" * 30
    return line[:STATE10_SIZE]


def build() -> dict[str, bytes]:
    """Every payload's request body, by payload name."""
    seen = [("seen_count", INT, int_value(41))]
    return {
        "greeter": to_function(GREETER, "Alice", seen, [(STRING, string_value("Alice"))]),
        "batch100": to_function(
            GREETER, "Alice", seen, [(STRING, string_value(f"Bob{i}")) for i in range(100)]
        ),
        "state10": to_function(
            STATE10,
            "doc-7",
            [
                (name, STRING, string_value(state10_value(i)))
                for i, name in enumerate(STATE10_NAMES)
            ],
            [(INT, int_value(3))],
        ),
        "fanout": to_function(FANOUT, "Carol", [], [(STRING, string_value("Carol"))]),
    }
