"""The official SDK's generated ``kafka_egress_pb2``: the same message, from statefun_core."""

from statefun_core.protocol import KafkaProducerRecord

__all__ = ["KafkaProducerRecord"]
