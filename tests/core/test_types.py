from __future__ import annotations

import copy
import json
import math
import pickle
import struct
from datetime import timedelta
from typing import Any, Callable

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given
from hypothesis import strategies as st

from statefun_core import (
    BoolType,
    DoubleType,
    FloatType,
    IntType,
    LongType,
    StringType,
    Type,
    TypeSerializer,
    ValueSpec,
    make_json_type,
    make_protobuf_type,
    protocol,
    simple_type,
)
from statefun_core.messages import typed_value
from statefun_core.types import to_bytes

WRAPPERS = {
    BoolType: protocol.BooleanWrapper,
    IntType: protocol.IntWrapper,
    LongType: protocol.LongWrapper,
    FloatType: protocol.FloatWrapper,
    DoubleType: protocol.DoubleWrapper,
    StringType: protocol.StringWrapper,
}

VALUES = {
    BoolType: st.booleans(),
    IntType: st.integers(-(2**31), 2**31 - 1),
    LongType: st.integers(-(2**63), 2**63 - 1),
    FloatType: st.floats(width=32, allow_nan=False),
    DoubleType: st.floats(allow_nan=False),
    StringType: st.text(),
}


@pytest.mark.parametrize("tpe", WRAPPERS, ids=lambda tpe: tpe.typename)
def test_a_builtin_type_pickles_and_copies_as_itself(tpe: Type) -> None:
    """And so does a spec of it (multiprocessing, a deep-copied list of specs): the handler
    tells the built-in types by identity, to store their values as they are."""
    assert pickle.loads(pickle.dumps(tpe)) is tpe
    assert copy.copy(tpe) is tpe and copy.deepcopy(tpe) is tpe
    spec = pickle.loads(pickle.dumps(ValueSpec("seen", tpe, expire_after_write=timedelta(1))))
    assert (spec.name, spec.type, spec.after_write, spec.duration) == ("seen", tpe, True, 86400000)


def test_builtin_typenames() -> None:
    assert [t.typename for t in WRAPPERS] == [
        "io.statefun.types/bool",
        "io.statefun.types/int",
        "io.statefun.types/long",
        "io.statefun.types/float",
        "io.statefun.types/double",
        "io.statefun.types/string",
    ]


@pytest.mark.parametrize(
    ("tpe", "value", "encoded"),
    [
        (BoolType, True, "0801"),
        (BoolType, False, ""),
        (IntType, 0, ""),
        (IntType, 1, "0d01000000"),
        (IntType, -1, "0dffffffff"),
        (LongType, 0, ""),
        (LongType, 2**40, "090000000000010000"),
        (FloatType, 0.0, ""),
        (FloatType, 1.5, "0d0000c03f"),
        (DoubleType, 0.0, ""),
        (DoubleType, -2.0, "0900000000000000c0"),
        (StringType, "", ""),
        (StringType, "hi", "0a026869"),
    ],
)
def test_builtin_encodings_are_the_wrapper_messages(tpe: Type, value: object, encoded: str) -> None:
    serializer = tpe.serializer()
    assert serializer.serialize(value).hex() == encoded
    assert serializer.deserialize(bytes.fromhex(encoded)) == value


@pytest.mark.parametrize("tpe", list(WRAPPERS))
def test_empty_bytes_decode_to_the_default(tpe: Type) -> None:
    assert tpe.serializer().deserialize(b"") == WRAPPERS[tpe]().value


def _roundtrip_matches_protobuf(tpe: Type, value: object) -> None:
    ours = tpe.serializer().serialize(value)
    if isinstance(value, float) and value == 0:
        # -0.0 (and a float that rounds to it) is left out as a zero, as the official SDK's
        # protobuf (3.20, pure Python) does; upb would write it
        assert ours == b""
        assert repr(tpe.serializer().deserialize(ours)) == "0.0"
        return
    assert ours == WRAPPERS[tpe](value=value).SerializeToString()
    decoded = tpe.serializer().deserialize(ours)
    if tpe is FloatType:
        rounded = struct.unpack("<f", struct.pack("<f", value))[0]  # type: ignore[arg-type]
        assert decoded == (rounded or 0.0)
    else:
        assert decoded == value


