from __future__ import annotations

import asyncio
import json
import math
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import pytest
from pydantic import BaseModel, create_model
from statefun_pydantic import ModelValidationError, default_typename, pydantic_type

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

from .models import ExactReading, Item, Order, Reading, Receipt

CASHIER = "shop/cashier"
RECEIPT = f"{Receipt.__module__}/Receipt"  # the default typename: <module>/<class>


def request(order_json: bytes, *, typename: str = "shop/Order", last: bytes | None = None) -> bytes:
    """A batch for the cashier with one Order argument and the ``last`` state."""
    out = protocol.ToFunction()
    batch = out.invocation
    batch.target.namespace, batch.target.type, batch.target.id = "shop", "cashier", "till-1"
    state = batch.state.add(state_name="last")
    if last is not None:
        state.state_value.typename = RECEIPT
        state.state_value.has_value = True
        state.state_value.value = last
    invocation = batch.invocations.add()
    invocation.argument.typename = typename
    invocation.argument.has_value = True
    invocation.argument.value = order_json
    return out.SerializeToString()


def make_functions() -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind(CASHIER, specs=[ValueSpec("last", type=Receipt)])
    def cashier(context: Context, message: Message) -> None:
        assert message.is_type(Order)
        order = message.as_type(Order)
        previous = context.storage.last
        assert previous is None or isinstance(previous, Receipt)
        total = sum(item.quantity for item in order.items)
        context.storage.last = Receipt(order_id=order.id, total_items=total)
        context.send(message_builder("shop/ledger", order.id, value=order))

    @functions.bind("shop/async-cashier", specs=[ValueSpec("last", type=Receipt)])
    async def async_cashier(context: Context, message: Message) -> None:
        cashier(context, message)

    return functions


@pytest.fixture
def handler() -> RequestReplyHandler:
    # the real entry point: autoload finds statefun-pydantic as installed
    return RequestReplyHandler(make_functions(), plugins=make_plugin_manager())


ORDER = b'{"id": "o-1", "items": [{"sku": "tea", "quantity": 2}], "customerNote": "hi"}'


def test_the_entry_point_is_discovered() -> None:
    import statefun_pydantic.plugin

    assert make_plugin_manager().get_plugin("pydantic") is statefun_pydantic.plugin


def check_reply(reply: bytes) -> None:
    result = protocol.FromFunction.FromString(reply).invocation_result
    (mutation,) = result.state_mutations
    assert mutation.state_name == "last"
    assert mutation.state_value.typename == RECEIPT
    assert json.loads(mutation.state_value.value) == {"order_id": "o-1", "total_items": 2}
    (sent,) = result.outgoing_messages
    assert sent.argument.typename == "shop/Order"
    assert json.loads(sent.argument.value) == {
        "id": "o-1",
        "items": [{"sku": "tea", "quantity": 2}],
        "customerNote": "hi",
    }


def test_models_round_trip_through_handle_sync(handler: RequestReplyHandler) -> None:
    previous = Receipt(order_id="o-0", total_items=9).model_dump_json().encode()
    check_reply(handler.handle_sync(request(ORDER, last=previous)))


def test_models_round_trip_through_handle_async(handler: RequestReplyHandler) -> None:
    raw = protocol.ToFunction.FromString(request(ORDER))
    raw.invocation.target.type = "async-cashier"
    check_reply(asyncio.run(handler.handle_async(raw.SerializeToString())))


def test_missing_state_names_the_model_typename(handler: RequestReplyHandler) -> None:
    raw = protocol.ToFunction.FromString(request(ORDER))
    del raw.invocation.state[:]
    reply = protocol.FromFunction.FromString(handler.handle_sync(raw.SerializeToString()))
    (missing,) = reply.incomplete_invocation_context.missing_values
    assert (missing.state_name, missing.type_typename) == ("last", RECEIPT)


