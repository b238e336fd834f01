"""The official SDK's modules (``statefun.utils``, ``statefun.storage``, ...), which code and
tests written for it import beside ``statefun`` itself."""

from __future__ import annotations

import importlib
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import statefun
from statefun import (
    IntType,
    LongType,
    RequestReplyHandler,
    StatefulFunctions,
    StringType,
    ValueSpec,
    make_json_type,
    message_builder,
)
from statefun.request_reply_pb2 import Address, FromFunction, ToFunction

#: Every public name of every module of apache-flink-statefun 3.3.0 (what ``dir()`` lists
#: without the standard library's modules and helpers they import), by module.
OFFICIAL_NAMES = {
    "statefun.context": "Context EgressMessage Message SdkAddress",
    "statefun.core": "SdkAddress SimpleType Type TypeSerializer UserTypeSerializer ValueSpec "
    "parse_typename simple_type",
    "statefun.egress_io": "EgressMessage KafkaProducerRecord KinesisEgressRecord Type TypedValue "
    "kafka_egress_message kinesis_egress_message",
    "statefun.kafka_egress_pb2": "DESCRIPTOR KafkaProducerRecord",
    "statefun.kinesis_egress_pb2": "DESCRIPTOR KinesisEgressRecord",
    "statefun.messages": "EgressMessage Message PRIMITIVE_GETTERS Type TypedValue "
    "egress_message_builder message_builder to_typed_value wrapper_types",
    "statefun.request_reply_pb2": "Address DESCRIPTOR FromFunction ToFunction TypedValue",
    "statefun.request_reply_v3": "Address Cell DelayedMessage EgressMessage FromFunction Message "
    "RequestReplyHandler SdkAddress StatefulFunction StatefulFunctions ToFunction TypedValue "
    "UserFacingContext ValueSpec collect_cancellations collect_delayed collect_egress "
    "collect_failure collect_messages collect_mutations collect_success parse_typename resolve "
    "sdk_address_from_pb",
    "statefun.statefun_builder": "Context Message StatefulFunction StatefulFunctions StorageSpec "
    "ValueSpec make_address_storage_spec",
    "statefun.storage": "Cell Resolution StorageSpec ToFunction Type TypedValue ValueSpec "
    "from_typed_value make_address_storage_spec property_named resolve storage_constructor "
    "storage_missing_attribute to_typed_value",
    "statefun.types_pb2": "BooleanWrapper DESCRIPTOR DoubleWrapper FloatWrapper IntWrapper "
    "LongWrapper StringWrapper",
    "statefun.utils": "Type TypedValue from_typed_value make_json_type make_protobuf_type "
    "simple_type to_typed_value to_typed_value_deduce",
    "statefun.wrapper_types": "BoolType BooleanWrapper DESCRIPTOR DoubleType DoubleWrapper "
    "FloatType FloatWrapper IntType IntWrapper LongType LongWrapper PY_TYPE_TO_WRAPPER_TYPE "
    "ProtobufWrappingType ProtobufWrappingTypeSerializer StringType StringWrapper Type "
    "TypeSerializer WRAPPER_TYPE_TO_PY_TYPE",
}

#: The official handler's and storage's workings, and the generated modules' descriptors: not
#: provided (the README says why, and what to use instead)
NOT_PROVIDED = {
    "statefun.request_reply_v3": "Cell DelayedMessage UserFacingContext collect_cancellations "
    "collect_delayed collect_egress collect_failure collect_messages collect_mutations "
    "collect_success",
    "statefun.storage": "Cell property_named storage_constructor storage_missing_attribute",
    **{
        module: "DESCRIPTOR"
        for module in (
            "statefun.kafka_egress_pb2",
            "statefun.kinesis_egress_pb2",
            "statefun.request_reply_pb2",
            "statefun.types_pb2",
            "statefun.wrapper_types",
        )
    },
}

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("module", sorted(OFFICIAL_NAMES))
def test_every_official_name_a_user_imports_is_there(module: str) -> None:
    provided = importlib.import_module(module)
    wanted = set(OFFICIAL_NAMES[module].split()) - set(NOT_PROVIDED.get(module, "").split())
    assert sorted(name for name in wanted if not hasattr(provided, name)) == []


