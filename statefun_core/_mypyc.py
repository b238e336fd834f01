"""What the modules mypyc compiles need to behave as they do in Python.

The core may be installed compiled by mypyc (``handler``, ``context``, ``storage``,
``messages``, ``protowire``, ``types`` and ``functions``: pyproject.toml's build hook) or as
plain Python: the same source. This module is never compiled.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Awaitable, Generator
from typing import Any, Callable, Optional, TypeVar

__all__ = ["awaiter", "awaiting", "caused", "compiled", "fieldwise", "mypyc_attr"]

_E = TypeVar("_E", bound=BaseException)
_T = TypeVar("_T")

try:
    from mypy_extensions import mypyc_attr
except ImportError:  # the core's dependencies stay protobuf and pluggy

    def mypyc_attr(*attrs: str, **kwattrs: object) -> Callable[[_T], _T]:
        """What ``mypy_extensions.mypyc_attr`` does at run time: nothing. mypyc reads the
        decorator at build time, where mypy brings ``mypy_extensions``."""
        return lambda cls: cls


def compiled(function: Callable[..., Any]) -> bool:
    """Whether ``function`` (a module's own) was compiled by mypyc: it is then no Python
    function."""
    return not isinstance(function, types.FunctionType)


def caused(error: _E, cause: Optional[BaseException]) -> _E:
    """``error`` with ``cause`` as its ``__cause__``, for ``raise caused(error, cause)``:
    what ``raise error from cause`` does in Python (``None`` hides the error being handled
    from the traceback). Compiled by mypyc, ``raise ... from`` drops its ``from``."""
    error.__cause__ = cause
    return error


def awaiter(module_compiled: bool) -> Callable[[Awaitable[_T]], Awaitable[_T]]:
    """What a module passes what it awaits of others (a function's coroutine, a future)
    through: the awaitable itself, unless the module is compiled and Python is 3.12 or newer.

    A compiled coroutine hands an exception thrown into it (a cancellation) on to what it
    awaits as ``throw(type, value, traceback)``, which Python deprecates since 3.12
    (mypyc/mypyc#1214): the ``DeprecationWarning`` would reach the function at its ``await``,
    and under ``-W error`` take the place of its ``CancelledError``.
    """
    if module_compiled and sys.version_info >= (3, 12):
        return _ThrowingOneArgument
    return _itself


def _itself(awaitable: Awaitable[_T]) -> Awaitable[_T]:
    return awaitable


def awaiting(
    awaited: Callable[[Awaitable[Any]], Awaitable[Any]], fun: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    """``fun`` (an async function) with what it returns passed through ``awaited`` (an
    :func:`awaiter`): wrapped once, where a module calls ``fun`` on its request path; ``fun``
    itself when ``awaited`` passes awaitables on as they are."""
    if awaited is _itself:
        return fun

    def calling(*args: Any) -> Awaitable[Any]:
        return awaited(fun(*args))

    return calling


def fieldwise(cls: type[_T], placeholder: Callable[[type[_T]], _T]) -> Callable[[type[_T]], _T]:
    """How a module makes an instance of ``cls`` whose fields it then sets one by one, called
    with ``cls``: ``cls.__new__`` in Python, which skips ``__init__`` (a class call with one
    costs several times more). Compiled by mypyc, a class's ``__new__`` runs ``__init__``
    anyway: there ``placeholder`` (the module's own function, compiled with it, which calls
    ``cls`` with placeholders that the caller overwrites; a C call)."""
    return placeholder if compiled(placeholder) else cls.__new__


class _ThrowingOneArgument(Generator[Any, Any, _T]):
    """Awaits ``awaitable``, throwing into it the exception alone."""

    __slots__ = ("_awaited",)

    def __init__(self, awaitable: Awaitable[_T]) -> None:
        self._awaited = awaitable.__await__()

    def __await__(self) -> Generator[Any, Any, _T]:
        return self

    def __next__(self) -> Any:
        return self._awaited.send(None)

    def send(self, value: Any) -> Any:
        return self._awaited.send(value)

    def throw(self, kind: Any, value: Any = None, traceback: Any = None) -> Any:
        return self._awaited.throw(kind if value is None else value)

    def close(self) -> None:
        self._awaited.close()
