"""The StateFun wire messages, built from the ``.proto`` files beside this module.

The classes live in a private descriptor pool built from ``statefun.desc`` (the compiled
``.proto`` files; ``nox -s protos`` regenerates it). Generated ``_pb2`` modules would pin us to
one protobuf generation and would clash in the default pool with any other copy of these
messages in the process (the official SDK, the user's own generated code); this works the same
on every protobuf from 3.20 to 7.x and uses whichever backend (upb, cpp, python) is installed.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
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
    "parse_request",
    "pool",
]

pool = descriptor_pool.DescriptorPool()
_files = descriptor_pb2.FileDescriptorSet.FromString(
    resources.files(__name__).joinpath("statefun.desc").read_bytes()
)
for _file in _files.file:
    pool.Add(_file)


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