def test_the_names_not_provided_are_named_in_the_readme() -> None:
    readme = README.read_text()
    for names in NOT_PROVIDED.values():
        for name in names.split():
            assert f"`{name}`" in readme, name


def test_the_official_modules_are_attributes_of_the_package() -> None:
    """``import statefun`` of the official SDK imports them all: code uses them so."""
    code = (
        "import statefun\n"
        "assert statefun.utils.to_typed_value(statefun.IntType, 7).has_value\n"
        "assert statefun.wrapper_types.IntType is statefun.IntType\n"
        "assert statefun.request_reply_pb2.ToFunction is statefun.request_reply_v3.ToFunction\n"
        "assert {'core', 'storage', 'types_pb2'} <= set(dir(statefun))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    with pytest.raises(AttributeError, match="no attribute 'utilities'"):
        statefun.utilities  # noqa: B018


def test_a_request_built_with_to_typed_value_as_the_official_sdks_tests_build_them() -> None:
    from statefun.utils import from_typed_value, to_typed_value

    functions = StatefulFunctions()

    @functions.bind("ns/greeter", specs=[ValueSpec("seen", IntType), ValueSpec("name", StringType)])
    def greet(context: statefun.Context, message: statefun.Message) -> None:
        assert context.storage.name is None
        context.storage.seen += message.as_int()

    request = ToFunction()
    request.invocation.target.CopyFrom(Address(namespace="ns", type="greeter", id="0"))
    for name, tpe, value in (("seen", IntType, 1), ("name", StringType, None)):
        state = request.invocation.state.add(state_name=name)
        state.state_value.CopyFrom(to_typed_value(tpe, value))
    request.invocation.invocations.add().argument.CopyFrom(to_typed_value(IntType, 41))

    reply = FromFunction.FromString(
        RequestReplyHandler(functions).handle_sync(request.SerializeToString())
    )
    (mutation,) = reply.invocation_result.state_mutations
    assert mutation.state_name == "seen" and from_typed_value(IntType, mutation.state_value) == 42
    assert to_typed_value(StringType, None) == statefun.request_reply_pb2.TypedValue(
        typename=StringType.typename, has_value=False
    )
    assert from_typed_value(IntType, to_typed_value(IntType, None)) is None
    with pytest.raises(TypeError, match=r"io\.statefun\.types/long"):
        from_typed_value(IntType, to_typed_value(LongType, 1))


def test_to_typed_value_deduce_gives_the_bytes_of_a_value() -> None:
    from statefun.utils import to_typed_value_deduce

    assert to_typed_value_deduce("hé") == "hé".encode()
    assert to_typed_value_deduce(bytearray(b"\x00\x01")) == b"\x00\x01"
    assert to_typed_value_deduce({"a": 1}, make_json_type("ns/json")) == b'{"a": 1}'
    with pytest.raises(TypeError):
        to_typed_value_deduce(5)  # type: ignore[arg-type]


def persisted(name: str, tpe: Any = None, value: Any = None) -> Any:
    from statefun.utils import to_typed_value

    state = ToFunction.PersistedValue(state_name=name)
    if tpe is not None:
        state.state_value.CopyFrom(to_typed_value(tpe, value))
    return state


def test_resolve_makes_the_storage_a_function_sees_or_names_the_missing_specs() -> None:
    from statefun.storage import make_address_storage_spec, resolve

    count, name = ValueSpec("count", IntType), ValueSpec("name", StringType)
    spec = make_address_storage_spec([count, name])
    assert spec.names == {"count", "name"} and spec.specs == [count, name]

    assert resolve(spec, "ns/f", []).missing_specs == [count, name]
    assert resolve(spec, "ns/f", [persisted("count")]).missing_specs == [name]
    assert resolve(spec, "ns/f", []).storage is None

    values = [persisted("count", IntType, 1), persisted("name"), persisted("other", IntType, 2)]
    resolution = resolve(spec, "ns/f", values)
    storage = resolution.storage
    assert resolution.missing_specs is None
    assert storage.count == 1 and storage.name is None
    storage.count += 1
    storage.name = "ann"
    assert (storage.count, storage.name) == (2, "ann")
    del storage.count
    assert storage.count is None
    with pytest.raises(AttributeError):
        storage.other  # noqa: B018 (sent, but no spec declares it)
    with pytest.raises(ValueError, match="duplicate registered value name: count"):
        make_address_storage_spec([count, ValueSpec("count", LongType)])


def test_a_bound_functions_storage_spec_is_the_official_modules_storage_spec() -> None:
    from statefun.statefun_builder import StorageSpec, make_address_storage_spec

    functions = StatefulFunctions()
    specs = [ValueSpec("seen", IntType, expire_after_write=timedelta(seconds=1))]
    functions.bind("ns/f", specs=specs)(lambda context, message: None)
    storage_spec = functions.for_typename("ns/f").storage_spec
    assert isinstance(storage_spec, StorageSpec)
    made = make_address_storage_spec(specs)
    assert (storage_spec.specs, storage_spec.names) == (made.specs, made.names) == (specs, {"seen"})


def test_a_protobuf_wrapping_type_writes_what_the_built_in_type_writes() -> None:
    from statefun.types_pb2 import IntWrapper
    from statefun.wrapper_types import PY_TYPE_TO_WRAPPER_TYPE, ProtobufWrappingType

    counter = ProtobufWrappingType("io.statefun.types/int", IntWrapper)
    assert counter.wrapper is IntWrapper
    for value in (0, 7, -(2**31)):
        data = counter.serializer().serialize(value)
        assert data == IntType.serializer().serialize(value)
        assert counter.serializer().deserialize(data) == value
    assert PY_TYPE_TO_WRAPPER_TYPE[int] is IntType


def test_primitive_getters_are_the_keywords_message_builder_takes() -> None:
    from statefun.messages import PRIMITIVE_GETTERS

    samples = {
        "int_value": 1,
        "float_value": 0.5,
        "long_value": 2**40,
        "str_value": "a",
        "double_value": 0.25,
        "bool_value": True,
    }
    assert set(PRIMITIVE_GETTERS) == set(samples)
    for keyword, tpe in PRIMITIVE_GETTERS.items():
        built = message_builder("ns/f", "a", **{keyword: samples[keyword]})
        assert built.is_type(tpe) and built.as_type(tpe) == samples[keyword]


def test_sdk_address_from_pb_is_none_for_no_caller() -> None:
    from statefun.request_reply_v3 import SdkAddress, sdk_address_from_pb

    assert sdk_address_from_pb(Address()) is None
    assert sdk_address_from_pb(Address(namespace="ns", type="f", id="a")) == SdkAddress(
        "ns", "f", "a", "ns/f"
    )


def test_parse_typename_is_the_official_modules() -> None:
    from statefun.core import parse_typename

    assert parse_typename("a.b/c/d") == ("a.b/c", "d")
    for wrong in ("", "/", "a/", "/b", "ab"):
        with pytest.raises(ValueError):
            parse_typename(wrong)


def test_a_function_called_with_a_context_of_ones_own_and_a_resolved_storage() -> None:
    """How a unit test calls a function without a handler: a ``Context`` subclass that keeps
    what is sent, and a storage from ``resolve``."""
    from statefun.request_reply_v3 import SdkAddress
    from statefun.storage import make_address_storage_spec, resolve
    from statefun.utils import to_typed_value

    seen = ValueSpec("seen", IntType)
    storage = resolve(make_address_storage_spec([seen]), "ns/f", [persisted("seen", IntType, 2)])

    class Recording(statefun.Context):
        def __init__(self) -> None:
            self.sent: list[statefun.Message] = []

        @property
        def address(self) -> SdkAddress:
            return SdkAddress("ns", "f", "a", "ns/f")

        @property
        def storage(self) -> Any:
            return storage.storage

        @property
        def caller(self) -> None:
            return None

        def send(self, message: statefun.Message) -> None:
            self.sent.append(message)

    def greet(context: statefun.Context, message: statefun.Message) -> None:
        context.storage.seen += 1
        context.send(message_builder("ns/inbox", context.address.id, int_value=message.as_int()))

    context = Recording()
    greet(context, statefun.Message("ns/f", "a", to_typed_value(IntType, 5)))
    assert context.storage.seen == 3
    assert [(sent.target_id, sent.as_int()) for sent in context.sent] == [("a", 5)]
