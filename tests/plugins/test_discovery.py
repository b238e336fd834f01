"""Installed plugins are found through their real entry points, and can be blocked.

Needs the example plugin installed (``pip install -e examples/plugin``; the nox sessions do).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from statefun_core import (
    Context,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    ValueSpec,
    make_plugin_manager,
)
from statefun_core.errors import PluginError, UnknownTypeError
from statefun_core.testing.wire import mutations, to_function, typed_value

from .recorder import Recorder

EXAMPLE = "slow-batches"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATEFUN_DISABLED_PLUGINS", raising=False)
    monkeypatch.delenv("STATEFUN_DISABLE_PLUGIN_AUTOLOAD", raising=False)


def test_an_installed_plugin_is_loaded_by_its_entry_point() -> None:
    import statefun_slow_batches

    assert make_plugin_manager().get_plugin(EXAMPLE) is statefun_slow_batches


def test_an_installed_plugin_given_explicitly_too_is_registered_once() -> None:
    import statefun_slow_batches

    manager = make_plugin_manager([statefun_slow_batches])
    assert [p for p in manager.get_plugins() if p is statefun_slow_batches] == [
        statefun_slow_batches
    ]


def test_a_handler_loads_installed_plugins_by_default() -> None:
    from statefun_slow_batches import DECIMAL

    functions = StatefulFunctions()

    @functions.bind("bank/account", specs=[ValueSpec("balance", type=Decimal)])
    def account(context: Context, message: Message) -> None:
        context.storage.balance = Decimal("1.50")

    data = RequestReplyHandler(functions).handle_sync(
        to_function("bank/account", "a", [typed_value(DECIMAL, Decimal(1))], {"balance": None})
    )
    assert mutations(data)["balance"].value == b"1.50"


def test_statefun_disabled_plugins_blocks_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATEFUN_DISABLED_PLUGINS", f"someother , {EXAMPLE}")
    manager = make_plugin_manager()
    assert manager.get_plugin(EXAMPLE) is None
    assert manager.is_blocked(EXAMPLE)


def test_a_disabled_name_no_installed_plugin_has_is_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("STATEFUN_DISABLED_PLUGINS", "slow_batches, health")
    with caplog.at_level(logging.WARNING, logger="statefun_core.plugins"):
        manager = make_plugin_manager()
    assert manager.get_plugin(EXAMPLE) is not None  # the misspelt name blocked nothing
    (warning,) = caplog.records
    assert warning.getMessage().startswith(
        "STATEFUN_DISABLED_PLUGINS names 'slow_batches', which no installed plugin is called, "
        "so it blocks nothing; the installed plugins are: "
    )
    assert "slow-batches" in warning.getMessage()
    caplog.clear()
    monkeypatch.setenv("STATEFUN_DISABLED_PLUGINS", EXAMPLE)
    make_plugin_manager()
    make_plugin_manager(load_entrypoints=False, blocked=["not-installed"])
    assert caplog.records == []


def test_disabled_plugins_are_listed_in_the_order_given(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ["h", "c", "a", "g", "b", "f", "e", "d"]  # a set's order would rarely be this one
    monkeypatch.setenv("STATEFUN_DISABLED_PLUGINS", ",".join([*names[4:], "h"]))
    manager = make_plugin_manager(blocked=names[:4], load_entrypoints=False)
    assert manager.disabled == names


def test_a_state_of_a_disabled_type_plugin_fails_when_the_handler_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STATEFUN_DISABLED_PLUGINS", EXAMPLE)
    functions = StatefulFunctions()

    @functions.bind("bank/account", specs=[ValueSpec("balance", type=Decimal)])
    def account(context: Context, message: Message) -> None:
        pass

    with pytest.raises(UnknownTypeError) as raised:
        RequestReplyHandler(functions)
    assert str(raised.value) == (
        "function 'bank/account', state 'balance': no StateFun type is known for "
        "decimal.Decimal; give its Type (ValueSpec(type=...), value_type=...), or install a "
        "type plugin for it; "
        "disabled plugins: slow-batches (STATEFUN_DISABLED_PLUGINS)"
    )


def test_a_state_nobody_resolves_says_whether_installed_plugins_were_loaded() -> None:
    class Unknown:
        pass

    functions = StatefulFunctions()
    functions.register("bank/account", lambda c, m: None, [ValueSpec("balance", type=Unknown)])
    with pytest.raises(UnknownTypeError, match=r"installed plugins were not loaded"):
        RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    with pytest.raises(UnknownTypeError, match=r"no plugin is disabled$"):
        RequestReplyHandler(functions, plugins=make_plugin_manager())


def test_a_function_bound_after_the_handler_is_built_fails_at_the_bind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STATEFUN_DISABLED_PLUGINS", EXAMPLE)
    functions = StatefulFunctions()
    handler = RequestReplyHandler(functions)
    with pytest.raises(UnknownTypeError, match=r"'bank/late', state 'balance'.*slow-batches"):
        functions.register("bank/late", lambda c, m: None, [ValueSpec("balance", type=Decimal)])
    assert "bank/late" not in functions
    del handler


def test_blocked_blocks_by_name() -> None:
    assert make_plugin_manager(blocked=[EXAMPLE]).get_plugin(EXAMPLE) is None


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", " Yes ", "on"])
def test_statefun_disable_plugin_autoload_loads_only_explicit_plugins(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("STATEFUN_DISABLE_PLUGIN_AUTOLOAD", value)
    recorder = Recorder()
    manager = make_plugin_manager([recorder])
    assert manager.get_plugin(EXAMPLE) is None
    assert manager.is_registered(recorder)


def test_load_entrypoints_false_loads_only_explicit_plugins() -> None:
    assert make_plugin_manager(load_entrypoints=False).get_plugin(EXAMPLE) is None


def install_fake_distribution(tmp_path: Path, name: str, entry_point: str, module: str) -> None:
    """A real installed distribution: a dist-info with an entry point, on sys.path."""
    dist_info = tmp_path / f"{name}-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(f"[statefun]\n{entry_point}\n")
    (tmp_path / f"{name}.py").write_text(module)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("fake_")]:
        del sys.modules[name]


def test_a_plugin_that_fails_to_import_is_named(site: Path) -> None:
    install_fake_distribution(
        site, "fake_broken", "broken = fake_broken", "raise ImportError('no such thing')\n"
    )
    with pytest.raises(PluginError, match=r"'broken' \(fake_broken\) failed to load") as raised:
        make_plugin_manager()
    assert str(raised.value).endswith(
        "failed to load: ImportError: no such thing; to start without it, set "
        "STATEFUN_DISABLED_PLUGINS=broken or uninstall its package"
    )
    assert make_plugin_manager(blocked=["broken"]).get_plugin("broken") is None


def test_a_plugin_with_an_unknown_hook_is_named(site: Path) -> None:
    module = (
        "from statefun_core.plugins import hookimpl\n"
        "@hookimpl\n"
        "def statefun_no_such_hook():\n"
        "    pass\n"
    )
    install_fake_distribution(site, "fake_typo", "typo = fake_typo", module)
    with pytest.raises(PluginError, match="statefun_no_such_hook"):
        make_plugin_manager()


def test_two_installed_plugins_with_one_name_are_a_plugin_error(site: Path) -> None:
    install_fake_distribution(site, "fake_one", "same = fake_one", "")
    install_fake_distribution(site, "fake_two", "same = fake_two", "")
    with pytest.raises(
        PluginError, match="two installed statefun plugins are named 'same': "
    ) as raised:
        make_plugin_manager()
    assert "(fake_one)" in str(raised.value) and "(fake_two)" in str(raised.value)
    assert make_plugin_manager(blocked=["same"]).get_plugin("same") is None  # neither loads
