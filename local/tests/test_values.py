"""Typed values for ingress, and how values and egress records are shown."""

from __future__ import annotations

import pytest
from statefun_local.values import InvalidValueError, describe, make_value

from statefun_core import protocol
from statefun_core.types import BoolType, DoubleType, FloatType, IntType, LongType, StringType

KAFKA = "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord"
KINESIS = "type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord"


def test_builtins_use_the_wire_encoding() -> None:
    assert make_value("int", 5).value == IntType.serializer().serialize(5)
    assert make_value("int", "0").value == b""  # proto3 default: zero bytes
    assert make_value("double", 1).value == DoubleType.serializer().serialize(1.0)
    assert make_value("bool", "true").value == b"\x08\x01"
    assert make_value("io.statefun.types/string", "hé").value == (
        StringType.serializer().serialize("hé")
    )


def test_custom_types_are_json_or_raw_bytes() -> None:
    value = make_value("com.example/User", {"name": "Ann"})
    assert (value.typename, value.value) == ("com.example/User", b'{"name": "Ann"}')
    assert make_value("com.example/Raw", base64_data="AAE=").value == b"\x00\x01"
    assert make_value("com.example/Raw", raw=b"xyz").value == b"xyz"


@pytest.mark.parametrize(
    ("type_", "value"),
    [
        ("int", 2**31),
        ("long", 2**63),
        ("int", True),
        ("bool", "maybe"),
        ("string", 5),
        ("nonsense", 1),
        ("a/b/c", 1),
        ("/b", 1),
        ("a/", 1),
    ],
)
def test_invalid_values(type_: str, value: object) -> None:
    with pytest.raises(InvalidValueError):
        make_value(type_, value)


@pytest.mark.parametrize("number", [float("nan"), float("inf"), -float("inf")])
def test_a_json_value_with_a_number_json_has_not_is_refused(number: float) -> None:
    """Python's ``json`` reads ``NaN`` and ``1e400`` (an infinity) in a request, and would write
    them back as ``NaN`` and ``Infinity``: not JSON, which Jackson and ``JSON.parse`` refuse."""
    with pytest.raises(InvalidValueError, match="NaN and infinities are not JSON"):
        make_value("com.example/Reading", {"celsius": number})
    assert make_value("double", number).typename == "io.statefun.types/double"  # a double's


def test_describe_decodes_builtins_json_and_egress_records() -> None:
    assert describe("io.statefun.types/int", IntType.serializer().serialize(-7)) == -7
    assert describe("com.example/User", b'{"a": [1]}') == {"json": {"a": [1]}}
    assert describe("com.example/Blob", b"\xff\x00") == {"base64": "/wA="}
    kafka = protocol.KafkaProducerRecord(topic="t", key="k", value_bytes=b"v").SerializeToString()
    assert describe(KAFKA, kafka) == {"kafka": {"topic": "t", "key": "k", "value": "v"}}
    with_headers = protocol.KafkaProducerRecord(topic="t", value_bytes=b"v")
    with_headers.headers.add(key="h", value=b"1", has_value=True)
    with_headers.headers.add(key="h", value=b"\x00", has_value=True)
    with_headers.headers.add(key="null")
    assert describe(KAFKA, with_headers.SerializeToString())["kafka"]["headers"] == [
        ["h", "1"], ["h", {"base64": "AA=="}], ["null", None],
    ]  # fmt: skip
    kinesis = protocol.KinesisEgressRecord(
        stream="s", partition_key="p", value_bytes=b"\x00\x01", explicit_hash_key="h"
    ).SerializeToString()
    assert describe(KINESIS, kinesis) == {
        "kinesis": {
            "stream": "s",
            "partition_key": "p",
            "value": {"base64": "AAE="},
            "explicit_hash_key": "h",
        }
    }


def test_builtins_take_raw_bytes_or_base64_unchecked() -> None:
    raw = make_value("int", raw=b"\x0d\x05\x00\x00\x00")
    assert (raw.typename, raw.value) == ("io.statefun.types/int", b"\x0d\x05\x00\x00\x00")
    decoded = make_value("io.statefun.types/string", base64_data="CgJoaQ==")
    assert (decoded.typename, decoded.value) == ("io.statefun.types/string", b"\n\x02hi")


def test_a_typename_that_is_not_valid_unicode_is_refused() -> None:
    with pytest.raises(InvalidValueError, match="lone surrogate"):
        make_value("com.example/\ud800", 1)


@pytest.mark.parametrize(("type_", "value"), [("int", -(2**31)), ("int", 2**31 - 1)])
def test_the_bounds_of_a_builtin_are_values(type_: str, value: int) -> None:
    assert make_value(type_, value).value == IntType.serializer().serialize(value)


