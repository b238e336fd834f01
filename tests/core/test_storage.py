"""``ctx.storage`` behaves as the official SDK's: a value is encoded when it is assigned and read
back decoded. (tests/differential compares the two SDKs on random programs; these are the
cases of issue 20, one by one, through both drivers.)"""

from __future__ import annotations

import struct
from typing import Any, Callable

import pytest

from statefun_core import (
    BoolType,
    DoubleType,
    FloatType,
    FunctionFailedError,
    IntType,
    LongType,
    StatefulFunctions,
    StringType,
    ValueSpec,
    make_json_type,
    make_protobuf_type,
    protocol,
    simple_type,
)
from statefun_core.deadletters import is_unreadable
from statefun_core.testing.wire import mutations, to_function, typed_value

Serve = Callable[[StatefulFunctions], Callable[[bytes], bytes]]
JSON = make_json_type("com.example/doc")
ADDRESS = make_protobuf_type(protocol.Address)


def run(serve: Serve, spec: ValueSpec, body: Callable[[Any], None], invocations: int = 1) -> bytes:
    """Run ``body(storage)`` once per invocation; the state starts absent."""
    functions = StatefulFunctions()
    functions.register("ns/f", lambda ctx, msg: body(ctx.storage), [spec])
    request = to_function("ns/f", "1", [1] * invocations, state={spec.name: None})
    return serve(functions)(request)


def test_a_float_reads_back_rounded_to_float32(serve: Serve) -> None:
    seen = []

    def add(storage: Any) -> None:
        storage.total = (storage.total or 0.0) + 0.1
        seen.append(storage.total)

    data = run(serve, ValueSpec("total", FloatType), add, invocations=3)
    as_float32 = [struct.unpack("<f", struct.pack("<f", x))[0] for x in seen]
    assert seen == as_float32
    assert seen[0] == struct.unpack("<f", struct.pack("<f", 0.1))[0] != 0.1
    assert FloatType.serializer().deserialize(mutations(data)["total"].value) == seen[-1]


@pytest.mark.parametrize(
    ("spec", "written", "read_back"),
    [
        (ValueSpec("n", IntType), True, 1),
        (ValueSpec("flag", BoolType), 7, True),
        (ValueSpec("x", DoubleType), 3, 3.0),
        (ValueSpec("x", DoubleType), -0.0, 0.0),
        (ValueSpec("doc", JSON), (1, "two"), [1, "two"]),
        (ValueSpec("doc", JSON), {1: "a"}, {"1": "a"}),
    ],
)
def test_a_read_returns_the_decoded_stored_value(
    serve: Serve, spec: ValueSpec, written: Any, read_back: Any
) -> None:
    seen = []

    def write(storage: Any) -> None:
        setattr(storage, spec.name, written)
        seen.append(getattr(storage, spec.name))

    run(serve, spec, write)
    assert seen == [read_back] and type(seen[0]) is type(read_back)
    assert repr(seen[0]) == repr(read_back)  # -0.0 reads back 0.0


@pytest.mark.parametrize(
    ("spec", "bad"),
    [
        (ValueSpec("flag", BoolType), 1.5),
        (ValueSpec("n", IntType), 2**31),
        (ValueSpec("n", IntType), -(2**31) - 1),
        (ValueSpec("n", LongType), 2**63),
        (ValueSpec("n", LongType), -(2**63) - 1),
        (ValueSpec("n", IntType), "1"),
        (ValueSpec("s", StringType), 5),
        (ValueSpec("x", DoubleType), "1.5"),
        (ValueSpec("x", FloatType), "1.5"),
        (ValueSpec("doc", JSON), object()),
        (ValueSpec("address", ADDRESS), "not a message"),
    ],
)
def test_a_bad_write_raises_at_the_assignment_and_stores_nothing(
    serve: Serve, spec: ValueSpec, bad: Any
) -> None:
    caught = []

    def write(storage: Any) -> None:
        try:
            setattr(storage, spec.name, bad)
        except (TypeError, ValueError, AttributeError) as error:
            caught.append(error)
        caught.append(getattr(storage, spec.name))

    data = run(serve, spec, write)
    assert len(caught) == 2 and isinstance(caught[0], Exception) and caught[1] is None
    assert mutations(data) == {}
    if type(caught[0]) in (TypeError, ValueError):  # the serializer's words: it says what the
        # value is not, and the state and its type are named before them
        assert str(caught[0]).startswith(f"state {spec.name!r} is of type {spec.type.typename}: ")


def test_changing_a_read_value_in_place_stores_nothing(serve: Serve) -> None:
    functions = StatefulFunctions()
    seen = []

    def append(ctx: Any, msg: Any) -> None:
        ctx.storage.doc.append(4)
        address = ctx.storage.address
        address.id = "changed"
        seen.append((ctx.storage.doc, ctx.storage.address.id))

    functions.register("ns/f", append, [ValueSpec("doc", JSON), ValueSpec("address", ADDRESS)])
    state = {
        "doc": typed_value(JSON, [1, 2, 3]),
        "address": typed_value(ADDRESS, protocol.Address(namespace="n", type="t", id="kept")),
    }
    data = serve(functions)(to_function("ns/f", "1", [1], state=state))
    assert seen == [([1, 2, 3], "kept")]
    assert mutations(data) == {}


