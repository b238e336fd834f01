"""The public API: a superset of the official SDK's, with its validation."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import functools
import importlib
import json
import logging
import subprocess
import sys
import threading
import traceback
from datetime import timedelta
from pathlib import Path
from types import GetSetDescriptorType, MemberDescriptorType, ModuleType
from typing import Any

import pytest
from google.protobuf.message import DecodeError

import statefun_core
import statefun_core.testing
from statefun_core import (
    BoolType,
    Context,
    DoubleType,
    EgressMessage,
    FloatType,
    FunctionFailedError,
    FunctionNotFoundError,
    IntType,
    LongType,
    MalformedRequestError,
    Message,
    RequestReplyHandler,
    SdkAddress,
    StatefulFunction,
    StatefulFunctions,
    StringType,
    ValueSpec,
    egress_message_builder,
    error_response,
    kafka_egress_message,
    kinesis_egress_message,
    make_json_type,
    make_plugin_manager,
    message_builder,
    protocol,
    simple_type,
)
from statefun_core.core import RESERVED_STATE_NAMES
from statefun_core.deadletters import is_unreadable
from statefun_core.storage import StateValues, storage_class
from statefun_core.testing.wire import mutations, to_function, typed_value

# everything `statefun` (apache-flink-statefun 3.3.0) exports
OFFICIAL_NAMES = [
    "TypeSerializer", "Type", "simple_type", "ValueSpec", "SdkAddress", "BoolType", "IntType",
    "FloatType", "DoubleType", "LongType", "StringType", "Message", "EgressMessage",
    "message_builder", "egress_message_builder", "kafka_egress_message",
    "kinesis_egress_message", "Context", "StatefulFunctions", "RequestReplyHandler",
    "make_protobuf_type", "make_json_type",
]  # fmt: skip


@pytest.mark.parametrize("name", OFFICIAL_NAMES)
def test_every_official_name_is_exported_by_star_import(name: str) -> None:
    namespace: dict[str, Any] = {}
    exec("from statefun_core import *", namespace)
    assert name in namespace


def test_all_names_resolve() -> None:
    for name in statefun_core.__all__:
        assert getattr(statefun_core, name) is not None


@pytest.mark.parametrize(
    "package", [statefun_core, statefun_core.testing], ids=lambda p: p.__name__
)
def test_the_type_checker_sees_the_names_a_run_exports(package: ModuleType) -> None:
    """The package lists its names three times: the ``if TYPE_CHECKING`` imports (what a type
    checker reads), ``__all__``, and the table a run imports them by. The same names, each
    the object the run imports."""
    source = ast.parse(Path(str(package.__file__)).read_text())
    blocks = [node for node in source.body if isinstance(node, ast.If)]
    (block,) = [node for node in blocks if ast.unparse(node.test) == "TYPE_CHECKING"]
    imports = [(node, alias) for node in block.body if isinstance(node, ast.ImportFrom)
               for alias in node.names]  # fmt: skip
    assert imports and all(isinstance(node, ast.ImportFrom) for node in block.body)
    assert sorted(alias.name for _, alias in imports) == sorted(package.__all__)
    for node, alias in imports:
        if node.module is None:  # from . import wire
            expected = importlib.import_module(f"{package.__name__}.{alias.name}")
        else:
            module = importlib.import_module(f"{package.__name__}.{node.module}")
            expected = getattr(module, alias.name)
        assert getattr(package, alias.name) is expected


def test_a_name_the_package_does_not_have_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'statefun_core' has no attribute 'Contxt'"):
        statefun_core.Contxt  # noqa: B018


def test_the_package_imports_a_name_when_it_is_first_used() -> None:
    """Importing ``statefun_core`` alone (as the pytest plugin does) imports neither protobuf
    nor the handler; each name, and each module the package imported before, is still there."""
    code = """if True:
        import json, sys
        import statefun_core
        before = sorted(sys.modules)
        listed = dir(statefun_core)
        star = {}
        exec("from statefun_core import *", star)
        modules = [module.__name__ for module in (statefun_core.handler, statefun_core.plugins,
                   statefun_core.plugins.hookspecs, statefun_core.protocol)]
        print(json.dumps({"before": before, "listed": listed, "star": sorted(star),
                          "modules": modules}))
    """
    root = str(Path(statefun_core.__file__).parents[1])
    done = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {root!r})\n{code}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert "statefun_core.handler" not in found["before"]
    assert "google.protobuf" not in found["before"]
    assert set(statefun_core.__all__) <= set(found["listed"])
    assert set(statefun_core.__all__) <= set(found["star"])
    assert found["modules"] == [
        "statefun_core.handler",
        "statefun_core.plugins",
        "statefun_core.plugins.hookspecs",
        "statefun_core.protocol",
    ]


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("", ValueError),
        ("1abc", ValueError),
        ("has space", ValueError),
        ("class", ValueError),
        ("Seen", ValueError),
    ],
)
def test_value_spec_names_are_validated(name: str, error: type) -> None:
    with pytest.raises(error):
        ValueSpec(name, IntType)


def test_value_spec_names_are_refused_with_the_official_sdks_message_when_missing() -> None:
    with pytest.raises(ValueError, match=r"^name can not be missing\.$"):
        ValueSpec("", IntType)
    for allowed in ("_x", "__x", "x__", "x_1"):  # only a whole __dunder__ is Python's
        assert ValueSpec(allowed, IntType).name == allowed


def test_an_address_cannot_be_changed() -> None:
    # the context builds it once per batch and hands the same one to every invocation
    address = SdkAddress(namespace="ns", name="f", id="1", typename="ns/f")
    with pytest.raises(dataclasses.FrozenInstanceError):
        address.id = "2"  # type: ignore[misc]
    assert {address: 1}[SdkAddress("ns", "f", "1", "ns/f")] == 1


def test_a_value_spec_shows_its_name_and_type() -> None:
    assert repr(ValueSpec("seen", IntType)) == "ValueSpec(name='seen', type=io.statefun.types/int)"


def test_a_state_may_not_take_a_name_the_storage_uses_itself() -> None:
    """Such a state would hide the storage's own field (every request would fail) or a
    Python special name: it is refused where it is declared."""
    # its fields: slots in Python, attributes (no __slots__) when compiled by mypyc
    fields = {
        name
        for name, attribute in vars(StateValues).items()
        if isinstance(attribute, (MemberDescriptorType, GetSetDescriptorType))
    }
    assert fields and fields <= RESERVED_STATE_NAMES
    for name in (*sorted(fields), "__init__", "__slots__", "__class__"):
        with pytest.raises(ValueError, match=r"context\.storage uses it itself"):
            ValueSpec(name, IntType)
    functions = StatefulFunctions()
    specs = [ValueSpec("_value", IntType), ValueSpec("_written_at", IntType)]
    functions.register("ns/f", lambda c, m: setattr(c.storage, "_value", 1), specs)
    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    states = {"_value": None, "_written_at": 2}
    reply = handler.handle_sync(to_function("ns/f", "1", [typed_value(IntType, 1)], states))
    assert list(mutations(reply)) == ["_value"]


def test_value_spec_type_and_expiration_are_validated() -> None:
    with pytest.raises(ValueError):
        ValueSpec("a", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ValueSpec("a", "io.statefun.types/int")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not both"):
        ValueSpec("a", IntType, expire_after_call=timedelta(1), expire_after_write=timedelta(1))


def test_value_spec_durations_are_whole_milliseconds() -> None:
    spec = ValueSpec("a", IntType, expire_after_call=timedelta(seconds=1, microseconds=1500))
    assert (spec.duration, spec.after_call, spec.after_write) == (1001, True, False)
    spec = ValueSpec("a", IntType, expire_after_write=timedelta(minutes=30))
    assert (spec.duration, spec.after_call, spec.after_write) == (1_800_000, False, True)
    assert ValueSpec("a", IntType).duration == 0


def test_an_expiration_the_runtime_refuses_is_refused_where_the_spec_is_written() -> None:
    """Flink's state TTL must be at least 1 ms: the runtime fails the job on a spec with less
    (and the engine refuses the reply), so a negative or sub-millisecond expiration fails at
    ``ValueSpec``, naming the keyword. A zero ``timedelta`` means none, as in the official SDK."""
    for keyword in ("expire_after_call", "expire_after_write"):
        for duration in (timedelta(seconds=-5), timedelta(microseconds=500)):
            with pytest.raises(ValueError, match=f"^{keyword} must be at least 1 millisecond"):
                ValueSpec("a", IntType, **{keyword: duration})
        with pytest.raises(TypeError, match=f"^{keyword} takes a datetime.timedelta, got 30"):
            ValueSpec("a", IntType, **{keyword: 30})
    spec = ValueSpec("a", IntType, expire_after_call=timedelta(0))
    assert (spec.duration, spec.after_call, spec.after_write) == (0, False, False)
    assert ValueSpec("a", IntType, expire_after_write=timedelta(milliseconds=1)).duration == 1


def test_a_spec_name_that_is_not_a_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"^a spec name is a str, got 5$"):
        ValueSpec(5, IntType)  # type: ignore[arg-type]


def test_bind_validates_typename_and_signature() -> None:
    functions = StatefulFunctions()
    with pytest.raises(ValueError):
        functions.register("no-slash", lambda ctx, msg: None)
    with pytest.raises(ValueError):
        functions.register("ns/", lambda ctx, msg: None)
    with pytest.raises(ValueError, match="context and a message"):
        functions.register("ns/f", lambda ctx: None)
    with pytest.raises(ValueError, match="duplicate"):
        functions.register(
            "ns/f", lambda c, m: None, [ValueSpec("a", IntType), ValueSpec("a", IntType)]
        )
    with pytest.raises(ValueError, match=r"^function instance must be provided$"):
        functions.register("ns/f", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^function typename must be provided$"):
        functions.register("", lambda ctx, msg: None)
    with pytest.raises(TypeError, match=r"^specs of ns/f must be ValueSpecs, got \('a', "):
        functions.register("ns/f", lambda c, m: None, [("a", IntType)])  # type: ignore[list-item]
    assert "ns/f" not in functions
    for typename, problem in (("/f", "has an empty namespace"), ("f", "must be of the form")):
        with pytest.raises(ValueError, match=f"^typename '{typename}' {problem}"):
            functions.register(typename, lambda c, m: None)
    functions.register("a.b/c/d", lambda c, m: None)  # split at the last slash
    assert functions.for_typename("a.b/c/d").namespace == "a.b/c"


def test_bind_takes_any_callable_of_a_context_and_a_message() -> None:
    """A callable object, a partial and a function with defaulted extras are called as
    ``fun(context, message)`` like a function; the official SDK's argument count refused a
    callable object (it counted ``self``). One whose ``__call__`` is ``async def`` is awaited."""

    class Counter:
        def __init__(self, step: int) -> None:
            self.step = step

        def __call__(self, context: Context, message: Message) -> None:
            context.storage.seen = (context.storage.seen or 0) + self.step

    class AsyncCounter(Counter):
        async def __call__(self, context: Context, message: Message) -> None:  # type: ignore[override]
            await asyncio.sleep(0)
            context.storage.seen = (context.storage.seen or 0) + self.step

    def count(step: int, context: Context, message: Message, unused: int = 0) -> None:
        context.storage.seen = (context.storage.seen or 0) + step

    import functools

    functions = StatefulFunctions()
    bound = {
        "ns/object": Counter(2),
        "ns/async": AsyncCounter(3),
        "ns/partial": functools.partial(count, 4),
        "ns/defaults": lambda context, message, extra=None: count(5, context, message),
    }
    for typename, fun in bound.items():
        functions.register(typename, fun, [ValueSpec("seen", IntType)])
    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    for typename, expected in (
        ("ns/object", 2),
        ("ns/async", 3),
        ("ns/partial", 4),
        ("ns/defaults", 5),
    ):
        request = to_function(typename, "1", [typed_value(IntType, 1)], {"seen": None})
        assert mutations(handler.handle_sync(request)) == {"seen": typed_value(IntType, expected)}
        reply = asyncio.run(handler.handle_async(request))
        assert mutations(reply) == {"seen": typed_value(IntType, expected)}
    with pytest.raises(TypeError, match=r"ns/lookup: blocking=True"):
        functions.register("ns/lookup", AsyncCounter(1), blocking=True)


def test_an_async_function_under_a_plain_decorator_is_awaited() -> None:
    """A ``def`` wrapper (``functools.wraps``) of an ``async def`` function returns its
    coroutine: called as a sync function, the coroutine was dropped (a RuntimeWarning) and the
    function never ran, under either handler."""
    import functools

    def logged(fun: Any) -> Any:
        @functools.wraps(fun)
        def wrapper(context: Context, message: Message) -> Any:
            return fun(context, message)

        return wrapper

    functions = StatefulFunctions()

    @functions.bind("ns/f", specs=[ValueSpec("seen", IntType)])
    @logged
    async def count(context: Context, message: Message) -> None:
        await asyncio.sleep(0)
        context.storage.seen = 1

    assert functions.for_typename("ns/f").is_async
    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    request = to_function("ns/f", "1", [typed_value(IntType, 1)], {"seen": None})
    assert mutations(handler.handle_sync(request)) == {"seen": typed_value(IntType, 1)}
    reply = asyncio.run(handler.handle_async(request))
    assert mutations(reply) == {"seen": typed_value(IntType, 1)}


@pytest.mark.parametrize("observed", [False, True], ids=["plain", "observed by a plugin"])
@pytest.mark.parametrize("blocking", [False, True], ids=["sync", "blocking"])
def test_a_plain_function_that_returns_a_coroutine_fails_its_batch_naming_it(
    observed: bool, blocking: bool, recwarn: pytest.WarningsRecorder
) -> None:
    """A function bound as a plain ``def`` whose code became an ``async def``'s since
    (IPython's autoreload swaps ``__code__`` in place), or a wrapper of one without
    ``functools.wraps``: its coroutine was dropped with a RuntimeWarning and the batch
    succeeded with nothing done. What a plain function returns otherwise is still dropped."""
    from statefun_core.testing.endpoint import FailureRecorder

    functions = StatefulFunctions()
    specs = [ValueSpec("seen", IntType)]

    @functions.bind("ns/reloaded", specs=specs, blocking=blocking)
    def reloaded(context: Context, message: Message) -> None:
        context.storage.seen = 1

    async def edited(context: Context, message: Message) -> None:
        context.storage.seen = 2

    reloaded.__code__ = edited.__code__

    async def count(context: Context, message: Message) -> None:
        context.storage.seen = 3

    functions.register("ns/lambda", lambda c, m: count(c, m), specs, blocking=blocking)
    functions.register("ns/answers", lambda c, m: 42, specs, blocking=blocking)

    plugins = [FailureRecorder()] if observed else []
    handler = RequestReplyHandler(
        functions, plugins=make_plugin_manager(plugins, load_entrypoints=False)
    )
    for typename, name in [("ns/reloaded", "reloaded"), ("ns/lambda", "<lambda>")]:
        request = to_function(typename, "1", [typed_value(IntType, 1)], {"seen": None})
        for handle in (handler.handle_sync, lambda r: asyncio.run(handler.handle_async(r))):
            with pytest.raises(FunctionFailedError) as failed:
                handle(request)
            assert isinstance(failed.value.__cause__, TypeError)
            assert str(failed.value.__cause__).startswith(
                f"{typename}: test_a_plain_function_that_returns_a_coroutine_fails_its_batch_"
                f"naming_it.<locals>.{name} returned a coroutine, which nothing awaits"
            )
    request = to_function("ns/answers", "1", [typed_value(IntType, 1)], {"seen": None})
    assert mutations(handler.handle_sync(request)) == {}
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_a_plain_decorator_of_an_async_function_may_return_what_is_not_awaitable() -> None:
    """A ``def`` wrapper of an ``async def`` function that returns early, or runs the coroutine
    itself in another thread, is a sync function that works in the official SDK: what it
    returns is awaited only when it is awaitable (awaiting its None failed the batch)."""
    import functools
    from concurrent.futures import ThreadPoolExecutor

    def only_for_ann(fun: Any) -> Any:
        @functools.wraps(fun)
        def wrapper(context: Context, message: Message) -> Any:
            if context.address.id != "ann":
                return None
            return fun(context, message)

        return wrapper

    def in_a_thread(fun: Any) -> Any:
        @functools.wraps(fun)
        def wrapper(context: Context, message: Message) -> Any:
            with ThreadPoolExecutor(1) as pool:
                return pool.submit(asyncio.run, fun(context, message)).result()

        return wrapper

    functions = StatefulFunctions()

    @functions.bind("ns/ann", specs=[ValueSpec("seen", IntType)])
    @only_for_ann
    async def count(context: Context, message: Message) -> None:
        await asyncio.sleep(0)
        context.storage.seen = 1

    @functions.bind("ns/thread", specs=[ValueSpec("seen", IntType)])
    @in_a_thread
    async def count_in_a_thread(context: Context, message: Message) -> None:
        await asyncio.sleep(0)
        context.storage.seen = 2

    functions.register(
        "ns/blocking",
        in_a_thread(count_in_a_thread.__wrapped__),
        [ValueSpec("seen", IntType)],
        blocking=True,  # a sync function that blocks, which it is
    )

    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    for typename, id, seen in [
        ("ns/ann", "ann", 1),
        ("ns/ann", "bob", None),
        ("ns/thread", "1", 2),
        ("ns/blocking", "1", 2),
    ]:
        request = to_function(typename, id, [typed_value(IntType, 1)], {"seen": None})
        expected = {} if seen is None else {"seen": typed_value(IntType, seen)}
        assert mutations(handler.handle_sync(request)) == expected
        assert mutations(asyncio.run(handler.handle_async(request))) == expected


def test_bind_refuses_what_it_cannot_call_naming_the_typename_and_the_fix() -> None:
    functions = StatefulFunctions()
    with pytest.raises(TypeError, match=r"^ns/f is bound to 42, which is not a function$"):
        functions.register("ns/f", 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^a function typename is a str 'namespace/name', got 5"):
        functions.register(5, lambda c, m: None)
    with pytest.raises(TypeError, match=r"^a function typename is a str 'namespace/name', got 5"):
        functions.bind(5)(greet)
    with pytest.raises(TypeError, match=r"^specs of ns/f must be a list of ValueSpecs: specs=\["):
        functions.register("ns/f", lambda c, m: None, ValueSpec("a", IntType))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"but rather \(context, \*, message\)"):
        functions.register("ns/f", lambda context, *, message: None)
    assert len(functions) == 0


def greet(context: Context, message: Message) -> None:
    pass


def test_specs_may_be_a_tuple() -> None:
    functions = StatefulFunctions()
    functions.register("ns/f", greet, (ValueSpec("a", IntType), ValueSpec("b", StringType)))
    assert [spec.name for spec in functions.for_typename("ns/f").specs] == ["a", "b"]


def welcome(context: Context, message: Message) -> None:
    pass


def test_a_typename_bound_to_another_function_is_replaced_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The second function replaces the first, as in the official SDK (a test's stand-in for
    a function bound at module level), with a warning naming both: copied by mistake, the
    first never runs. The same definition bound again (a module reloaded, a notebook cell run
    again) replaces it without one."""
    functions = StatefulFunctions()
    functions.register("ns/greeter", greet)
    with caplog.at_level(logging.WARNING, logger="statefun_core"):
        functions.register("ns/greeter", welcome)
    assert functions.for_typename("ns/greeter").fun is welcome
    [record] = caplog.records
    assert record.getMessage() == (
        f"ns/greeter: {__name__}.welcome replaces {__name__}.greet, which no longer runs (if "
        "both should, give each a typename of its own)"
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="statefun_core"):
        for _ in range(2):

            def again(context: Context, message: Message) -> None:
                pass

            functions.register("ns/again", again)
            functions.register("ns/partial", functools.partial(again))
            functions.register("ns/object", Greeter())
    assert functions.for_typename("ns/again").fun is again
    assert caplog.records == []


class Greeter:
    def __call__(self, context: Context, message: Message) -> None:
        pass


def test_blocking_is_refused_for_an_async_function() -> None:
    """``blocking=True`` sends a sync function to the executor; an async one would still run
    on the event loop, its blocking calls holding every request: refused when bound."""
    functions = StatefulFunctions()

    async def lookup(context: Context, message: Message) -> None:
        pass

    with pytest.raises(TypeError, match=r"ns/lookup: blocking=True .* asyncio\.to_thread"):
        functions.bind("ns/lookup", blocking=True)(lookup)
    assert "ns/lookup" not in [function.typename for function in functions]
    functions.bind("ns/lookup")(lookup)  # without it, as any async function


def test_the_registry_the_handler_and_a_context_show_their_functions_and_addresses() -> None:
    """What a notebook cell shows for them, and a function's print(context)."""
    functions = StatefulFunctions()
    shown: list[str] = []

    @functions.bind("ns/f")
    def f(context: Context, message: Message) -> None:
        shown.append(repr(context))

    functions.register("ns/g", f)
    assert repr(functions) == "StatefulFunctions(['ns/f', 'ns/g'])"
    handler = RequestReplyHandler(functions)
    assert repr(handler) == "RequestReplyHandler(StatefulFunctions(['ns/f', 'ns/g']))"
    handler.handle_sync(to_function("ns/f", "a/b", ["x"]))
    handler.handle_sync(to_function("ns/g", "a", ["x"], caller=("ns/f", "c")))
    assert shown == ["Context(address=ns/f/a/b)", "Context(address=ns/g/a, caller=ns/f/c)"]


def test_bind_returns_the_function_and_registers_it() -> None:
    functions = StatefulFunctions()

    @functions.bind("ns/f", specs=[ValueSpec("a", IntType)])
    async def f(context: Any, message: Any) -> None:
        pass

    assert functions.for_typename("ns/f").fun is f
    assert functions.for_typename("ns/f").is_async
    assert "ns/f" in functions and len(functions) == 1
    shown = "StatefulFunction('ns/f', test_bind_returns_the_function_and_registers_it.<locals>.f)"
    assert repr(functions.for_typename("ns/f")) == shown
    with pytest.raises(KeyError):
        functions.for_typename("ns/g")
    with pytest.raises(FunctionNotFoundError):
        functions.for_typename("ns/g")


def test_an_error_raised_in_place_of_another_hides_it_from_the_traceback() -> None:
    """``raise ... from None``: a missing function's traceback shows the SDK's error alone,
    not the ``KeyError`` it was raised for ("During handling of the above exception...")."""
    with pytest.raises(FunctionNotFoundError) as missing:
        StatefulFunctions().for_typename("ns/g")
    assert missing.value.__suppress_context__
    assert missing.value.__cause__ is None
    error = missing.value
    shown = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    assert "During handling" not in shown


def test_a_bound_function_gives_its_specs_under_the_official_sdks_name_too() -> None:
    """Code written for the official SDK reads ``for_typename(...).storage_spec.specs``."""
    functions = StatefulFunctions()
    seen, name = ValueSpec("seen", IntType), ValueSpec("name", StringType)
    functions.bind("ns/f", specs=[seen, name])(lambda context, message: None)
    functions.bind("ns/stateless")(lambda context, message: None)

    storage_spec = functions.for_typename("ns/f").storage_spec
    assert storage_spec.specs == [seen, name]
    assert storage_spec.names == frozenset({"seen", "name"})
    assert functions.for_typename("ns/stateless").storage_spec.specs == []
    with pytest.raises(dataclasses.FrozenInstanceError):
        storage_spec.names = frozenset()  # type: ignore[misc]


def test_async_functions_that_can_suspend_are_told_apart() -> None:
    async def returns(context: Any, message: Any) -> None:
        context.storage.seen = [x for x in range(3)]

    async def awaits(context: Any, message: Any) -> None:
        await message

    async def iterates(context: Any, message: Any) -> None:
        async for _ in message:
            pass

    async def enters(context: Any, message: Any) -> None:
        async with message:
            pass

    class Greeter:
        async def greet(self, context: Any, message: Any) -> None:  # a bound method: assumed
            pass

    functions = StatefulFunctions()
    functions.register("ns/returns", returns)
    functions.register("ns/awaits", awaits)
    functions.register("ns/iterates", iterates)
    functions.register("ns/enters", enters)
    functions.register("ns/method", Greeter().greet)
    functions.register("ns/sync", lambda c, m: None)
    assert {f.typename: f.awaits for f in functions} == {
        "ns/returns": False,
        "ns/awaits": True,
        "ns/iterates": True,
        "ns/enters": True,
        "ns/method": True,
        "ns/sync": False,
    }


def test_methods_can_be_bound() -> None:
    class Greeter:
        def greet(self, context: Any, message: Any) -> None:
            pass

    StatefulFunctions().register("ns/g", Greeter().greet)


def test_bind_checks_the_typename_before_the_signature_and_the_specs() -> None:
    functions = StatefulFunctions()
    with pytest.raises(ValueError, match="namespace/name"):
        functions.register("no-slash", lambda context: None)
    with pytest.raises(ValueError, match="namespace/name"):
        functions.register("no-slash", lambda c, m: None, ["seen"])  # type: ignore[list-item]


def test_a_function_made_directly_needs_its_code_and_has_no_final_failures_by_default() -> None:
    function = StatefulFunction("ns/f", lambda c, m: None, [])
    assert (function.namespace, function.blocking, function.is_async) == ("ns", False, False)
    assert (function.final_errors, function.final_unreadable, function.dead_letters) == (
        (),
        False,
        None,
    )
    with pytest.raises(ValueError, match="code is missing"):
        StatefulFunction("ns/f", None, [])  # type: ignore[arg-type]


def test_handle_async_runs_a_sync_function_on_its_loop_unless_it_is_bound_as_blocking() -> None:
    threads: dict[str, threading.Thread] = {}

    def record(context: Any, message: Any) -> None:
        threads[context.address.typename] = threading.current_thread()

    functions = StatefulFunctions()
    functions.register("ns/plain", record)
    functions.bind("ns/bound")(record)
    functions.register("ns/blocking", record, blocking=True)
    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))

    async def run() -> None:
        for typename in ("ns/plain", "ns/bound", "ns/blocking"):
            await handler.handle_async(to_function(typename, "a", [typed_value(IntType, 1)]))

    asyncio.run(run())
    loop_thread = threading.current_thread()
    assert (threads["ns/plain"], threads["ns/bound"]) == (loop_thread, loop_thread)
    assert threads["ns/blocking"] is not loop_thread