@pytest.mark.parametrize(
    ("type_", "value", "base64_data"),
    [("int", -(2**31) - 1, None), ("long", -(2**63) - 1, None), ("string", "\ud800", None),
     ("com.example/Raw", None, "AA*E="), ("int", None, "AA*E="), ("float", 1e300, None),
     ("float", -3.5e38, None)],
)  # fmt: skip
def test_more_invalid_values(type_: str, value: object, base64_data: object) -> None:
    with pytest.raises(InvalidValueError):
        make_value(type_, value, base64_data=base64_data)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-(2**63), 2**63 - 1, 2**40])
def test_a_long_takes_every_64_bit_value(value: int) -> None:
    assert make_value("long", value).value == LongType.serializer().serialize(value)


@pytest.mark.parametrize("value", [3.4028234e38, -3.4028234e38, float("inf"), float("-inf")])
def test_a_float_takes_its_whole_range_and_infinity(value: float) -> None:
    assert make_value("float", value).value == FloatType.serializer().serialize(value)


def test_text_is_parsed_as_false_or_a_fractional_number() -> None:
    assert make_value("bool", "No").value == BoolType.serializer().serialize(False)
    assert make_value("double", "1.5").value == DoubleType.serializer().serialize(1.5)


def test_a_kinesis_record_without_a_hash_key_shows_none() -> None:
    kinesis = protocol.KinesisEgressRecord(stream="s", partition_key="p", value_bytes=b"v")
    assert describe(KINESIS, kinesis.SerializeToString()) == {
        "kinesis": {"stream": "s", "partition_key": "p", "value": "v"}
    }


def test_an_egress_value_that_is_not_utf8_is_shown_as_base64() -> None:
    kafka = protocol.KafkaProducerRecord(topic="t", value_bytes=b"\xff").SerializeToString()
    assert describe(KAFKA, kafka)["kafka"]["value"] == {"base64": "/w=="}


def test_a_string_with_a_lone_surrogate_is_refused() -> None:
    """(found unchecked by mutation testing: protobuf would write it as it likes)"""
    with pytest.raises(InvalidValueError, match="lone surrogate"):
        make_value("string", "a\ud800")


def test_a_kafka_record_without_a_key_shows_none() -> None:
    """(found unchecked by mutation testing) no key, not an empty one"""
    record = protocol.KafkaProducerRecord(topic="t", value_bytes=b"v").SerializeToString()
    assert describe(KAFKA, record) == {"kafka": {"topic": "t", "key": None, "value": "v"}}


# --- found unchecked by mutation testing of values.py ---------------------------------------


@pytest.mark.parametrize(
    ("type_", "text", "value"),
    [("bool", "1", True), ("bool", "YES", True), ("bool", "False", False), ("bool", "0", False),
     ("bool", "no", False), ("long", "5", 5), ("int", "-3", -3), ("double", "2.5", 2.5)],
)  # fmt: skip
def test_builtins_from_text(type_: str, text: str, value: object) -> None:
    builtin = {"bool": BoolType, "long": LongType, "int": IntType, "double": DoubleType}[type_]
    assert make_value(type_, text).value == builtin.serializer().serialize(value)


def test_a_custom_value_is_utf8_json_and_an_empty_base64_no_bytes() -> None:
    assert make_value("com.example/User", {"name": "Zoë"}).value == '{"name": "Zoë"}'.encode()
    assert make_value("com.example/Raw", base64_data="").value == b""
    assert describe("com.example/User", b"") == {"json": None}


def nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("bool", "maybe"), "'maybe' is not a valid io.statefun.types/bool"),
        (("bool", "2"), "'2' is not a valid io.statefun.types/bool"),
        (("int", "abc"), "'abc' is not a valid io.statefun.types/int"),
        (("string", 5), "5 is not a valid io.statefun.types/string"),
        (("int", 2**31), "2147483648 does not fit io.statefun.types/int (32 bits); use long"),
        (("long", -(2**63) - 1),
         "-9223372036854775809 does not fit io.statefun.types/long (64 bits)"),
        (("float", 1e39), "1e+39 does not fit io.statefun.types/float (32 bits); use double"),
        (("double", 10**400), "the number is too large for io.statefun.types/double"),
        (("float", 10**400), "the number is too large for io.statefun.types/float"),
        (("string", "a\ud800"), "a lone surrogate in a string: not valid Unicode"),
        (("com.example/Deep", nested(100_000)), "the value is nested too deeply"),
        (("a/b/c", 1), "unknown type 'a/b/c': use one of string, int, long, bool, float, double "
                       "or a typename 'namespace/name'"),
    ],
)  # fmt: skip
def test_what_a_refused_value_says(args: tuple[str, object], message: str) -> None:
    with pytest.raises(InvalidValueError) as caught:
        make_value(*args)
    assert str(caught.value) == message


def test_bad_base64_says_so() -> None:
    with pytest.raises(InvalidValueError) as caught:
        make_value("com.example/Raw", base64_data="!!")
    assert str(caught.value).startswith("not valid base64: ")
