"""The official SDK's generated ``request_reply_pb2``: the same messages, from statefun_core."""

from statefun_core.protocol import Address, FromFunction, ToFunction, TypedValue

__all__ = ["Address", "FromFunction", "ToFunction", "TypedValue"]
