"""The web page for a keyboard and screen-reader user, in a real headless Chromium against a
real runtime: landmarks, headers, contrast, names, focus, and keys pressed as a person would
(``Input.dispatchKeyEvent``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from statefun_local import LocalRuntime, make_value

from statefun_core import Context, IntType, Message, StatefulFunctions, ValueSpec
from statefun_core.engine import Address

from .browser import CHROMIUM, Page, chromium
from .conftest import run, serving
from .test_server_and_cli import serve_runtime
from .test_stuck import FRAGILE, POISON
from .test_stuck_page import until_waiting

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")

STUCK = Address(FRAGILE, "x")


def counting_functions() -> StatefulFunctions:
    """``com.example/fragile`` counts its messages; one starting with ``poison`` fails."""
    functions = StatefulFunctions()

    @functions.bind(FRAGILE, specs=[ValueSpec("count", IntType)])
    def fragile(context: Context, message: Message) -> None:
        if (message.as_string() or "").startswith(POISON):
            raise RuntimeError("cannot digest it")
        context.storage.count = (context.storage.count or 0) + 1

    return functions


@contextlib.asynccontextmanager
async def page_with_a_stuck_address(
    tmp_path: Path,
) -> AsyncIterator[tuple[Page, LocalRuntime, str]]:
    """The page of a runtime where ``fragile/ok`` has state and ``fragile/x`` is stuck."""
    async with serving(counting_functions(), tmp_path / "db.sqlite", call="300ms",
                       failure_pause=30) as (_, runtime):  # fmt: skip
        runner, url = await serve_runtime(runtime)
        try:
            await runtime.send(Address(FRAGILE, "ok"), make_value("string", "fine"))
            await runtime.wait_until_idle()
            await runtime.send(STUCK, make_value("string", POISON))
            async with chromium(tmp_path / "profile") as page:
                await page.goto(f"{url}/#address={FRAGILE}/ok")
                await page.wait_for("document.querySelectorAll('#stuck tr').length === 1")
                await page.wait_for("document.getElementById('state').innerText"
                                    ".includes('count')")  # fmt: skip
                yield page, runtime, url
        finally:
            await runner.cleanup()


async def ax_nodes(page: Page, role: str) -> list[dict[str, Any]]:
    """The accessibility tree's nodes of ``role`` (hidden elements are not in it)."""
    tree = await page.command("Accessibility.getFullAXTree")
    return [
        node
        for node in tree["nodes"]
        if not node.get("ignored") and node.get("role", {}).get("value") == role
    ]


def name(node: dict[str, Any]) -> str:
    return str(node.get("name", {}).get("value", ""))


def live(node: dict[str, Any]) -> str:
    """How a screen reader reads out a change of ``node`` (``polite``: when it is idle)."""
    return str({p["name"]: p["value"]["value"] for p in node["properties"]}["live"])


#: The contrast of each piece of text against the background it is drawn on (WCAG 2 relative
#: luminance), for the text nodes shown: [ratio, the text, its colour, the background].
CONTRASTS = """(() => {
  const rgb = s => s.match(/[\\d.]+/g).map(Number);
  const channel = c => (c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  function background(element) {
    for (let e = element; e; e = e.parentElement) {
      const colour = rgb(getComputedStyle(e).backgroundColor);
      if (colour.length < 4 || colour[3] > 0) return colour.slice(0, 3);
    }
    return [255, 255, 255];
  }
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const found = [];
  for (let node; (node = walker.nextNode());) {
    const element = node.parentElement;
    if (!node.textContent.trim() || !element.checkVisibility() || element.closest("script"))
      continue;
    const fore = rgb(getComputedStyle(element).color).slice(0, 3), back = background(element);
    const [light, dark] = [luminance(fore), luminance(back)].sort((a, b) => b - a);
    found.push([(light + 0.05) / (dark + 0.05), node.textContent.trim().slice(0, 40),
                fore.join(","), back.join(",")]);
  }
  return found;
})()"""


