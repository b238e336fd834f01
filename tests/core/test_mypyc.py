"""What the modules mypyc compiles lean on (statefun_core._mypyc), tested in Python too: the
compiled build's own run is ``nox -s compiled``."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Generator
from typing import Any

import pytest

from statefun_core._mypyc import _ThrowingOneArgument, awaiter, awaiting, caused, fieldwise


class _Suspends:
    def __await__(self) -> Generator[str, Any, None]:
        yield "suspended"


async def _waits(done: list[str]) -> None:
    try:
        await _Suspends()
    finally:
        done.append("unwound")


def test_an_exception_thrown_as_three_arguments_reaches_the_awaited_alone() -> None:
    """A compiled coroutine throws a cancellation into what it awaits as ``throw(type, value,
    traceback)`` (mypyc/mypyc#1214); a coroutine takes that with a DeprecationWarning on
    Python 3.12 and newer, an error in this suite. Through the wrapper it gets the exception
    alone, the same object, and unwinds."""
    done: list[str] = []
    awaiting = _ThrowingOneArgument(_waits(done)).__await__()
    assert awaiting.send(None) == "suspended"
    cancelled = asyncio.CancelledError()
    with pytest.raises(asyncio.CancelledError) as raised:
        awaiting.throw(type(cancelled), cancelled, None)
    assert raised.value is cancelled
    assert done == ["unwound"]


def test_the_wrapper_passes_on_the_result_and_closes_what_it_awaits() -> None:
    async def answers() -> int:
        return 42

    awaiting = _ThrowingOneArgument(answers()).__await__()
    with pytest.raises(StopIteration) as finished:
        next(awaiting)
    assert finished.value.value == 42

    done: list[str] = []
    left = _ThrowingOneArgument(_waits(done)).__await__()
    assert next(left) == "suspended"
    left.close()
    assert done == ["unwound"]


def test_caused_sets_the_cause_and_hides_the_context_as_raise_from_does() -> None:
    cause = KeyError("k")
    with pytest.raises(ValueError) as raised:
        try:
            raise cause
        except KeyError:
            raise caused(ValueError("v"), None)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__

    with pytest.raises(ValueError) as raised:
        try:
            raise cause
        except KeyError as error:
            raise caused(ValueError("v"), error)
    assert raised.value.__cause__ is cause


def test_awaiting_wraps_a_function_only_where_its_results_need_the_wrapper() -> None:
    """In Python (and compiled before 3.12) the function itself: no call more per invocation
    on the request path. Otherwise each result goes through the wrapper, and still runs."""

    async def answers(x: int) -> int:
        return x + 1

    assert awaiting(awaiter(False), answers) is answers
    wrapped = awaiting(_ThrowingOneArgument, answers)
    awaitable = wrapped(41)
    assert isinstance(awaitable, _ThrowingOneArgument)
    assert asyncio.run(_awaiting_it(awaitable)) == 42


async def _awaiting_it(awaitable: Any) -> Any:
    return await awaitable


class _Fields:
    def __init__(self, name: str) -> None:
        self.name = name
        self.made_by_init = True


def test_fieldwise_skips_init_in_python_and_calls_the_placeholder_when_compiled() -> None:
    def placeholder(cls: type[_Fields]) -> _Fields:
        return _Fields("-")

    blank = fieldwise(_Fields, placeholder)(_Fields)  # placeholder is a Python function
    assert type(blank) is _Fields and not hasattr(blank, "made_by_init")
    compiled_placeholder: Any = functools.partial(placeholder)  # as a compiled one: no function
    assert fieldwise(_Fields, compiled_placeholder)(_Fields).name == "-"
