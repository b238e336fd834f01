"""Messages to functions and to egresses, and the builders users make them with."""

from __future__ import annotations

import struct
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    ClassVar,
    Iterable,
    Mapping,
    Optional,
    Protocol,
    TypeVar,
    Union,
    overload,
)

from . import protocol
from ._mypyc import caused, fieldwise, mypyc_attr
from .errors import mark_unreadable
from .protowire import element, field, text
from .types import (
    _SHORT_STRING_HEADERS,
    BoolType,
    DoubleType,
    FloatType,
    IntType,
    LongType,
    StringType,
    Type,
    TypeSerializer,
    _BuiltinType,
    to_bytes,
)

if TYPE_CHECKING:
    from .registry import TypeRegistry

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)


class _Deserializer(Protocol[_T_co]):
    def deserialize(self, byte: bytes) -> _T_co: ...


class _Readable(Protocol[_T_co]):
    """What ``as_type`` needs of a Type: it only reads, so a ``Type[str]`` reads an ``object``
    too (``Type`` itself is invariant: it writes its values as well). Without it, a result
    annotated wider (``doc: object = message.as_type(StringType)``) would not type-check."""

    @property
    def typename(self) -> str: ...

    def serializer(self) -> _Deserializer[_T_co]: ...


class _Writable(Protocol[_T]):
    """What ``egress_message_builder`` needs of a value type: a Type, for type checkers. A
    protocol rather than ``Type`` because a compiled build checks a class annotation where it
    is met, and would refuse a class given instead (the usual mistake) with its own message,
    not ``_serializer``'s, which says what to pass; a protocol it does not check."""

    @property
    def typename(self) -> str: ...

    def serializer(self) -> TypeSerializer[_T]: ...


__all__ = [
    "EgressMessage",
    "Message",
    "egress_message_builder",
    "kafka_egress_message",
    "kinesis_egress_message",
    "message_builder",
]

KAFKA_PRODUCER_RECORD = "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord"
KINESIS_EGRESS_RECORD = "type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord"


def encode(tpe: Any, value: Any) -> bytes:
    """``value`` serialized by ``tpe``, as bytes. (``tpe`` is any object here, and what the
    serializer returns is not taken for bytes: a compiled build checks each annotation where it
    is met, and ``_serializer`` and ``to_bytes`` say what is wrong in the SDK's own words.)"""
    return to_bytes(_serializer(tpe).serialize(value), tpe.typename)


def _serializer(value_type: Any) -> Any:
    """``value_type``'s serializer; a ``TypeError`` that says what to pass when it is not a
    Type (a model class, which a type plugin reads, is the usual mistake)."""
    try:
        make = value_type.serializer
    except AttributeError:
        raise caused(
            TypeError(
                f"value_type must be a StateFun Type, not {value_type!r}: for a class a type "
                "plugin knows, pass its Type (statefun_pydantic.pydantic_type(Model), "
                "statefun_msgpack.msgpack_type(typename, cls), or handler.types.for_class(cls))"
            ),
            None,
        )
    return make()


def typed_value(tpe: Type[Any], value: Any) -> Any:
    """The wire ``TypedValue`` for ``value`` of type ``tpe``."""
    return protocol.TypedValue(typename=tpe.typename, has_value=True, value=encode(tpe, value))


@mypyc_attr(allow_interpreted_subclasses=True)
class _Typed:
    """A typed value kept as ``(typename, bytes)``; the protobuf form is built on demand.

    Received values keep the request's own ``TypedValue`` (no copy) and set only
    ``_typed_value``: every method checks it first. Values built here keep their bytes and are
    written straight into the reply.
    """

    __slots__ = ("_data", "_typed_value", "_typename")

    _typed_value: Any
    _typename: Optional[str]
    _data: Optional[bytes]

    @property
    def typed_value(self) -> Any:
        """The value as a protobuf ``TypedValue``."""
        if self._typed_value is None:
            self._typed_value = protocol.TypedValue(
                typename=self.value_typename(), has_value=True, value=self._data
            )
        return self._typed_value

    def value_typename(self) -> str:
        tv = self._typed_value
        if tv is not None:
            return str(tv.typename)
        if self._typename is None:
            raise TypeError("this value's type is found by the handler's plugins when sent")
        return self._typename

    def raw_value(self) -> Optional[bytes]:
        tv = self._typed_value
        if tv is not None:
            return bytes(tv.value) if tv.has_value else None
        return self._data


