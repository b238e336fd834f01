"""Functions and calls written once against the official SDK's API, run by both SDKs.

``bind(sdk)`` takes the SDK's module (``statefun`` or ``statefun_core``), so the code that
makes each reply is the same on both sides and only the SDK differs. This module imports
neither SDK itself: the official one runs in its own virtualenv (see official_driver.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

COUNTER = "com.example/counter"
DELAYER = "com.example/delayer"
NESTED = "a.b/c/d"  # namespace a.b/c, type d: split at the last "/"
NESTED_EGRESS = "x.y/z/w"


def bind(sdk: Any) -> Any:
    """The functions both SDKs serve."""
    functions = sdk.StatefulFunctions()

    @functions.bind(typename=COUNTER, specs=[sdk.ValueSpec(name="seen", type=sdk.IntType)])
    def counter(context: Any, message: Any) -> None:
        seen = (context.storage.seen or 0) + message.as_int()
        context.storage.seen = seen
        context.send(sdk.message_builder(target_typename=NESTED, target_id="x", int_value=seen))
        context.send_egress(
            sdk.kafka_egress_message(typename=NESTED_EGRESS, topic="out", key="k", value="v")
        )

    @functions.bind(typename=DELAYER)
    def delayer(context: Any, message: Any) -> None:
        action = message.as_string()
        later = sdk.message_builder(target_typename=COUNTER, target_id="b", int_value=1)
        if action == "no token":
            context.send_after(timedelta(seconds=1), later)
        elif action == "empty token":
            context.send_after(timedelta(seconds=1), later, cancellation_token="")
        elif action == "token, then cancel":
            context.send_after(timedelta(seconds=1), later, cancellation_token="t1")
            context.cancel_delayed_message("t1")
        elif action == "negative duration":
            context.send_after(timedelta(milliseconds=-5), later)
        elif action == "cancel an empty token":
            context.cancel_delayed_message("")
        else:
            raise AssertionError(f"unknown action {action!r}")

    return functions


def _id(x: Any) -> Any:
    return x


#: simple_type calls: (name, positional arguments, keyword arguments)
SIMPLE_TYPE_CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("typename only", ("com.example/t",), {}),
    ("no deserializer", ("com.example/t",), {"serialize_fn": _id}),
    ("no serializer", ("com.example/t",), {"deserialize_fn": _id}),
    ("no typename", (), {"serialize_fn": _id, "deserialize_fn": _id}),
    ("nothing", (), {}),
    ("complete", ("com.example/t", _id, _id), {}),
]


def simple_type_outcomes(sdk: Any) -> dict[str, list[str]]:
    """What each ``simple_type`` call gives: the type's typename, or the error's class and text."""
    outcomes = {}
    for name, args, kwargs in SIMPLE_TYPE_CALLS:
        try:
            outcomes[name] = ["ok", sdk.simple_type(*args, **kwargs).typename]
        except Exception as error:  # the outcome is what is compared
            outcomes[name] = [type(error).__name__, str(error)]
    return outcomes


class Unresolved:
    """A plain class, which no type plugin resolves."""


def value_spec_of_a_plain_class(sdk: Any) -> list[str]:
    """Where a state of ``type=Unresolved`` fails: ``[where, error class, text]``, ``where``
    being ``"ValueSpec"`` or ``"handler"`` (when the handler is built), or ``["served"]``."""
    try:
        spec = sdk.ValueSpec(name="x", type=Unresolved)
    except Exception as error:  # the outcome is what is compared
        return ["ValueSpec", type(error).__name__, str(error)]
    functions = sdk.StatefulFunctions()
    functions.register("com.example/plain", lambda context, message: None, specs=[spec])
    try:
        sdk.RequestReplyHandler(functions)
    except Exception as error:
        return ["handler", type(error).__name__, str(error)]
    return ["served"]