@given(st.data())
def test_every_builtin_roundtrips_and_matches_protobuf(data: st.DataObject) -> None:
    for tpe, values in VALUES.items():
        _roundtrip_matches_protobuf(tpe, data.draw(values))


@given(st.text(min_size=200))
def test_long_strings_use_a_multibyte_length(value: str) -> None:
    _roundtrip_matches_protobuf(StringType, value)


@given(st.integers(-(2**31), 2**31 - 1))
def test_non_canonical_encodings_decode_through_protobuf(value: int) -> None:
    # an unknown field before the value, as a newer peer could send
    data = b"\x10\x05" + protocol.IntWrapper(value=value).SerializeToString()
    assert IntType.serializer().deserialize(data) == value


@given(st.text(max_size=300), st.binary(max_size=200))
def test_strings_followed_by_an_unknown_field_decode_through_protobuf(
    value: str, unknown: bytes
) -> None:
    # field 2, length-delimited: the value's length byte alone no longer matches the size
    data = protocol.StringWrapper(value=value).SerializeToString()
    data += b"\x12" + bytes((len(unknown),)) + unknown if len(unknown) < 0x80 else b"\x10\x01"
    assert StringType.serializer().deserialize(data) == value


FIXED = {IntType: (0x0D, 4), FloatType: (0x0D, 4), LongType: (0x09, 8), DoubleType: (0x09, 8)}


@pytest.mark.parametrize("tpe", list(FIXED))
def test_a_fixed_width_wrapper_of_the_right_size_with_another_field_reads_as_protobuf(
    tpe: Type,
) -> None:
    # field 2 of the value's wire type, whose first byte is the value field's key
    tag, size = FIXED[tpe]
    data = bytes((tag + 8, tag)) + bytes(size - 1)
    assert WRAPPERS[tpe].FromString(data).value == 0  # an unknown field: the default
    assert tpe.serializer().deserialize(data) == 0


def _read(read: Callable[[bytes], Any], data: bytes) -> object:
    """What ``read`` makes of ``data``: its value, or ``DecodeError`` if it refuses it."""
    try:
        return read(data)
    except DecodeError:
        return DecodeError


@pytest.mark.filterwarnings("ignore:Unexpected end-group tag")  # protobuf 3.20 in Python
@pytest.mark.parametrize("tpe", list(FIXED))
@pytest.mark.parametrize("cut", ["a stray byte", "a byte short"])
def test_a_fixed_width_wrapper_of_the_wrong_size_is_read_as_protobuf_reads_it(
    tpe: Type, cut: str
) -> None:
    """A byte short is refused; a stray zero byte after the value is refused by upb and read
    as an end-group tag by protobuf 3.20's Python parser: either way, as protobuf does."""
    tag, size = FIXED[tpe]
    canonical = bytes((tag,)) + bytes(range(1, size + 1))
    data = canonical + b"\x00" if cut == "a stray byte" else canonical[:-1]
    expected = _read(lambda data: WRAPPERS[tpe].FromString(data).value, data)
    if cut == "a byte short":
        assert expected is DecodeError
    assert _read(tpe.serializer().deserialize, data) == expected


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_a_serializer_may_return_any_bytes_like(kind: type) -> None:
    """``to_bytes``: bytes-likes are copied to bytes."""
    raw = simple_type("com.example/raw", serialize_fn=kind, deserialize_fn=bytes)
    assert to_bytes(kind(b"ab"), "com.example/raw") == b"ab"
    tv = typed_value(raw, b"\x00\xff")
    assert type(tv.value) is bytes and tv.value == b"\x00\xff"


@pytest.mark.parametrize(
    "data",
    ["0800", "0802", "1001", "08010800", "08001001", "0801"],
    ids=["false written", "2", "unknown field", "true then false", "false, unknown field", "true"],
)
def test_every_bool_encoding_reads_as_protobuf_reads_it(data: str) -> None:
    expected = protocol.BooleanWrapper.FromString(bytes.fromhex(data)).value
    assert BoolType.serializer().deserialize(bytes.fromhex(data)) is expected


@pytest.mark.parametrize("size", [0x7F, 0x80, 0x3FFF, 0x4000, 0x4001])
def test_strings_around_each_length_size_are_what_protobuf_writes(size: int) -> None:
    value = "x" * size
    data = StringType.serializer().serialize(value)
    assert data == protocol.StringWrapper(value=value).SerializeToString()
    assert StringType.serializer().deserialize(data) == value