def _wrong_type(message: _Typed, typename: str, reader: str) -> TypeError:
    """A message read as a type it is not of.

    A built-in type is a one-field message, each field of its own wire type: another type's
    bytes decode to its zero value (the field left unread), which is refused, so bytes that
    hold something read as zero only as the reader's own type. Empty bytes are every built-in
    type's zero, and a JSON or user type's zero value is a value: both are read as the
    official SDK reads them. A decoder that fails keeps its own error (the official SDK's, as
    a function may catch it), caused by this one."""
    actual = message.value_typename()
    error = TypeError(
        f"the message is of type {actual}, not {typename}: {reader} cannot read it (ask "
        "message.is_type(...), or is_int(), is_string() and so on, before reading)"
    )
    mark_unreadable(error)
    return error


def _reader(tpe: Type[Any]) -> Callable[[Any], Any]:
    """``Message.as_<type>`` for a built-in type: the value decoded, or None without a value."""
    deserialize = tpe.serializer().deserialize
    typename = tpe.typename
    name = f"as_{typename.rsplit('/', 1)[1]}"

    def read(self: Message) -> Any:
        tv = self._typed_value
        if tv is not None:  # a received message
            if not tv.has_value:
                return None
            data = tv.value
        else:
            data = self._data
            if data is None:
                return None
        try:
            value = deserialize(data)
        except Exception as error:
            mark_unreadable(error)
            if self.value_typename() != typename:
                raise caused(error, _wrong_type(self, typename, f"{name}()"))
            raise
        if not value and data and self.value_typename() != typename:  # see _wrong_type
            raise _wrong_type(self, typename, f"{name}()")
        return value

    read.__name__ = name
    return read


_read_any_string = _reader(StringType)


# a StringWrapper's first two bytes -> the size of the string they start, when under 0x80
_SHORT_STRING_SIZES = {header: size for size, header in enumerate(_SHORT_STRING_HEADERS)}


