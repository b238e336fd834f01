"""StateFun types: how values become bytes on the wire, and back.

The six built-in types are encoded exactly as the StateFun wrapper messages
(``io.statefun.types/int`` is an ``IntWrapper`` with an ``sfixed32`` field, ...). Their
serializers write and read the canonical encoding directly and fall back to protobuf for
anything else a peer may legally send (unknown fields, repeated values).
"""

from __future__ import annotations

import abc
import json
import math
import struct
from typing import Any, Callable, Generic, Optional, TypeVar, Union

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as _ProtobufMessage
from google.protobuf.wrappers_pb2 import BytesValue

from . import protocol
from ._mypyc import caused, mypyc_attr
from .protowire import varint

__all__ = [
    "BoolType",
    "DoubleType",
    "FloatType",
    "IntType",
    "LongType",
    "StringType",
    "Type",
    "TypeSerializer",
    "make_json_type",
    "make_protobuf_type",
    "simple_type",
    "to_bytes",
]

_T = TypeVar("_T")
_M = TypeVar("_M", bound=_ProtobufMessage)

#: What a serializer may return: bytes, or text, which is encoded as UTF-8 (see to_bytes).
_Serialized = Union[bytes, bytearray, memoryview, str]


@mypyc_attr(allow_interpreted_subclasses=True)
class TypeSerializer(Generic[_T], metaclass=abc.ABCMeta):
    """Serializes values of one type, ``_T``, to bytes and back."""

    __slots__ = ()

    @abc.abstractmethod
    def serialize(self, value: _T) -> bytes:
        """Serialize ``value`` to bytes."""

    @abc.abstractmethod
    def deserialize(self, byte: bytes) -> _T:
        """Deserialize a value from its byte representation."""