def test_every_text_is_readable_and_every_part_in_a_landmark_and_every_column_named(
    tmp_path: Path,
) -> None:
    """axe-core's findings: grey text at 3.5:1 (small text needs 4.5:1), content outside any
    landmark, and columns (actions, kinds) whose header said nothing to a screen reader."""

    async def scenario() -> None:
        async with page_with_a_stuck_address(tmp_path) as (page, _, _):
            for scheme in ("light", "dark"):
                await page.command("Emulation.setEmulatedMedia", features=[
                    {"name": "prefers-color-scheme", "value": scheme}])  # fmt: skip
                contrasts = await page.evaluate(CONTRASTS)
                assert any(text.startswith("module") for _, text, _, _ in contrasts)
                assert [c for c in contrasts if c[0] < 4.5] == []

            outside = await page.evaluate(
                "[...document.body.children].filter(e => !['HEADER', 'MAIN', 'SCRIPT']"
                ".includes(e.tagName)).map(e => e.outerHTML.slice(0, 60))"
            )
            assert outside == []
            assert [name(n) for n in await ax_nodes(page, "main")] == [""]
            assert len(await ax_nodes(page, "banner")) == 1

            headers = [name(n) for n in await ax_nodes(page, "columnheader")]
            assert "actions" in headers and "notes" in headers  # stuck and state tables shown
            assert "" not in headers

    run(scenario())


KEYS = {
    "Tab": ("Tab", 9, ""),
    "Enter": ("Enter", 13, "\r"),
    " ": ("Space", 32, " "),
    "Escape": ("Escape", 27, ""),
    "Backspace": ("Backspace", 8, ""),
}


async def press(page: Page, key: str) -> None:
    """``key`` pressed and released, as a keyboard would."""
    code, key_code, text = KEYS[key]
    keys = {"key": key, "code": code, "windowsVirtualKeyCode": key_code}
    await page.command("Input.dispatchKeyEvent", type="keyDown", text=text, **keys)
    await page.command("Input.dispatchKeyEvent", type="keyUp", **keys)


async def tab_to(page: Page, focused: str) -> None:
    """Tab until ``focused`` (JavaScript) is true."""
    for _ in range(50):
        await press(page, "Tab")
        if await page.evaluate(f"!!({focused})"):
            return
    raise AssertionError(f"never {focused} with Tab")


#: The confirmation dialog of a skip or dead-letter is open.
ASKING = "document.getElementById('confirm').open"


async def confirm_by_keyboard(page: Page, key: str = "Enter") -> None:
    """In the dialog a skip or dead-letter opens, with the focus on Cancel: Tab to the
    confirming button and press ``key``."""
    await page.wait_for(f"{ASKING} && document.activeElement.id === 'confirm-cancel'")
    await press(page, "Tab")
    assert await page.evaluate("document.activeElement.id") == "confirm-yes"
    await press(page, key)


def on_button(action: str, address: Address) -> str:
    """Whether the focus is on the button for ``action`` in the stuck row of ``address``."""
    return (
        f"document.activeElement.matches('.stuck-{action}') && document.activeElement"
        f".closest('tr').cells[0].textContent === {json.dumps(str(address))}"
    )


#: The focus is on what came of the last action on a stuck address: an action's last step,
#: once its reply is shown and the rows redrawn.
ON_OUTCOME = "document.activeElement.id === 'stuck-problem'"


#: Counts the page's polls of /api/status, to wait for redraws without a timer.
COUNT_POLLS = """window.polls = 0; const fetchOf = window.fetch;
window.fetch = (path, ...rest) => {
  if (String(path).startsWith("api/status")) window.polls++;
  return fetchOf(path, ...rest);
}; true"""


async def redrawn(page: Page) -> None:
    """Until the page has polled and redrawn at least once more."""
    polls = await page.evaluate("window.polls")
    await page.wait_for(f"window.polls > {polls + 1}")


