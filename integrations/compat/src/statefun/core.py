"""The official SDK's ``statefun.core``: addresses, typenames, state specs and types."""

from statefun_core.core import SdkAddress, ValueSpec, parse_typename
from statefun_core.types import SimpleType, Type, TypeSerializer, simple_type
from statefun_core.types import _FunctionSerializer as UserTypeSerializer

__all__ = [
    "SdkAddress",
    "SimpleType",
    "Type",
    "TypeSerializer",
    "UserTypeSerializer",
    "ValueSpec",
    "parse_typename",
    "simple_type",
]