def test_storage_attributes_name_the_function_when_unregistered() -> None:
    storage = storage_class("ns/f", {"a": (IntType, IntType.serializer())})()
    for access in (
        lambda: storage.b,
        lambda: setattr(storage, "b", 1),
        lambda: delattr(storage, "b"),
    ):
        with pytest.raises(AttributeError, match="'ns/f storage' object has no attribute 'b'"):
            access()


@pytest.mark.parametrize(
    "access",
    [
        lambda storage: storage.sesion,
        lambda storage: setattr(storage, "sesion", 1),
        lambda storage: delattr(storage, "sesion"),
    ],
    ids=["read", "write", "delete"],
)
def test_an_undeclared_state_that_fails_the_batch_names_the_states_there_are(
    access: Any, caplog: Any
) -> None:
    """Python's words alone do not say which states there are, nor how to declare one; they are
    added when the error fails the batch (the log line, and the cause of the failure)."""
    functions = StatefulFunctions()
    specs = [ValueSpec("session", IntType), ValueSpec("seen", IntType)]
    functions.register("ns/f", lambda context, message: access(context.storage), specs)
    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    request = to_function("ns/f", "1", [typed_value(IntType, 1)], {"session": None, "seen": None})
    with pytest.raises(FunctionFailedError) as failed, caplog.at_level(logging.ERROR):
        handler.handle_sync(request)
    python_says = "'ns/f storage' object has no attribute 'sesion'"  # more words on 3.13
    says = (
        ": ns/f has no state 'sesion' (did you mean 'session'?); its states are session, seen: "
        "declare each in bind(specs=["
    )
    assert type(failed.value.__cause__) is AttributeError
    assert str(failed.value.__cause__).startswith(python_says)
    assert says in str(failed.value.__cause__)
    assert says in caplog.text


