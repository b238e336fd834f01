"""The official SDK's generated ``types_pb2``: the same messages, from statefun_core."""

from statefun_core.protocol import (
    BooleanWrapper,
    DoubleWrapper,
    FloatWrapper,
    IntWrapper,
    LongWrapper,
    StringWrapper,
)

__all__ = [
    "BooleanWrapper",
    "DoubleWrapper",
    "FloatWrapper",
    "IntWrapper",
    "LongWrapper",
    "StringWrapper",
]
