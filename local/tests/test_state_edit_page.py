"""Editing an address's state from the web page, in a real headless Chromium driven over the
DevTools protocol, against a real runtime: a value set through the page is the one the function
reads, a refused one changes nothing and says why, and a delete asks first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from statefun_local import LocalRuntime, parse_module

from statefun_core import Context, IntType, LongType, Message, StatefulFunctions, ValueSpec
from statefun_core.engine import Address

from .browser import CHROMIUM, Page, chromium
from .conftest import module_yaml, run, serving
from .test_server_and_cli import serve_runtime
from .test_state_edit import COUNTER, counter_functions, string
from .test_stuck import HeldServer

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")

TARGET = Address(COUNTER, "a")
#: The edit form is shown.
EDITING = "!document.getElementById('edit').hidden"


def click(name: str, label: str) -> str:
    """Click the button ``label`` (``edit``, ``delete``, ``set``) in the row of the state
    ``name``."""
    return f"""[...document.getElementById('state').rows]
        .find(r => r.cells[0].textContent === {json.dumps(name)})
        .querySelector('.{label}-state').click(); true"""


def on_state_button(label: str, name: str) -> str:
    """Whether the focus is on the button ``label`` (Edit, Set, Delete) of the state ``name``."""
    return f"document.activeElement.getAttribute('aria-label') === {json.dumps(f'{label} {name}')}"


async def set_value(page: Page, name: str, text: str, button: str = "edit") -> None:
    """Edit the state ``name`` (by its ``button``, ``edit`` or ``set``): its value typed as
    ``text``, then Save clicked; until it is done or refused."""
    await page.evaluate(click(name, button))
    await page.wait_for(EDITING)
    await page.evaluate(
        f"document.getElementById('edit-value').value = {json.dumps(text)};"
        "document.getElementById('edit-save').click(); true"
    )
    # done: the form closed, once the state view is redrawn; refused: the reason shown
    await page.wait_for(
        f"!({EDITING}) || document.getElementById('state-problem').className === 'error'"
    )


def values(runtime: LocalRuntime, target: Address = TARGET) -> dict[str, Any]:
    return {name: e["value"] for name, e in runtime.inspect(target)["state"].items()}


def test_the_page_edits_a_state_the_function_reads_and_refuses_what_can_not_be_set(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with HeldServer(counter_functions()) as server:
            module = parse_module(module_yaml(server.url, call="60s"))
            async with LocalRuntime(
                module, tmp_path / "db.sqlite", failure_pause=0.05, offline=True
            ) as runtime:
                runner, url = await serve_runtime(runtime)
                try:
                    await runtime.send(TARGET, string("1"))
                    await runtime.wait_until_idle()
                    runtime.edit_state(TARGET, {"profile": {"json": {"name": "Bo"}}}, [], "me")
                    async with chromium(tmp_path / "profile") as page:
                        await page.goto(f"{url}/#address={TARGET}")
                        # count, seen and profile, and greeting without a value
                        await page.wait_for("document.getElementById('state').rows.length === 4")
                        assert not await page.evaluate(EDITING)

                        await page.evaluate(click("count", "edit"))
                        await page.wait_for(EDITING)
                        assert await page.text("#edit-label") == (
                            "New value of count (io.statefun.types/int), as JSON:"
                        )
                        assert await page.evaluate("document.activeElement.id") == "edit-value"
                        assert await page.evaluate("document.activeElement.value") == "1"
                        await page.evaluate("document.getElementById('edit-cancel').click()")
                        assert not await page.evaluate(EDITING)
                        assert await page.evaluate("document.activeElement.className") == (
                            "edit-state"
                        )

                        await set_value(page, "count", "99")
                        assert await page.text("#state-problem") == (
                            f"{TARGET}: set count = 99 (was 1)"
                        )
                        assert await page.evaluate("document.getElementById('state-problem')"
                                                   ".className") == ""  # fmt: skip
                        assert values(runtime)["count"] == 99
                        assert not await page.evaluate(EDITING)
                        # the state view shows it at once (the page polls only every second)
                        assert ["count", "99"] in [r[:2] for r in await page.rows("state")]
                        await runtime.send(TARGET, string("2"))
                        await runtime.wait_until_idle()
                        assert values(runtime)["seen"] == 99  # the function read it

                        # a type whose values are JSON text: edited as shown, without {"json"}
                        await page.evaluate(click("profile", "edit"))
                        await page.wait_for(EDITING)
                        assert (
                            await page.evaluate("document.getElementById('edit-value').value")
                            == '{"name":"Bo"}'
                        )
                        await set_value(page, "profile", '{"name": "Cy"}')
                        assert values(runtime)["profile"] == {"json": {"name": "Cy"}}
                        await runtime.send(TARGET, string("3"))
                        await runtime.wait_until_idle()
                        assert values(runtime)["greeting"] == "hi Cy"
                        assert len(runtime.audit_log()) == 3

                        # refused: the reason shown, the form kept to fix it, nothing changed
                        for text, reason in [
                            ("1.5", f"set count of {TARGET}: state 'count' "
                                    "(io.statefun.types/int): 1.5 is not a valid "
                                    "io.statefun.types/int"),
                            ('"x"', "is not a valid io.statefun.types/int"),
                            ("abc", 'give the value as JSON (a string in "quotes")'),
                        ]:  # fmt: skip
                            await set_value(page, "count", text)
                            assert reason in await page.text("#state-problem"), text
                            assert await page.evaluate("document.getElementById('state-problem')"
                                                       ".className") == "error"  # fmt: skip
                            assert await page.evaluate(EDITING)
                            assert (
                                await page.evaluate("document.getElementById('edit-value').value")
                                == text
                            )
                            assert await page.evaluate("document.getElementById('edit-value')"
                                                       ".ariaInvalid") == "true"  # fmt: skip
                        # while a call to the address is in progress: refused (409)
                        await runtime.send(TARGET, string("4"))
                        await server.hold_next()
                        await set_value(page, "count", "5")
                        assert "a batch of it is being called" in await page.text("#state-problem")
                        server.release_all()
                        await runtime.wait_until_idle()
                        assert (values(runtime)["count"], values(runtime)["seen"]) == (102, 101)
                        assert len(runtime.audit_log()) == 3

                        # a bidi control is shown as its JSON escape, which stands for it
                        runtime.edit_state(TARGET, {"greeting": "<b>\u202ehi"}, [], "me")
                        await page.wait_for("document.getElementById('state').innerText"
                                            ".includes('<b>\\\\u202ehi')")  # fmt: skip
                        await page.evaluate(click("greeting", "edit"))
                        await page.wait_for(EDITING)
                        shown = await page.evaluate("document.getElementById('edit-value').value")
                        assert shown == '"<b>\\u202ehi"'
                        await page.evaluate("document.getElementById('edit-save').click()")
                        await page.wait_for(f"!({EDITING})")
                        assert values(runtime)["greeting"] == "<b>\u202ehi"
                        assert await page.evaluate("window.ran ?? 'none'") == "none"

                        audit = runtime.audit_log()  # the latest first
                        assert [(e["by"], e["detail"]) for e in audit] == [
                            ("page", 'set greeting = "<b>\u202ehi" (was "<b>\u202ehi")'),
                            ("me", 'set greeting = "<b>\u202ehi" (was "hi Cy")'),
                            ("page", 'set profile = {"json": {"name": "Cy"}} '
                                     '(was {"json": {"name": "Bo"}})'),
                            ("page", "set count = 99 (was 1)"),
                            ("me", 'set profile = {"json": {"name": "Bo"}} (it had no value)'),
                        ]  # fmt: skip
                finally:
                    await runner.cleanup()

    run(scenario())


def test_the_page_deletes_a_state_once_asked_naming_its_value(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with HeldServer(counter_functions()) as server:
            module = parse_module(module_yaml(server.url, call="60s"))
            async with LocalRuntime(
                module, tmp_path / "db.sqlite", failure_pause=0.05, offline=True
            ) as runtime:
                runner, url = await serve_runtime(runtime)
                try:
                    for message in ("1", "2"):
                        await runtime.send(TARGET, string(message))
                    await runtime.wait_until_idle()
                    async with chromium(tmp_path / "profile") as page:
                        await page.goto(f"{url}/#address={TARGET}")
                        await page.wait_for("document.getElementById('state').rows.length === 4")
                        asking = "document.getElementById('confirm').open"
                        for answer in ("confirm-cancel", "confirm-yes"):
                            await page.evaluate(click("seen", "delete"))
                            await page.wait_for(asking)
                            assert await page.text("#confirm-title") == (
                                f"Delete state seen of {TARGET}?"
                            )
                            assert await page.text("#confirm-text") == (
                                "Its value 1 [io.statefun.types/int] is deleted for good: its "
                                "function finds no value at its next call."
                            )
                            assert await page.text("#confirm-yes") == "Delete seen"
                            assert await page.evaluate("document.activeElement.id") == (
                                "confirm-cancel"
                            )
                            assert values(runtime) == {"count": 2, "seen": 1}, answer
                            await page.evaluate(f"document.getElementById('{answer}').click()")
                            await page.wait_for(f"!{asking}")

                        # declared, the state stays in the table, without a value: the focus
                        # on its Set button
                        await page.wait_for(on_state_button("Set", "seen"))
                        assert ["seen", "(no value)"] in [r[:2] for r in await page.rows("state")]
                        assert values(runtime) == {"count": 2}
                        assert await page.text("#state-problem") == (
                            f"{TARGET}: deleted seen (was 1)"
                        )
                        [entry] = runtime.audit_log()
                        assert (entry["action"], entry["by"]) == ("edit-state", "page")
                        await page.wait_for("document.getElementById('audit').innerText"
                                            ".includes('deleted seen (was 1)')")  # fmt: skip

                finally:
                    await runner.cleanup()

    run(scenario())


def test_the_page_sets_a_state_the_function_declares_that_the_address_has_no_value_of(
    tmp_path: Path,
) -> None:
    """The state table showed only the values an address holds: a state its function declares
    could be set before the address's first message, or after a delete, by the CLI and the API
    only. Each is a row without a value now, whose Set opens the edit form."""
    target = Address(COUNTER, "new")

    async def scenario() -> None:
        async with serving(counter_functions(), tmp_path / "db.sqlite") as (_, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                await runtime.send(Address(COUNTER, "other"), string("1"))  # declares its states
                await runtime.wait_until_idle()
                async with chromium(tmp_path / "profile") as page:
                    await page.goto(f"{url}/#address={target}")
                    await page.wait_for("document.getElementById('state').rows.length === 4")
                    assert await page.rows("state") == [
                        [name, "(no value)", typename, "", "Set"]
                        for name, typename in [
                            ("count", "io.statefun.types/int"),
                            ("greeting", "io.statefun.types/string"),
                            ("profile", "com.example/Profile"),
                            ("seen", "io.statefun.types/int"),
                        ]
                    ]

                    await page.evaluate(click("count", "set"))
                    await page.wait_for(EDITING)
                    assert await page.text("#edit-label") == (
                        "Value of count (io.statefun.types/int), as JSON:"
                    )
                    assert await page.evaluate("document.activeElement.id") == "edit-value"
                    assert await page.evaluate("document.activeElement.value") == ""
                    await page.evaluate("document.getElementById('edit-cancel').click()")
                    assert not await page.evaluate(EDITING)
                    assert await page.evaluate(on_state_button("Set", "count"))

                    # refused as an edit is: the reason shown, the form kept, nothing set
                    for text, reason in [
                        ("", 'give the value as JSON (a string in "quotes")'),
                        ("1.5", f"set count of {target}: state 'count' (io.statefun.types/int): "
                                "1.5 is not a valid io.statefun.types/int"),
                    ]:  # fmt: skip
                        await set_value(page, "count", text, "set")
                        assert reason in await page.text("#state-problem"), text
                        assert await page.evaluate("document.getElementById('state-problem')"
                                                   ".className") == "error"  # fmt: skip
                        assert await page.evaluate(EDITING)
                        assert await page.evaluate("document.getElementById('edit-value')"
                                                   ".ariaInvalid") == "true"  # fmt: skip
                    assert runtime.inspect(target)["state"] == {}

                    await set_value(page, "count", "41", "set")
                    assert await page.text("#state-problem") == (
                        f"{target}: set count = 41 (it had no value)"
                    )
                    # the value shown at once, the focus on the state's Edit button
                    assert ["count", "41", "io.statefun.types/int", "", "EditDelete"] in (
                        await page.rows("state")
                    )
                    assert await page.evaluate(on_state_button("Edit", "count"))

                    # a type not built in: given as the API takes it, {"json": ...}
                    await page.evaluate(click("profile", "set"))
                    await page.wait_for(EDITING)
                    assert await page.text("#edit-label") == (
                        'Value of profile (com.example/Profile), as JSON: {"json": VALUE} if '
                        'its values are JSON text, else {"base64": "its bytes"}:'
                    )
                    await set_value(page, "profile", '{"name": "Bo"}', "set")
                    assert "whose encoding this runtime does not know" in (
                        await page.text("#state-problem")
                    )
                    await set_value(page, "profile", '{"json": {"name": "Bo"}}', "set")
                    assert ["profile", '{"name":"Bo"}'] in [r[:2] for r in await page.rows("state")]
                    await runtime.send(target, string("1"))
                    await runtime.wait_until_idle()
                    assert values(runtime, target) == {
                        "count": 42, "seen": 41, "profile": {"json": {"name": "Bo"}},
                        "greeting": "hi Bo"}  # fmt: skip

                    # deleted, a declared state is back without a value, the focus on its Set
                    await page.wait_for("document.getElementById('state').innerText"
                                        ".includes('hi Bo')")  # fmt: skip
                    await page.evaluate(click("seen", "delete"))
                    await page.wait_for("document.getElementById('confirm').open")
                    await page.evaluate("document.getElementById('confirm-yes').click()")
                    await page.wait_for(on_state_button("Set", "seen"))
                    assert ["seen", "(no value)", "io.statefun.types/int", "", "Set"] in (
                        await page.rows("state")
                    )
                    assert await page.text("#state-problem") == f"{target}: deleted seen (was 41)"
                    assert [(e["by"], e["detail"]) for e in runtime.audit_log()] == [
                        ("page", "deleted seen (was 41)"),
                        ("page", 'set profile = {"json": {"name": "Bo"}} (it had no value)'),
                        ("page", "set count = 41 (it had no value)"),
                    ]
            finally:
                await runner.cleanup()

    run(scenario())


def test_a_long_beyond_what_a_javascript_number_holds_is_shown_and_edited_as_it_is(
    tmp_path: Path,
) -> None:
    """JavaScript's numbers round a whole number beyond 2^53: a long state was shown rounded,
    and saved unchanged from the page, it would have been set to the rounded value."""
    functions = StatefulFunctions()
    seen: list[int] = []

    @functions.bind("com.example/big", specs=[ValueSpec("id", LongType)])
    def big(context: Context, message: Message) -> None:
        seen.append(context.storage.id)

    target = Address("com.example/big", "a")
    exact = 2**62 + 1  # 4611686018427387905; as a JavaScript number 4611686018427387904

    async def scenario() -> None:
        async with serving(functions, tmp_path / "db.sqlite") as (_, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                await runtime.send(target, string("declare"))
                await runtime.wait_until_idle()
                runtime.edit_state(target, {"id": exact}, [], "me")
                async with chromium(tmp_path / "profile") as page:
                    await page.goto(f"{url}/#address={target}")
                    await page.wait_for("document.getElementById('state').rows.length")
                    assert (await page.rows("state"))[0][:2] == ["id", str(exact)]
                    await page.evaluate(click("id", "edit"))
                    await page.wait_for(EDITING)
                    assert await page.evaluate("document.activeElement.value") == str(exact)
                    await page.evaluate("document.getElementById('edit-save').click()")
                    await page.wait_for(f"!({EDITING})")
                    assert runtime.inspect(target)["state"]["id"]["value"] == exact
                    await set_value(page, "id", str(2**63 - 1))
                    assert await page.text("#state-problem") == (
                        f"{target}: set id = {2**63 - 1} (was {exact})"
                    )
                await runtime.send(target, string("read"))
                await runtime.wait_until_idle()
                assert seen == [None, 2**63 - 1]
            finally:
                await runner.cleanup()

    run(scenario())


def test_a_state_no_longer_declared_can_be_deleted_from_the_page_not_set(tmp_path: Path) -> None:
    """Its function redeployed without it, a stored state can not be set (its type is not
    declared): its row has no Edit button, only Delete, which removes it."""
    db = tmp_path / "db.sqlite"
    target = Address("com.example/fn", "a")

    def declaring(name: str) -> StatefulFunctions:
        functions = StatefulFunctions()

        @functions.bind("com.example/fn", specs=[ValueSpec(name, IntType)])
        def fn(context: Context, message: Message) -> None:
            setattr(context.storage, name, 1)

        return functions

    async def scenario() -> None:
        async with serving(declaring("old"), db) as (_, runtime):
            await runtime.send(target, string("1"))
            await runtime.wait_until_idle()
        async with serving(declaring("new"), db) as (_, runtime):
            await runtime.send(target, string("1"))
            await runtime.wait_until_idle()
            runner, url = await serve_runtime(runtime)
            try:
                async with chromium(tmp_path / "profile") as page:
                    await page.goto(f"{url}/#address={target}")
                    await page.wait_for("document.getElementById('state').rows.length === 2")
                    assert await page.rows("state") == [
                        ["new", "1", "io.statefun.types/int", "", "EditDelete"],
                        ["old", "1", "io.statefun.types/int", "no longer declared", "Delete"],
                    ]
                    await page.evaluate(click("old", "delete"))
                    await page.wait_for("document.getElementById('confirm').open")
                    await page.evaluate("document.getElementById('confirm-yes').click()")
                    await page.wait_for("document.activeElement.id === 'state-problem'")
                    assert await page.text("#state-problem") == f"{target}: deleted old (was 1)"
                assert list(runtime.inspect(target)["state"]) == ["new"]
            finally:
                await runner.cleanup()

    run(scenario())


#: Holds the page's answers to GET api/state while ``window.holding``, each with the number of
#: the redraw (``browse()``) that asked; ``window.views``: the states drawn, in order (each
#: ``name=value``);
#: ``window.browsed``: the numbers of the redraws that have ended; ``window.titles``: the
#: browser's title as each ended.
HOLD_ANSWERS = """
window.holding = false; window.held = []; window.views = []; window.browsed = [];
window.titles = {};
let asking = 0, started = 0;
const realBrowse = browse, realFetch = window.fetch;
window.browse = () => {
  const n = asking = ++started;
  return realBrowse().finally(() => {
    window.titles[n] = document.title;
    window.browsed.push(n);
  });
};
window.fetch = async (url, init) => {
  const n = asking, hold = window.holding && String(url).startsWith("api/state") && !init;
  const response = await realFetch(url, init);
  if (hold) await new Promise(release => window.held.push({n, release}));
  return response;
};
new MutationObserver(() => window.views.push(
  [...document.getElementById("state").rows]
    .map(r => `${r.cells[0].textContent}=${r.cells[1].textContent}`).join(",")))
  .observe(document.getElementById("state"), {childList: true, subtree: true});