@mypyc_attr(allow_interpreted_subclasses=True)
class Type(Generic[_T], metaclass=abc.ABCMeta):
    """A StateFun value type: a typename (``namespace/name``) and a serializer of its values.

    Generic in the Python class of its values for type checkers: ``IntType`` is a
    ``Type[int]``, ``message.as_type(IntType)`` an ``Optional[int]``. (``Generic`` costs
    nothing per call: it adds no ``__new__`` or ``__init__``.)
    """

    __slots__ = ("typename",)

    typename: str

    def __init__(self, typename: str) -> None:
        if not typename:
            raise ValueError("typename can not be missing")
        self.typename = typename

    @abc.abstractmethod
    def serializer(self) -> TypeSerializer[_T]:
        """The serializer of this type."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.typename!r})"


def to_bytes(data: Any, typename: str) -> bytes:
    """Normalize what a serializer returned: ``str`` is UTF-8 encoded, bytes-likes copied."""
    if type(data) is bytes:
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(
        f"the serializer of {typename!r} returned {type(data).__name__}; expected bytes or str"
    )


class _FunctionSerializer(TypeSerializer[_T]):
    __slots__ = ("deserialize_fn", "serialize_fn")

    serialize_fn: Callable[[_T], _Serialized]
    deserialize_fn: Callable[[bytes], _T]

    def __init__(
        self, serialize_fn: Callable[[_T], _Serialized], deserialize_fn: Callable[[bytes], _T]
    ) -> None:
        self.serialize_fn = serialize_fn
        self.deserialize_fn = deserialize_fn

    # what the function returned: the callers pass it through to_bytes
    def serialize(self, value: _T) -> Any:
        return self.serialize_fn(value)

    def deserialize(self, byte: bytes) -> _T:
        return self.deserialize_fn(byte)


class SimpleType(Type[_T]):
    """A type made of two functions; see :func:`simple_type`."""

    __slots__ = ("_serializer",)

    def __init__(
        self,
        typename: Optional[str],
        serialize_fn: Optional[Callable[[_T], _Serialized]],
        deserialize_fn: Optional[Callable[[bytes], _T]],
    ) -> None:
        super().__init__(typename or "")  # refused there: "typename can not be missing"
        if not serialize_fn:
            raise ValueError("serialize_fn is missing")
        if not deserialize_fn:
            raise ValueError("deserialize_fn is missing")
        self._serializer = _FunctionSerializer(serialize_fn, deserialize_fn)

    def serializer(self) -> TypeSerializer[_T]:
        return self._serializer


def simple_type(
    typename: Optional[str] = None,
    serialize_fn: Optional[Callable[[_T], _Serialized]] = None,
    deserialize_fn: Optional[Callable[[bytes], _T]] = None,
) -> Type[_T]:
    """A type from a pair of functions. ``serialize_fn`` may return ``bytes`` or ``str``
    (encoded as UTF-8). Its values are what ``deserialize_fn`` returns: type checkers infer
    ``Type[User]`` from a ``deserialize_fn`` that returns a ``User``.

    Each argument is required; one left out raises ``ValueError``, as in the official SDK,
    whose signature this keeps.
    """
    return SimpleType(typename, serialize_fn, deserialize_fn)


def _json_dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def make_json_type(typename: str) -> Type[Any]:
    """A type whose values are JSON documents (UTF-8) handled by :mod:`json`."""
    return simple_type(typename, _json_dumps, json.loads)


def make_protobuf_type(cls: type[_M], namespace: Optional[str] = None) -> Type[_M]:
    """A type for a protobuf message class, named ``type.googleapis.com/<full.Name>``; its
    values are instances of ``cls``."""
    if not cls:
        raise ValueError("The Protobuf generated class is missing.")
    name = cls.DESCRIPTOR.full_name
    if not name:
        raise TypeError("Unable to deduce the Protobuf Message full name.")
    return simple_type(
        f"{namespace or 'type.googleapis.com'}/{name}", _serialize_message, cls.FromString
    )


def _serialize_message(message: _ProtobufMessage) -> bytes:
    return message.SerializeToString()


# --- built-in types -------------------------------------------------------------------------


class _WrapperSerializer(TypeSerializer[Any]):
    """Canonical proto3 encoding of a one-field wrapper message, protobuf as the fallback."""

    __slots__ = (
        "_default",
        "_pack",
        "_prefix",
        "_size",
        "_tag",
        "_unpack_from",
        "_wrapper",
        "_zero",
    )

    def __init__(self, wrapper: Any, tag: int, fmt: str, default: Any) -> None:
        packer = struct.Struct(fmt)
        self._wrapper = wrapper
        self._tag = tag
        self._prefix = bytes((tag,))
        self._pack = packer.pack
        self._unpack_from = packer.unpack_from
        self._size = 1 + packer.size
        self._zero = packer.pack(0)
        self._default = default

    def serialize(self, value: Any) -> bytes:
        if type(value) in _NUMBERS:
            try:
                payload = self._pack(value)
            except (struct.error, OverflowError):
                pass  # out of range: let protobuf decide (it raises or converts as it does)
            else:
                # proto3 omits a field at its default: a zero is all-zero bytes (-0.0 is not)
                return self._prefix + payload if payload != self._zero else b""
        return _assigned(self._wrapper, value)

    def deserialize(self, byte: bytes) -> Any:
        if len(byte) == self._size and byte[0] == self._tag:
            return self._unpack_from(byte, 1)[0]
        if not byte:
            return self._default
        return self._wrapper.FromString(byte).value


_NUMBERS = frozenset({int, float, bool})


def _assigned(wrapper: Any, value: Any) -> bytes:
    """The wrapper's encoding with ``value`` assigned to its field, which checks it as the
    official SDK does (a keyword argument would take None for no value)."""
    message = wrapper()
    try:
        message.value = value
    except (TypeError, ValueError) as error:
        if type(error) not in (TypeError, ValueError):
            raise  # a subclass (a UnicodeError) says what is wrong itself
        # protobuf's own words depend on its backend ("bad argument type for built-in
        # operation" under upb): say which type refused the value and what it takes
        name, takes = _TAKES[wrapper]
        if type(error) is TypeError:
            text = f"{value!r:.200} has type {type(value).__name__}; {name} takes {takes}"
        else:
            text = f"{name} takes {takes}: {error}"
        raise caused(type(error)(text), error)
    return bytes(message.SerializeToString())


_TAKES = {
    protocol.IntWrapper: (
        "IntType",
        "an int from -2**31 to 2**31 - 1 (32 bits; LongType holds 64)",
    ),
    protocol.LongWrapper: ("LongType", "an int from -2**63 to 2**63 - 1"),
    protocol.FloatWrapper: ("FloatType", "a float"),
    protocol.DoubleWrapper: ("DoubleType", "a float"),
    protocol.StringWrapper: ("StringType", "a str"),
}


_FLOAT32_MAX = float.fromhex("0x1.fffffep+127")


class _FloatingSerializer(_WrapperSerializer):
    """Floats and doubles encoded and decoded as the official SDK's protobuf does.

    A zero of either sign is left out, as proto3 leaves out a default (so ``-0.0``, and a float
    too small for float32, reads back as ``0.0``); a float beyond float32's range is an
    infinity, not the largest float32; every NaN reads back as Python's ``math.nan``.
    """

    __slots__ = ("_largest", "_negative_zero")

    def __init__(self, wrapper: Any, fmt: str, largest: float) -> None:
        super().__init__(wrapper, 0x0D if fmt == "<f" else 0x09, fmt, 0.0)
        self._largest = largest
        self._negative_zero = self._pack(-0.0)

    def serialize(self, value: Any) -> bytes:
        if type(value) is not float:
            return super().serialize(value)
        if not -self._largest <= value <= self._largest and value == value:
            value = math.inf if value > 0 else -math.inf
        payload = self._pack(value)
        if payload == self._zero or payload == self._negative_zero:
            return b""
        return self._prefix + payload

    def deserialize(self, byte: bytes) -> Any:
        value = super().deserialize(byte)
        if value and value == value:
            return value
        return 0.0 if value == value else math.nan


class _BoolSerializer(TypeSerializer[bool]):
    __slots__ = ()

    def serialize(self, value: Any) -> bytes:
        if value is True:
            return b"\x08\x01"
        if value is False:
            return b""
        # anything with __index__ is true or false, as the official SDK's protobuf has it;
        # nothing else goes to protobuf (upb crashes the process on a message there)
        if not hasattr(value, "__index__"):
            raise TypeError(f"{value!r:.200} has type {type(value).__name__}; expected a bool")
        return b"\x08\x01" if value else b""

    def deserialize(self, byte: bytes) -> bool:
        if not byte:
            return False
        if byte == b"\x08\x01":
            return True
        return bool(protocol.BooleanWrapper.FromString(byte).value)


class _StringSerializer(TypeSerializer[str]):
    __slots__ = ()

    def serialize(self, value: Any) -> bytes:
        if type(value) is not str:
            return _assigned(protocol.StringWrapper, value)
        data = value.encode()
        size = len(data)
        if size < 0x80:
            return _SHORT_STRING_HEADERS[size] + data if size else b""
        if size < 0x4000:  # a two-byte length: up to 16 KiB
            return _pack_three_bytes(0x0A, (size & 0x7F) | 0x80, size >> 7) + data
        return b"\x0a" + varint(size) + data

    def deserialize(self, byte: bytes) -> str:
        size = len(byte)
        if size > 2 and byte[0] == 0x0A:  # the field, and a length of one or two bytes:
            length = byte[1]
            if length < 0x80:  # a value of up to 127 bytes
                if length == size - 2:
                    return byte[2:].decode()
            elif 0 < byte[2] < 0x80 and length & 0x7F | byte[2] << 7 == size - 3:  # to 16 KiB
                return byte[3:].decode()
        return self._decode(byte) if byte else ""

    @staticmethod
    def _decode(byte: bytes) -> str:
        # Parsed as bytes (StringWrapper's layout) and decoded here: upb refuses text that is
        # not UTF-8 as a malformed message, where the official SDK's protobuf raises
        # UnicodeDecodeError (a ValueError), as the short strings above do.
        try:
            return str(BytesValue.FromString(byte).value.decode())
        except DecodeError:  # which would name BytesValue
            raise caused(
                DecodeError(
                    "not an io.statefun.types/string value (an io.statefun.sdk.types.StringWrapper)"
                ),
                None,
            )


_pack_three_bytes = struct.Struct("3B").pack  # no tuple made, as bytes((a, b, c)) makes
# field 1, length-delimited, and a one-byte length: the header of a string of 0..127 bytes
_SHORT_STRING_HEADERS = tuple(bytes((0x0A, size)) for size in range(0x80))


class _BuiltinType(Type[_T]):
    __slots__ = ("_serializer",)

    def __init__(self, typename: str, serializer: TypeSerializer[_T]) -> None:
        super().__init__(typename)
        self._serializer = serializer

    def serializer(self) -> TypeSerializer[_T]:
        return self._serializer

    def __reduce__(self) -> str:
        # pickled, copied and deep-copied as the module's own object, which the handler tells
        # by identity (their serializers hold struct.Struct objects, which do not pickle)
        return _BUILTIN_NAMES[self.typename]


BoolType: Type[bool] = _BuiltinType("io.statefun.types/bool", _BoolSerializer())
IntType: Type[int] = _BuiltinType(
    "io.statefun.types/int", _WrapperSerializer(protocol.IntWrapper, 0x0D, "<i", 0)
)
FloatType: Type[float] = _BuiltinType(
    "io.statefun.types/float", _FloatingSerializer(protocol.FloatWrapper, "<f", _FLOAT32_MAX)
)
LongType: Type[int] = _BuiltinType(
    "io.statefun.types/long", _WrapperSerializer(protocol.LongWrapper, 0x09, "<q", 0)
)
DoubleType: Type[float] = _BuiltinType(
    "io.statefun.types/double", _FloatingSerializer(protocol.DoubleWrapper, "<d", math.inf)
)
StringType: Type[str] = _BuiltinType("io.statefun.types/string", _StringSerializer())

#: The six built-in types; their serializers return ``bytes``.
BUILTIN_TYPES: tuple[Type[Any], ...] = (
    BoolType,
    IntType,
    FloatType,
    LongType,
    DoubleType,
    StringType,
)
_BUILTIN_NAMES = {
    tpe.typename: name
    for tpe, name in zip(
        BUILTIN_TYPES, ["BoolType", "IntType", "FloatType", "LongType", "DoubleType", "StringType"]
    )
}
