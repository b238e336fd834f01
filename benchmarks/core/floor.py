"""The floor: each payload's reply built by hand with protobuf, no SDK.

It does the same work as the functions in ``functions.py`` (decode the arguments and the
state, compute, encode the reply) with nothing around it: what any SDK's overhead is
measured against. Message classes come from the core SDK's compiled ``.proto`` files
(``statefun.desc``) in a private descriptor pool; the SDK itself is not imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from .payloads import FANOUT, GREETER, INBOX, INT, KAFKA_EGRESS, KAFKA_TOPIC, STATE10, STRING

KAFKA_PRODUCER_RECORD = "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord"
_MODIFY = 1
_INBOX_NAMESPACE, _, _INBOX_TYPE = INBOX.rpartition("/")


class Floor:
    """``handle_sync``/``handle_async`` over hand-written replies for the benchmark's functions."""

    def __init__(self, descriptors: Path) -> None:
        pool = descriptor_pool.DescriptorPool()
        for file in descriptor_pb2.FileDescriptorSet.FromString(descriptors.read_bytes()).file:
            pool.Add(file)

        def message_class(name: str) -> Any:
            return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))

        self.ToFunction = message_class("io.statefun.sdk.reqreply.ToFunction")
        self.FromFunction = message_class("io.statefun.sdk.reqreply.FromFunction")
        self.IntWrapper = message_class("io.statefun.sdk.types.IntWrapper")
        self.StringWrapper = message_class("io.statefun.sdk.types.StringWrapper")
        self.KafkaProducerRecord = message_class("io.statefun.sdk.egress.KafkaProducerRecord")
        self.functions: dict[str, Callable[[Any], bytes]] = {
            GREETER: self.greeter,
            STATE10: self.state10,
            FANOUT: self.fanout,
        }

    def handle_sync(self, data: bytes) -> bytes:
        batch = self.ToFunction.FromString(data).invocation
        target = batch.target
        return self.functions[f"{target.namespace}/{target.type}"](batch)

    async def handle_async(self, data: bytes) -> bytes:
        return self.handle_sync(data)

    def greeter(self, batch: Any) -> bytes:
        seen = 0
        for state in batch.state:
            if state.state_name == "seen_count" and state.state_value.has_value:
                seen = self.IntWrapper.FromString(state.state_value.value).value
        out = self.FromFunction()
        result = out.invocation_result
        outgoing = result.outgoing_messages
        string_wrapper = self.StringWrapper
        for invocation in batch.invocations:
            name = string_wrapper.FromString(invocation.argument.value).value
            item = outgoing.add()
            item.target.namespace = _INBOX_NAMESPACE
            item.target.type = _INBOX_TYPE
            item.target.id = name
            argument = item.argument
            argument.typename = STRING
            argument.has_value = True
            argument.value = string_wrapper(
                value=f"Hello {name} for the {seen}th time!"
            ).SerializeToString()
            seen += 1
        mutation = result.state_mutations.add(mutation_type=_MODIFY, state_name="seen_count")
        value = mutation.state_value
        value.typename = INT
        value.has_value = True
        value.value = self.IntWrapper(value=seen).SerializeToString()
        return out.SerializeToString()  # type: ignore[no-any-return]

    def state10(self, batch: Any) -> bytes:
        out = self.FromFunction()
        mutations = out.invocation_result.state_mutations
        string_wrapper = self.StringWrapper
        shift = self.IntWrapper.FromString(batch.invocations[0].argument.value).value
        for state in batch.state:
            text = string_wrapper.FromString(state.state_value.value).value
            mutation = mutations.add(mutation_type=_MODIFY, state_name=state.state_name)
            value = mutation.state_value
            value.typename = STRING
            value.has_value = True
            value.value = string_wrapper(value=text[shift:] + text[:shift]).SerializeToString()
        return out.SerializeToString()  # type: ignore[no-any-return]

    def fanout(self, batch: Any) -> bytes:
        out = self.FromFunction()
        result = out.invocation_result
        outgoing = result.outgoing_messages
        string_wrapper = self.StringWrapper
        name = string_wrapper.FromString(batch.invocations[0].argument.value).value
        for i in range(10):
            item = outgoing.add()
            item.target.namespace = _INBOX_NAMESPACE
            item.target.type = _INBOX_TYPE
            item.target.id = f"{name}-{i}"
            argument = item.argument
            argument.typename = STRING
            argument.has_value = True
            argument.value = string_wrapper(value=f"Hi {i}").SerializeToString()
        namespace, _, egress_type = KAFKA_EGRESS.rpartition("/")
        egress = result.outgoing_egresses.add(egress_namespace=namespace, egress_type=egress_type)
        record = self.KafkaProducerRecord(
            topic=KAFKA_TOPIC, key=name, value_bytes=f"greeted {name}".encode()
        )
        argument = egress.argument
        argument.typename = KAFKA_PRODUCER_RECORD
        argument.has_value = True
        argument.value = record.SerializeToString()
        return out.SerializeToString()  # type: ignore[no-any-return]