LONG_THEN_UNKNOWN = b"\x0a\x7f\x01" + b"x" * 126 + b"\x12\x7f" + bytes(127)
# a length of 1 as a three-byte varint (81 80 00), then 16 KiB of field 2: 16388 bytes in all,
# what 81 80 read as a two-byte length (1 | 0x80 << 7) would make of it
PADDED_LENGTH = b"\x0a\x81\x80\x00a" + b"\x12\xfc\x7f" + bytes(16380)


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"\x12\x0a" + b"0123456789", ""),  # only field 2, its length byte that of field 1's key
        (b"\x09\x07abcdefg", ""),  # field 1 as a fixed64: an unknown field
        (b"\x0a\x01\x03\x10\x01", "\x03"),  # the value's first byte is the size of the rest
        (b"\x0a\x01a\x12\x07" + b"1234567", "a"),  # 12 bytes in all, as 0x0a is 10 + 2
        (LONG_THEN_UNKNOWN, "\x01" + "x" * 126),  # 127 bytes, an unknown field: 258 in all
        (b"\x0a\x80\x01" + b"x" * 128 + b"\x10\x01", "x" * 128),  # a two-byte length, then more
        (PADDED_LENGTH, "a"),
        (b"\x0a\x80", DecodeError),  # a two-byte length cut short
        (b"\x0b\x01a", DecodeError),  # a group that never ends
        (b"\x0a\x80\x01" + b"x" * 127, DecodeError),  # a byte short of its length
    ],
    ids=lambda v: v.hex()[:12] if isinstance(v, bytes) else None,
)
def test_any_string_encoding_reads_as_protobuf_reads_it(data: bytes, text: object) -> None:
    if text is DecodeError:
        for read in (protocol.StringWrapper.FromString, StringType.serializer().deserialize):
            with pytest.raises(DecodeError):
                read(data)
    else:
        assert protocol.StringWrapper.FromString(data).value == text
        assert StringType.serializer().deserialize(data) == text


def _unknown_fields(size: int) -> bytes:
    """``size`` bytes (2 or more) of unknown varint fields: 10 00, and one 10 80 00 if odd."""
    return b"\x10\x80\x00" * (size % 2) + b"\x10\x00" * ((size - 3 * (size % 2)) // 2)


@pytest.mark.filterwarnings("ignore:Unexpected end-group tag")  # protobuf 3.20 in Python
@pytest.mark.parametrize("size", [200, 201])
def test_a_two_byte_length_string_cut_short_or_followed_by_more_reads_as_protobuf(
    size: int,
) -> None:
    value = "\x02" + "x" * (size - 1)
    data = StringType.serializer().serialize(value)
    deserialize = StringType.serializer().deserialize
    for end in range(3, len(data)):  # cut inside the value: refused
        with pytest.raises(DecodeError):
            protocol.StringWrapper.FromString(data[:end])
        with pytest.raises(DecodeError):
            deserialize(data[:end])
    stray = data + b"\x00"  # refused by upb; an end-group tag to protobuf 3.20 in Python
    assert _read(deserialize, stray) == _read(
        lambda d: protocol.StringWrapper.FromString(d).value, stray
    )
    for extra in range(2, 300):  # unknown fields after it: the value
        assert protocol.StringWrapper.FromString(data + _unknown_fields(extra)).value == value
        assert deserialize(data + _unknown_fields(extra)) == value


def test_a_one_byte_length_is_not_read_as_two() -> None:
    # 0a 01 01: "\x01", then an unknown field making the whole 132 bytes long, which is what
    # the bytes 01 01 would mean as a two-byte length (1 | 1 << 7 = 129, plus the 3-byte header)
    data = b"\x0a\x01\x01" + b"\x12\x7f" + bytes(127)
    assert len(data) == (1 | 1 << 7) + 3
    assert StringType.serializer().deserialize(data) == "\x01"


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a\x01\xff",  # a one-byte length
        b"\x0a\xc8\x01" + b"\xff" * 200,  # two bytes
        b"\x0a\x81\x80\x01" + b"\xff" * 16385,  # three: decoded by protobuf
        b"\x0a\x01a\x0a\x01\xff",  # the field twice: the last one counts
    ],
)
def test_text_that_is_not_utf8_is_a_unicode_error_at_any_size(data: bytes) -> None:
    """As the official SDK: a function may catch it as a ValueError (upb alone would raise
    its DecodeError, which is not one, for the longer ones)."""
    with pytest.raises(UnicodeDecodeError):
        StringType.serializer().deserialize(data)