def test_a_state_name_source_can_not_spell_is_named_with_the_way_to_reach_it() -> None:
    """A spec named ``e\u0301te`` (a combining accent) or ``\ufb01le`` (a ligature) is a valid
    identifier, but ``context.storage.éte`` in source is read in its NFKC form, another name:
    the error says so, with both names escaped (they look the same), and how to reach it."""
    functions = StatefulFunctions()
    specs = [ValueSpec("e\u0301te", IntType), ValueSpec("\ufb01le", IntType)]

    @functions.bind("ns/f", specs=specs)
    def f(context: Context, message: Message) -> None:
        context.storage.éte = getattr(context.storage, "e\u0301te") or 1  # noqa: B009

    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    request = to_function(
        "ns/f", "1", [typed_value(IntType, 1)], {"e\u0301te": None, "\ufb01le": None}
    )
    with pytest.raises(FunctionFailedError) as failed:
        handler.handle_sync(request)
    assert str(failed.value.__cause__).endswith(
        ": ns/f has no state '\\xe9te', but a state 'e\\u0301te', which looks the same: Python "
        "reads the attribute name in its NFKC form, '\\xe9te'; name the ValueSpec so, or reach "
        "the state with getattr(context.storage, 'e\\u0301te')"
    )


def test_a_storage_shows_its_function_and_state_names() -> None:
    specs = {"a": (IntType, IntType.serializer()), "b": (StringType, StringType.serializer())}
    assert repr(storage_class("ns/f", specs)()) == "<storage of ns/f: a, b>"
    assert repr(storage_class("ns/g", {})()) == "<storage of ns/g: no state>"


