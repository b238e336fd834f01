"""The functions of the differential test, written once for either SDK.

Each invocation's message carries a *command program* (JSON, typename ``fuzz/program``): a list
of commands that read, write and delete state, send messages, delayed messages, cancellations
and egress records. The function runs the commands in order, each in its own ``try``, and
records what each one saw (a value read, or the class of the error it raised) in a *trace*,
which it sends as the invocation's last message. The reply therefore holds everything the
function observed, so comparing two replies compares two runs.

This module is imported by the official SDK's worker (in its own virtual environment, with
``statefun``) and by the test (with ``statefun_core``): it must not import either, nor anything
from this repository. :func:`build` gets the SDK as a module.
"""

from __future__ import annotations

import json
import struct
from datetime import timedelta
from typing import Any, Dict, List, Optional, Tuple

PROGRAM_TYPENAME = "fuzz/program"
TRACE_TYPENAME = "fuzz/trace"  # the function the trace is sent to

# name -> (type key, ttl): ttl is None, ("write", ms) or ("call", ms)
STATES: Dict[str, Tuple[str, Optional[Tuple[str, int]]]] = {
    "b": ("bool", None),
    "i": ("int", None),
    "l": ("long", None),
    "f": ("float", None),
    "d": ("double", None),
    "s": ("string", None),
    "j": ("json", None),
    "p": ("pb", None),
    "w": ("int", ("write", 5000)),
    "c": ("string", ("call", 1500)),
    "t": ("json", ("write", 86_400_000)),
}

# typename -> (async?, state names)
FUNCTIONS: Dict[str, Tuple[bool, Tuple[str, ...]]] = {
    "fuzz/sync-all": (False, ("b", "i", "l", "f", "d", "s", "j", "p", "w", "c")),
    "fuzz/async-all": (True, ("b", "i", "l", "f", "d", "s", "j", "p", "w", "c")),
    "fuzz/sync-none": (False, ()),
    "fuzz/async-ttl": (True, ("w", "c", "t", "f")),
}

ERRORS = (TypeError, ValueError, AttributeError, OverflowError, KeyError)


def error_name(error: BaseException) -> str:
    """The standard class an error is an instance of (``UnicodeEncodeError`` is a
    ``ValueError``): what ``except`` in a function sees."""
    for cls in ERRORS:
        if isinstance(error, cls):
            return cls.__name__
    return "Exception" if isinstance(error, Exception) else type(error).__name__


def make_value(spec: Any, address_class: Any) -> Any:
    """A Python value from its JSON description (see ``generator.value``)."""
    kind = spec[0]
    if kind == "i":
        return int(spec[1])
    if kind == "f":  # the 8 bytes of a double, big-endian: every NaN, -0.0, ...
        return struct.unpack(">d", bytes.fromhex(spec[1]))[0]
    if kind == "b":
        return bool(spec[1])
    if kind == "s":
        return str(spec[1])
    if kind == "surrogate":
        return "x\ud800"
    if kind == "bytes":
        return bytes.fromhex(spec[1])
    if kind == "none":
        return None
    if kind == "list":
        return [make_value(item, address_class) for item in spec[1]]
    if kind == "tuple":
        return tuple(make_value(item, address_class) for item in spec[1])
    if kind == "dict":
        return {key: make_value(item, address_class) for key, item in spec[1]}
    if kind == "pb":
        return address_class(namespace=spec[1], type=spec[2], id=spec[3])
    if kind == "object":
        return object()
    raise AssertionError(f"unknown value kind {kind!r}")