@mypyc_attr(allow_interpreted_subclasses=True)
class Message(_Typed):
    """A message to a function: its target and a typed value.

    A message received by a function targets that function; a message built with
    :func:`message_builder` targets the function it is sent to.
    """

    __slots__ = ("_types", "_value", "target_id", "target_typename")

    # Each a str, or what message_builder was given instead: an id as UTF-8 bytes, which
    # protobuf takes, or a wrong value, which the reply refuses with a message naming the
    # target. Not plain Any: read, it still checks as a str; not plain str: a compiled build
    # would refuse the others where they are set, with its own message.
    target_typename: Union[str, Any]
    target_id: Union[str, Any]

    def __init__(self, target_typename: str, target_id: str, typed_value: Any) -> None:
        if not target_typename:
            raise ValueError("target_typename can not be missing")
        if not target_id:
            raise ValueError("target_id can not be missing")
        if not typed_value:
            raise ValueError("typed_value can not be missing")
        self.target_typename = target_typename
        self.target_id = target_id
        self._typed_value = typed_value
        self._typename = None
        self._data = None
        self._value: Any = None
        self._types: Optional[TypeRegistry] = None

    @staticmethod
    def _built(
        target_typename: Any, target_id: Any, typename: Optional[str], data: Optional[bytes]
    ) -> Message:
        message = _new_message(Message)
        message.target_typename = target_typename
        message.target_id = target_id
        message._typed_value = None
        message._typename = typename
        message._data = data
        message._value = None
        message._types = None
        return message

    @staticmethod
    def _deferred(target_typename: Any, target_id: Any, value: Any) -> Message:
        """A message whose type is found from the value's class by the handler's plugins."""
        message = Message._built(target_typename, target_id, None, None)
        message._value = value
        return message

    def is_int(self) -> bool:
        return self.is_type(IntType)

    as_int: ClassVar[Callable[[Message], Optional[int]]] = _reader(IntType)

    def is_bool(self) -> bool:
        return self.is_type(BoolType)

    as_bool: ClassVar[Callable[[Message], Optional[bool]]] = _reader(BoolType)

    def is_long(self) -> bool:
        return self.is_type(LongType)

    as_long: ClassVar[Callable[[Message], Optional[int]]] = _reader(LongType)

    def is_string(self) -> bool:
        return self.is_type(StringType)

    def as_string(self) -> Optional[str]:
        # A string of up to 127 bytes, the usual argument, is decoded here as
        # _StringSerializer.deserialize decodes it, which saves a call per message. A method,
        # not a module function stored in the class: compiled by mypyc, that would not bind
        # (_reader's closures, the other as_<type>, do).
        tv = self._typed_value
        if tv is not None and tv.has_value:
            data = tv.value
            if _SHORT_STRING_SIZES.get(data[:2]) == len(data) - 2:
                try:
                    return data[2:].decode()  # type: ignore[no-any-return]
                except UnicodeDecodeError as error:
                    mark_unreadable(error)
                    raise
        return _read_any_string(self)  # type: ignore[no-any-return]

    def is_float(self) -> bool:
        return self.is_type(FloatType)

    as_float: ClassVar[Callable[[Message], Optional[float]]] = _reader(FloatType)

    def is_double(self) -> bool:
        return self.is_type(DoubleType)

    as_double: ClassVar[Callable[[Message], Optional[float]]] = _reader(DoubleType)

    def _resolve(self, tpe: Union[Type[Any], type]) -> Type[Any]:
        if isinstance(tpe, Type):
            return tpe
        types: Optional[TypeRegistry] = getattr(self, "_types", None)
        if types is None:
            raise TypeError(
                f"{tpe!r} is not a StateFun Type, and this message has no handler's types to "
                "find one in (a function did not receive it): pass the Type "
                "(handler.types.for_class(...)), or read it with wire.messages(reply, "
                "handler.types)"
            )
        return types.for_class(tpe)

    def is_type(self, tpe: Union[Type[Any], type]) -> bool:
        """Whether the value's typename is that of ``tpe`` (a Type, or a class a plugin knows)."""
        return self.value_typename() == self._resolve(tpe).typename

    def as_type(self, tpe: Union[_Readable[_T], type[_T]]) -> Optional[_T]:
        """The value decoded by ``tpe``'s serializer, or ``None`` when the message has no value
        (as in the official SDK); typed as a value of ``tpe`` (``Optional[int]`` for
        ``IntType``), or as an instance of a class a plugin knows."""
        data = self.raw_value()
        if data is None:
            return None
        tpe = self._resolve(tpe)  # type: ignore[arg-type]  # a _Readable is a Type at run time
        try:
            value: _T = tpe.serializer().deserialize(data)
        except Exception as error:
            mark_unreadable(error)
            if self.value_typename() != tpe.typename:
                raise caused(error, _wrong_type(self, tpe.typename, "as_type()"))
            raise
        if (
            not value
            and data
            and isinstance(tpe, _BuiltinType)
            and self.value_typename() != tpe.typename
        ):  # see _wrong_type
            raise _wrong_type(self, tpe.typename, "as_type()")
        return value

    def __repr__(self) -> str:
        typename = (
            "?" if self._typed_value is None and self._typename is None else (self.value_typename())
        )
        return f"Message(target={self.target_typename}/{self.target_id}, type={typename})"


