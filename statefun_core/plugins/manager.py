"""Builds the plugin manager: entry-point discovery, blocking by environment, validation."""

from __future__ import annotations

import os
import sys
from importlib import metadata
from typing import Any, Iterable, Optional

import pluggy

from ..errors import PluginError
from . import hookspecs
from .markers import PROJECT, hookimpl, hookspec

__all__ = [
    "DISABLED_PLUGINS_ENV",
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "PROJECT",
    "StatefunPluginManager",
    "hookimpl",
    "hookspec",
    "make_plugin_manager",
]

ENTRY_POINT_GROUP = "statefun"
#: Comma-separated entry-point names that are not loaded.
DISABLED_PLUGINS_ENV = "STATEFUN_DISABLED_PLUGINS"
#: Set to 1 to load no installed plugin at all (explicitly given ones still register).
DISABLE_AUTOLOAD_ENV = "STATEFUN_DISABLE_PLUGIN_AUTOLOAD"


def _entry_points() -> Iterable[metadata.EntryPoint]:
    if sys.version_info >= (3, 10):
        return metadata.entry_points(group=ENTRY_POINT_GROUP)
    return metadata.entry_points().get(ENTRY_POINT_GROUP, [])  # pragma: no cover


class StatefunPluginManager(pluggy.PluginManager):
    """A pluggy manager that counts (un)registrations, so a handler can cache which hooks
    have implementations and re-check only when plugins change."""

    generation = 0

    def register(self, plugin: Any, name: Optional[str] = None) -> Optional[str]:
        self.generation += 1
        return super().register(plugin, name)

    def unregister(self, plugin: Any = None, name: Optional[str] = None) -> Any:
        self.generation += 1
        return super().unregister(plugin, name)


def make_plugin_manager(
    plugins: Iterable[Any] = (),
    *,
    load_entrypoints: Optional[bool] = None,
    blocked: Iterable[str] = (),
) -> StatefunPluginManager:
    """A fresh plugin manager with the ``statefun`` hooks.

    ``plugins`` are registered first, in order. Installed plugins (entry-point group
    ``statefun``) are then loaded unless ``load_entrypoints`` is False or
    ``STATEFUN_DISABLE_PLUGIN_AUTOLOAD=1``; names in ``blocked`` and in
    ``STATEFUN_DISABLED_PLUGINS`` are skipped. A plugin that fails to import, or implements a
    hook that does not exist, raises :class:`~statefun_core.errors.PluginError` naming it.
    """
    manager = StatefunPluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    names = set(blocked)
    names.update(
        n.strip() for n in os.environ.get(DISABLED_PLUGINS_ENV, "").split(",") if n.strip()
    )
    for name in names:
        manager.set_blocked(name)
    for plugin in plugins:
        manager.register(plugin)
    if load_entrypoints is None:
        load_entrypoints = os.environ.get(DISABLE_AUTOLOAD_ENV, "") not in ("1", "true", "yes")
    if load_entrypoints:
        for entry_point in _entry_points():
            if manager.is_blocked(entry_point.name) or manager.has_plugin(entry_point.name):
                continue
            try:
                plugin = entry_point.load()
                manager.register(plugin, name=entry_point.name)
            except Exception as error:
                raise PluginError(
                    f"statefun plugin {entry_point.name!r} ({entry_point.value}) failed to "
                    f"load: {error}"
                ) from error
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as error:
        raise PluginError(f"statefun plugin {error.plugin!r} is invalid: {error}") from error
    return manager