def normalize(value: Any) -> Any:
    """A value as JSON that tells every difference apart (a float by its bits)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ["bool", value]
    if isinstance(value, int):
        return ["int", str(value)]
    if isinstance(value, float):
        return ["float", struct.pack(">d", value).hex()]
    if isinstance(value, str):
        return ["str", value]
    if isinstance(value, (bytes, bytearray)):
        return ["bytes", bytes(value).hex()]
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [normalize(item) for item in value]]
    if isinstance(value, dict):
        return ["dict", [[normalize(k), normalize(v)] for k, v in value.items()]]
    if hasattr(value, "DESCRIPTOR"):
        return ["pb", value.namespace, value.type, value.id]
    return ["other", type(value).__name__]


def _address(address: Any) -> Any:
    if address is None:
        return None
    return [address.namespace, address.name, address.id, address.typename]


def _mutate(value: Any) -> None:
    """Change a value in place, as a function might by mistake."""
    if isinstance(value, list):
        value.append(1)
    elif isinstance(value, dict):
        value["mutated"] = True
    elif hasattr(value, "DESCRIPTOR"):
        value.id += "!"


def build(sdk: Any, address_class: Any, **options: Any) -> Any:
    """The ``StatefulFunctions`` of the test, made with the SDK module ``sdk``; ``options``
    go to each ``register`` call (ours only: a dead-letter policy)."""
    types = {
        "bool": sdk.BoolType,
        "int": sdk.IntType,
        "long": sdk.LongType,
        "float": sdk.FloatType,
        "double": sdk.DoubleType,
        "string": sdk.StringType,
        "json": sdk.make_json_type("fuzz/json"),
        "pb": sdk.make_protobuf_type(address_class),
    }
    program_type = sdk.make_json_type(PROGRAM_TYPENAME)

    def spec(name: str) -> Any:
        key, ttl = STATES[name]
        if ttl is None:
            return sdk.ValueSpec(name=name, type=types[key])
        mode, ms = ttl
        if mode == "write":
            return sdk.ValueSpec(
                name=name, type=types[key], expire_after_write=timedelta(milliseconds=ms)
            )
        return sdk.ValueSpec(
            name=name, type=types[key], expire_after_call=timedelta(milliseconds=ms)
        )

    def value_of(spec: Any) -> Any:
        return make_value(spec, address_class)

    def message(target: str, id: str, how: str, spec: Any) -> Any:
        if how.endswith("_value"):  # int_value=, str_value=, ...
            return sdk.message_builder(target, id, **{how: value_of(spec)})
        return sdk.message_builder(target, id, value=value_of(spec), value_type=types[how])

    def run(context: Any, command: List[Any]) -> Any:
        op = command[0]
        storage = context.storage
        if op == "get":
            return normalize(getattr(storage, command[1]))
        if op == "set":
            setattr(storage, command[1], value_of(command[2]))
            return None
        if op == "del":
            delattr(storage, command[1])
            return None
        if op == "add":  # read, add, write, read back: a running total
            current = getattr(storage, command[1])
            amount = value_of(command[2])
            setattr(storage, command[1], amount if current is None else current + amount)
            return normalize(getattr(storage, command[1]))
        if op == "mutate":  # change what was read, write nothing, read again
            _mutate(getattr(storage, command[1]))
            return normalize(getattr(storage, command[1]))
        if op == "set_mutate":  # write a value, then change it in place, read again
            value = value_of(command[2])
            setattr(storage, command[1], value)
            _mutate(value)
            return normalize(getattr(storage, command[1]))
        if op == "send":
            _, target, id, how, spec = command
            context.send(message(target, id, how, spec))
            return None
        if op == "send_after":
            _, delay_ms, token, target, id, how, spec = command
            delay = timedelta(milliseconds=delay_ms)
            if token is None:
                context.send_after(delay, message(target, id, how, spec))
            else:
                context.send_after(delay, message(target, id, how, spec), token)
            return None
        if op == "cancel":
            context.cancel_delayed_message(command[1])
            return None
        if op == "kafka":
            _, egress, topic, key, spec, type_key = command
            arguments = {"typename": egress, "topic": topic, "value": value_of(spec)}
            if type_key is not None:
                arguments["value_type"] = types[type_key]
            if key is not None:
                arguments["key"] = key
            context.send_egress(sdk.kafka_egress_message(**arguments))
            return None
        if op == "kinesis":
            _, egress, stream, partition_key, spec, type_key, hash_key = command
            arguments = {
                "typename": egress,
                "stream": stream,
                "partition_key": partition_key,
                "value": value_of(spec),
            }
            if type_key is not None:
                arguments["value_type"] = types[type_key]
            if hash_key is not None:
                arguments["explicit_hash_key"] = hash_key
            context.send_egress(sdk.kinesis_egress_message(**arguments))
            return None
        if op == "egress":
            _, egress, spec, type_key = command
            context.send_egress(sdk.egress_message_builder(egress, value_of(spec), types[type_key]))
            return None
        if op == "caller":
            return _address(context.caller)
        if op == "address":
            return _address(context.address)
        if op == "noop":
            return None
        raise AssertionError(f"unknown command {op!r}")

    def invoke(context: Any, msg: Any) -> None:
        trace = []
        for command in msg.as_type(program_type):
            if command[0] == "raise":  # not caught: the batch fails
                raise ValueError("the program raised")
            try:
                trace.append(["ok", run(context, command)])
            except Exception as error:
                trace.append(["raised", error_name(error)])
        text = json.dumps(trace, sort_keys=True)
        context.send(sdk.message_builder(TRACE_TYPENAME, context.address.id, str_value=text))

    async def invoke_async(context: Any, msg: Any) -> None:
        invoke(context, msg)

    functions = sdk.StatefulFunctions()
    for typename, (is_async, names) in FUNCTIONS.items():
        fun = invoke_async if is_async else invoke
        functions.register(typename, fun, [spec(name) for name in names], **options)
    return functions
