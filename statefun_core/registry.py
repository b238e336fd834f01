"""The types a handler knows by Python class, contributed by type plugins."""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional, TypeVar

from .errors import PluginError, UnknownTypeError
from .types import Type

__all__ = ["TypeRegistry"]

TypeFactory = Callable[[type], Optional[Type[Any]]]

_T = TypeVar("_T")


class TypeRegistry:
    """Maps Python classes to StateFun types.

    Types are registered for a class; factories are asked, in order, for classes nobody
    registered (a pydantic plugin answers for every ``BaseModel`` subclass). A typename is the
    wire contract, so two different types claiming one typename is an error.
    """

    def __init__(self) -> None:
        self._by_class: dict[type, Type[Any]] = {}  # registered, for a class and its subclasses
        self._answered: dict[type, Type[Any]] = {}  # what a factory answered, for that class only
        # each typename's type, who claimed it, and the class a factory answered it for
        self._by_typename: dict[str, tuple[Type[Any], str, Optional[str]]] = {}
        self._factories: list[tuple[TypeFactory, str]] = []
        # held while a class nobody registered is looked up: a factory may answer with a new
        # Type on each call, and two threads asking at once would claim its typename twice
        self._finding = threading.RLock()

    plugin: Optional[str] = None
    """The plugin whose ``statefun_register_types`` is running, named in error messages (by
    the name users block it by) beside the ``source`` it gives."""

    # cls is not a type[_T]: mypy refuses an abstract class there (type-abstract), and a base
    # class registered for its subclasses often is one
    def register(self, cls: type, tpe: Type[Any], *, source: Optional[str] = None) -> None:
        if not isinstance(cls, type):
            raise TypeError(f"register(cls, tpe): cls must be a class, not {type(cls).__name__}")
        if not isinstance(tpe, Type):
            raise TypeError(
                "register(cls, tpe): tpe must be a statefun Type (simple_type(...), "
                f"make_json_type(...)), not {type(tpe).__name__}"
            )
        self._claim(tpe, self._source(source, "user"))
        self._by_class[cls] = tpe

    def add_factory(self, factory: TypeFactory, *, source: Optional[str] = None) -> None:
        """Ask ``factory`` for the classes nobody registered; ``source`` names it in error
        messages (its ``__qualname__`` if not given)."""
        fallback = str(getattr(factory, "__qualname__", factory))
        self._factories.append((factory, self._source(source, fallback)))

    def _source(self, source: Optional[str], fallback: str) -> str:
        if self.plugin is None:
            return fallback if source is None else source
        if source is None or source == self.plugin:
            return f"plugin {self.plugin!r}"
        return f"{source} (plugin {self.plugin!r})"

    def _claim(self, tpe: Type[Any], source: str, answered_for: Optional[str] = None) -> None:
        """``answered_for``: the class a factory answered ``tpe`` for, by module and qualified
        name. The same class defined again (a notebook cell run again, a module reloaded) is
        a new class, answered with a new type: that one takes over the typename."""
        known = self._by_typename.get(tpe.typename)
        if known is not None and known[0] is not tpe:
            defined_again = answered_for is not None and known[2] == answered_for
            if not defined_again:
                raise PluginError(
                    f"typename {tpe.typename!r} is claimed twice: by {known[1]} and by {source}"
                )
        self._by_typename[tpe.typename] = (tpe, source, answered_for)

    def for_class(self, cls: type[_T]) -> Type[_T]:
        """The type for ``cls``: registered for it or its nearest registered base class, or
        else what a factory answers for ``cls`` itself (a subclass is asked about on its own:
        it may have a type of its own, or none)."""
        found = self._by_class.get(cls)
        if found is None:
            found = self._answered.get(cls)
        if found is not None:
            return found
        with self._finding:
            return self._find(cls)

    def _find(self, cls: type) -> Type[Any]:
        """The type of a class found in neither map: asked again, now that this thread is the
        only one looking (another may have found it meanwhile)."""
        found = self._answered.get(cls)
        if found is not None:
            return found
        for base in cls.__mro__[1:]:
            found = self._by_class.get(base)
            if found is not None:
                self._by_class[cls] = found
                return found
        for factory, source in self._factories:
            found = factory(cls)
            if found is not None and not isinstance(found, Type):
                raise PluginError(
                    f"{source} returned {type(found).__name__} for {cls.__module__}."
                    f"{cls.__qualname__}; expected a statefun Type or None"
                )
            if found is not None:
                defined_as = f"{cls.__module__}.{cls.__qualname__}"
                self._claim(found, f"{source} (for {defined_as})", defined_as)
                self._answered[cls] = found
                return found
        raise UnknownTypeError(
            f"no StateFun type is known for {cls.__module__}.{cls.__qualname__}; give its "
            "Type (ValueSpec(type=...), value_type=...), or install a type plugin for it"
        )

    def source_of(self, tpe: Type[Any]) -> str:
        """Who registered (or answered with) ``tpe``, as named in error messages."""
        known = self._by_typename.get(tpe.typename)
        return known[1] if known is not None and known[0] is tpe else "an unknown source"

    def for_value(self, value: Any) -> Type[Any]:
        return self.for_class(type(value))