# The official SDK's encodings at the edges (its protobuf, 3.20.3 pure Python, on Python 3.11):
# the differential test (tests/differential) holds the rest.
FLOAT32_MAX = float.fromhex("0x1.fffffep+127")
_NAN_WITH_SIGN = struct.unpack("<d", bytes.fromhex("000000000000f8ff"))[0]


@pytest.mark.parametrize(
    ("tpe", "value", "encoded", "read_back"),
    [
        (DoubleType, -0.0, "", "0.0"),
        (FloatType, -0.0, "", "0.0"),
        (FloatType, -1e-50, "", "0.0"),  # rounds to -0.0 in float32
        (FloatType, 3.4028235e38, "0d0000807f", "inf"),  # above float32's largest, not rounded
        (FloatType, -3.5e38, "0d000080ff", "-inf"),
        (FloatType, FLOAT32_MAX, "0dffff7f7f", "3.4028234663852886e+38"),  # the largest: kept
        (FloatType, -FLOAT32_MAX, "0dffff7fff", "-3.4028234663852886e+38"),
        (DoubleType, _NAN_WITH_SIGN, "09000000000000f8ff", "nan"),
        (BoolType, 2**64, "0801", "True"),
        (BoolType, 0, "", "False"),
    ],
)
def test_edge_values_are_encoded_as_the_official_sdk_does(
    tpe: Type, value: object, encoded: str, read_back: str
) -> None:
    serializer = tpe.serializer()
    assert serializer.serialize(value).hex() == encoded
    assert repr(serializer.deserialize(bytes.fromhex(encoded))) == read_back


@pytest.mark.parametrize(
    ("tpe", "data"),
    [
        (FloatType, "0d0000c0ff"),  # a NaN with its sign bit set
        (FloatType, "0d0100807f"),  # a signalling NaN with a payload
        (DoubleType, "09000000000000f8ff"),
        (DoubleType, "09010000000000f07f"),  # a signalling NaN
    ],
)
def test_every_nan_decodes_to_the_one_python_nan(tpe: Type, data: str) -> None:
    # the official SDK's protobuf decodes them all to math.nan, so a NaN read and written back
    # is written as 7ff8000000000000 (or 7fc00000)
    decoded = tpe.serializer().deserialize(bytes.fromhex(data))
    assert struct.pack("<d", decoded) == struct.pack("<d", math.nan)


def test_negative_zero_decodes_to_zero() -> None:
    assert repr(DoubleType.serializer().deserialize(b"\x09" + struct.pack("<d", -0.0))) == "0.0"
    assert repr(FloatType.serializer().deserialize(b"\x0d" + struct.pack("<f", -0.0))) == "0.0"


@pytest.mark.parametrize("tpe", list(WRAPPERS))
def test_none_is_refused_as_the_official_sdk_refuses_it(tpe: Type) -> None:
    with pytest.raises(TypeError):
        tpe.serializer().serialize(None)


@pytest.mark.parametrize(("tpe", "value"), [(IntType, 2**31), (IntType, "1"), (LongType, 1.5)])
def test_builtin_types_reject_values_out_of_their_domain(tpe: Type, value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        tpe.serializer().serialize(value)


class User:
    def __init__(self, name: str, favorite_color: str) -> None:
        self.name = name
        self.favorite_color = favorite_color


def test_the_guides_user_type_whose_serializer_returns_str() -> None:
    user_type = simple_type(
        typename="com.example/User",
        serialize_fn=lambda user: json.dumps(user.__dict__),
        deserialize_fn=lambda serialized: User(**json.loads(serialized)),
    )
    from statefun_core.messages import typed_value

    tv = typed_value(user_type, User("bob", "blue"))
    assert tv.typename == "com.example/User" and tv.has_value
    assert json.loads(tv.value) == {"name": "bob", "favorite_color": "blue"}
    assert user_type.serializer().deserialize(tv.value).favorite_color == "blue"


def test_a_serializer_returning_neither_bytes_nor_str_is_a_clear_error() -> None:
    from statefun_core.messages import typed_value

    bad = simple_type("com.example/Bad", serialize_fn=lambda v: 42, deserialize_fn=lambda b: b)
    with pytest.raises(TypeError, match=r"com\.example/Bad"):
        typed_value(bad, "x")


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    )
)
def test_json_type_roundtrips(value: object) -> None:
    json_type = make_json_type("com.example/Doc")
    data = json_type.serializer().serialize(value)
    assert json_type.serializer().deserialize(data) == value


