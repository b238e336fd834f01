"""Builds the plugin manager: entry-point discovery, blocking by environment, validation."""

from __future__ import annotations

import inspect
import logging
import os
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional

import pluggy

from ..errors import PluginError
from ..registry import TypeRegistry
from ..types import Type
from . import hookspecs
from .endpoints import checked_endpoints
from .health import HEALTH_ENV, HEALTH_SHOW_FUNCTIONS_ENV, HealthEndpoints
from .logcontext import LOG_CONTEXT_ENV, InvocationLogContext
from .markers import PROJECT, hookimpl, hookspec

if TYPE_CHECKING:
    from importlib import metadata

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
#: Set to 1 (or true, yes, on) to load no installed plugin at all (explicitly given ones still
#: register).
DISABLE_AUTOLOAD_ENV = "STATEFUN_DISABLE_PLUGIN_AUTOLOAD"

#: Hooks that only observe a request: one that raises is logged and ignored.
OBSERVER_HOOKS = frozenset(
    {
        "statefun_batch_started",
        "statefun_invocation_started",
        "statefun_invocation_dead_lettered",
        "statefun_invocation_finished",
        "statefun_batch_finished",
        "statefun_batch_failed",
        "statefun_request_failed",
    }
)
#: Hooks whose failure is the plugin's bug at start-up: raised as ``PluginError``.
TYPE_HOOKS = frozenset({"statefun_register_types", "statefun_type_for_class"})

logger: logging.Logger = logging.getLogger("statefun_core.plugins")


def is_true(value: Optional[str]) -> bool:
    """Whether an environment variable is set the way people write "yes"."""
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _entry_points() -> Iterable[metadata.EntryPoint]:
    # imported here: with autoload off, a cold start does not pay for it
    from importlib import metadata

    if sys.version_info >= (3, 10):
        return metadata.entry_points(group=ENTRY_POINT_GROUP)
    return metadata.entry_points().get(ENTRY_POINT_GROUP, [])  # pragma: no cover