def test_a_button_keeps_the_keyboard_focus_while_the_page_redraws_and_does_its_action(
    tmp_path: Path,
) -> None:
    """The page redraws its tables every second: a keyboard user's focus on a Skip button went
    back to the page's start at the next redraw, and Enter did nothing."""

    w, v = Address(FRAGILE, "w"), Address(FRAGILE, "v")

    async def scenario() -> None:
        async with page_with_a_stuck_address(tmp_path) as (page, runtime, _):
            for address in (w, v):  # listed after x, in the order they got stuck
                await runtime.send(address, make_value("string", POISON))
                await page.wait_for(f"document.getElementById('stuck').innerText"
                                    f".includes({json.dumps(str(address))})")  # fmt: skip
            buttons = [name(node) for node in await ax_nodes(page, "button")]
            assert f"Dead-letter {w}" in buttons and len(set(buttons)) == len(buttons)
            await page.evaluate(COUNT_POLLS)
            await tab_to(page, on_button("skip", v))
            await redrawn(page)
            assert await page.evaluate(on_button("skip", v))
            # someone else skips x: the rows after it move up, the focus stays on v's button
            await until_waiting(runtime, STUCK)
            runtime.skip(STUCK, "cli")
            await page.wait_for("document.querySelectorAll('#stuck tr').length === 2")
            await redrawn(page)
            assert await page.evaluate(on_button("skip", v))
            assert await page.evaluate("getComputedStyle(document.activeElement).outlineStyle"
                                       " !== 'none'")  # fmt: skip

            await until_waiting(runtime, v)
            await press(page, "Enter")
            await confirm_by_keyboard(page)
            await page.wait_for(
                f"{ON_OUTCOME} && document.querySelectorAll('#stuck tr').length === 1"
            )
            assert await page.text("#stuck-problem") == f"{v}: skipped"
            assert [entry["address"] for entry in runtime.stuck()] == [str(w)]
            assert [(e["action"], e["address"], e["by"]) for e in runtime.audit_log()] == [
                ("skip", str(v), "page"),
                ("skip", str(STUCK), "cli"),
            ]

    run(scenario())


def test_after_a_skip_or_dead_letter_by_keyboard_the_focus_is_on_what_came_of_it(
    tmp_path: Path,
) -> None:
    """Skipped or dead-lettered, an address's row goes, and with it the button that had the
    focus: the focus went to the page's start, and nothing told a screen-reader user what was
    done. Now the outcome is shown in a status region, which gets the focus."""
    w = Address(FRAGILE, "w")

    async def scenario() -> None:
        async with page_with_a_stuck_address(tmp_path) as (page, runtime, _):
            await runtime.send(w, make_value("string", POISON))
            await page.wait_for("document.querySelectorAll('#stuck tr').length === 2")
            # the stuck addresses' and the shown address's state's: read out as they change
            statuses = await ax_nodes(page, "status")
            assert [live(status) for status in statuses] == ["polite", "polite"]

            await until_waiting(runtime, STUCK, w)
            await tab_to(page, on_button("dead-letter", STUCK))
            await press(page, " ")
            await confirm_by_keyboard(page, " ")
            # the row gone with the button, the focus on what came of it (the page's own poll
            # can redraw the rows before the action's reply is shown)
            await page.wait_for(ON_OUTCOME)
            assert await page.evaluate("document.querySelectorAll('#stuck tr').length") == 1
            assert await page.text("#stuck-problem") == f"{STUCK}: dead-lettered"

            await tab_to(page, on_button("skip", w))
            await press(page, "Enter")
            await confirm_by_keyboard(page)
            await page.wait_for(ON_OUTCOME)
            assert await page.evaluate("document.getElementById('stuck-box').hidden")
            assert await page.text("#stuck-problem") == f"{w}: skipped"
            assert await page.evaluate("document.activeElement.checkVisibility()")
            assert runtime.stuck() == []

    run(scenario())