true
"""


def test_a_view_asked_for_before_a_delete_and_answered_after_a_newer_one_is_not_drawn(
    tmp_path: Path,
) -> None:
    """The page asks for the address every second: an answer that comes after a later one
    (slow, or held here) drew the deleted state back, over the newer view, until the next."""

    async def scenario() -> None:
        async with HeldServer(counter_functions()) as server:
            module = parse_module(module_yaml(server.url, call="60s"))
            async with LocalRuntime(
                module, tmp_path / "db.sqlite", failure_pause=0.05, offline=True
            ) as runtime:
                runner, url = await serve_runtime(runtime)
                try:
                    for message in ("1", "2"):
                        await runtime.send(TARGET, string(message))
                    await runtime.wait_until_idle()
                    async with chromium(tmp_path / "profile") as page:
                        await page.goto(f"{url}/#address={TARGET}")
                        await page.wait_for("document.getElementById('state').rows.length === 4")
                        await page.evaluate(HOLD_ANSWERS)
                        await page.evaluate("window.holding = true")
                        [held] = await page.wait_for(
                            "window.held.length === 1 && window.held.map(h => h.n)"
                        )
                        await page.evaluate("window.holding = false")
                        runtime.edit_state(TARGET, {}, ["seen"], "me")
                        before = "count=2,greeting=(no value),profile=(no value),seen=1"
                        after = before.replace("seen=1", "seen=(no value)")
                        await page.wait_for(f"window.views.includes({json.dumps(after)})")
                        await page.evaluate("window.held[0].release(); true")
                        await page.wait_for(f"window.browsed.includes({held})")
                        views = await page.evaluate("window.views")
                        assert before not in views[views.index(after) :], views
                        assert ["seen", "(no value)", "io.statefun.types/int", "", "Set"] in (
                            await page.rows("state")
                        )
                finally:
                    await runner.cleanup()

    run(scenario())


def test_an_answer_asked_for_before_the_page_left_the_address_is_not_drawn(
    tmp_path: Path,
) -> None:
    """Back to the page's start (nothing in its address to show) while an answer about the
    address was on its way: drawn when it came, it named the address left in the browser's
    title (and filled its hidden view), until the next redraw."""

    async def scenario() -> None:
        async with serving(counter_functions(), tmp_path / "db.sqlite") as (_, runtime):
            runner, url = await serve_runtime(runtime)
            try:
                await runtime.send(TARGET, string("1"))
                await runtime.wait_until_idle()
                async with chromium(tmp_path / "profile") as page:
                    await page.goto(f"{url}/#address={TARGET}")
                    await page.wait_for(f"document.title === '{TARGET} · statefun-local'")
                    await page.evaluate(HOLD_ANSWERS)
                    await page.evaluate("window.holding = true")
                    [held] = await page.wait_for(
                        "window.held.length === 1 && window.held.map(h => h.n)"
                    )
                    await page.evaluate("window.holding = false; location.hash = ''; true")
                    await page.wait_for("document.getElementById('browse-box').hidden && "
                                        "document.title === 'statefun-local'")  # fmt: skip
                    await page.evaluate("window.held[0].release(); true")
                    await page.wait_for(f"window.browsed.includes({held})")
                    assert await page.evaluate(f"window.titles[{held}]") == "statefun-local"
            finally:
                await runner.cleanup()

    run(scenario())
