"""Protobuf's wire format written by hand: the handler's replies and the egress records.

What is written here is what protobuf's serializer writes for the same message: fields in
number order, and proto3's defaults (an empty string, ``False``, 0) left out, except where a
set submessage or a repeated element is written even when empty. ``tests/core/test_protowire.py``
checks it against protobuf itself.

Why by hand: protobuf's Python classes look each field up by name and wrap each submessage in
a Python object, and in a server, where the framework's code evicts upb's tables from the
CPU's caches between two requests, building the greeter's reply that way took 7 µs against
3 µs for these bytes (``benchmarks/README.md``). Requests are still parsed by protobuf.
"""

from __future__ import annotations

import functools
import struct

__all__ = [
    "HAS_VALUE",
    "ONE_BYTE",
    "element",
    "field",
    "key",
    "text",
    "typed_value_fields",
    "varint",
]

ONE_BYTE = tuple(bytes((n,)) for n in range(0x80))  # a varint under 0x80, by its value
_TWO_BYTES = struct.Struct("<H")
# the key of a length-delimited field numbered 1 to 15, the only ones written here
_KEYS = tuple(bytes(((number << 3) | 2,)) for number in range(16))
HAS_VALUE = b"\x10\x01"  # TypedValue.has_value (2), true


def varint(value: int) -> bytes:
    """``value`` as a base-128 varint (a negative one as its 64-bit two's complement)."""
    if value < 0x80:
        if value >= 0:
            return ONE_BYTE[value]
    elif value < 0x4000:  # two bytes: a length up to 16 KiB
        return _TWO_BYTES.pack(value & 0x7F | 0x80 | (value >> 7) << 8)
    if not -(2**63) <= value < 2**64:
        raise ValueError(f"Value out of range: {value}")  # as protobuf says of an int64
    value &= 0xFFFF_FFFF_FFFF_FFFF
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def key(number: int, wire_type: int) -> bytes:
    """The key that starts field ``number`` of ``wire_type`` (0: varint, 2: length-delimited)."""
    return varint((number << 3) | wire_type)


def text(value: object) -> bytes:
    """A string field's bytes: ``value`` in UTF-8, or ``bytes`` that are UTF-8 already (which
    protobuf's classes take for a string field too). Typed ``object``: it refuses anything
    else itself, with a message its callers catch and name the field in."""
    if type(value) is str:
        return value.encode()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode().encode()  # refused when not UTF-8, as protobuf refuses
    raise TypeError(f"a string field takes str, not {type(value).__name__}")


def element(number: int, data: bytes) -> bytes:
    """A length-delimited field written even when empty: a submessage that is set, or an
    element of a repeated field (``number`` from 1 to 15)."""
    size = len(data)
    return _KEYS[number] + (ONE_BYTE[size] if size < 0x80 else varint(size)) + data


def field(number: int, data: bytes) -> bytes:
    """A proto3 string or bytes field (``number`` from 1 to 15): left out when empty."""
    if not data:
        return b""
    size = len(data)
    return _KEYS[number] + (ONE_BYTE[size] if size < 0x80 else varint(size)) + data


@functools.lru_cache(maxsize=4096)
def typed_value_fields(typename: str) -> bytes:
    """A ``TypedValue`` of ``typename`` with a value, up to the value's bytes: ``typename``
    (1) and ``has_value`` (2); the value (3) follows as ``field(3, data)``."""
    return field(1, typename.encode()) + HAS_VALUE