def test_invalid_json_is_an_error_naming_the_model_and_typename(
    handler: RequestReplyHandler,
) -> None:
    invalid = b'{"id": "o-1", "items": [{"sku": "tea", "quantity": 0}]}'
    with pytest.raises(FunctionFailedError) as failed:
        handler.handle_sync(request(invalid))
    error = failed.value.__cause__
    assert isinstance(error, ModelValidationError)
    assert error.model is Order and error.typename == "shop/Order"
    assert "'shop/Order' value is not a valid tests.models.Order" in str(error)
    assert "items.0.quantity" in str(error)
    assert error.errors[0]["type"] == "greater_than_equal"


def test_a_value_of_another_class_is_refused() -> None:
    serializer = pydantic_type(Order).serializer()
    with pytest.raises(TypeError, match="'shop/Order' holds Order instances, not Item"):
        serializer.serialize(Item(sku="x", quantity=1))


def readings_handler() -> RequestReplyHandler:
    functions = StatefulFunctions()

    @functions.bind("lab/meter", specs=[ValueSpec("last", type=Reading)])
    def meter(context: Context, message: Message) -> None:
        sensor, value = message.as_string().split("=")
        model = ExactReading if sensor.startswith("exact") else Reading
        context.storage.last = model(sensor=sensor, value=float(value))

    return RequestReplyHandler(functions, plugins=make_plugin_manager())


def meter_request(argument: str) -> bytes:
    out = protocol.ToFunction()
    batch = out.invocation
    batch.target.namespace, batch.target.type, batch.target.id = "lab", "meter", "m-1"
    batch.state.add(state_name="last")
    message = message_builder("lab/meter", "m-1", str_value=argument)
    batch.invocations.add().argument.CopyFrom(message.typed_value)
    return out.SerializeToString()


def test_a_float_written_as_null_that_would_not_read_back_fails_the_batch() -> None:
    # pydantic writes inf and nan as null by default, which a float field then refuses: the
    # state would be unreadable from the next batch on
    handler = readings_handler()
    with pytest.raises(FunctionFailedError) as failed:
        handler.handle_sync(meter_request("s1=inf"))
    error = failed.value.__cause__
    assert isinstance(error, ValueError)
    assert "'tests.models/Reading' value would be written as JSON" in str(error)
    assert "ser_json_inf_nan='constants'" in str(error)


def test_a_value_changed_past_its_constraints_is_refused_when_written() -> None:
    item = Item(sku="tea", quantity=1)
    item.quantity = 0  # pydantic does not validate assignments by default
    with pytest.raises(ValueError, match=r"does not read back \(quantity: Input should be"):
        pydantic_type(Item).serializer().serialize(item)


def test_none_and_configured_non_finite_floats_round_trip() -> None:
    serializer = pydantic_type(Reading).serializer()
    for reading in (Reading(sensor="s", value=1.5), ExactReading(sensor="exact", value=math.inf)):
        assert serializer.deserialize(serializer.serialize(reading)) == Reading(
            sensor=reading.sensor, value=reading.value
        )
    nan = serializer.deserialize(serializer.serialize(ExactReading(sensor="x", value=math.nan)))
    assert math.isnan(nan.value)
    reply = protocol.FromFunction.FromString(
        readings_handler().handle_sync(meter_request("exact=-inf"))
    )
    (mutation,) = reply.invocation_result.state_mutations
    assert json.loads(mutation.state_value.value)["value"] == -math.inf


def test_the_typename_comes_from_the_class_attribute_or_defaults() -> None:
    assert default_typename(Order) == "shop/Order"
    assert default_typename(Receipt) == "tests.models/Receipt"

    class Special(Order):  # the attribute names Order only, not its subclasses
        pass

    assert default_typename(Special).endswith(
        "/test_the_typename_comes_from_the_class_attribute_or_defaults.<locals>.Special"
    )


