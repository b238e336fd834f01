"""statefun_core: a Python SDK for Apache Flink Stateful Functions remote functions.

A superset of the official ``statefun`` SDK: ``from statefun_core import *`` in place of
``from statefun import *`` runs the same code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_attributes

if TYPE_CHECKING:
    from .context import Context
    from .core import SdkAddress, ValueSpec
    from .deadletters import DeadLetterEgress, DeadLetterRecord
    from .errors import (
        AsyncFunctionInSyncContextError,
        FinalFailure,
        FunctionFailedError,
        FunctionNotFoundError,
        LimitExceededError,
        MalformedRequestError,
        RequestTooLargeError,
        StatefunError,
    )
    from .functions import StatefulFunction, StatefulFunctions
    from .handler import RequestReplyHandler
    from .http import CONTENT_TYPE, error_response, status_for
    from .limits import Limits
    from .messages import (
        EgressMessage,
        Message,
        egress_message_builder,
        kafka_egress_message,
        kinesis_egress_message,
        message_builder,
    )
    from .plugins import hookimpl, make_plugin_manager
    from .types import (
        BoolType,
        DoubleType,
        FloatType,
        IntType,
        LongType,
        StringType,
        Type,
        TypeSerializer,
        make_json_type,
        make_protobuf_type,
        simple_type,
    )

__version__ = "0.1.0"

__all__ = [
    "CONTENT_TYPE",
    "AsyncFunctionInSyncContextError",
    "BoolType",
    "Context",
    "DeadLetterEgress",
    "DeadLetterRecord",
    "DoubleType",
    "EgressMessage",
    "FinalFailure",
    "FloatType",
    "FunctionFailedError",
    "FunctionNotFoundError",
    "IntType",
    "LimitExceededError",
    "Limits",
    "LongType",
    "MalformedRequestError",
    "Message",
    "RequestReplyHandler",
    "RequestTooLargeError",
    "SdkAddress",
    "StatefulFunction",
    "StatefulFunctions",
    "StatefunError",
    "StringType",
    "Type",
    "TypeSerializer",
    "ValueSpec",
    "egress_message_builder",
    "error_response",
    "hookimpl",
    "kafka_egress_message",
    "kinesis_egress_message",
    "make_json_type",
    "make_plugin_manager",
    "make_protobuf_type",
    "message_builder",
    "simple_type",
    "status_for",
]

# The names are imported on first use: importing the package alone, as the pytest plugin does
# in every pytest run, does not import protobuf, the handler and the plugin host.
if not TYPE_CHECKING:  # the type checker reads the imports above, and no name it does not know
    __getattr__, __dir__ = lazy_attributes(
        globals(),
        {
            "context": ("Context",),
            "core": ("SdkAddress", "ValueSpec"),
            "deadletters": ("DeadLetterEgress", "DeadLetterRecord"),
            "errors": (
                "AsyncFunctionInSyncContextError",
                "FinalFailure",
                "FunctionFailedError",
                "FunctionNotFoundError",
                "LimitExceededError",
                "MalformedRequestError",
                "RequestTooLargeError",
                "StatefunError",
            ),
            "functions": ("StatefulFunction", "StatefulFunctions"),
            "handler": ("RequestReplyHandler",),
            "http": ("CONTENT_TYPE", "error_response", "status_for"),
            "limits": ("Limits",),
            "messages": (
                "EgressMessage",
                "Message",
                "egress_message_builder",
                "kafka_egress_message",
                "kinesis_egress_message",
                "message_builder",
            ),
            "plugins": ("hookimpl", "make_plugin_manager"),
            "types": (
                "BoolType",
                "DoubleType",
                "FloatType",
                "IntType",
                "LongType",
                "StringType",
                "Type",
                "TypeSerializer",
                "make_json_type",
                "make_protobuf_type",
                "simple_type",
            ),
        },
        # the modules that importing the package imported before, still its attributes
        (
            "context",
            "core",
            "deadletters",
            "errors",
            "functions",
            "handler",
            "http",
            "limits",
            "messages",
            "plugins",
            "protocol",
            "protowire",
            "registry",
            "storage",
            "tracecontext",
            "types",
        ),
    )