def test_json_type_keeps_unicode_as_utf8() -> None:
    data = make_json_type("com.example/Doc").serializer().serialize({"name": "Zoë"})
    assert data == '{"name": "Zoë"}'.encode()


def test_protobuf_type_is_named_after_the_message() -> None:
    tpe = make_protobuf_type(protocol.Address)
    assert tpe.typename == "type.googleapis.com/io.statefun.sdk.reqreply.Address"
    address = protocol.Address(namespace="a", type="b", id="c")
    data = tpe.serializer().serialize(address)
    assert tpe.serializer().deserialize(data) == address
    assert make_protobuf_type(protocol.Address, namespace="my.ns").typename.startswith("my.ns/")
    with pytest.raises(ValueError, match=r"^The Protobuf generated class is missing\.$"):
        make_protobuf_type(None)


def test_simple_type_needs_each_of_its_arguments() -> None:
    """As the official SDK: each is required, though its signature gives them defaults."""
    for missing, arguments in (
        ("typename", {"serialize_fn": str, "deserialize_fn": bytes.decode}),
        ("serialize_fn", {"typename": "com.example/t", "deserialize_fn": bytes.decode}),
        ("deserialize_fn", {"typename": "com.example/t", "serialize_fn": str}),
    ):
        with pytest.raises(ValueError, match=f"^{missing} (can not be|is) missing$"):
            simple_type(**arguments)  # type: ignore[arg-type]


def test_a_type_shows_its_typename() -> None:
    # what error messages that name a type show of it
    assert repr(make_json_type("com.example/Doc")) == "SimpleType('com.example/Doc')"
    assert "'io.statefun.types/int'" in repr(IntType)


def test_custom_type_and_serializer_subclasses() -> None:
    class Upper(TypeSerializer):
        def serialize(self, value: str) -> bytes:
            return value.upper().encode()

        def deserialize(self, byte: bytes) -> str:
            return byte.decode().lower()

    class UpperType(Type):
        def __init__(self) -> None:
            super().__init__("com.example/upper")

        def serializer(self) -> TypeSerializer:
            return Upper()

    assert UpperType().serializer().serialize("ab") == b"AB"
    with pytest.raises(ValueError):
        simple_type("", serialize_fn=str, deserialize_fn=bytes)


def test_a_message_for_a_bool_is_refused_without_reaching_protobuf() -> None:
    # upb (protobuf 7) crashed the process on BooleanWrapper(value=<a message>)
    with pytest.raises(TypeError):
        BoolType.serializer().serialize(protocol.Address(namespace="a", type="b", id="c"))
    with pytest.raises(TypeError):
        BoolType.serializer().serialize(1.5)


@pytest.mark.parametrize(
    ("tpe", "value", "words"),
    [
        (StringType, 5, "5 has type int; StringType takes a str"),
        (IntType, "1", "'1' has type str; IntType takes an int"),
        (
            IntType,
            2**31,
            "IntType takes an int from -2**31 to 2**31 - 1 (32 bits; LongType holds 64)",
        ),
        (LongType, 2**63, "LongType takes an int from -2**63 to 2**63 - 1"),
        (DoubleType, "1.5", "'1.5' has type str; DoubleType takes a float"),
    ],
)
def test_a_refused_value_names_the_type_and_what_it_takes(
    tpe: Type, value: object, words: str
) -> None:
    # protobuf's own words depend on its backend (upb: "bad argument type for built-in
    # operation"); the class stays the one the official SDK raises
    with pytest.raises((TypeError, ValueError)) as refused:
        tpe.serializer().serialize(value)
    assert type(refused.value) in (TypeError, ValueError)
    assert words in str(refused.value)