def test_an_explicit_typename() -> None:
    tpe = pydantic_type(Receipt, typename="shop/Receipt.v2")
    assert tpe.typename == "shop/Receipt.v2"
    assert pydantic_type(Receipt, typename="shop/Receipt.v2") is tpe
    value = Receipt(order_id="o", total_items=1)
    assert tpe.serializer().deserialize(tpe.serializer().serialize(value)) == value


def test_an_explicit_type_serves_a_value_spec() -> None:
    functions = StatefulFunctions()
    versioned = pydantic_type(Receipt, typename="shop/Receipt.v2")

    @functions.bind("shop/versioned", specs=[ValueSpec("last", type=versioned)])
    def versioned_fn(context: Context, message: Message) -> None:
        context.storage.last = Receipt(
            order_id="o", total_items=message.as_type(Order).id.count("o")
        )

    handler = RequestReplyHandler(functions, plugins=make_plugin_manager())
    raw = protocol.ToFunction.FromString(request(ORDER))
    raw.invocation.target.type = "versioned"
    raw.invocation.state[0].state_value.typename = "shop/Receipt.v2"
    result = protocol.FromFunction.FromString(handler.handle_sync(raw.SerializeToString()))
    assert result.invocation_result.state_mutations[0].state_value.typename == "shop/Receipt.v2"


def test_classes_that_are_not_models_are_left_to_other_plugins() -> None:
    class NotAModel:
        pass

    functions = StatefulFunctions()
    functions.register("shop/plain", lambda context, message: None, [ValueSpec("x", NotAModel)])
    with pytest.raises(UnknownTypeError):
        RequestReplyHandler(functions, plugins=make_plugin_manager()).handle_sync(_plain_request())


def _plain_request() -> bytes:
    raw = protocol.ToFunction.FromString(request(ORDER))
    raw.invocation.target.type = "plain"
    return raw.SerializeToString()


def test_pydantic_type_refuses_non_models() -> None:
    with pytest.raises(TypeError, match="not a pydantic BaseModel"):
        pydantic_type(dict)  # type: ignore[arg-type]
    assert issubclass(Order, BaseModel)


def test_generic_aliases_are_not_models() -> None:
    from statefun_pydantic.plugin import statefun_type_for_class

    assert statefun_type_for_class(list[int]) is None  # type: ignore[arg-type]
    assert statefun_type_for_class(Order) is pydantic_type(Order)


def made_at(start: threading.Barrier, model: type[BaseModel]) -> object:
    start.wait()
    return pydantic_type(model)


def test_threads_asking_for_a_new_models_type_at_once_get_the_same_object() -> None:
    """``pydantic_type`` gives one object per model, also to threads that ask at once for
    the first time (a thread switch between almost any two bytecodes makes them meet)."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for round in range(100):
            model = create_model(f"Model{round}", x=(int, 0))
            start = threading.Barrier(8)
            with ThreadPoolExecutor(8) as pool:
                answers = [pool.submit(made_at, start, model) for _ in range(8)]
                assert {id(answer.result()) for answer in answers} == {id(pydantic_type(model))}
    finally:
        sys.setswitchinterval(interval)


def test_a_model_defined_again_binds_and_serves_as_the_first_did() -> None:
    """A notebook cell defining a model and a function of it, run again while a harness of
    the first still serves: the new class takes over the model's typename; the state written
    as the first class reads back as the new one."""
    from statefun_core.testing import Harness

    functions = StatefulFunctions()

    def cell() -> type[BaseModel]:
        class Tally(BaseModel):
            __statefun_typename__: ClassVar[str] = "shop/Tally"
            count: int

        @functions.bind("shop/tally", specs=[ValueSpec("last", type=Tally)])
        def tally(context: Context, message: Message) -> None:
            context.storage.last = message.as_type(Tally)

        return Tally

    first = cell()
    harness = Harness(functions)
    harness.send("shop/tally", "a", value=first(count=1)).run()
    again = cell()
    harness.send("shop/tally", "a", value=again(count=2)).run()
    assert harness.state("shop/tally", "a") == {"last": again(count=2)}
