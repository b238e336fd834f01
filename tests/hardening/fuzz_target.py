"""What the fuzzers feed the handler, and what they accept back.

``FUNCTIONS`` covers built-in types, a JSON type, egress (Kafka, Kinesis, generic), delayed
messages and cancellations, async and ``blocking=True`` functions. ``generate`` turns a source
of choices (atheris' ``FuzzedDataProvider`` or a seeded ``random.Random``) into request bytes:
random bytes, or a ``ToFunction`` encoded by hand so that any field can be malformed (wrong wire
type, truncated, invalid UTF-8, repeated, unknown). ``check`` runs one request through
``handle_sync`` and ``handle_async`` and raises ``AssertionError`` unless both end in the same
allowed outcome: a valid ``FromFunction`` or a documented ``StatefunError``.
"""

from __future__ import annotations

import asyncio
import collections
import struct
from datetime import timedelta
from typing import Any, Optional, Protocol, Union

from statefun_core import (
    BoolType,
    Context,
    DoubleType,
    FloatType,
    IntType,
    Limits,
    LongType,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    StringType,
    ValueSpec,
    egress_message_builder,
    kafka_egress_message,
    kinesis_egress_message,
    make_json_type,
    make_plugin_manager,
    message_builder,
    protocol,
)
from statefun_core.errors import (
    FunctionFailedError,
    FunctionNotFoundError,
    LimitExceededError,
    MalformedRequestError,
    StatefunError,
)

COUNTER = "fuzz/counter"
TYPES = "fuzz/types"
DOCS = "fuzz/docs"
DELAYED = "fuzz/delayed"
BLOCKING = "fuzz/blocking"
STATELESS = "fuzz/stateless"
DOC = make_json_type("fuzz.types/doc")
EGRESS = "fuzz/out"

#: Small limits, so that inputs reach every limit within the fuzzer's input sizes.
LIMITS = Limits(
    request_bytes=64 * 1024, invocations_per_batch=64, state_value_bytes=2048,
    outgoing_per_batch=40, reply_bytes=16 * 1024,
)  # fmt: skip


class Deliberate(Exception):
    """What the functions raise when an argument asks them to."""


#: Exceptions that escaped a function's body during the current ``check`` (reset per driver).
RAISED: collections.deque[BaseException] = collections.deque()


def _tracked(fun: Any) -> Any:
    """Record any exception that escapes ``fun``: FunctionFailedError must have one."""
    if asyncio.iscoroutinefunction(fun):

        async def async_wrapper(context: Context, message: Message) -> None:
            try:
                await fun(context, message)
            except BaseException as error:
                RAISED.append(error)
                raise

        return async_wrapper

    def wrapper(context: Context, message: Message) -> None:
        try:
            fun(context, message)
        except BaseException as error:
            RAISED.append(error)
            raise

    return wrapper


