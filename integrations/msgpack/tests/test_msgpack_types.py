from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import msgpack
import pytest
from statefun_msgpack import MsgpackDecodeError, msgpack_dataclass, msgpack_type

from statefun_core import (
    Context,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    ValueSpec,
    message_builder,
    protocol,
)
from statefun_core.errors import FunctionFailedError, UnknownTypeError
from statefun_core.plugins import make_plugin_manager


@msgpack_dataclass("geo/Point")
@dataclass
class Point:
    x: float
    y: float


@msgpack_dataclass("geo/Track")
@dataclass
class Track:
    name: str
    last: Optional[Point] = None
    start: Point = field(default_factory=lambda: Point(0.0, 0.0))
    tags: list[str] = field(default_factory=list)


if TYPE_CHECKING:  # for the type checker only: out of reach when the fields are resolved
    from decimal import Decimal


@msgpack_dataclass("geo/Priced")
@dataclass
class Priced:
    where: Point
    price: Optional[Decimal] = None


VISITS = msgpack_type("geo/Visits")
TRACKER = "geo/tracker"


def make_functions() -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind(TRACKER, specs=[ValueSpec("track", Track), ValueSpec("visits", VISITS)])
    def tracker(context: Context, message: Message) -> None:
        point = message.as_type(Point)
        track = context.storage.track or Track(name=context.address.id)
        track.start = track.last or point
        track.last = point
        context.storage.track = track
        visits = context.storage.visits or {}
        visits[f"{point.x},{point.y}"] = visits.get(f"{point.x},{point.y}", 0) + 1
        context.storage.visits = visits
        context.send(message_builder("geo/map", "world", value=point))

    @functions.bind(
        "geo/async-tracker", specs=[ValueSpec("track", Track), ValueSpec("visits", VISITS)]
    )
    async def async_tracker(context: Context, message: Message) -> None:
        tracker(context, message)

    return functions


def request(function: str, argument: bytes, state: dict[str, tuple[str, bytes]]) -> bytes:
    out = protocol.ToFunction()
    batch = out.invocation
    batch.target.namespace, batch.target.type = function.split("/")
    batch.target.id = "walk-1"
    for name in ("track", "visits"):
        added = batch.state.add(state_name=name)
        if name in state:
            typename, value = state[name]
            added.state_value.typename = typename
            added.state_value.has_value = True
            added.state_value.value = value
    invocation = batch.invocations.add()
    invocation.argument.typename = "geo/Point"
    invocation.argument.has_value = True
    invocation.argument.value = argument
    return out.SerializeToString()


@pytest.fixture
def handler() -> RequestReplyHandler:
    return RequestReplyHandler(make_functions(), plugins=make_plugin_manager())  # autoload


def test_the_entry_point_is_discovered() -> None:
    import statefun_msgpack.plugin

    assert make_plugin_manager().get_plugin("msgpack") is statefun_msgpack.plugin


PREVIOUS = Track(name="walk-1", last=Point(1.0, 1.0), tags=["morning"])


def check(reply: bytes) -> None:
    result = protocol.FromFunction.FromString(reply).invocation_result
    states = {m.state_name: m.state_value for m in result.state_mutations}
    assert states["track"].typename == "geo/Track"
    assert msgpack.unpackb(states["track"].value) == {
        "name": "walk-1",
        "last": {"x": 2.5, "y": -1.0},
        "start": {"x": 1.0, "y": 1.0},
        "tags": ["morning"],
    }
    assert states["visits"].typename == "geo/Visits"
    assert msgpack.unpackb(states["visits"].value) == {"2.5,-1.0": 1, "0,0": 7}
    (sent,) = result.outgoing_messages
    assert sent.argument.typename == "geo/Point"
    assert msgpack.unpackb(sent.argument.value) == {"x": 2.5, "y": -1.0}


def state() -> dict[str, tuple[str, bytes]]:
    return {
        "track": (
            "geo/Track",
            msgpack.packb(
                {
                    "name": "walk-1",
                    "last": {"x": 1.0, "y": 1.0},
                    "tags": ["morning"],
                    "added_later": True,
                }
            ),
        ),
        "visits": ("geo/Visits", msgpack.packb({"0,0": 7})),
    }


POINT = msgpack.packb({"x": 2.5, "y": -1.0})


def test_dataclasses_and_plain_data_round_trip_through_handle_sync(
    handler: RequestReplyHandler,
) -> None:
    check(handler.handle_sync(request(TRACKER, POINT, state())))


