"""The official SDK's ``statefun.egress_io``: records for Kafka and Kinesis egresses."""

from statefun_core.messages import EgressMessage, kafka_egress_message, kinesis_egress_message
from statefun_core.protocol import KafkaProducerRecord, KinesisEgressRecord, TypedValue
from statefun_core.types import Type

__all__ = [
    "EgressMessage",
    "KafkaProducerRecord",
    "KinesisEgressRecord",
    "Type",
    "TypedValue",
    "kafka_egress_message",
    "kinesis_egress_message",
]