class EgressMessage(_Typed):
    """A record for an egress, identified by the egress's typename."""

    __slots__ = ("typename",)

    typename: Union[str, Any]  # a str, or what its builder was given (see Message.target_id)

    def __init__(self, typename: str, typed_value: Any) -> None:
        if not typename:
            raise ValueError("typename is missing")
        if not typed_value:
            raise ValueError("value is missing")
        self.typename = typename
        self._typed_value = typed_value
        self._typename = None
        self._data = None

    @staticmethod
    def _built(typename: Any, value_typename: str, data: bytes) -> EgressMessage:
        if not typename:
            raise ValueError("typename is missing")
        message = _new_egress_message(EgressMessage)
        message.typename = typename
        message._typed_value = None
        message._typename = value_typename
        message._data = data
        return message

    def __repr__(self) -> str:
        return f"EgressMessage(egress={self.typename}, type={self.value_typename()})"


def _placeholder_message(cls: type[Message]) -> Message:
    return Message("-", "-", "-")


def _placeholder_egress_message(cls: type[EgressMessage]) -> EgressMessage:
    return EgressMessage("-", "-")


_new_message = fieldwise(Message, _placeholder_message)
_new_egress_message = fieldwise(EgressMessage, _placeholder_egress_message)

_PRIMITIVE_KEYWORDS: dict[str, Type[Any]] = {
    "int_value": IntType,
    "float_value": FloatType,
    "long_value": LongType,
    "str_value": StringType,
    "double_value": DoubleType,
    "bool_value": BoolType,
}


# the built-in serializers return bytes
_PRIMITIVE_ENCODERS = {
    keyword: (tpe.typename, tpe.serializer().serialize)
    for keyword, tpe in _PRIMITIVE_KEYWORDS.items()
}
_STRING = StringType.typename
_encode_string = StringType.serializer().serialize


def _check_target(target_typename: Any, target_id: Any) -> None:
    if not target_typename:
        raise ValueError("target_typename can not be missing")
    if not target_id:
        raise ValueError("target_id can not be missing")


# One signature per way to give the value, for type checkers: a wrong keyword or a value of the
# wrong type (an Optional[str] as str_value=) is caught before it runs. The function itself
# takes **kwargs, as the official SDK's does (and as cheaply).
@overload
def message_builder(target_typename: str, target_id: str, *, str_value: str) -> Message: ...
@overload
def message_builder(target_typename: str, target_id: str, *, int_value: int) -> Message: ...
@overload
def message_builder(target_typename: str, target_id: str, *, long_value: int) -> Message: ...
@overload
def message_builder(target_typename: str, target_id: str, *, bool_value: bool) -> Message: ...
@overload
def message_builder(target_typename: str, target_id: str, *, float_value: float) -> Message: ...
@overload
def message_builder(target_typename: str, target_id: str, *, double_value: float) -> Message: ...
@overload
def message_builder(target_typename: str, target_id: str, *, value: Any) -> Message: ...
@overload
def message_builder(
    target_typename: str, target_id: str, *, value: _T, value_type: Type[_T]
) -> Message: ...


def message_builder(target_typename: Any, target_id: Any, **kwargs: Any) -> Message:
    """Build a message for the function ``target_typename`` with id ``target_id``.

    Give the value as exactly one of ``int_value=``, ``float_value=``, ``long_value=``,
    ``str_value=``, ``double_value=``, ``bool_value=``, or as ``value=`` with
    ``value_type=<Type>``. ``value=`` alone works for classes a type plugin knows.
    """
    # Any, here and in the other builders: the signatures above are the ones type checkers
    # see. A compiled build checks this one's annotations where it is called, and would refuse
    # what the official SDK takes (an id as UTF-8 bytes) or name no target in its error.
    # the value is encoded before the target is checked, as the official SDK does: a bad
    # value and a missing target raise what the value raises
    if len(kwargs) != 1:
        return _built_otherwise(target_typename, target_id, kwargs)
    (keyword,) = kwargs  # cheaper than unpacking kwargs.items(): no view, no pair
    value = kwargs[keyword]
    if type(value) is str and keyword == "str_value":  # text, the usual message
        typename = _STRING
        data = value.encode()  # a string of 1 to 127 bytes encoded as StringType does
        size = len(data)
        # (not 0 < size < 0x80: the chained comparison runs 10 bytecodes where these run 6)
        data = _SHORT_STRING_HEADERS[size] + data if size < 0x80 and size else _encode_string(value)
    else:
        encoder = _PRIMITIVE_ENCODERS.get(keyword)
        if encoder is None or value is None:
            return _built_otherwise(target_typename, target_id, kwargs)
        typename, encode = encoder
        data = encode(value)
    if not (target_typename and target_id):
        _check_target(target_typename, target_id)
    message = _new_message(Message)
    message.target_typename = target_typename
    message.target_id = target_id
    message._typed_value = None
    message._typename = typename
    message._data = data
    return message