def test_a_skip_or_dead_letter_asks_first_naming_the_message_and_is_cancelled_by_default(
    tmp_path: Path,
) -> None:
    """Skip and Dead-letter dropped or moved a message for good at one click (or a key pressed
    on the wrong row). Now each opens a modal dialog that a screen reader announces with the
    message it would drop, the focus on Cancel: Escape or Enter cancels, the focus back on the
    button; only the dialog's own button does it, to the message named, which gets the focus
    on what came of it."""

    async def scenario() -> None:
        async with page_with_a_stuck_address(tmp_path) as (page, runtime, _):
            await until_waiting(runtime, STUCK)
            [entry] = runtime.stuck()
            head = f"#{entry['message_seq']} [io.statefun.types/string]"
            assert not await page.evaluate(ASKING)
            await tab_to(page, on_button("skip", STUCK))
            [button] = [n for n in await ax_nodes(page, "button") if name(n) == f"Skip {STUCK}"]
            popup = {p["name"]: p["value"].get("value") for p in button["properties"]}["hasPopup"]
            assert popup == "dialog"

            await page.evaluate(COUNT_POLLS)
            for cancel in ("Escape", "Enter"):
                await press(page, "Enter")
                await page.wait_for(f"{ASKING} && document.activeElement.id === 'confirm-cancel'")
                [dialog] = await ax_nodes(page, "dialog")
                assert name(dialog) == f"Skip message {head} of {STUCK}?"
                assert dialog["description"]["value"] == (
                    f"The head message {head} is dropped for good; the messages after it go on."
                )
                modal = {p["name"]: p["value"].get("value") for p in dialog["properties"]}["modal"]
                assert modal is True  # the page behind it out of reach meanwhile
                contrasts = await page.evaluate(CONTRASTS)
                assert any(text.startswith("Skip message") for _, text, _, _ in contrasts)
                assert [c for c in contrasts if c[0] < 4.5] == []
                await redrawn(page)  # behind the open dialog
                await press(page, cancel)
                await page.wait_for(f"!{ASKING}")
                assert await page.evaluate(on_button("skip", STUCK)), cancel
                assert [e["address"] for e in runtime.stuck()] == [str(STUCK)]
                assert runtime.audit_log() == []

            # while the dialog asks, someone else skips the message: the next one fails in
            # its place, and the dialog's button does nothing to it
            await runtime.send(STUCK, make_value("string", f"{POISON} again"))
            await tab_to(page, on_button("dead-letter", STUCK))
            await press(page, "Enter")
            await page.wait_for(ASKING)
            [dialog] = await ax_nodes(page, "dialog")
            assert name(dialog) == f"Dead-letter message {head} of {STUCK}?"
            assert "moved to the dead-letter egress" in dialog["description"]["value"]
            runtime.skip(STUCK, "cli")
            while not any(e["message_seq"] > entry["message_seq"] for e in runtime.stuck()):
                await asyncio.sleep(0.02)
            await until_waiting(runtime, STUCK)
            [now] = runtime.stuck()
            await confirm_by_keyboard(page)
            await page.wait_for("document.getElementById('stuck-problem').innerText")
            assert await page.text("#stuck-problem") == (
                f"dead-letter {STUCK}: {STUCK}: its failing head message is "
                f"#{now['message_seq']} now, not #{entry['message_seq']}: nothing done (look at "
                "it again)")  # fmt: skip
            assert [(e["action"], e["by"]) for e in runtime.audit_log()] == [("skip", "cli")]

            # the refusal is shown before the rows are redrawn: until the row's button is the
            # new head message's (the dialog names the message of the row its button is in)
            await page.wait_for(
                "document.querySelector('#stuck tr').cells[1].textContent"
                f".startsWith('#{now['message_seq']} ')"
            )
            assert await page.evaluate(on_button("dead-letter", STUCK))
            await press(page, "Enter")
            await page.wait_for(ASKING)
            [dialog] = await ax_nodes(page, "dialog")
            assert name(dialog) == (
                f"Dead-letter message #{now['message_seq']} [io.statefun.types/string] of "
                f"{STUCK}?")  # fmt: skip
            await confirm_by_keyboard(page)
            await page.wait_for(ON_OUTCOME)
            assert await page.evaluate("document.getElementById('stuck-box').hidden")
            assert await page.text("#stuck-problem") == f"{STUCK}: dead-lettered"
            assert [(e["action"], e["message_seq"], e["by"]) for e in runtime.audit_log()] == [
                ("dead-letter", now["message_seq"], "page"),
                ("skip", entry["message_seq"], "cli"),
            ]

    run(scenario())