def test_a_value_changed_after_its_assignment_is_stored_as_assigned(serve: Serve) -> None:
    seen = []

    def write(storage: Any) -> None:
        doc = [1]
        storage.doc = doc
        doc.append(2)
        seen.append(storage.doc)

    data = run(serve, ValueSpec("doc", JSON), write)
    assert seen == [[1]]
    assert JSON.serializer().deserialize(mutations(data)["doc"].value) == [1]


def test_a_delete_after_a_write_deletes(serve: Serve) -> None:
    def write_then_delete(storage: Any) -> None:
        storage.n = 5
        del storage.n
        assert storage.n is None

    data = run(serve, ValueSpec("n", IntType), write_then_delete)
    assert mutations(data) == {"n": None}


BAD_JSON = typed_value(JSON, [1])
BAD_JSON.value = b"{"
BAD_INT = typed_value(IntType, 1)
BAD_INT.value = b"\xff"


@pytest.mark.parametrize(
    ("spec", "received"),
    [
        (ValueSpec("n", IntType), typed_value(StringType, "x")),  # another type
        (ValueSpec("doc", JSON), typed_value(StringType, "x")),
        (ValueSpec("n", IntType), BAD_INT),  # bytes its type cannot decode
        (ValueSpec("doc", JSON), BAD_JSON),
    ],
)
def test_a_state_its_type_cannot_read_fails_as_unreadable(
    serve: Serve, spec: ValueSpec, received: Any
) -> None:
    # what final_unreadable=True makes a final failure (statefun_core.deadletters)
    functions = StatefulFunctions()
    functions.register("ns/f", lambda ctx, msg: getattr(ctx.storage, spec.name), [spec])
    request = to_function("ns/f", "1", [1], state={spec.name: received})
    with pytest.raises(FunctionFailedError) as failure:
        serve(functions)(request)
    assert is_unreadable(failure.value.__cause__)


def test_a_value_a_serializer_gives_as_str_is_stored_as_utf8(serve: Serve) -> None:
    # simple_type: serialize_fn "may return bytes or str (encoded as UTF-8)"
    name = simple_type("com.example/name", serialize_fn=str.upper, deserialize_fn=bytes.decode)
    seen = []

    def write(storage: Any) -> None:
        storage.name = "zoë"
        seen.append(storage.name)

    data = run(serve, ValueSpec("name", name), write)
    assert seen == ["ZOË"]
    assert mutations(data)["name"].value == "ZOË".encode()


class Name(str):
    pass


def test_a_string_read_after_its_assignment_is_the_plain_string_assigned(serve: Serve) -> None:
    functions = StatefulFunctions()
    seen = []

    def write(ctx: Any, msg: Any) -> None:
        seen.append(ctx.storage.s)
        ctx.storage.s = "new"
        seen.append(ctx.storage.s)
        ctx.storage.s = Name("named")
        seen.append(ctx.storage.s)

    functions.register("ns/f", write, [ValueSpec("s", StringType)])
    data = serve(functions)(to_function("ns/f", "1", [1], state={"s": "old"}))
    assert seen == ["old", "new", "named"]
    assert type(seen[-1]) is str
    assert StringType.serializer().deserialize(mutations(data)["s"].value) == "named"


@pytest.mark.parametrize(
    ("tpe", "wrapper", "raw"),
    [
        (IntType, protocol.IntWrapper, protocol.IntWrapper(value=-7).SerializeToString()),
        (IntType, protocol.IntWrapper, protocol.IntWrapper(value=2**31 - 1).SerializeToString()),
        (LongType, protocol.LongWrapper, protocol.LongWrapper(value=-(2**63)).SerializeToString()),
        (BoolType, protocol.BooleanWrapper, b"\x08\x01"),
        # not as the reply writes them: the serializer reads them, as protobuf does
        (BoolType, protocol.BooleanWrapper, b"\x08\x02"),
        (IntType, protocol.IntWrapper, b"\x0d\x05\x00\x00\x00\x0d\x06\x00\x00\x00"),  # last wins
        (IntType, protocol.IntWrapper, b"\x0d\x05\x00\x00\x00\x18\x01"),  # an unknown field
        (LongType, protocol.LongWrapper, b"\x09" + struct.pack("<q", 5) + b"\x18\x01"),
        (IntType, protocol.IntWrapper, b"\x1a\x03abc"),  # five bytes, but not the value's
        (IntType, protocol.IntWrapper, b""),
    ],
)
def test_a_received_int_long_or_bool_reads_as_protobuf_reads_it(
    serve: Serve, tpe: Any, wrapper: Any, raw: bytes
) -> None:
    """An int or bool state received as the reply writes it (its tag, then the value packed)
    is unpacked by the storage itself; any other encoding by the type's serializer."""
    seen = []
    functions = StatefulFunctions()
    functions.register("ns/f", lambda ctx, msg: seen.append(ctx.storage.n), [ValueSpec("n", tpe)])
    value = protocol.TypedValue(typename=tpe.typename, has_value=True, value=raw)
    serve(functions)(to_function("ns/f", "1", [1], state={"n": value}))
    expected = wrapper.FromString(raw).value
    assert seen == [expected] and type(seen[0]) is type(expected)