class StatefunPluginManager(pluggy.PluginManager):
    """A pluggy manager that counts (un)registrations, so a handler can cache which hooks
    have implementations and re-check only when plugins change."""

    generation: int = 0
    autoload = True
    """Whether installed plugins were loaded (see ``STATEFUN_DISABLE_PLUGIN_AUTOLOAD``)."""

    def __init__(self, project_name: str) -> None:
        super().__init__(project_name)
        self.disabled: list[str] = []
        """The names blocked by ``blocked=`` or ``STATEFUN_DISABLED_PLUGINS``, in order."""

    def set_blocked(self, name: str) -> None:
        if name not in self.disabled:
            self.disabled.append(name)
        super().set_blocked(name)

    def register(self, plugin: Any, name: Optional[str] = None) -> Optional[str]:
        """Register ``plugin``, with its observer hooks isolated (a raising one is logged and
        ignored) and its type hooks' errors raised as ``PluginError`` naming it. A hook
        implementation whose arguments the hook does not have is a ``PluginError`` too."""
        _check_hook_functions(plugin, name)
        try:
            registered = super().register(plugin, name)
            if registered is not None:
                for caller in self.get_hookcallers(plugin) or ():
                    for impl in caller.get_hookimpls():
                        if impl.plugin is plugin and not (impl.hookwrapper or impl.wrapper):
                            _guard(impl, caller.name)
            return registered
        except pluggy.PluginValidationError as error:
            raise _invalid(error, name) from error
        finally:
            # counted once the hooks are in place and guarded: a handler looks at the hooks
            # again when the count changes, and one serving on another thread that saw the
            # new count before would keep for good what it found then
            self.generation += 1

    def unregister(self, plugin: Any = None, name: Optional[str] = None) -> Any:
        try:
            return super().unregister(plugin, name)
        finally:
            self.generation += 1  # once the hooks are gone: see register


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
    ``STATEFUN_DISABLED_PLUGINS`` are skipped. With ``STATEFUN_HEALTH=1`` the core's health
    endpoints register too (as ``health``; see :mod:`statefun_core.plugins.health`), and with
    ``STATEFUN_LOG_CONTEXT=1`` the invocation log context (as ``log_context``; see
    :mod:`statefun_core.plugins.logcontext`). A plugin
    that fails to import, or implements a hook that does not exist, raises
    :class:`~statefun_core.errors.PluginError` naming it.
    """
    manager = StatefunPluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    from_env = [n.strip() for n in os.environ.get(DISABLED_PLUGINS_ENV, "").split(",") if n.strip()]
    names = [*blocked, *from_env]
    for name in names:
        manager.set_blocked(name)
    for plugin in plugins:
        manager.register(plugin)
    if is_true(os.environ.get(HEALTH_ENV)) and not manager.is_blocked("health"):
        show = is_true(os.environ.get(HEALTH_SHOW_FUNCTIONS_ENV))
        manager.register(HealthEndpoints(show_functions=show), name="health")
    if is_true(os.environ.get(LOG_CONTEXT_ENV)) and not manager.is_blocked("log_context"):
        manager.register(InvocationLogContext(), name="log_context")
    if load_entrypoints is None:
        load_entrypoints = not is_true(os.environ.get(DISABLE_AUTOLOAD_ENV))
    manager.autoload = load_entrypoints
    if load_entrypoints:
        entry_points = list(_entry_points())  # read once: it scans every installed package
        _warn_unknown_disabled(from_env, entry_points)
        loaded: dict[str, metadata.EntryPoint] = {}
        for entry_point in entry_points:
            if manager.is_blocked(entry_point.name):
                continue
            first = loaded.setdefault(entry_point.name, entry_point)
            if first.value != entry_point.value:
                raise PluginError(
                    f"two installed statefun plugins are named {entry_point.name!r}: "
                    f"{_distribution(first)} ({first.value}) and {_distribution(entry_point)} "
                    f"({entry_point.value}); only one would load: uninstall one, or ask its "
                    "author to rename its entry point"
                )
            if manager.has_plugin(entry_point.name):
                continue
            try:
                plugin = entry_point.load()
                if manager.is_registered(plugin):  # given explicitly as well
                    continue
                manager.register(plugin, name=entry_point.name)
            except PluginError:
                raise
            except Exception as error:
                raise PluginError(
                    f"statefun plugin {entry_point.name!r} ({entry_point.value}) failed to "
                    f"load: {type(error).__name__}: {error}; to start without it, set "
                    f"{DISABLED_PLUGINS_ENV}={entry_point.name} or uninstall its package"
                ) from error
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as error:
        raise _invalid(error, manager.get_name(error.plugin)) from error
    return manager


def _distribution(entry_point: metadata.EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)  # Python 3.10+
    return str(dist.name) if dist is not None else "a distribution"


def _warn_unknown_disabled(
    names: Iterable[str], entry_points: Iterable[metadata.EntryPoint]
) -> None:
    """A name in ``STATEFUN_DISABLED_PLUGINS`` that no installed plugin has blocks nothing: most
    likely a misspelling (``slow_batches`` for ``slow-batches``), and the plugin still runs."""
    installed = {entry_point.name for entry_point in entry_points} | {"health", "log_context"}
    unknown = [name for name in names if name not in installed]
    if unknown:
        logger.warning(
            "%s names %s, which no installed plugin is called, so it blocks nothing; the "
            "installed plugins are: %s",
            DISABLED_PLUGINS_ENV,
            ", ".join(map(repr, unknown)),
            ", ".join(sorted(installed)),
        )


def _invalid(error: pluggy.PluginValidationError, name: Optional[str]) -> PluginError:
    """pluggy's refusal of a plugin, naming the plugin by its name, or its class (or module)
    when it has none, where pluggy names it by its ``id()`` or its ``repr``."""
    plugin = error.plugin
    label = _label(plugin, name)
    detail = str(error).replace(repr(str(id(plugin))), repr(label))
    detail = detail.replace(repr(plugin), repr(label))
    return PluginError(f"statefun plugin {label!r} is invalid: {detail}")


_HOOK_NAMES = tuple(spec.__name__ for spec in hookspecs._all())


def _check_hook_functions(plugin: Any, name: Optional[str]) -> None:
    """What pluggy would accept without a word but never run: a function named after a hook
    but not marked ``@hookimpl`` (the marker forgotten, or another one), and an ``async def``
    hook (pluggy calls it, gets a coroutine and drops it, so its body never runs); a class given
    for its instance (its methods would be called without ``self``); and a wrapper of a
    request's hook, which could not be isolated as those hooks are. Found as pluggy finds hook
    implementations: every routine of ``dir(plugin)``, under its ``specname`` if it has one."""
    label = _label(plugin, name)
    for attribute in dir(plugin):
        try:
            function = getattr(plugin, attribute)
            options = getattr(function, f"{PROJECT}_impl", None)
        except Exception:  # pluggy skips what it cannot read, too
            continue
        if not inspect.isroutine(function):
            continue
        if not isinstance(options, dict):
            if attribute in _HOOK_NAMES:
                raise PluginError(
                    f"statefun plugin {label!r} is invalid: {attribute} is not marked "
                    "@hookimpl (from statefun_core.plugins import hookimpl), so it would never "
                    "be called"
                )
            continue
        hook = options.get("specname") or attribute
        if hook in OBSERVER_HOOKS and (options.get("wrapper") or options.get("hookwrapper")):
            # a wrapper's errors reach the handler: a raising one would fail the request
            raise PluginError(
                f"statefun plugin {label!r} is invalid: {hook} is a wrapper; the request's hooks "
                "are events (a plain @hookimpl, paired with its _started/_finished hook)"
            )
        if inspect.isclass(plugin) and _takes_self(inspect.getattr_static(plugin, attribute)):
            raise PluginError(
                f"statefun plugin {label!r} is a class, so pluggy would call {hook} without "
                f"'self': register an instance ({label}()), or point the entry point at one "
                "(my_package.plugin:plugin_instance)"
            )
        if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
            raise PluginError(
                f"statefun plugin {label!r} is invalid: {hook} is async, so it would never "
                "run (pluggy cannot await): hooks are plain functions; record what you need "
                "and leave the I/O to something else"
            )


def _takes_self(member: Any) -> bool:
    """Whether a class's ``member`` is a method (a function whose first parameter is ``self``),
    which pluggy would call from the class without an instance."""
    if not inspect.isfunction(member):  # a staticmethod, a classmethod
        return False
    return next(iter(inspect.signature(member).parameters), None) == "self"


def _class_name(plugin: Any) -> str:
    return getattr(plugin, "__name__", type(plugin).__name__)


def plugin_label(impl: Any) -> str:
    """The name of a hook implementation's plugin, for messages."""
    return _label(impl.plugin, impl.plugin_name)


