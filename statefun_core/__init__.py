"""statefun_core: a Python SDK for Apache Flink Stateful Functions remote functions.

A superset of the official ``statefun`` SDK: ``from statefun_core import *`` in place of
``from statefun import *`` runs the same code.
"""

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
