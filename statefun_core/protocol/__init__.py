"""The StateFun wire messages, built from the ``.proto`` files beside this module.

The classes live in a private descriptor pool built from ``statefun.desc`` (the compiled
``.proto`` files; ``nox -s protos`` regenerates it). Generated ``_pb2`` modules would pin us to
one protobuf generation and would clash in the default pool with any other copy of these
messages in the process (the official SDK, the user's own generated code); this works the same
on every protobuf from 3.20 to 7.x and uses whichever backend (upb, cpp, python) is installed.
"""

from __future__ import annotations

import pkgutil
from typing import Any, Iterator, Union

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.internal import api_implementation
from google.protobuf.message import DecodeError

__all__ = [
    "Address",
    "BooleanWrapper",
    "DoubleWrapper",
    "FloatWrapper",
    "FromFunction",
    "IntWrapper",
    "KafkaProducerRecord",
    "KinesisEgressRecord",
    "LongWrapper",
    "StringWrapper",
    "ToFunction",
    "TypedValue",
    "batch_field_counts",
    "parse_request",
    "pool",
]


def _varint(data: Union[bytes, bytearray, memoryview], position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise DecodeError("a varint of more than ten bytes")


def _file_descriptors(descriptor_set: bytes) -> Iterator[bytes]:
    """The files (``FileDescriptorProto``, serialized) of a ``FileDescriptorSet``, each its
    field 1: read by hand, as parsing it would import ``descriptor_pb2``, the largest of
    protobuf's modules (a sixth of a cold start)."""
    position = 0
    while position < len(descriptor_set):
        tag, position = _varint(descriptor_set, position)
        if tag != (1 << 3) | 2:
            raise DecodeError(f"a FileDescriptorSet has only files (field 1), not tag {tag}")
        length, position = _varint(descriptor_set, position)
        yield descriptor_set[position : position + length]
        position += length


# pkgutil, not importlib.resources: its import (pathlib, tempfile, zipfile) is a tenth of a
# cold start's when the plugins' entry points are not read (importlib.metadata imports it).
_descriptor_set = pkgutil.get_data(__name__, "statefun.desc")
if _descriptor_set is None:  # pragma: no cover (a loader that reads no files)
    raise ImportError(f"{__name__}: its loader cannot read statefun.desc beside it")
pool: descriptor_pool.DescriptorPool = descriptor_pool.DescriptorPool()
for _file in _file_descriptors(_descriptor_set):
    pool.AddSerializedFile(_file)


def _message_class(full_name: str) -> Any:
    descriptor = pool.FindMessageTypeByName(full_name)
    get_message_class = getattr(message_factory, "GetMessageClass", None)
    if get_message_class is not None:  # protobuf >= 4.21
        return get_message_class(descriptor)
    return _with_nested(_factory.GetPrototype(descriptor), descriptor)  # pragma: no cover


_factory: Any = message_factory.MessageFactory(pool)


def _with_nested(cls: Any, descriptor: Any) -> Any:  # pragma: no cover (protobuf < 4.21)
    """``cls`` with its nested message classes as attributes (``FromFunction.DelayedInvocation``),
    as generated code has them and protobuf 4.21 and later give them; 3.20's factory does not."""
    for nested in descriptor.nested_types:
        setattr(cls, nested.name, _with_nested(_factory.GetPrototype(nested), nested))
    return cls


_REQREPLY = "io.statefun.sdk.reqreply."
_TYPES = "io.statefun.sdk.types."
_EGRESS = "io.statefun.sdk.egress."

Address: Any = _message_class(_REQREPLY + "Address")
TypedValue: Any = _message_class(_REQREPLY + "TypedValue")
ToFunction: Any = _message_class(_REQREPLY + "ToFunction")
FromFunction: Any = _message_class(_REQREPLY + "FromFunction")

BooleanWrapper: Any = _message_class(_TYPES + "BooleanWrapper")
IntWrapper: Any = _message_class(_TYPES + "IntWrapper")
FloatWrapper: Any = _message_class(_TYPES + "FloatWrapper")
LongWrapper: Any = _message_class(_TYPES + "LongWrapper")
DoubleWrapper: Any = _message_class(_TYPES + "DoubleWrapper")
StringWrapper: Any = _message_class(_TYPES + "StringWrapper")

KafkaProducerRecord: Any = _message_class(_EGRESS + "KafkaProducerRecord")
KinesisEgressRecord: Any = _message_class(_EGRESS + "KinesisEgressRecord")


def _parse_whole(data: bytes) -> Any:  # pragma: no cover (the C++ backend: protobuf 3.x)
    """The C++ backend's parse stops at an end-group tag and keeps what came before it, with
    only a ``RuntimeWarning``: a body it did not read whole is refused, as every other backend
    refuses it."""
    request = ToFunction()
    if request.MergeFromString(data) != len(data):
        raise DecodeError("Unexpected end-group tag.")
    return request


#: ``ToFunction.FromString``, refusing what it did not read whole (``DecodeError``) on every
#: backend
parse_request: Any = _parse_whole if api_implementation.Type() == "cpp" else ToFunction.FromString


def batch_field_counts(
    data: Union[bytes, bytearray, memoryview], max_invocations: float, max_others: int
) -> tuple[int, int]:
    """How many invocations, and how many other fields (state values, the target, the batch
    itself, unknown fields), the request ``data`` holds, read from its keys and lengths alone:
    nothing is allocated per field. Counting stops once the invocations pass
    ``max_invocations`` or the others ``max_others``, and where the body is malformed (its
    parse says how).

    Parsed, each element of a repeated field costs some 30 times the two bytes an empty one
    takes in the body: this tells a batch of many tiny elements before it is parsed."""
    invocations = others = 0
    position, end = 0, len(data)
    batch_end = -1  # where the invocation batch being read ends; -1: reading ToFunction
    depth = 0  # the groups (an unknown field's wire type) open in the batch being read
    try:
        while position < end and invocations <= max_invocations and others <= max_others:
            if position >= batch_end >= 0:
                if position > batch_end:
                    break  # a field runs past the batch's end
                batch_end, depth = -1, 0
            tag, position = _varint(data, position)
            number, wire_type = tag >> 3, tag & 7
            if wire_type == 2:
                length, position = _varint(data, position)
                if batch_end < 0 and number == 100 and depth == 0:  # ToFunction.invocation
                    # counted too: a parse merges its repeats, so millions of empty ones parse
                    # fast, but would take this loop seconds
                    others += 1
                    batch_end = position + length
                    if batch_end > end:
                        break
                    continue
                position += length
                if batch_end >= 0 and number == 3 and depth == 0:
                    invocations += 1
                    continue
            elif wire_type == 0:
                _, position = _varint(data, position)
            elif wire_type in (1, 5):
                position += 8 if wire_type == 1 else 4
            elif wire_type == 3:
                depth += 1
            elif wire_type == 4:
                depth -= 1
            else:
                break
            others += 1
    except (IndexError, DecodeError):
        pass
    return invocations, others