def test_dataclasses_and_plain_data_round_trip_through_handle_async(
    handler: RequestReplyHandler,
) -> None:
    check(asyncio.run(handler.handle_async(request("geo/async-tracker", POINT, state()))))


def test_missing_state_names_the_typenames(handler: RequestReplyHandler) -> None:
    raw = protocol.ToFunction.FromString(request(TRACKER, POINT, {}))
    del raw.invocation.state[:]
    reply = protocol.FromFunction.FromString(handler.handle_sync(raw.SerializeToString()))
    missing = reply.incomplete_invocation_context.missing_values
    assert [(m.state_name, m.type_typename) for m in missing] == [
        ("track", "geo/Track"),
        ("visits", "geo/Visits"),
    ]


def test_undecodable_bytes_name_the_typename_and_class(handler: RequestReplyHandler) -> None:
    with pytest.raises(FunctionFailedError) as failed:
        handler.handle_sync(request(TRACKER, msgpack.packb([1, 2]), state()))
    error = failed.value.__cause__
    assert isinstance(error, MsgpackDecodeError)
    assert str(error) == "a 'geo/Point' value could not be read as Point: expected a map, got list"


def test_bytes_that_are_not_msgpack_say_what_msgpack_found(handler: RequestReplyHandler) -> None:
    with pytest.raises(FunctionFailedError) as failed:
        handler.handle_sync(request(TRACKER, b"\xc1", state()))  # 0xc1: never used by msgpack
    error = failed.value.__cause__
    assert isinstance(error, MsgpackDecodeError)
    assert str(error) == "a 'geo/Point' value could not be read as Point: FormatError"


def test_msgpack_is_more_compact_than_json() -> None:
    import json

    value = {"name": "walk-1", "visits": list(range(50)), "ok": True}
    assert len(VISITS.serializer().serialize(value)) < len(json.dumps(value).encode()) * 0.8


def test_plain_data_round_trips() -> None:
    value = {"a": [1, 2.5, None, True, b"\x00bytes", "text"], 3: {"nested": []}}
    serializer = VISITS.serializer()
    assert serializer.deserialize(serializer.serialize(value)) == value


def test_tuple_map_keys_come_back_as_tuples_and_other_tuples_as_lists() -> None:
    extension = msgpack.ExtType(5, b"x")
    value = {(0, 1): ["a", ("b", 2)], "grid": {(2, (3, 4)): (5, 6)}, "ext": extension}
    serializer = VISITS.serializer()
    assert serializer.deserialize(serializer.serialize(value)) == {
        (0, 1): ["a", ["b", 2]],
        "grid": {(2, (3, 4)): [5, 6]},
        "ext": extension,
    }


def test_a_value_of_another_class_is_refused() -> None:
    with pytest.raises(TypeError, match="'geo/Point' holds Point instances, not Track"):
        Point.__statefun_msgpack_type__.serializer().serialize(Track(name="x"))  # type: ignore[attr-defined]


def test_only_dataclasses_can_be_typed() -> None:
    class NotADataclass:
        pass

    with pytest.raises(TypeError, match="takes a dataclass"):
        msgpack_dataclass("geo/Nope")(NotADataclass)


def test_unmarked_classes_and_subclasses_are_unknown() -> None:
    @dataclass
    class Unmarked:
        x: int

    @dataclass
    class Subclass(Point):
        z: float = 0.0

    for cls in (Unmarked, Subclass):
        functions = StatefulFunctions()
        functions.register("geo/other", lambda context, message: None, [ValueSpec("v", cls)])
        raw = protocol.ToFunction.FromString(request(TRACKER, POINT, {}))
        raw.invocation.target.type = "other"
        with pytest.raises(UnknownTypeError):
            RequestReplyHandler(functions, plugins=make_plugin_manager()).handle_sync(
                raw.SerializeToString()
            )


@pytest.mark.parametrize(
    ("value", "nested"),
    [
        (Track(name="optional", last=Point(1.0, 2.0)), "last"),  # Optional[Point]
        (Priced(where=Point(5.0, 6.0)), "where"),  # beside a type checker's annotation
    ],
)
def test_nested_dataclasses_come_back_as_themselves(value: object, nested: str) -> None:
    serializer = type(value).__statefun_msgpack_type__.serializer()  # type: ignore[attr-defined]
    back = serializer.deserialize(serializer.serialize(value))
    assert isinstance(getattr(back, nested), Point) and back == value
