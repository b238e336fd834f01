"""The registry of stateful functions: ``StatefulFunctions`` and its ``bind`` decorator."""

from __future__ import annotations

import dis
import functools
import inspect
import logging
import weakref
from types import MethodType
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, Sequence, TypeVar

from ._mypyc import awaiter, caused, compiled, mypyc_attr
from .core import StorageSpec, ValueSpec, parse_typename
from .errors import FunctionNotFoundError

if TYPE_CHECKING:
    from .deadletters import DeadLetterEgress

__all__ = ["StatefulFunction", "StatefulFunctions"]

logger: logging.Logger = logging.getLogger("statefun_core")

F = TypeVar("F", bound=Callable[..., Any])


class StatefulFunction:
    """A bound function: its code, typename, state specs and how it is called."""

    __slots__ = (
        "awaits",
        "blocking",
        "dead_letters",
        "final_errors",
        "final_unreadable",
        "fun",
        "is_async",
        "namespace",
        "specs",
        "typename",
    )

    namespace: str
    typename: str
    fun: Callable[..., Any]
    specs: list[ValueSpec]
    is_async: bool
    awaits: bool
    blocking: bool
    final_errors: tuple[type[Exception], ...]
    final_unreadable: bool
    dead_letters: Optional[DeadLetterEgress]

    def __init__(
        self,
        typename: str,
        fun: Callable[..., Any],
        specs: list[ValueSpec],
        blocking: bool = False,
        *,
        final_errors: Iterable[type[Exception]] = (),
        final_unreadable: bool = False,
        dead_letters: Optional[DeadLetterEgress] = None,
    ) -> None:
        if fun is None:
            raise ValueError("function code is missing.")
        self.namespace, _ = parse_typename(typename)
        self.typename = typename
        if not blocking and _wraps_async(fun):
            fun = _awaiting(fun)
        self.fun = fun
        self.specs = specs
        names = [spec.name for spec in specs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(
                f"duplicate registered value name: {', '.join(duplicates)} (in the specs of "
                f"{typename})"
            )
        self.is_async = is_async(fun)
        self.awaits = self.is_async and _can_suspend(fun)
        self.blocking = blocking
        self.final_errors = tuple(final_errors)
        for error in self.final_errors:
            if not (isinstance(error, type) and issubclass(error, Exception)):
                raise TypeError(f"final_errors of {typename} must be Exception classes: {error!r}")
        self.final_unreadable = final_unreadable
        self.dead_letters = dead_letters

    @property
    def storage_spec(self) -> StorageSpec:
        """The official SDK's name for ``specs``: the same specs, with their names."""
        return StorageSpec(frozenset(spec.name for spec in self.specs), self.specs)

    def __repr__(self) -> str:
        return f"StatefulFunction({self.typename!r}, {getattr(self.fun, '__qualname__', self.fun)})"


def is_async(fun: Callable[..., Any]) -> bool:
    """Whether calling ``fun`` returns a coroutine: an ``async def`` function (or a method or
    partial of one), or an object whose ``__call__`` is one."""
    if inspect.iscoroutinefunction(fun):
        return True
    return not inspect.isroutine(fun) and inspect.iscoroutinefunction(type(fun).__call__)


def _wraps_async(fun: Callable[..., Any]) -> bool:
    """Whether ``fun`` is a plain ``def`` decorator's wrapper (``functools.wraps``) of an
    ``async def`` function: called as a sync function, the coroutine it returns would be
    dropped unawaited, and the function never run (as in the official SDK)."""
    return (
        inspect.isroutine(fun)
        and not inspect.iscoroutinefunction(fun)
        and inspect.iscoroutinefunction(inspect.unwrap(fun))
    )


def _awaiting(wrapper: Callable[..., Any]) -> Callable[..., Any]:
    """``wrapper`` as an ``async def`` function that awaits what it returns when that is
    awaitable, and takes it as it is when not: a wrapper may also run the coroutine itself
    (in another thread, on another loop) or return early without calling it."""

    @functools.wraps(wrapper)
    async def awaiting(context: Any, message: Any) -> Any:
        result = wrapper(context, message)
        if inspect.isawaitable(result):
            return await _awaited(result)
        return result

    return awaiting


_awaited = awaiter(compiled(_awaiting))  # see _mypyc.awaiter


def _check_signature(typename: str, fun: Callable[..., Any]) -> None:
    """``fun`` must take a context and a message, given by position: a function, a method, a
    callable object or a partial whose other parameters have defaults."""
    if not callable(fun):
        raise TypeError(f"{typename} is bound to {fun!r}, which is not a function")
    try:
        signature = inspect.signature(fun)
    except (TypeError, ValueError):  # a builtin without a signature: left to its first call
        return
    try:
        signature.bind(None, None)
    except TypeError:
        raise caused(
            ValueError(
                f"The registered function {typename} does not expect a context and a message "
                f"but rather {signature}: it is called as fun(context, message)."
            ),
            None,
        )


def _name(fun: Callable[..., Any]) -> str:
    """A function by where it is defined: the same definition run again (a module reloaded, a
    notebook cell run again) has the same name, and binds again as the official SDK did. A
    partial is named by its function, a callable object by its class (their reprs hold an
    address, new each time)."""
    while isinstance(fun, functools.partial):
        fun = fun.func
    if not hasattr(fun, "__qualname__"):
        fun = type(fun)
    return f"{fun.__module__}.{fun.__qualname__}"


def _can_suspend(fun: Callable[..., Any]) -> bool:
    """Whether the coroutines of an async function can suspend.

    A coroutine suspends only where its own code yields (an ``await``, ``async for`` or
    ``async with``); one whose code never yields finishes on its first step and needs no event
    loop. Anything but a plain ``async def`` (a callable object, a wrapper) is assumed to.
    """
    if not inspect.isfunction(fun) or not fun.__code__.co_flags & inspect.CO_COROUTINE:
        return True
    code = fun.__code__
    return any(op.opname in _YIELDS for op in dis.get_instructions(code))


_YIELDS = frozenset({"YIELD_VALUE", "YIELD_FROM"})  # YIELD_FROM up to Python 3.10


@mypyc_attr(allow_interpreted_subclasses=True)
class StatefulFunctions:
    """The functions an endpoint serves, by typename."""

    __slots__ = ("_functions", "_servers")

    def __init__(self) -> None:
        self._functions: dict[str, StatefulFunction] = {}
        # each server's object, held weakly, and its method's function
        self._servers: list[tuple[weakref.ref[Any], Callable[[Any, StatefulFunction], Any]]] = []

    def _served_by(self, prepare: Callable[[StatefulFunction], Any]) -> None:
        """``prepare`` (a bound method: a handler's planner's) is called with each function bound
        from now on, while its object lives, before the function is added: what it raises (a
        state type nobody resolves) fails the bind. Not a ``WeakMethod``: compiled by mypyc, a
        method's function takes no weak reference (it lives as long as its module anyway)."""
        if not isinstance(prepare, MethodType):
            raise TypeError(f"a server of functions is told through a bound method, not {prepare}")
        self._servers = [server for server in self._servers if server[0]() is not None]
        self._servers.append((weakref.ref(prepare.__self__), prepare.__func__))

    def register(
        self,
        typename: object,
        fun: Callable[..., Any],
        specs: Optional[Sequence[ValueSpec]] = None,
        *,
        blocking: bool = False,
        final_errors: Iterable[type[Exception]] = (),
        final_unreadable: bool = False,
        dead_letters: Optional[DeadLetterEgress] = None,
    ) -> None:
        """Register ``fun(context, message)`` under ``typename`` (``namespace/name``).

        ``fun`` is anything called so: a function, a callable object, a partial. A typename is
        bound to one function: binding another one to it replaces it, with a warning (logger
        ``statefun_core``) unless it is the same definition bound again (a module reloaded).

        ``blocking=True`` marks a sync function that blocks (I/O, heavy CPU):
        ``handle_async`` then runs it in a thread pool instead of on the event loop. An
        ``async def`` function cannot be marked so (``TypeError``): it runs on the loop. A
        plain ``def`` decorator's wrapper of one (``functools.wraps``) is awaited when what it
        returns is awaitable, unless marked so: then it is the sync function it is.

        Failures that never succeed: besides a raised :class:`~statefun_core.FinalFailure`,
        the exceptions of ``final_errors`` are final, and with ``final_unreadable=True`` so is
        a state or an argument its type cannot read. A final failure sends the message to
        ``dead_letters`` (or to the handler's ``dead_letters``) instead of failing the batch;
        see :mod:`statefun_core.deadletters`.
        """
        # typename is an object and specs a Sequence (which a compiled build does not check):
        # they are checked here, with messages that say what to pass
        if fun is None:
            raise ValueError("function instance must be provided")
        if not typename:
            raise ValueError("function typename must be provided")
        if not isinstance(typename, str):
            raise TypeError(f"a function typename is a str 'namespace/name', got {typename!r}")
        parse_typename(typename)
        _check_signature(typename, fun)
        if isinstance(specs, ValueSpec):
            raise TypeError(f"specs of {typename} must be a list of ValueSpecs: specs=[{specs!r}]")
        for spec in specs or []:
            if not isinstance(spec, ValueSpec):
                raise TypeError(f"specs of {typename} must be ValueSpecs, got {spec!r}")
        bound = self._functions.get(typename)
        if bound is not None and _name(bound.fun) != _name(fun):
            # not refused: the official SDK replaces it, and a test may mean to
            logger.warning(
                "%s: %s replaces %s, which no longer runs (if both should, give each a "
                "typename of its own)",
                typename,
                _name(fun),
                _name(bound.fun),
            )
        if blocking and is_async(fun):
            # handle_async awaits it on the event loop whatever the flag: it would not help
            raise TypeError(
                f"{typename}: blocking=True is for a plain def function, which then runs in the "
                "executor; an async def function runs on the event loop: leave blocking out and "
                "await its blocking calls in a thread (await asyncio.to_thread(...)), or make it "
                "a plain def"
            )
        function = StatefulFunction(
            typename,
            fun,
            list(specs or []),
            blocking,
            final_errors=final_errors,
            final_unreadable=final_unreadable,
            dead_letters=dead_letters,
        )
        for owner, method in self._servers:
            server = owner()
            if server is not None:
                method(server, function)
        self._functions[typename] = function

    def bind(
        self,
        typename: object,
        specs: Optional[Sequence[ValueSpec]] = None,
        *,
        blocking: bool = False,
        final_errors: Iterable[type[Exception]] = (),
        final_unreadable: bool = False,
        dead_letters: Optional[DeadLetterEgress] = None,
    ) -> Callable[[F], F]:
        """Decorator form of :meth:`register`::

        @functions.bind("com.example.fns/greeter", specs=[ValueSpec("seen", IntType)])
        async def greet(context, message): ...
        """

        def wrapper(function: F) -> F:
            self.register(
                typename,
                function,
                specs,
                blocking=blocking,
                final_errors=final_errors,
                final_unreadable=final_unreadable,
                dead_letters=dead_letters,
            )
            return function

        return wrapper

    def for_typename(self, typename: str) -> StatefulFunction:
        """The function bound to ``typename``; raises :class:`FunctionNotFoundError`."""
        try:
            return self._functions[typename]
        except KeyError:
            raise caused(FunctionNotFoundError(typename, self._functions), None)

    def __contains__(self, typename: object) -> bool:
        return typename in self._functions

    def __iter__(self) -> Iterator[StatefulFunction]:
        return iter(self._functions.values())

    def __len__(self) -> int:
        return len(self._functions)

    def __repr__(self) -> str:
        return f"StatefulFunctions({list(self._functions)!r})"
