"""Code written for the official SDK (import name ``statefun``), run on statefun-compat."""

from __future__ import annotations

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
from statefun.kafka_egress_pb2 import KafkaProducerRecord
from statefun.kinesis_egress_pb2 import KinesisEgressRecord
from statefun.request_reply_pb2 import FromFunction, ToFunction, TypedValue
from statefun.types_pb2 import StringWrapper
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