def test_setting_state_to_none_is_an_error() -> None:
    functions = StatefulFunctions()

    def fn(ctx: Any, msg: Any) -> None:
        ctx.storage.a = None

    functions.register("ns/f", fn, [ValueSpec("a", IntType)])
    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    with pytest.raises(FunctionFailedError) as failure:
        handler.handle_sync(to_function("ns/f", "1", [typed_value(IntType, 1)], {"a": None}))
    assert "use del" in str(failure.value.__cause__)


@pytest.mark.parametrize(
    ("keyword", "value", "tpe"),
    [
        ("int_value", 3, IntType),
        ("long_value", 2**40, LongType),
        ("float_value", 1.5, FloatType),
        ("double_value", 2.25, DoubleType),
        ("bool_value", True, BoolType),
        ("str_value", "héllo", StringType),
    ],
)
def test_message_builder_and_message_accessors(keyword: str, value: Any, tpe: Any) -> None:
    message = message_builder("ns/f", "id", **{keyword: value})
    assert message.target_typename == "ns/f" and message.target_id == "id"
    assert message.value_typename() == tpe.typename
    assert message.is_type(tpe)
    short = {IntType: "int", LongType: "long", FloatType: "float", DoubleType: "double",
             BoolType: "bool", StringType: "string"}[tpe]  # fmt: skip
    assert getattr(message, f"is_{short}")()
    assert getattr(message, f"as_{short}")() == value
    assert message.raw_value() == tpe.serializer().serialize(value)
    others = [
        t for t in (IntType, LongType, FloatType, DoubleType, BoolType, StringType) if t is not tpe
    ]
    assert not any(message.is_type(t) for t in others)