def _built_otherwise(target_typename: Any, target_id: Any, kwargs: dict[str, Any]) -> Message:
    """``message_builder`` for every call but one primitive keyword with a value (which it
    encodes itself): ``value=`` with or without ``value_type=``, a value of None, and wrong
    keywords."""
    if len(kwargs) == 1:
        ((keyword, value),) = kwargs.items()
        if keyword == "value":
            if value is None:
                raise ValueError("value can not be missing")
            _check_target(target_typename, target_id)
            return Message._deferred(target_typename, target_id, value)
        value_type: Any = _PRIMITIVE_KEYWORDS.get(keyword)  # Any: value_type= may be anything
        if value is None and value_type is not None:  # str_value=message.as_string(), say
            raise ValueError(
                f"value can not be missing: {keyword}=None (a reader such as "
                "message.as_string() is None for a message without a value)"
            )
    elif len(kwargs) == 2 and kwargs.keys() == {"value", "value_type"}:
        value, value_type = kwargs["value"], kwargs["value_type"]
    else:
        raise TypeError(
            f"Wrong value keywords given: {sorted(kwargs)}; give exactly one of "
            f"{', '.join(_PRIMITIVE_KEYWORDS)}, or value= with value_type="
        )
    if value is None:
        raise ValueError("value can not be missing")
    if not value_type:
        raise ValueError(
            f"Could not deduce the value type from {', '.join(f'{k}=' for k in kwargs)}: give "
            f"one of {', '.join(_PRIMITIVE_KEYWORDS)}, or value=<the value> with "
            "value_type=<the type>"
        )
    data = _serializer(value_type).serialize(value)
    if type(data) is not bytes:
        data = to_bytes(data, value_type.typename)
    _check_target(target_typename, target_id)
    message = _new_message(Message)
    message.target_typename = target_typename
    message.target_id = target_id
    message._typed_value = None
    message._typename = value_type.typename
    message._data = data
    return message


def egress_message_builder(
    target_typename: Union[str, Any], value: _T, value_type: _Writable[_T]
) -> EgressMessage:
    """A generic egress record; see :func:`kafka_egress_message` and
    :func:`kinesis_egress_message` for those egresses."""
    # Any in the union: None is refused below with the official SDK's ValueError, which a
    # compiled build would not reach if the annotation refused it first
    if not target_typename:
        raise ValueError("target typename is missing")
    if value is None:
        raise ValueError("value can not be missing")
    data = encode(value_type, value)  # first: it says what is wrong with a value_type
    return EgressMessage._built(target_typename, value_type.typename, data)


