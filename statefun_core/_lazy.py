"""A package's names imported on first use (PEP 562), for the packages that every pytest run
imports through the plugin (``statefun_core``, ``statefun_core.testing``)."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Iterable, Mapping


def lazy_attributes(
    namespace: dict[str, Any], exports: Mapping[str, Iterable[str]], submodules: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of the package whose ``globals()`` are
    ``namespace``: a name of ``exports`` (module: names) is imported from its module when first
    read, then kept; a name of ``submodules`` is that module, imported."""
    package = namespace["__name__"]
    module_of = {name: module for module, names in exports.items() for name in names}
    submodules = frozenset(submodules)

    def __getattr__(name: str) -> Any:
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module_of[name]}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *module_of, *submodules})

    return __getattr__, __dir__
