"""The official SDK's ``statefun.request_reply_v3``: the handler and the names it is used with.

The official handler's workings (``UserFacingContext``, ``DelayedMessage``, ``Cell``, the
``collect_*`` functions) are not here: statefun_core's handler does that work its own way.
"""

from __future__ import annotations

from typing import Any, Optional

from statefun_core.core import SdkAddress, ValueSpec, parse_typename
from statefun_core.functions import StatefulFunction, StatefulFunctions
from statefun_core.handler import RequestReplyHandler
from statefun_core.messages import EgressMessage, Message
from statefun_core.protocol import Address, FromFunction, ToFunction, TypedValue

from .storage import resolve

__all__ = [
    "Address",
    "EgressMessage",
    "FromFunction",
    "Message",
    "RequestReplyHandler",
    "SdkAddress",
    "StatefulFunction",
    "StatefulFunctions",
    "ToFunction",
    "TypedValue",
    "ValueSpec",
    "parse_typename",
    "resolve",
    "sdk_address_from_pb",
]


def sdk_address_from_pb(addr: Any) -> Optional[SdkAddress]:
    """The :class:`SdkAddress` of a protobuf ``Address``; None for none, or an empty one (a
    message from an ingress has no caller)."""
    if not addr or (not addr.namespace and not addr.type and not addr.id):
        return None
    return SdkAddress(addr.namespace, addr.type, addr.id, f"{addr.namespace}/{addr.type}")