def test_by_keyboard_a_link_or_the_form_shows_its_view_with_the_focus_and_title_on_it(
    tmp_path: Path,
) -> None:
    """A function type's or address's view opens above the link or form that asked for it: the
    focus stayed on the link, far below what was shown (which a screen reader did not read),
    and the browser's title (its tab, its history) named the page only."""
    focused_title = "document.activeElement.id === 'browse-title'"

    async def scenario() -> None:
        async with page_with_a_stuck_address(tmp_path) as (page, _, url):
            await page.goto(f"{url}/")
            await page.wait_for("document.getElementById('functions').rows.length")
            assert await page.evaluate("document.title") == "statefun-local"

            await tab_to(page, "document.activeElement.closest('#functions')")
            await press(page, "Enter")
            await page.wait_for(focused_title)
            assert await page.text("#browse-title") == f"Addresses of {FRAGILE}"
            assert (
                await page.evaluate("document.title") == f"Addresses of {FRAGILE} · statefun-local"
            )

            await tab_to(page, "document.activeElement.innerText === 'ok'")
            await press(page, "Enter")
            await page.wait_for(f"{focused_title} && document.getElementById('state').rows.length")
            assert await page.evaluate("document.title") == f"{FRAGILE}/ok · statefun-local"
            assert (await page.rows("state"))[0][:2] == ["count", "1"]

            await tab_to(page, "document.activeElement.id === 'lookup-address'")
            await page.command("Input.insertText", text=str(STUCK))
            await press(page, "Enter")
            await page.wait_for(f"{focused_title} && document.title === '{STUCK} · statefun-local'")
            await page.wait_for("document.getElementById('messages').rows.length === 1")

            await page.evaluate("history.back(), true")  # the browser's Back
            await page.wait_for(f"document.title === '{FRAGILE}/ok · statefun-local'")
            await page.evaluate("history.go(-2), true")
            await page.wait_for("document.title === 'statefun-local'")
            assert await page.evaluate("document.getElementById('browse-box').hidden")

    run(scenario())


def test_by_keyboard_a_state_is_edited_and_deleted_with_every_part_named_and_readable(
    tmp_path: Path,
) -> None:
    """A state's Edit and Delete buttons, the field Edit opens and the reason a value is
    refused, with the keyboard only: each named for a screen reader, the focus where the user
    goes on, the text readable in both themes."""
    ok = Address(FRAGILE, "ok")
    on_edit = "document.activeElement.getAttribute('aria-label') === 'Edit count'"
    in_field = "document.activeElement.id === 'edit-value'"
    editing = "!document.getElementById('edit').hidden"
    field_name = "New value of count (io.statefun.types/int), as JSON:"

    async def scenario() -> None:
        async with page_with_a_stuck_address(tmp_path) as (page, runtime, _):
            buttons = [name(node) for node in await ax_nodes(page, "button")]
            assert "Edit count" in buttons and "Delete count" in buttons
            await page.evaluate(COUNT_POLLS)
            await tab_to(page, on_edit)
            await redrawn(page)  # the state table too: the focus stays
            assert await page.evaluate(on_edit)

            # Escape cancels, the focus back on Edit
            await press(page, "Enter")
            await page.wait_for(f"{editing} && {in_field}")
            await press(page, "Escape")
            await page.wait_for(f"!({editing})")
            assert await page.evaluate(on_edit)

            await press(page, "Enter")
            await page.wait_for(f"{editing} && {in_field}")
            assert field_name in [name(n) for n in await ax_nodes(page, "textbox")]
            await page.command("Input.insertText", text="1.5")  # the value was selected: replaced
            await tab_to(page, "document.activeElement.id === 'edit-save'")
            await press(page, "Enter")
            await page.wait_for("document.getElementById('state-problem').className === 'error'")
            # refused: back in the field, the reason its description
            assert await page.evaluate(in_field)
            [field] = [n for n in await ax_nodes(page, "textbox") if name(n) == field_name]
            assert "1.5 is not a valid io.statefun.types/int" in field["description"]["value"]
            invalid = {p["name"]: p["value"].get("value") for p in field["properties"]}["invalid"]
            assert invalid == "true"
            for scheme in ("light", "dark"):
                await page.command("Emulation.setEmulatedMedia", features=[
                    {"name": "prefers-color-scheme", "value": scheme}])  # fmt: skip
                contrasts = await page.evaluate(CONTRASTS)
                assert any(text.startswith("New value of") for _, text, _, _ in contrasts)
                assert any(text.startswith("set count of") for _, text, _, _ in contrasts)
                assert [c for c in contrasts if c[0] < 4.5] == []
            assert runtime.inspect(ok)["state"]["count"]["value"] == 1

            for _ in "1.5":
                await press(page, "Backspace")
            await page.command("Input.insertText", text="42")
            await tab_to(page, "document.activeElement.id === 'edit-save'")
            await press(page, " ")
            await page.wait_for(f"!({editing})")
            assert await page.evaluate(on_edit)  # the focus back where it was
            assert await page.text("#state-problem") == f"{ok}: set count = 42 (was 1)"
            assert runtime.inspect(ok)["state"]["count"]["value"] == 42

            await press(page, "Tab")
            assert await page.evaluate("document.activeElement.getAttribute('aria-label')") == (
                "Delete count"
            )
            await press(page, "Enter")
            await confirm_by_keyboard(page)
            # declared, the state stays in its row, without a value: the focus on its Set
            await page.wait_for("document.activeElement.getAttribute('aria-label') === "
                                "'Set count'")  # fmt: skip
            assert (await page.rows("state"))[0][:2] == ["count", "(no value)"]
            assert await page.text("#state-problem") == f"{ok}: deleted count (was 42)"
            assert "count" not in runtime.inspect(ok)["state"]
            assert [(e["action"], e["by"]) for e in runtime.audit_log()] == [
                ("edit-state", "page")
            ] * 2

    run(scenario())