def _record_bytes(value: Any, value_type: Any, kafka: bool) -> bytes:
    if value_type:
        return encode(value_type, value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if kafka and isinstance(value, int):
        return struct.pack(">i", value)  # Kafka's IntegerSerializer
    if kafka and isinstance(value, float):
        return struct.pack(">d", value)  # Kafka's DoubleSerializer
    builder, kinds = ("kafka", "str, bytes, int or float") if kafka else ("kinesis", "str or bytes")
    raise TypeError(
        f"Unable to convert a value of type {type(value).__name__} to bytes: "
        f"{builder}_egress_message() takes a {kinds} value, or value_type=<a StateFun Type> "
        "(make_json_type(...) for a dict or a list)"
    )


#: A Kafka header's value: text (UTF-8), bytes, or None for a null value.
HeaderValue = Union[str, bytes, None]
_Headers = Union[Mapping[str, HeaderValue], Iterable[tuple[str, HeaderValue]], None]


# For type checkers: a value of value_type's type, or one of the values encoded without one
@overload
def kafka_egress_message(
    typename: str,
    topic: str,
    value: _T,
    value_type: Type[_T],
    key: Optional[str] = None,
    headers: _Headers = None,
) -> EgressMessage: ...
@overload
def kafka_egress_message(
    typename: str,
    topic: str,
    value: Union[str, bytes, bytearray, int, float],
    value_type: None = None,
    key: Optional[str] = None,
    headers: _Headers = None,
) -> EgressMessage: ...


def kafka_egress_message(
    typename: Any,
    topic: Any,
    value: Any,
    value_type: Any = None,
    key: Any = None,
    headers: Any = None,
) -> EgressMessage:
    """A record for a Kafka egress (``typename`` is the egress id in ``module.yaml``).

    Without ``value_type``, ``str`` is UTF-8, bytes are as-is, ``int`` and ``float`` use
    Kafka's big-endian Integer and Double serializers. ``headers`` are the record's headers, a
    mapping or ``(key, value)`` pairs (in order, a key may repeat); a value is ``str`` (UTF-8),
    bytes, or None for a null header. StateFun Actors writes them to the record; Apache
    StateFun 3.3 does not know them and produces the record without headers.
    """
    # Any: see message_builder (its strings may be UTF-8 bytes, as protobuf's are)
    if not topic:
        raise ValueError("A destination Kafka topic is missing")
    if value is None:
        raise ValueError("Missing value")
    try:
        key_field = field(1, text(key) if key else b"")
    except TypeError:
        raise caused(TypeError(f"a Kafka record's key is a str, got {key!r}: key=str(...)"), None)
    record = (
        key_field + field(2, _record_bytes(value, value_type, kafka=True)) + field(3, text(topic))
    )
    if headers:
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        record += b"".join(element(4, _header(name, value)) for name, value in pairs)
    return EgressMessage._built(typename, KAFKA_PRODUCER_RECORD, record)


def _header(name: Any, value: Any) -> bytes:
    """One ``KafkaProducerRecord.Header``, as protobuf writes it (``has_value`` is field 3)."""
    if value is None:
        return field(1, text(name))
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return field(1, text(name)) + field(2, data) + b"\x18\x01"


@overload
def kinesis_egress_message(
    typename: str,
    stream: str,
    value: _T,
    partition_key: str,
    value_type: Type[_T],
    explicit_hash_key: Optional[str] = None,
) -> EgressMessage: ...
@overload
def kinesis_egress_message(
    typename: str,
    stream: str,
    value: Union[str, bytes, bytearray],
    partition_key: str,
    value_type: None = None,
    explicit_hash_key: Optional[str] = None,
) -> EgressMessage: ...


def kinesis_egress_message(
    typename: Any,
    stream: Any,
    value: Any,
    partition_key: Any,
    value_type: Any = None,
    explicit_hash_key: Any = None,
) -> EgressMessage:
    """A record for a Kinesis egress (``typename`` is the egress id in ``module.yaml``)."""
    # Any: see kafka_egress_message
    if not stream:
        raise ValueError("Missing destination Kinesis stream")
    if value is None:
        raise ValueError("Missing value")
    if partition_key is None:
        raise ValueError("Missing partition key")
    try:
        key_field = field(1, text(partition_key))
    except TypeError:
        raise caused(
            TypeError(f"a Kinesis record's partition_key is a str, got {partition_key!r}"), None
        )
    record = (
        key_field
        + field(2, _record_bytes(value, value_type, kafka=False))
        + field(3, text(stream))
        + field(4, text(explicit_hash_key) if explicit_hash_key else b"")
    )
    return EgressMessage._built(typename, KINESIS_EGRESS_RECORD, record)