def test_message_builder_with_a_value_type() -> None:
    doc = make_json_type("com.example/Doc")
    message = message_builder("ns/f", "id", value={"a": [1]}, value_type=doc)
    assert message.as_type(doc) == {"a": [1]}


def test_a_class_given_as_value_type_is_a_type_error_that_says_to_pass_its_type() -> None:
    class Order:
        pass

    builders = [
        lambda: message_builder("ns/f", "id", value=Order(), value_type=Order),
        lambda: egress_message_builder("ns/out", Order(), Order),
        lambda: kafka_egress_message("ns/out", topic="t", value=Order(), value_type=Order),
        lambda: kinesis_egress_message(
            "ns/out", stream="s", partition_key="p", value=Order(), value_type=Order
        ),
    ]
    for build in builders:
        with pytest.raises(
            TypeError,
            match=r"value_type must be a StateFun Type, not <class .*Order'>: .* pass its Type",
        ):
            build()


def test_message_builder_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError):
        message_builder("ns/f", "id")
    with pytest.raises(TypeError):
        message_builder("ns/f", "id", int_value=1, str_value="x")
    with pytest.raises(ValueError, match=r"^value can not be missing: int_value=None \(a "):
        message_builder("ns/f", "id", int_value=None)
    with pytest.raises(ValueError, match=r"^value can not be missing: str_value=None \(a "):
        message_builder("ns/f", "id", str_value=None)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match=r"^value can not be missing$"):
        message_builder("ns/f", "id", value=None, value_type=IntType)
    with pytest.raises(ValueError, match=r"^value can not be missing$"):
        message_builder("ns/f", "id", value=None)
    with pytest.raises(ValueError, match=r"from string_value=: give one of int_value, "):
        message_builder("ns/f", "id", string_value="x")  # a keyword mistyped: named
    with pytest.raises(ValueError):
        message_builder("ns/f", "", int_value=1)


def test_a_message_made_directly_needs_a_target_and_a_value() -> None:
    """As the official SDK's ``Message`` says it."""
    value = typed_value(IntType, 1)
    for args, missing in [
        (("", "1", value), "target_typename"),
        (("ns/f", "", value), "target_id"),
        (("ns/f", "1", None), "typed_value"),
    ]:
        with pytest.raises(ValueError, match=f"^{missing} can not be missing$"):
            Message(*args)


