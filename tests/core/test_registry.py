"""TypeRegistry: a class's type, registered for it or a base class, or answered by a factory."""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

import pytest

from statefun_core import Type, simple_type
from statefun_core.errors import PluginError, UnknownTypeError
from statefun_core.registry import TypeRegistry


def marked_types(cls: type) -> Optional[Type]:
    """A type plugin's factory: a class that names its own typename has that type; its
    subclasses have theirs only if they name one too (as statefun-pydantic and -msgpack)."""
    typename = vars(cls).get("typename")
    if typename is None:
        return None
    return simple_type(typename, serialize_fn=repr, deserialize_fn=bytes.decode)


class Order:
    typename = "shop/Order"


class RushOrder(Order):
    typename = "shop/RushOrder"


class Unmarked(Order):
    pass


@pytest.mark.parametrize("base_first", [False, True])
def test_a_factory_is_asked_about_each_class_whatever_was_asked_before(base_first: bool) -> None:
    registry = TypeRegistry()
    registry.add_factory(marked_types)
    if base_first:
        assert registry.for_class(Order).typename == "shop/Order"
    assert registry.for_class(RushOrder).typename == "shop/RushOrder"
    with pytest.raises(UnknownTypeError):
        registry.for_class(Unmarked)


def test_a_type_registered_for_a_class_is_its_subclasses_type() -> None:
    registry = TypeRegistry()
    order = simple_type("shop/Order", serialize_fn=repr, deserialize_fn=bytes.decode)
    registry.register(Order, order)
    assert registry.for_class(Unmarked) is order
    assert registry.for_class(RushOrder) is order


def test_one_type_may_be_claimed_for_many_classes_but_a_typename_by_one_type() -> None:
    registry = TypeRegistry()
    order = simple_type("shop/Order", serialize_fn=repr, deserialize_fn=bytes.decode)
    registry.register(Order, order)
    registry.register(RushOrder, order, source="a plugin")  # the same type again: fine
    assert registry.for_class(RushOrder) is order
    other = simple_type("shop/Order", serialize_fn=str, deserialize_fn=bytes.decode)
    with pytest.raises(PluginError, match="claimed twice"):
        registry.register(Unmarked, other)


def test_a_factory_answer_claims_its_typename_too() -> None:
    registry = TypeRegistry()
    registry.add_factory(marked_types)  # answers a new type named "shop/Order" for Order
    taken = simple_type("shop/Order", serialize_fn=str, deserialize_fn=bytes.decode)
    registry.register(RushOrder, taken)
    with pytest.raises(PluginError, match="claimed twice"):
        registry.for_class(Order)


def _define_order() -> type:
    class Order:
        typename = "shop/Order"

    return Order


def test_a_class_defined_again_takes_over_its_typename_another_class_may_not() -> None:
    """A notebook cell that defines a model class run again, or its module reloaded: the new
    class is answered with a type of its own, for the same typename; the old class keeps its."""
    registry = TypeRegistry()
    registry.add_factory(marked_types)
    first, again = _define_order(), _define_order()
    assert first is not again and first.__qualname__ == again.__qualname__
    old = registry.for_class(first)
    new = registry.for_class(again)
    assert new is not old and new.typename == old.typename == "shop/Order"
    assert registry.for_class(first) is old
    with pytest.raises(PluginError, match="claimed twice"):
        registry.for_class(Order)  # another class of the same typename: refused


class _Outer:
    class Inner:
        pass


class _Answering:
    """A factory that is a callable object, without a ``__qualname__`` of its own."""

    def __call__(self, cls: type) -> Optional[Type]:
        return simple_type("shop/Order", serialize_fn=str, deserialize_fn=bytes.decode)

    def __str__(self) -> str:
        return "the answering factory"


def _answers_order(cls: type) -> Optional[Type]:
    return simple_type("shop/Order", serialize_fn=str, deserialize_fn=bytes.decode)


@pytest.mark.parametrize(
    ("factory", "named"),
    [(_answers_order, "_answers_order"), (_Answering(), "the answering factory")],
)
def test_a_factory_answer_claimed_twice_names_the_factory_and_the_class(
    factory: Any, named: str
) -> None:
    """Without a source, a factory is named by its ``__qualname__`` (or as a string), and the
    class it answered for by its module and qualified name."""
    registry = TypeRegistry()
    order = simple_type("shop/Order", serialize_fn=repr, deserialize_fn=bytes.decode)
    registry.register(Order, order)
    registry.add_factory(factory)
    claimed = rf"and by {named} \(for {__name__}\._Outer\.Inner\)$"
    with pytest.raises(PluginError, match=claimed):
        registry.for_class(_Outer.Inner)


def test_register_takes_a_class_and_a_type_and_says_which_it_was_not_given() -> None:
    registry = TypeRegistry()
    order = simple_type("shop/Order", serialize_fn=repr, deserialize_fn=bytes.decode)
    with pytest.raises(TypeError, match=r"^register\(cls, tpe\): cls must be a class, not Order$"):
        registry.register(Order(), order)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"tpe must be a statefun Type .*, not str$"):
        registry.register(Order, "shop/Order")  # type: ignore[arg-type]
    with pytest.raises(UnknownTypeError):
        registry.for_class(Order)  # neither was registered


def ask_at(start: threading.Barrier, registry: TypeRegistry, cls: type) -> Type:
    start.wait()
    return registry.for_class(cls)


def test_threads_asking_for_a_new_class_at_once_all_get_the_one_type_it_claims() -> None:
    """A factory may answer with a new Type on each call (``marked_types`` does): threads that
    ask about a class nobody asked about before get the one type it claimed, not a "claimed
    twice" error for the copies they made meanwhile."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # a thread switch between almost any two bytecodes
    try:
        for _ in range(100):
            registry = TypeRegistry()
            registry.add_factory(marked_types)
            start = threading.Barrier(8)
            with ThreadPoolExecutor(8) as pool:
                answers = [pool.submit(ask_at, start, registry, RushOrder) for _ in range(8)]
                found = {id(answer.result()) for answer in answers}
            assert found == {id(registry.for_class(RushOrder))}
    finally:
        sys.setswitchinterval(interval)
