"""Code written for the official SDK (import name ``statefun``), run on statefun-compat."""

from __future__ import annotations

from typing import Optional

import statefun
from statefun import (
    Context,
    IntType,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    ValueSpec,
    message_builder,
)
from statefun.core import parse_typename
from statefun.kafka_egress_pb2 import KafkaProducerRecord
from statefun.kinesis_egress_pb2 import KinesisEgressRecord
from statefun.request_reply_pb2 import FromFunction, ToFunction, TypedValue
from statefun.request_reply_v3 import sdk_address_from_pb
from statefun.storage import Resolution, make_address_storage_spec, resolve
from statefun.types_pb2 import StringWrapper
from statefun.utils import from_typed_value, to_typed_value
from statefun.wrapper_types import PY_TYPE_TO_WRAPPER_TYPE
from typing_extensions import assert_type

functions = StatefulFunctions()
assert_type(statefun.StatefulFunctions(), StatefulFunctions)
assert_type(statefun.__version__, str)


@functions.bind("com.example.fns/greeter", specs=[ValueSpec("seen_count", IntType)])
async def greet(context: Context, message: Message) -> None:
    context.send(message_builder("com.example.fns/inbox", "ann", str_value="hi"))


handler = RequestReplyHandler(functions)
request = ToFunction()
reply = FromFunction.FromString(handler.handle_sync(request.SerializeToString()))
records = [KafkaProducerRecord(), KinesisEgressRecord(), TypedValue(), StringWrapper(value="a")]

# the official SDK's modules, as its own tests use them
specs = functions.for_typename("com.example.fns/greeter").storage_spec.specs
assert_type(specs, list[ValueSpec])
assert_type(make_address_storage_spec(specs).names, frozenset[str])
assert_type(resolve(make_address_storage_spec(specs), "ns/f", request.invocation.state), Resolution)
state = ToFunction.PersistedValue(state_name="seen_count", state_value=to_typed_value(IntType, 1))
seen = from_typed_value(PY_TYPE_TO_WRAPPER_TYPE[int], state.state_value)
assert_type(parse_typename("com.example.fns/greeter"), tuple[str, str])
caller = sdk_address_from_pb(request.invocation.invocations[0].caller)
assert_type(caller, Optional[statefun.SdkAddress])