def test_messages_show_their_target_and_value_type() -> None:
    assert repr(message_builder("ns/f", "1", int_value=1)) == (
        "Message(target=ns/f/1, type=io.statefun.types/int)"
    )
    made = Message("ns/f", "2", typed_value(StringType, "x"))
    assert repr(made) == "Message(target=ns/f/2, type=io.statefun.types/string)"
    # a value whose type the handler's plugins find when it is sent
    deferred = message_builder("ns/f", "3", value=object())
    assert repr(deferred) == "Message(target=ns/f/3, type=?)"
    with pytest.raises(TypeError, match="found by the handler's plugins when sent"):
        deferred.value_typename()
    record = egress_message_builder("com.example/out", "x", StringType)
    assert repr(record) == "EgressMessage(egress=com.example/out, type=io.statefun.types/string)"


def test_a_built_message_cannot_tell_a_plain_class_from_a_type() -> None:
    message = message_builder("ns/f", "1", int_value=1)
    for read in (message.is_type, message.as_type):
        with pytest.raises(TypeError, match="is not a StateFun Type, and this message has no"):
            read(int)
    assert message.is_type(IntType) and message.as_type(IntType) == 1


def test_a_message_without_value() -> None:
    from statefun_core import protocol

    message = Message("ns/f", "1", protocol.TypedValue(typename="io.statefun.types/int"))
    assert message.raw_value() is None and message.as_int() is None
    assert message.as_type(IntType) is None and message.is_int()


def test_egress_builders() -> None:
    doc = make_json_type("com.example/Doc")
    record = egress_message_builder("com.example/out", {"x": 1}, doc)
    assert isinstance(record, EgressMessage)
    assert (record.typename, record.value_typename(), record.raw_value()) == (
        "com.example/out", "com.example/Doc", b'{"x": 1}',
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"^target typename is missing$"):
        egress_message_builder("", 1, IntType)
    with pytest.raises(ValueError, match=r"^value can not be missing$"):
        egress_message_builder("com.example/out", None, doc)  # JSON would encode it as null
    with pytest.raises(ValueError, match=r"^A destination Kafka topic is missing$"):
        kafka_egress_message("e/k", "", "v")
    with pytest.raises(ValueError, match=r"^Missing destination Kinesis stream$"):
        kinesis_egress_message("e/k", "", "v", "pk")
    with pytest.raises(TypeError):
        kafka_egress_message("e/k", "t", object())
    with pytest.raises(TypeError):
        kinesis_egress_message("e/k", "s", 1, "pk")
    with pytest.raises(ValueError, match=r"^Missing value$"):
        kafka_egress_message("e/k", "t", None)
    with pytest.raises(ValueError, match=r"^Missing value$"):
        kinesis_egress_message("e/k", "s", None, "pk")
    with pytest.raises(ValueError, match=r"^Missing partition key$"):
        kinesis_egress_message("e/k", "s", "v", None)  # type: ignore[arg-type]


def test_an_egress_record_without_an_egress_is_refused_where_it_is_built() -> None:
    """As the official SDK: a function can catch it (a missing setting) and go on."""
    for build in (
        lambda: kafka_egress_message("", "t", "v"),
        lambda: kafka_egress_message(None, "t", "v"),  # type: ignore[arg-type]
        lambda: kinesis_egress_message("", "s", "v", "pk"),
        lambda: egress_message_builder(None, "v", StringType),
    ):
        with pytest.raises(ValueError, match="typename is missing"):
            build()


def test_egress_record_strings_may_be_given_as_utf8_bytes() -> None:
    """As protobuf's string fields, which the official SDK sets them through, take them."""
    as_bytes: Any = kafka_egress_message  # typed for str, which the docs show
    kafka = as_bytes("e/k", b"t\xc3\xa9", "v", key=b"k\xc3\xa9", headers={b"h\xc3\xa9": "v"})
    same = kafka_egress_message("e/k", "t\u00e9", "v", key="k\u00e9", headers={"h\u00e9": "v"})
    assert kafka.raw_value() == same.raw_value()
    as_bytes = kinesis_egress_message
    kinesis = as_bytes("e/k", b"s", "v", b"pk", explicit_hash_key=b"1")
    same = kinesis_egress_message("e/k", "s", "v", "pk", explicit_hash_key="1")
    assert kinesis.raw_value() == same.raw_value()
    with pytest.raises(ValueError):
        kafka_egress_message("e/k", b"\xff", "v")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        kafka_egress_message("e/k", "t", "v", key=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "encoded"),
    [("a", b"a"), (b"\x00", b"\x00"), (bytearray(b"z"), b"z"), (-2, b"\xff\xff\xff\xfe"),
     (0.5, b"\x3f\xe0\x00\x00\x00\x00\x00\x00")],
)  # fmt: skip
def test_kafka_values_use_kafkas_serializers(value: Any, encoded: bytes) -> None:
    from statefun_core import protocol

    record = protocol.KafkaProducerRecord.FromString(
        kafka_egress_message("e/k", "t", value).raw_value()
    )
    assert record.value_bytes == encoded and record.key == ""


