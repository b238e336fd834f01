"""The official SDK's generated ``kinesis_egress_pb2``: the same message, from statefun_core."""

from statefun_core.protocol import KinesisEgressRecord

__all__ = ["KinesisEgressRecord"]