def make_functions() -> StatefulFunctions:
    functions = StatefulFunctions()

    def counter(context: Context, message: Message) -> None:
        context.storage.count = (context.storage.count or 0) + 1
        if not message.is_int():
            return
        n = message.as_int() or 0
        if n == 13:
            raise Deliberate("13")
        if n % 7 == 0:
            context.send(message_builder(COUNTER, str(n), int_value=n + 1))
        if n % 5 == 0:
            context.send_egress(kafka_egress_message(EGRESS, "topic", str(n), key=str(n)))
        if n % 3 == 0:
            later = message_builder(COUNTER, context.address.id, int_value=n + 1)
            context.send_after(timedelta(milliseconds=n % 1000), later, f"t{n}")

    def types(context: Context, message: Message) -> None:
        storage = context.storage
        if message.is_string() and message.as_string() == "del":
            del storage.s, storage.b, storage.l, storage.f, storage.d
            return
        storage.s = (storage.s or "") + "x"
        storage.b = not storage.b
        storage.l = (storage.l or 0) + 1
        storage.f = (storage.f or 0.0) + 0.5
        storage.d = (storage.d or 0.0) - 0.5
        if message.is_long():
            context.send(message_builder(TYPES, "peer", long_value=message.as_long() or 0))

    def docs(context: Context, message: Message) -> None:
        doc = message.as_type(DOC) if message.is_type(DOC) else None
        if isinstance(doc, dict):
            if doc.get("raise"):
                raise Deliberate("doc")
            stored = context.storage.doc
            merged = {**(stored if isinstance(stored, dict) else {}), **doc}
            context.storage.doc = merged
            context.send_egress(egress_message_builder(EGRESS, merged, DOC))
        elif doc is not None:
            del context.storage.doc

    async def delayed(context: Context, message: Message) -> None:
        await asyncio.sleep(0)
        n = (message.as_int() or 0) if message.is_int() else 0
        context.storage.pending = n
        target = message_builder(COUNTER, str(n % 10), int_value=n)
        context.send_after(timedelta(milliseconds=abs(n) % 5000), target, f"t{n}")
        if n % 2:
            context.cancel_delayed_message(f"t{n - 1}")

    def blocking(context: Context, message: Message) -> None:
        caller = context.caller
        who = f"{caller.typename}/{caller.id}" if caller is not None else "nobody"
        context.send_egress(kinesis_egress_message(EGRESS, "stream", who, partition_key=who))

    def stateless(context: Context, message: Message) -> None:
        pass

    bind = functions.bind
    bind(COUNTER, specs=[ValueSpec("count", IntType)])(_tracked(counter))
    bind(TYPES, specs=[
        ValueSpec("s", StringType), ValueSpec("b", BoolType), ValueSpec("l", LongType),
        ValueSpec("f", FloatType), ValueSpec("d", DoubleType),
    ])(_tracked(types))  # fmt: skip
    bind(DOCS, specs=[ValueSpec("doc", DOC, expire_after_write=timedelta(hours=1))])(_tracked(docs))
    bind(DELAYED, specs=[ValueSpec("pending", IntType, expire_after_call=timedelta(seconds=9))])(
        _tracked(delayed)
    )
    bind(BLOCKING, blocking=True)(_tracked(blocking))
    bind(STATELESS)(_tracked(stateless))
    return functions


FUNCTIONS = make_functions()
SPECS: dict[str, dict[str, str]] = {
    function.typename: {spec.name: spec.type.typename for spec in function.specs}  # type: ignore[union-attr]
    for function in FUNCTIONS
}


def make_handler(limits: Limits = LIMITS) -> RequestReplyHandler:
    return RequestReplyHandler(
        FUNCTIONS, plugins=make_plugin_manager(load_entrypoints=False), limits=limits
    )


# --- generating requests ------------------------------------------------------------------


class Source(Protocol):
    """Where choices come from: atheris' FuzzedDataProvider, or a random.Random adapter."""

    def ConsumeIntInRange(self, low: int, high: int) -> int: ...
    def ConsumeBytes(self, count: int) -> bytes: ...