def test_by_keyboard_a_state_without_a_value_is_set_as_one_is_edited(tmp_path: Path) -> None:
    """A state its function declares, which the address has no value of, is a row saying so
    with a Set button: the same form as Edit, by keyboard, each part named for a screen reader,
    readable in both themes; the value set, the focus is on the state's Edit button."""
    fresh = Address(FRAGILE, "fresh")
    on_set = "document.activeElement.getAttribute('aria-label') === 'Set count'"
    in_field = "document.activeElement.id === 'edit-value'"
    editing = "!document.getElementById('edit').hidden"
    field_name = "Value of count (io.statefun.types/int), as JSON:"

    async def scenario() -> None:
        async with page_with_a_stuck_address(tmp_path) as (page, runtime, url):
            await page.goto(f"{url}/#address={fresh}")
            await page.wait_for(f"document.title === '{fresh} · statefun-local'")
            assert await page.rows("state") == [
                ["count", "(no value)", "io.statefun.types/int", "", "Set"]
            ]
            assert "Set count" in [name(node) for node in await ax_nodes(page, "button")]
            await page.evaluate(COUNT_POLLS)
            await tab_to(page, on_set)
            await redrawn(page)  # the focus stays on it
            assert await page.evaluate(on_set)

            # Escape cancels, the focus back on Set
            await press(page, "Enter")
            await page.wait_for(f"{editing} && {in_field}")
            assert await page.evaluate("document.activeElement.value") == ""
            await press(page, "Escape")
            await page.wait_for(f"!({editing})")
            assert await page.evaluate(on_set)

            # refused: back in the field, the reason its description, readable
            await press(page, "Enter")
            await page.wait_for(f"{editing} && {in_field}")
            assert field_name in [name(n) for n in await ax_nodes(page, "textbox")]
            await page.command("Input.insertText", text="1.5")
            await tab_to(page, "document.activeElement.id === 'edit-save'")
            await press(page, "Enter")
            await page.wait_for("document.getElementById('state-problem').className === 'error'")
            assert await page.evaluate(in_field)
            [field] = [n for n in await ax_nodes(page, "textbox") if name(n) == field_name]
            assert "1.5 is not a valid io.statefun.types/int" in field["description"]["value"]
            for scheme in ("light", "dark"):
                await page.command("Emulation.setEmulatedMedia", features=[
                    {"name": "prefers-color-scheme", "value": scheme}])  # fmt: skip
                contrasts = await page.evaluate(CONTRASTS)
                assert any(text == "(no value)" for _, text, _, _ in contrasts)
                assert any(text.startswith("Value of count") for _, text, _, _ in contrasts)
                assert [c for c in contrasts if c[0] < 4.5] == []
            assert runtime.inspect(fresh)["state"] == {}

            for _ in "1.5":
                await press(page, "Backspace")
            await page.command("Input.insertText", text="7")
            await tab_to(page, "document.activeElement.id === 'edit-save'")
            await press(page, " ")
            await page.wait_for(f"!({editing})")
            assert await page.evaluate("document.activeElement.getAttribute('aria-label')") == (
                "Edit count"
            )
            assert await page.text("#state-problem") == f"{fresh}: set count = 7 (it had no value)"
            assert (await page.rows("state"))[0][:2] == ["count", "7"]
            assert runtime.inspect(fresh)["state"]["count"]["value"] == 7

    run(scenario())
