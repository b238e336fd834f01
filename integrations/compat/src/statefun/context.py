"""The official SDK's ``statefun.context``: the ``Context`` a function is called with."""

from statefun_core.context import Context
from statefun_core.core import SdkAddress
from statefun_core.messages import EgressMessage, Message

__all__ = ["Context", "EgressMessage", "Message", "SdkAddress"]
