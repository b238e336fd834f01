"""The official SDK's ``statefun.statefun_builder``: the registry of functions."""

from statefun_core.context import Context
from statefun_core.core import StorageSpec, ValueSpec
from statefun_core.functions import StatefulFunction, StatefulFunctions
from statefun_core.messages import Message

from .storage import make_address_storage_spec

__all__ = [
    "Context",
    "Message",
    "StatefulFunction",
    "StatefulFunctions",
    "StorageSpec",
    "ValueSpec",
    "make_address_storage_spec",
]