def _label(plugin: Any, name: Optional[str]) -> str:
    """A plugin's name, or its class's (or module's) when it was registered without one
    (pluggy then names it by its ``id()``)."""
    return name if name and not name.isdigit() else _class_name(plugin)


def _guard(impl: Any, hook: str) -> None:
    """Wrap one hook implementation: isolated if it observes, named if it resolves types."""
    function: Callable[..., Any] = impl.function
    plugin = plugin_label(impl)
    if hook in OBSERVER_HOOKS:
        raised = 0
        log_at = 1  # then 10, 100, ...: a broken plugin fails every request, not every line

        def isolated(*args: Any) -> Any:
            nonlocal raised, log_at
            try:
                return function(*args)
            except Exception:
                raised += 1
                if raised >= log_at:  # >=: a count two threads raced past
                    log_at *= 10
                    logger.exception(
                        "statefun plugin %r raised in %s; ignored (failure %d of this hook; "
                        "logged again at failure %d)",
                        plugin,
                        hook,
                        raised,
                        log_at,
                    )
                return None

        impl.function = isolated
    elif hook in TYPE_HOOKS:
        registry_at = impl.argnames.index("registry") if "registry" in impl.argnames else None

        def named(*args: Any) -> Any:
            registry = None if registry_at is None else args[registry_at]
            if isinstance(registry, TypeRegistry):
                registry.plugin = plugin  # named in the registry's errors
            try:
                answer = function(*args)
            except PluginError:
                raise
            except Exception as error:
                raise PluginError(
                    f"statefun plugin {plugin!r} raised in {hook}: {type(error).__name__}: {error}"
                ) from error
            finally:
                if isinstance(registry, TypeRegistry):
                    registry.plugin = None
            if answer is not None and not isinstance(answer, Type):
                raise PluginError(
                    f"statefun plugin {plugin!r} returned {type(answer).__name__} from {hook}; "
                    "expected a statefun Type (simple_type(...), make_json_type(...)) or None"
                )
            return answer

        impl.function = named
    elif hook == "statefun_endpoints":

        def owned(*args: Any) -> Any:
            try:
                answer = function(*args)
            except Exception as error:
                raise PluginError(
                    f"statefun plugin {plugin!r} raised in {hook}: {type(error).__name__}: {error}"
                ) from error
            return checked_endpoints(plugin, answer)

        impl.function = owned
