"""A plugin that only observes never changes a request; a broken type plugin fails at build.

The plugins here are installed distributions with real ``statefun`` entry points, loaded by
``make_plugin_manager()`` as a deployment would load them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from statefun_core import RequestReplyHandler, make_plugin_manager
from statefun_core.errors import FunctionFailedError, FunctionNotFoundError, PluginError
from statefun_core.testing.packaging import install_distribution
from statefun_core.testing.wire import to_function

from .recorder import Recorder
from .test_hooks import SEEN_3, call, make_functions, names

OBSERVERS = {
    "statefun_batch_started": "batch",
    "statefun_invocation_started": "invocation",
    "statefun_invocation_finished": "invocation, error",
    "statefun_batch_finished": "batch",
    "statefun_batch_failed": "batch, error",
    "statefun_request_failed": "error, batch, headers",
}
TYPE_HOOKS = {"statefun_register_types": "registry", "statefun_type_for_class": "cls"}


def raising_module(hook: str, arguments: str) -> str:
    return (
        "from statefun_core.plugins import hookimpl\n"
        "@hookimpl\n"
        f"def {hook}({arguments}):\n"
        f"    raise RuntimeError('broken {hook}')\n"
    )


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("STATEFUN_DISABLED_PLUGINS", "slow-batches")  # only what a test installs
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("fake_")]:
        del sys.modules[name]


def install_raising(site: Path, hook: str, arguments: str) -> None:
    install_distribution(
        site,
        "fake-broken",
        {"broken": "fake_broken"},
        {"fake_broken": raising_module(hook, arguments)},
    )


@pytest.mark.parametrize("hook", OBSERVERS)
@pytest.mark.parametrize("driver", ["handle_sync", "handle_async"])
def test_a_raising_observer_hook_changes_nothing_and_is_logged_once_with_its_plugin(
    site: Path, hook: str, driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    install_raising(site, hook, OBSERVERS[hook])
    recorder = Recorder()
    with_broken = RequestReplyHandler(make_functions(), plugins=make_plugin_manager([recorder]))
    assert with_broken.plugins.has_plugin("broken")
    without = RequestReplyHandler(make_functions(), plugins=make_plugin_manager(blocked=["broken"]))
    request = to_function("test/sync", "a", names("x", "y"), SEEN_3)

    with caplog.at_level(logging.ERROR, logger="statefun_core.plugins"):
        for _ in range(2):
            assert call(with_broken, driver, request, None) == call(without, driver, request, None)
            with pytest.raises(FunctionFailedError):
                boom = to_function("test/sync", "a", names("boom"), SEEN_3)
                call(with_broken, driver, boom, None)
            with pytest.raises(FunctionNotFoundError):
                call(with_broken, driver, to_function("test/nobody", "a", names("x"), {}), None)

    logged = [r for r in caplog.records if r.name == "statefun_core.plugins"]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert "'broken'" in logged[0].getMessage() and hook in logged[0].getMessage()
    assert logged[0].exc_info is not None
    # the other plugin saw every event, and each request ended exactly once
    ok = ["batch_started", *["invocation_started", "invocation_finished"] * 2, "batch_finished"]
    failed = ["batch_started", "invocation_started", "invocation_finished", "batch_failed"]
    assert recorder.names() == [*ok, *failed, "request_failed", "request_failed"] * 2


def test_a_raising_observer_hook_is_logged_again_at_the_10th_and_100th_time_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from statefun_core.plugins import hookimpl

    class Broken:
        @hookimpl
        def statefun_batch_finished(self, batch: object) -> None:
            raise RuntimeError("broken")

    plugins = make_plugin_manager([Broken()], load_entrypoints=False)
    handler = RequestReplyHandler(make_functions(), plugins=plugins)
    request = to_function("test/sync", "a", names("x"), SEEN_3)
    with caplog.at_level(logging.ERROR, logger="statefun_core.plugins"):
        for _ in range(100):
            handler.handle_sync(request)

    logged = [r.getMessage() for r in caplog.records if r.name == "statefun_core.plugins"]
    assert logged == [
        f"statefun plugin 'Broken' raised in statefun_batch_finished; ignored (failure {count} "
        f"of this hook; logged again at failure {count * 10})"
        for count in (1, 10, 100)
    ]


@pytest.mark.parametrize("hook", TYPE_HOOKS)
def test_a_raising_type_hook_fails_the_handler_build_naming_plugin_and_hook(
    site: Path, hook: str
) -> None:
    install_raising(site, hook, TYPE_HOOKS[hook])
    from decimal import Decimal

    from statefun_core import StatefulFunctions, ValueSpec

    functions = StatefulFunctions()
    functions.register("test/money", lambda context, message: None, [ValueSpec("m", Decimal)])
    with pytest.raises(PluginError, match=rf"'broken' raised in {hook}: RuntimeError: broken"):
        RequestReplyHandler(functions)


def test_a_hook_implementation_with_a_wrong_signature_fails_naming_plugin_and_hook(
    site: Path,
) -> None:
    install_raising(site, "statefun_batch_started", "batch, extra")
    with pytest.raises(PluginError, match=r"(?s)'broken'.*statefun_batch_started.*extra") as raised:
        RequestReplyHandler(make_functions())
    assert "statefun_batch_started" in str(raised.value)


def test_an_explicit_plugin_with_a_wrong_signature_is_a_plugin_error() -> None:
    class Wrong:
        from statefun_core.plugins import hookimpl

        @hookimpl
        def statefun_invocation_finished(self, invocation: object, outcome: object) -> None:
            pass

    with pytest.raises(PluginError, match=r"(?s)statefun_invocation_finished.*outcome"):
        make_plugin_manager([Wrong()], load_entrypoints=False)


def test_a_plugin_registered_later_is_named_by_its_name_or_class_and_its_name_returned() -> None:
    from statefun_core.plugins import hookimpl

    class Fine:
        @hookimpl
        def statefun_batch_started(self, batch: object) -> None:
            pass

    class Wrong:
        @hookimpl
        def statefun_batch_started(self, batch: object, extra: object) -> None:
            pass

    manager = make_plugin_manager(load_entrypoints=False)
    assert manager.register(Fine(), name="fine") == "fine"
    with pytest.raises(PluginError, match="plugin 'wrong' is invalid"):
        manager.register(Wrong(), name="wrong")
    with pytest.raises(PluginError, match="plugin 'Wrong' is invalid") as raised:
        manager.register(Wrong())
    assert str(id(raised.value.__cause__.plugin)) not in str(raised.value)  # type: ignore[union-attr]
    assert "Plugin 'Wrong' for hook 'statefun_batch_started'" in str(raised.value)


def test_a_plugin_with_a_hook_that_does_not_exist_is_named_by_its_class() -> None:
    from statefun_core.plugins import hookimpl

    class Misspelt:
        @hookimpl
        def statefun_batch_strted(self, batch: object) -> None:
            pass

    with pytest.raises(PluginError) as raised:
        make_plugin_manager([Misspelt()], load_entrypoints=False)
    assert str(raised.value).startswith(
        "statefun plugin 'Misspelt' is invalid: unknown hook 'statefun_batch_strted' in plugin "
        "'Misspelt'"
    )
    assert " object at 0x" not in str(raised.value)


def test_a_hook_function_not_marked_hookimpl_is_a_plugin_error() -> None:
    import pluggy

    class Unmarked:
        def statefun_batch_finished(self, batch: object) -> None:
            pass

    class OtherMarker:
        @pluggy.HookimplMarker("statefun_core")
        def statefun_batch_finished(self, batch: object) -> None:
            pass

    for plugin in (Unmarked(), OtherMarker()):
        with pytest.raises(
            PluginError, match="statefun_batch_finished is not marked @hookimpl"
        ) as raised:
            make_plugin_manager([plugin], load_entrypoints=False)
        assert type(plugin).__name__ in str(raised.value)
    manager = make_plugin_manager(load_entrypoints=False)
    with pytest.raises(PluginError, match="plugin 'late' is invalid"):
        manager.register(Unmarked(), name="late")
    assert manager.get_plugin("late") is None


def test_an_async_hook_is_a_plugin_error() -> None:
    from statefun_core.plugins import hookimpl

    class Awaits:
        @hookimpl
        async def statefun_batch_finished(self, batch: object) -> None:
            pass

    with pytest.raises(
        PluginError, match="'Awaits' is invalid: statefun_batch_finished is async, so it would"
    ):
        make_plugin_manager([Awaits()], load_entrypoints=False)

    class AwaitsUnderAnotherName:
        @hookimpl(specname="statefun_batch_started")
        async def on_start(self, batch: object) -> None:
            pass

    with pytest.raises(PluginError, match="statefun_batch_started is async"):
        make_plugin_manager([AwaitsUnderAnotherName()], load_entrypoints=False)


def test_a_wrapper_of_a_request_hook_is_a_plugin_error() -> None:
    from statefun_core.plugins import hookimpl

    class Wraps:
        @hookimpl(wrapper=True)
        def statefun_batch_finished(self, batch: object) -> Iterator[None]:
            raise RuntimeError("a wrapper's error would fail the request")
            yield

    class OldStyle:
        @hookimpl(hookwrapper=True)
        def statefun_batch_started(self, batch: object) -> Iterator[None]:
            yield
            raise RuntimeError("a wrapper's error would fail the request")

    for plugin, hook in (
        (Wraps(), "statefun_batch_finished"),
        (OldStyle(), "statefun_batch_started"),
    ):
        with pytest.raises(PluginError, match=f"is invalid: {hook} is a wrapper;"):
            make_plugin_manager([plugin], load_entrypoints=False)


def test_a_class_given_for_its_instance_is_a_plugin_error(site: Path) -> None:
    module = (
        "from statefun_core.plugins import hookimpl\n"
        "class Counter:\n"
        "    @hookimpl\n"
        "    def statefun_batch_finished(self, batch):\n"
        "        pass\n"
    )
    install_distribution(
        site, "fake-counter", {"counter": "fake_counter:Counter"}, {"fake_counter": module}
    )
    with pytest.raises(
        PluginError, match=r"^statefun plugin 'counter' is a class, so pluggy would call"
    ):
        make_plugin_manager()

    from statefun_core.plugins import hookimpl

    class Static:  # a class whose hooks need no instance is a plugin as it is
        @staticmethod
        @hookimpl
        def statefun_batch_finished(batch: object) -> None:
            pass

    assert make_plugin_manager([Static], load_entrypoints=False).is_registered(Static)


def test_a_class_whose_hooks_take_no_self_is_a_plugin_as_a_module_is() -> None:
    from statefun_core.plugins import hookimpl

    seen: list[object] = []

    class Namespace:  # pluggy calls its functions with the hook's arguments only
        @hookimpl
        def statefun_batch_started(batch: object) -> None:  # type: ignore[misc]
            seen.append(batch)

    manager = make_plugin_manager([Namespace], load_entrypoints=False)
    manager.hook.statefun_batch_started(batch="the batch")
    assert seen == ["the batch"]