def test_context_rejects_invalid_sends() -> None:
    from statefun_core.context import InvocationContext

    context = InvocationContext(None, None)
    ctx: Context = context  # typed as users see it: each send below is refused by type checkers
    with pytest.raises(TypeError, match=r"send\(\) takes a Message, got str"):
        ctx.send("not a message")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"send_after\(\) takes a Message, got str"):
        ctx.send_after(timedelta(seconds=1), "not a message")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a non-negative duration"):
        ctx.send_after(timedelta(seconds=-1), message_builder("ns/f", "1", int_value=1))
    with pytest.raises(TypeError, match=r"send_after\(\) takes a datetime.timedelta .* got 30"):
        ctx.send_after(30, message_builder("ns/f", "1", int_value=1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a non-empty cancellation token"):
        ctx.cancel_delayed_message("")
    with pytest.raises(TypeError, match="takes a str token, got NoneType"):
        ctx.cancel_delayed_message(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"send_egress\(\) takes an EgressMessage, got Message"):
        ctx.send_egress(message_builder("ns/f", "1", int_value=1))  # type: ignore[arg-type]
    # the other kind of message: the error names the send that takes it
    with pytest.raises(TypeError, match=r"got Message: a message to a function goes with conte"):
        ctx.send_egress(message_builder("ns/f", "1", int_value=1))  # type: ignore[arg-type]
    record = kafka_egress_message("ns/out", "topic", "value")
    with pytest.raises(TypeError, match=r"got EgressMessage: an egress record goes out with con"):
        ctx.send(record)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"got EgressMessage: .* with context.send_egress\(\)$"):
        ctx.send_after(timedelta(seconds=1), record)  # type: ignore[arg-type]
    assert context.outbox == []  # nothing refused was sent


@pytest.mark.parametrize(
    ("send", "error", "says"),
    [
        (lambda c: c.send(message_builder("inbox", "1", str_value="x")), ValueError,
         "a message or egress record was sent to 'inbox', which is not a function's or an "
         "egress's typename: typename 'inbox' must be of the form namespace/name"),
        (lambda c: c.send_egress(kafka_egress_message("kafka", "t", "v")), ValueError,
         "a message or egress record was sent to 'kafka'"),
        (lambda c: c.send(message_builder("ns/g", 5, str_value="x")), TypeError,  # type: ignore[call-overload]
         "a message to ns/g has the target_id 5: an id is a str"),
    ],
    ids=["message without a namespace", "egress without a namespace", "int id"],
)  # fmt: skip
def test_a_message_the_reply_cannot_address_names_its_target(
    send: Any, error: type, says: str
) -> None:
    """Found when the reply is built (checking each message where it is built would cost
    every message): the error names the target and what it must be, not a bare protobuf or
    typename error from the handler's insides."""
    functions = StatefulFunctions()
    functions.register("ns/f", lambda context, message: send(context))
    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    with pytest.raises(FunctionFailedError) as failed:
        handler.handle_sync(to_function("ns/f", "1", [typed_value(IntType, 1)]))
    assert type(failed.value.__cause__) is error
    assert says in str(failed.value.__cause__)


def test_a_context_made_directly_answers_for_its_target_with_an_empty_outbox() -> None:
    from statefun_core.context import InvocationContext

    storage = object()
    ctx = InvocationContext(protocol.Address(namespace="ns", type="f", id="1"), storage)
    assert (ctx.address.typename, ctx.address.id) == ("ns/f", "1")
    assert ctx.caller is None and ctx.storage is storage and ctx.outbox == []

    message = message_builder("ns/g", "2", int_value=1)
    ctx.send(message)
    assert ctx.outbox == [message]


def test_error_response_maps_statuses_without_internals(caplog: Any) -> None:
    assert error_response(MalformedRequestError("x"))[0] == 400
    assert error_response(FunctionNotFoundError("ns/f"))[0] == 404
    with caplog.at_level(logging.ERROR, logger="statefun_core"):
        status, body = error_response(RuntimeError("secret detail"))
    assert status == 500 and "secret" not in body and "Traceback" not in body
    assert "secret detail" in caplog.text
    assert statefun_core.CONTENT_TYPE == "application/octet-stream"


def test_an_egress_record_of_a_value_or_key_it_cannot_write_says_what_it_takes() -> None:
    # the official SDK: "Unable to convert a value of type dict to bytes." and protobuf's
    # "TypeError: ... has type int, but expected one of: bytes, unicode" for the key
    with pytest.raises(TypeError, match=r"dict to bytes: kafka_egress_message\(\) takes a str, "):
        kafka_egress_message("ns/out", "topic", {"a": 1}, key="k")
    with pytest.raises(TypeError, match=r"dict to bytes: kinesis_egress_message\(\) takes a str "):
        kinesis_egress_message("ns/out", "stream", {"a": 1}, partition_key="k")
    with pytest.raises(TypeError, match=r"^a Kafka record's key is a str, got 5: key=str"):
        kafka_egress_message("ns/out", "topic", "v", key=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^a Kinesis record's partition_key is a str, got 5$"):
        kinesis_egress_message("ns/out", "stream", "v", partition_key=5)  # type: ignore[arg-type]


def test_kafka_headers_are_written_as_protobuf_writes_them() -> None:
    from statefun_core import protocol

    headers = [("trace", "t-1"), ("empty", b""), ("null", None), ("trace", b"\x00\xff"), ("", "v")]
    raw = kafka_egress_message("e/k", "t", "v", key="k", headers=headers).raw_value()
    expected = protocol.KafkaProducerRecord(key="k", value_bytes=b"v", topic="t")
    for name, value in headers:
        header = expected.headers.add(key=name)
        if value is not None:
            header.value = value.encode() if isinstance(value, str) else value
            header.has_value = True
    assert raw == expected.SerializeToString()
    record = protocol.KafkaProducerRecord.FromString(raw)
    assert [(h.key, h.value if h.has_value else None) for h in record.headers] == [
        ("trace", b"t-1"), ("empty", b""), ("null", None), ("trace", b"\x00\xff"), ("", b"v"),
    ]  # fmt: skip
    mapped = kafka_egress_message("e/k", "t", "v", headers={"a": "1", "b": None}).raw_value()
    assert [h.key for h in protocol.KafkaProducerRecord.FromString(mapped).headers] == ["a", "b"]


def test_kafka_record_without_headers_is_unchanged() -> None:
    plain = kafka_egress_message("e/k", "t", "v", key="k").raw_value()
    assert plain == kafka_egress_message("e/k", "t", "v", key="k", headers=[]).raw_value()
    assert plain == b"\n\x01k\x12\x01v\x1a\x01t"


def test_a_context_test_double_needs_only_the_address_storage_and_caller() -> None:
    """As with the official SDK, whose sends are no-ops in Context: users' test doubles."""
    from statefun_core import Context, SdkAddress

    class Double(Context):
        address = SdkAddress(namespace="ns", name="f", id="1", typename="ns/f")
        storage = None
        caller = None

    double = Double()
    double.send(message_builder("ns/g", "1", int_value=1))
    assert double.address.id == "1"


@pytest.mark.parametrize(
    ("build", "tpe", "value"),
    [
        (lambda: message_builder("ns/f", "id", str_value="hi"), StringType, "hi"),
        (lambda: message_builder("ns/f", "id", int_value=7), IntType, 7),
        (lambda: egress_message_builder("e/out", 1.5, DoubleType), DoubleType, 1.5),
    ],
    ids=["message", "int message", "egress record"],
)
def test_a_built_value_is_the_typed_value_it_sends(build: Any, tpe: Any, value: Any) -> None:
    """As the official SDK's ``typed_value`` attribute (the testing harness reads it)."""
    built = build()
    tv = built.typed_value
    assert (tv.typename, tv.has_value, tv.value) == (
        tpe.typename, True, tpe.serializer().serialize(value),
    )  # fmt: skip
    assert built.typed_value is tv


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"\x0a\x01a\x10\x01", "a"),  # an unknown field after the string
        (b"\x0a\x01a\x0a\x01b", "b"),  # the field twice: the last one is the value
        (b"\x0a\x80\x01" + b"x" * 128, "x" * 128),  # a two-byte length
        (b"", ""),
    ],
    ids=["unknown field", "repeated field", "long string", "empty"],
)
def test_a_received_string_reads_as_protobuf_reads_it(data: bytes, text: str) -> None:
    assert protocol.StringWrapper.FromString(data).value == text
    tv = protocol.TypedValue(typename=StringType.typename, has_value=True, value=data)
    assert Message("ns/f", "1", tv).as_string() == text