class RandomSource:
    """A seeded ``random.Random`` with the two FuzzedDataProvider methods ``generate`` uses."""

    def __init__(self, rng: Any) -> None:
        self.rng = rng

    def ConsumeIntInRange(self, low: int, high: int) -> int:
        return int(self.rng.randint(low, high))

    def ConsumeBytes(self, count: int) -> bytes:
        return bytes(self.rng.getrandbits(8) for _ in range(count))


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class _Writer:
    """Encodes fields by hand, now and then malformed as the source decides."""

    def __init__(self, src: Source, chaos: int) -> None:
        self.src = src
        self.chaos = chaos  # 0: always well-formed; higher: more often malformed

    def pick(self, n: int) -> int:
        return self.src.ConsumeIntInRange(0, n - 1)

    def ld(self, number: int, payload: bytes) -> bytes:
        """A length-delimited field, or one of its malformed variants."""
        good = _varint(number << 3 | 2) + _varint(len(payload)) + payload
        if self.chaos == 0 or self.pick(120 // self.chaos) != 0:
            return good
        variant = self.pick(7)
        if variant == 0:  # the wrong wire type: varint, fixed64, start group, fixed32
            wire = (0, 1, 3, 5)[self.pick(4)]
            return _varint(number << 3 | wire) + payload
        if variant == 1:  # declared longer than what follows
            return _varint(number << 3 | 2) + _varint(len(payload) + 1 + self.pick(9)) + payload
        if variant == 2:  # the field twice
            return good + good
        if variant == 3:  # an unknown field before it
            unknown = 1000 + self.pick(100_000)
            wire = self.pick(6)
            junk = self.src.ConsumeBytes(self.pick(12))
            if wire == 2:
                junk = _varint(len(junk)) + junk
            return _varint(unknown << 3 | wire) + junk + good
        if variant == 4:  # truncated
            return good[: self.pick(len(good) + 1)]
        if variant == 5:  # a huge declared length
            return _varint(number << 3 | 2) + _varint(1 << (20 + self.pick(44))) + payload
        return good[:-1] if good else good

    def string(self, choices: list[str]) -> bytes:
        """A string field's bytes: one of ``choices``, or odd (invalid UTF-8, NUL, long)."""
        if self.chaos == 0 or self.pick(60 // self.chaos) != 0:
            return choices[self.pick(len(choices))].encode()
        odd = self.pick(3)
        if odd == 0:
            return b"\xff\xfe" + self.src.ConsumeBytes(self.pick(6))
        if odd == 1:
            return "n\u00e9\x00/\u2603".encode()
        return b"a" * (1 << self.pick(12))


_FUNCTION_NAMES = [COUNTER, TYPES, DOCS, DELAYED, BLOCKING, STATELESS]
_ODD_FUNCTIONS = ["fuzz/unknown", "fuzz", "/", "fuzz/counter/x", ""]
_IDS = ["1", "42", "\u00e9t\u00e9", "a/b", " "]
_TYPENAMES = [
    IntType.typename, StringType.typename, BoolType.typename, LongType.typename,
    FloatType.typename, DoubleType.typename, DOC.typename, "fuzz.types/unknown", "",
]  # fmt: skip


def _value_bytes(w: _Writer, typename: str) -> bytes:
    """A value for ``typename``: usually well-encoded, sometimes random bytes."""
    src = w.src
    if w.chaos and w.pick(4) == 0:
        return src.ConsumeBytes(w.pick(40))
    n = src.ConsumeIntInRange(-(2**31), 2**31 - 1)
    if typename == IntType.typename:
        return IntType.serializer().serialize(n if w.pick(3) else 13)
    if typename == LongType.typename:
        return LongType.serializer().serialize(n * 7919)
    if typename == BoolType.typename:
        return BoolType.serializer().serialize(bool(n & 1))
    if typename == FloatType.typename:
        return struct.pack("<Bf", 0x0D, float(n))
    if typename == DoubleType.typename:
        return DoubleType.serializer().serialize(n / 3)
    if typename == StringType.typename:
        strings = ("del", "abc", "x" * (n % 3000), "z" * 70_000)  # the last over request_bytes
        return StringType.serializer().serialize(strings[w.pick(4)])
    if typename == DOC.typename:
        docs: list[Any] = [{"a": n}, {"raise": True}, [1, 2], "s", {"big": "y" * (n % 4000)}]
        return DOC.serializer().serialize(docs[w.pick(len(docs))])
    return src.ConsumeBytes(w.pick(20))


def _typed_value(w: _Writer, typename: str) -> bytes:
    if w.chaos and w.pick(3) == 0:
        typename = _TYPENAMES[w.pick(len(_TYPENAMES))]
    has_value = w.pick(8) != 0
    fields = w.ld(1, w.string([typename]))
    if has_value:
        fields += _varint(2 << 3 | 0) + b"\x01" + w.ld(3, _value_bytes(w, typename))
    elif w.pick(2):
        fields += w.ld(3, _value_bytes(w, typename))  # bytes but has_value false
    return fields


def _address(w: _Writer, typename: str, id: str) -> bytes:
    namespace, _, name = typename.rpartition("/")
    return w.ld(1, w.string([namespace])) + w.ld(2, w.string([name])) + w.ld(3, w.string([id]))


def generate(src: Source) -> bytes:
    """Request bytes from the source's choices (see the module's docstring)."""
    mode = src.ConsumeIntInRange(0, 9)
    if mode == 0:
        return src.ConsumeBytes(src.ConsumeIntInRange(0, 512))
    w = _Writer(src, chaos=0 if mode < 4 else (mode - 3))
    functions = _FUNCTION_NAMES + (_ODD_FUNCTIONS if w.chaos else [])
    function = functions[w.pick(len(functions))]
    batch = w.ld(1, _address(w, function, _IDS[w.pick(len(_IDS))]))

    specs = SPECS.get(function, {})
    for name, typename in [*specs.items(), ("unknown_state", IntType.typename)]:
        choice = w.pick(6)
        if choice == 0 and name in specs:
            continue  # missing: the reply asks for it
        if choice == 1 and name in specs and w.chaos:
            typename = _TYPENAMES[w.pick(len(_TYPENAMES))]  # a mismatched typename
        value = b"" if choice == 2 else _typed_value(w, typename)  # an empty TypedValue
        batch += w.ld(2, w.ld(1, w.string([name])) + w.ld(2, value))

    count = w.pick(8)
    if w.pick(12) == 0:
        count = (0, 63, 64, 65, 300)[w.pick(5)]  # empty, at and over the limit
    for _ in range(count):
        invocation = b""
        caller = w.pick(4)
        if caller == 1:
            invocation += w.ld(1, b"")  # an empty caller
        elif caller == 2:
            invocation += w.ld(1, _address(w, _FUNCTION_NAMES[w.pick(6)], _IDS[w.pick(5)]))
        elif caller == 3:
            invocation += w.ld(1, w.ld(3, b"only-id"))
        argument = _TYPENAMES[w.pick(len(_TYPENAMES))]
        invocation += w.ld(2, _typed_value(w, argument))
        batch += w.ld(3, invocation)
    return w.ld(100, batch)


# --- checking outcomes --------------------------------------------------------------------

_REQUEST_ERRORS = (MalformedRequestError, FunctionNotFoundError, LimitExceededError)
Outcome = Union[str, tuple[str, ...]]


def _parse_request(data: bytes) -> Optional[Any]:
    try:
        return protocol.ToFunction.FromString(data)
    except Exception:
        return None


def _check_reply(request: Any, reply: bytes, limits: Limits) -> Outcome:
    assert isinstance(reply, bytes), type(reply)
    assert len(reply) <= (limits.reply_bytes or len(reply))
    assert request is not None, "a reply to bytes that are not a ToFunction"
    batch = request.invocation
    typename = f"{batch.target.namespace}/{batch.target.type}"
    specs = SPECS[typename]
    assert request.HasField("invocation")  # a batch may be empty, and its id too
    out = protocol.FromFunction.FromString(reply)
    kind = out.WhichOneof("response")
    if kind == "incomplete_invocation_context":
        sent = {state.state_name for state in batch.state}
        missing = [v.state_name for v in out.incomplete_invocation_context.missing_values]
        assert missing and len(set(missing)) == len(missing), missing
        for value in out.incomplete_invocation_context.missing_values:
            assert value.state_name in specs and value.state_name not in sent, value
            assert value.type_typename == specs[value.state_name], value
        return ("incomplete", *sorted(missing))
    assert kind in (None, "invocation_result"), kind
    result = out.invocation_result
    names = [mutation.state_name for mutation in result.state_mutations]
    assert len(set(names)) == len(names) and set(names) <= set(specs), names
    for mutation in result.state_mutations:
        if mutation.mutation_type == 1:  # MODIFY
            value = mutation.state_value
            assert value.has_value and value.typename == specs[mutation.state_name], mutation
            assert len(value.value) <= (limits.state_value_bytes or len(value.value))
        else:
            assert mutation.mutation_type == 0 and not mutation.HasField("state_value")
    for message in result.outgoing_messages:
        assert f"{message.target.namespace}/{message.target.type}" in SPECS, message
        assert message.target.id and message.argument.has_value, message
    for delayed in result.delayed_invocations:
        if delayed.is_cancellation_request:
            assert delayed.cancellation_token and not delayed.HasField("target"), delayed
        else:
            assert delayed.delay_in_ms >= 0 and delayed.target.id, delayed
    for egress in result.outgoing_egresses:
        assert f"{egress.egress_namespace}/{egress.egress_type}" == EGRESS, egress
    effects = (
        len(result.outgoing_messages) + len(result.delayed_invocations)
        + len(result.outgoing_egresses)
    )  # fmt: skip
    assert effects <= (limits.outgoing_per_batch or effects)
    if not batch.invocations:  # nothing ran: no effects, as the official SDK answers
        assert reply == b"", reply
    elif typename == COUNTER:  # every invocation counts once, whatever its argument
        received = {state.state_name: state.state_value for state in batch.state}["count"]
        before = IntType.serializer().deserialize(received.value) if received.has_value else 0
        assert len(result.state_mutations) == 1, result
        (count,) = result.state_mutations
        after = IntType.serializer().deserialize(count.state_value.value)
        assert after == before + len(batch.invocations), (before, after)
    return ("ok", reply.hex())


def _outcome(handler: RequestReplyHandler, request: Any, drive: Any) -> Outcome:
    RAISED.clear()
    try:
        reply = drive()
    except FunctionFailedError as error:
        cause = error.__cause__
        assert cause is not None
        assert error.status == 500
        if not RAISED:  # then only writing the state it left may fail: too large, unencodable
            assert "_collect" in _frames(cause), f"no function raised: {cause!r}"
            assert isinstance(cause, (LimitExceededError, ValueError, TypeError, OverflowError))
        return ("failed", type(cause).__name__)
    except _REQUEST_ERRORS as error:
        assert error.status in (400, 404, 413), error
        assert not RAISED, "a request error after a function ran"
        if isinstance(error, LimitExceededError):
            assert error.limit in ("request_bytes", "invocations_per_batch"), error
        return ("rejected", type(error).__name__)
    except StatefunError as error:  # documented, but none of these may come of a request
        raise AssertionError(f"unexpected {type(error).__name__}: {error}") from error
    return _check_reply(request, reply, handler.limits)


def _frames(error: BaseException) -> list[str]:
    frames, traceback = [], error.__traceback__
    while traceback is not None:
        frames.append(traceback.tb_frame.f_code.co_name)
        traceback = traceback.tb_next
    return frames


_loop: Optional[asyncio.AbstractEventLoop] = None


def check(handler: RequestReplyHandler, data: bytes) -> Outcome:
    """Run ``data`` through both drivers; both must end alike in an allowed outcome."""
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
    loop = _loop
    request = _parse_request(data)
    if request is not None:  # what a large body is refused by before it is parsed
        invocations, others = protocol.batch_field_counts(data, float("inf"), len(data))
        assert invocations == len(request.invocation.invocations), invocations
        assert others >= len(request.invocation.state), others
    sync = _outcome(handler, request, lambda: handler.handle_sync(data))
    in_loop = _outcome(
        handler, request, lambda: loop.run_until_complete(handler.handle_async(data))
    )
    assert sync == in_loop, (sync, in_loop)
    return sync