@pytest.mark.parametrize(
    "data",
    [b"\x0a\x02a", b"\x0a\x01ab", b"\x0a\x80" + b"x" * 128],
    ids=["shorter than its length", "a stray byte after it", "a two-byte length cut short"],
)
def test_a_malformed_received_string_is_refused_as_protobuf_refuses_it(data: bytes) -> None:
    with pytest.raises(DecodeError):
        protocol.StringWrapper.FromString(data)
    tv = protocol.TypedValue(typename=StringType.typename, has_value=True, value=data)
    with pytest.raises(DecodeError) as error:
        Message("ns/f", "1", tv).as_string()
    assert is_unreadable(error.value)
    assert "not an io.statefun.types/string value" in str(error.value)  # not BytesValue's


JSON_DOC = make_json_type("com.example/Doc")


@pytest.mark.parametrize(
    ("tpe", "data", "read"),
    [
        (IntType, b"\xff", Message.as_int),
        (StringType, b"\x0a\x01\xff", Message.as_string),  # a short string
        (StringType, b"\x0a\x80\x01" + b"\xff" * 128, Message.as_string),  # a long one
        (JSON_DOC, b"{not json", lambda message: message.as_type(JSON_DOC)),
    ],
    ids=["int", "short string", "long string", "as_type"],
)
def test_an_argument_its_type_cannot_read_raises_as_unreadable(
    tpe: Any, data: bytes, read: Any
) -> None:
    # what final_unreadable=True makes a final failure (statefun_core.deadletters)
    tv = protocol.TypedValue(typename=tpe.typename, has_value=True, value=data)
    with pytest.raises((DecodeError, ValueError)) as error:  # as protobuf, json, utf-8 raise
        read(Message("ns/f", "1", tv))
    assert is_unreadable(error.value)


@pytest.mark.parametrize(
    ("value", "read", "reader"),
    [
        ({"str_value": "Ann"}, Message.as_int, "as_int"),
        ({"str_value": "Ann"}, Message.as_bool, "as_bool"),
        ({"int_value": 7}, Message.as_string, "as_string"),  # a short string's way
        ({"long_value": 7}, Message.as_int, "as_int"),
        ({"str_value": "Ann"}, lambda message: message.as_type(IntType), "as_type"),
    ],
    ids=["int of a string", "bool of a string", "string of an int", "int of a long",
         "as_type"],
)  # fmt: skip
def test_a_message_read_as_a_type_it_is_not_of_is_a_type_error(
    value: dict[str, Any], read: Any, reader: str
) -> None:
    """A built-in reader decoded another type's bytes to its zero value (0, "", False) and the
    function went on with it. It says now what the message is and how to ask, and counts as
    unreadable."""
    built = message_builder("ns/f", "1", **value)
    typename = built.value_typename()
    for message in (built, Message("ns/f", "1", built.typed_value)):  # built, and received
        with pytest.raises(TypeError, match=rf"^the message is of type {typename}, not ") as error:
            read(message)
        assert f": {reader}() cannot read it" in str(error.value)
        assert is_unreadable(error.value)


def test_a_zero_value_reads_as_the_official_sdk_reads_it() -> None:
    """Empty bytes are every built-in type's zero (proto3 writes no field for it): a Go or Java
    function's long 0 read with as_int() is 0, as in the official SDK."""
    assert message_builder("ns/f", "1", str_value="").as_string() == ""
    assert message_builder("ns/f", "1", int_value=0).as_int() == 0
    long_zero = Message("ns/f", "1", message_builder("ns/f", "1", long_value=0).typed_value)
    assert long_zero.as_int() == 0
    assert long_zero.as_type(IntType) == 0
    assert message_builder("ns/f", "1", str_value="").as_bool() is False


@pytest.mark.parametrize("document", [{}, [], 0, "", False, None])
def test_a_zero_value_of_a_json_type_is_read_whatever_the_typename(document: Any) -> None:
    """A Kafka record's typename is the valueType of module.yaml, which the official SDK's
    as_type never compares with the type's: a JSON {} or 0 under another name is a value."""
    tv = protocol.TypedValue(
        typename="com.example/Event", has_value=True, value=json.dumps(document).encode()
    )
    assert Message("ns/f", "1", tv).as_type(JSON_DOC) == document


def test_a_decoder_that_fails_on_another_type_keeps_its_error() -> None:
    """As in the official SDK, which a function may catch (a Kafka record that is no JSON);
    its cause says what the message is."""
    for message in (
        message_builder("ns/f", "1", int_value=7),
        Message("ns/f", "1", message_builder("ns/f", "1", int_value=7).typed_value),
    ):
        with pytest.raises(json.JSONDecodeError) as error:
            message.as_type(JSON_DOC)
        assert is_unreadable(error.value)
        assert isinstance(error.value.__cause__, TypeError)
        assert str(error.value.__cause__).startswith(
            "the message is of type io.statefun.types/int, not com.example/Doc: as_type() "
            "cannot read it"
        )


@pytest.mark.parametrize(
    ("keyword", "value"),
    [("int_value", "1"), ("long_value", "1"), ("double_value", "1.5"), ("str_value", 1)],
)
def test_a_value_of_another_type_than_its_keyword_is_refused(keyword: str, value: Any) -> None:
    """As the official SDK's protobuf refuses it, never sent as another type."""
    with pytest.raises(TypeError):
        message_builder("ns/f", "id", **{keyword: value})


@pytest.mark.parametrize(
    "value",
    [
        {"int_value": 1},
        {"str_value": "x"},
        {"value": object()},
        {"value": 1, "value_type": IntType},
    ],
    ids=["int_value", "str_value", "value", "value and value_type"],
)
@pytest.mark.parametrize(("target_typename", "target_id"), [("", "1"), ("ns/f", "")])
def test_a_message_without_a_target_is_refused_whatever_its_value(
    target_typename: str, target_id: str, value: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="can not be missing"):
        message_builder(target_typename, target_id, **value)


def test_a_message_value_whose_serializer_gives_str_is_its_utf8() -> None:
    # simple_type: serialize_fn "may return bytes or str (encoded as UTF-8)"
    name = simple_type("com.example/name", serialize_fn=str.upper, deserialize_fn=bytes.decode)
    message = message_builder("ns/f", "id", value="zoë", value_type=name)
    assert message.raw_value() == "ZOË".encode()
    assert message.typed_value.value == "ZOË".encode()
    assert message.as_type(name) == "ZOË"


def test_a_kinesis_record_is_what_protobuf_writes() -> None:
    raw = kinesis_egress_message("e/k", "s", "v", "pk", explicit_hash_key="42").raw_value()
    expected = protocol.KinesisEgressRecord(
        partition_key="pk", value_bytes=b"v", stream="s", explicit_hash_key="42"
    )
    assert raw == expected.SerializeToString()
    assert protocol.KinesisEgressRecord.FromString(raw).explicit_hash_key == "42"
