"""The web page in a real headless Chromium, against a real runtime, function server and
SQLite file; and what a page on another site can make the browser do to the runtime."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import web
from statefun_local import LocalRuntime, make_value, parse_module

from statefun_core import (
    Context,
    Message,
    StatefulFunctions,
    StringType,
    ValueSpec,
    kafka_egress_message,
)
from statefun_core.engine import Address

from .browser import CHROMIUM, chromium
from .conftest import FunctionServer, kafka_ingress, module_yaml, run
from .test_runtime import greeter_functions
from .test_server_and_cli import serve_runtime

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")

INGRESS = kafka_ingress("io.statefun.types/string", "com.example/greeter")


def test_the_page_shows_state_browses_addresses_and_clears_a_recovered_failure(
    tmp_path: Path,
) -> None:
    broken = False

    def fault(_: int) -> web.Response | None:
        return web.Response(status=500, text="down for now") if broken else None

    async def scenario() -> None:
        nonlocal broken
        async with FunctionServer(greeter_functions(), fault) as server:
            module = parse_module(module_yaml(server.url, call="200ms", extra=INGRESS))
            async with LocalRuntime(
                module, tmp_path / "db.sqlite", offline=True, failure_pause=0.05
            ) as runtime:
                runner, url = await serve_runtime(runtime)
                try:
                    for name in ["Ann", "Ann", "Zoë / 1"]:
                        await runtime.send(
                            Address("com.example/greeter", name), make_value("string", name)
                        )
                    await runtime.wait_until_idle()
                    broken = True
                    await runtime.send(
                        Address("com.example/greeter", "Bob"), make_value("string", "Bob")
                    )
                    async with chromium(tmp_path / "profile") as page:
                        await page.goto(f"{url}/")
                        failure = await page.wait_for(
                            "!document.getElementById('failures-box').hidden && "
                            "document.getElementById('failures').innerText"
                        )
                        assert "com.example/greeter/Bob: POST" in failure
                        assert "HTTP 500: down for now" in failure

                        functions = await page.rows("functions")
                        assert [row[0] for row in functions] == [
                            "com.example/greeter",
                            "com.example/inbox",
                        ]
                        assert await page.rows("io") == [
                            [
                                "kafka ingress",
                                "com.example/names",
                                "kafka:9092",
                                "names (io.statefun.types/string) → com.example/greeter",
                            ],
                            ["kafka egress", "com.example/out", "kafka:9092", "at-least-once"],
                        ]

                        # browse: the function type's addresses, then one address's state
                        await page.evaluate(
                            "[...document.querySelectorAll('#functions a')]"
                            ".find(a => a.innerText === 'com.example/greeter')"
                            ".click()"
                        )
                        ids = await page.wait_for("document.getElementById('browse-ids').innerText")
                        assert ids.split("\n") == ["Ann", "Bob", "Zoë / 1"]
                        await page.evaluate(
                            "[...document.querySelectorAll('#browse-ids a')]"
                            ".find(a => a.innerText === 'Zoë / 1').click()"
                        )
                        await page.wait_for(
                            "document.getElementById('browse-title').innerText"
                            ".startsWith('com.example/greeter/Zoë / 1')"
                        )
                        assert await page.rows("state") == [
                            ["seen_count", "1", "io.statefun.types/int", "", "EditDelete"]
                        ]

                        # typed into the form: Ann's state, and Bob's message in flight
                        await page.evaluate(
                            "document.getElementById('lookup-address').value = "
                            "'com.example/greeter/Ann';"
                            "document.querySelector('#lookup button').click()"
                        )
                        await page.wait_for(
                            "document.getElementById('browse-title').innerText"
                            ".startsWith('com.example/greeter/Ann')"
                        )
                        await page.wait_for(
                            "document.getElementById('state').innerText.includes('seen_count\\t2')"
                        )
                        await page.goto(f"{url}/#address=com.example%2Fgreeter%2FBob")
                        await page.wait_for(
                            "document.getElementById('browse-title').innerText"
                            ".startsWith('com.example/greeter/Bob')"
                        )
                        await page.wait_for(
                            "document.getElementById('messages-summary')"
                            ".innerText === '1 in flight · 0 queued · 0 delayed'"
                        )
                        assert (await page.rows("messages"))[0][3] == "Bob"

                        # the function server recovers: the page stops showing the failure
                        broken = False
                        await runtime.wait_until_idle()
                        await page.wait_for("document.getElementById('failures-box').hidden")
                        # read with the state it was drawn with: a poll's late reply, from
                        # before the message went through, could redraw both in between
                        summary = await page.wait_for(
                            "document.getElementById('state').innerText.includes('seen_count\\t1')"
                            " && document.getElementById('messages-summary').innerText"
                        )
                        assert summary == "0 in flight · 0 queued · 0 delayed"
                        # the egress list is polled on its own: the record shows at its next poll
                        await page.wait_for(
                            "document.getElementById('egress').innerText"
                            ".includes('Hello Bob for the 1th time!')"
                        )
                finally:
                    await runner.cleanup()

    run(scenario())


def test_the_page_shows_a_call_being_retried_until_it_goes_through(tmp_path: Path) -> None:
    """A function server that answers 503 for now: within the call budget the call is not a
    failure yet, but the page (and ``/api/status``) show its address and its last error."""
    broken = True

    def fault(_: int) -> web.Response | None:
        return web.Response(status=503, text="starting up") if broken else None

    async def scenario() -> None:
        nonlocal broken
        async with FunctionServer(greeter_functions(), fault) as server:
            module = parse_module(module_yaml(server.url, call="60s"))
            async with LocalRuntime(module, tmp_path / "db.sqlite", offline=True) as runtime:
                runner, url = await serve_runtime(runtime)
                try:
                    await runtime.send(
                        Address("com.example/greeter", "Bob"), make_value("string", "Bob")
                    )
                    async with chromium(tmp_path / "profile") as page:
                        await page.goto(f"{url}/")
                        retrying = await page.wait_for(
                            "!document.getElementById('retrying-box').hidden && "
                            "document.getElementById('retrying').innerText"
                        )
                        assert retrying.startswith("com.example/greeter/Bob: ")
                        assert "HTTP 503: starting up" in retrying
                        assert await page.evaluate("document.getElementById('failures-box').hidden")
                        [shown] = runtime.status()["retrying"]
                        assert shown["address"] == "com.example/greeter/Bob"
                        assert shown["attempts"] >= 1

                        broken = False
                        await runtime.wait_until_idle()
                        await page.wait_for("document.getElementById('retrying-box').hidden")
                        assert runtime.status()["retrying"] == []
                finally:
                    await runner.cleanup()

    run(scenario())


def test_the_page_shows_a_failing_function_after_a_restart_and_its_address_stuck(
    tmp_path: Path,
) -> None:
    """After a restart, a function whose every call fails: its stored value is not yet known
    to be declared, and the page says its function has not answered (not that it was never
    called); its address is listed as stuck from the first failed attempt, being retried now,
    with its attempts so far."""
    db = tmp_path / "db.sqlite"
    ann = Address("com.example/greeter", "Ann")

    def broken(_: int) -> web.Response:
        return web.Response(status=500, text="broken since the restart")

    async def scenario() -> None:
        async with FunctionServer(greeter_functions()) as server:
            module = parse_module(module_yaml(server.url))
            async with LocalRuntime(module, db, offline=True) as runtime:
                await runtime.send(ann, make_value("string", "Ann"))
                await runtime.wait_until_idle()
        async with FunctionServer(greeter_functions(), broken) as server:
            module = parse_module(module_yaml(server.url, call="60s"))
            async with LocalRuntime(module, db, offline=True) as runtime:
                runner, url = await serve_runtime(runtime)
                try:
                    await runtime.send(ann, make_value("string", "Ann"))
                    async with chromium(tmp_path / "profile") as page:
                        await page.goto(f"{url}/#address=" + quote(str(ann), safe=""))
                        await page.wait_for("document.getElementById('state').rows.length")
                        assert await page.rows("state") == [
                            [
                                "seen_count",
                                "1",
                                "io.statefun.types/int",
                                "its function has not answered since the runtime started",
                                "EditDelete",
                            ]
                        ]
                        await page.wait_for(
                            "[...document.querySelectorAll('#stuck tr')].some(r => r.cells[4]"
                            ".innerText.match(/being retried now \\((\\d+) failed/)?.[1] >= 2)"
                        )
                        [row] = await page.rows("stuck")
                        address, head, attempts, error, retry, _ = row
                        assert (address, attempts) == (str(ann), "0")
                        assert head.startswith("#") and "io.statefun.types/string" in head
                        assert "HTTP 500: broken since the restart" in error
                        assert retry.startswith("being retried now (")
                        assert retry.endswith(" failed within this call)")
                        assert server.requests >= 2
                finally:
                    await runner.cleanup()

    run(scenario())


ATTACKER_PAGE = """<!doctype html><title>another site</title><body>
<iframe name="sink"></iframe>
<form id="form" method="POST" target="sink" enctype="text/plain"
  action="{runtime}/ingress/com.example/greeter/form?typename=com.example/Raw">
  <input name='{{"type": "string", "value": "' value='"}}'></form>
</body>"""

ATTACKS = """
(async () => {
  const target = "%s/ingress/com.example/greeter/";
  await fetch(target + "plain?typename=com.example/Raw", {method: "POST", mode: "no-cors",
    headers: {"Content-Type": "text/plain"}, body: '{"type": "string", "value": "x"}'});
  await fetch(target + "blob?typename=com.example/Raw", {method: "POST", mode: "no-cors",
    body: new Blob(["raw"])});
  const sent = new Promise(resolve => document.querySelector("iframe").onload = resolve);
  document.getElementById("form").submit();
  await sent;
  try {  // a non-simple request needs a preflight, which the runtime does not allow
    await fetch(target + "json", {method: "POST", headers: {"Content-Type": "application/json"},
      body: '{"type": "string", "value": "x"}'});
    return "sent";
  } catch (error) {
    return "refused";
  }
})()
"""


def test_another_site_can_not_send_and_a_rebound_name_reads_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with FunctionServer(greeter_functions()) as server:
            module = parse_module(module_yaml(server.url))
            async with LocalRuntime(module, tmp_path / "db.sqlite", offline=True) as runtime:
                runner, url = await serve_runtime(runtime)
                attacker_runner, attacker_url = await serve_page(ATTACKER_PAGE.format(runtime=url))
                port = url.rsplit(":", 1)[1]
                try:
                    rules = "--host-resolver-rules=MAP rebound.test 127.0.0.1"
                    async with chromium(tmp_path / "profile", (rules,)) as tab:
                        # a page on another origin (another port of 127.0.0.1: same site)
                        await tab.goto(f"{attacker_url}/")
                        await tab.wait_for("document.title === 'another site'")
                        assert await tab.evaluate(ATTACKS % url) == "refused"
                        # the runtime's own page may send
                        await tab.goto(f"{url}/")
                        await tab.wait_for("document.title === 'statefun-local'")
                        status = await tab.evaluate(
                            "fetch('ingress/com.example/greeter/own', {method: 'POST', "
                            "headers: {'Content-Type': 'application/json'}, body: JSON.stringify("
                            "{type: 'string', value: 'own'})}).then(r => r.status)"
                        )
                        assert status == 202
                        # DNS rebinding: a name of the attacker's, resolving to 127.0.0.1
                        await tab.goto(f"http://rebound.test:{port}/api/status")
                        body = await tab.wait_for("document.body && document.body.innerText")
                        assert "is not this runtime's" in body
                        assert "functions" not in body
                    await runtime.wait_until_idle()
                    assert [r["record"]["kafka"]["key"] for r in runtime.egress_records()] == [
                        "own"
                    ]
                    assert runtime.store.mailbox_addresses() == []
                    assert runtime.status()["totals"]["delivered"] == 2
                finally:
                    await attacker_runner.cleanup()
                    await runner.cleanup()

    run(scenario())


async def serve_runtime_app(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def serve_page(html: str) -> tuple[web.AppRunner, str]:
    """Serve ``html`` at ``/`` of another origin: another site's page."""
    app = web.Application()

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    app.router.add_get("/", page)
    return await serve_runtime_app(app)


def test_markup_that_got_into_the_page_runs_no_script(tmp_path: Path) -> None:
    """The page sets text, never markup; and were markup to get in (a change that used
    innerHTML), its policy lets no script run but the page's own."""

    async def scenario() -> None:
        async with FunctionServer(greeter_functions()) as server:
            module = parse_module(module_yaml(server.url))
            async with LocalRuntime(module, tmp_path / "db.sqlite", offline=True) as runtime:
                runner, url = await serve_runtime(runtime)
                try:
                    async with chromium(tmp_path / "profile") as page:
                        await page.goto(f"{url}/")
                        await page.wait_for(
                            "document.getElementById('summary').innerText.includes('delivered')"
                        )
                        await page.evaluate(
                            "document.body.insertAdjacentHTML('beforeend', '<img src=x "
                            'onerror="window.ran = 1"><svg onload="window.ran = 2"></svg>'
                            '<a id=js href="javascript:window.ran = 3">x</a>\');'
                            "const s = document.createElement('script');"
                            "s.textContent = 'window.ran = 4'; document.body.append(s);"
                            "document.getElementById('js').click(); true"
                        )
                        # the page's own script still runs: its next poll lands
                        await page.evaluate("refresh().then(() => true)")
                        assert await page.evaluate("window.ran ?? 'none'") == "none"
                        # and its own style applies
                        assert (
                            await page.evaluate("getComputedStyle(document.body).fontSize")
                            == "14px"
                        )
                finally:
                    await runner.cleanup()

    run(scenario())


#: Markup, quotes, a javascript: URL and a right-to-left override (which would reorder the text
#: after it on the page), as an id, a state value, an egress record and an error text.
HOSTILE = (
    '<img src=x onerror="window.ran=1"></textarea></td><script>window.ran=2</script>'
    "'\"` javascript:window.ran=3 \u202etxt"
)


def hostile_functions() -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind("com.example/hostile", specs=[ValueSpec("note", StringType)])
    def hostile(context: Context, message: Message) -> None:
        if message.as_string() == "fail":
            raise RuntimeError(HOSTILE)
        context.storage.note = HOSTILE
        context.send_egress(
            kafka_egress_message(
                "com.example/out", HOSTILE, HOSTILE, key=HOSTILE, headers=[(HOSTILE, HOSTILE)]
            )
        )

    return functions


def test_what_anyone_sending_a_message_controls_shows_as_text(tmp_path: Path) -> None:
    """Ids, state values, egress records and error texts are shown literally, no script runs,
    and a bidi control is shown as its escape: on the page, none reorders the text after it."""
    shown = HOSTILE.replace("\u202e", "\\u202e")

    async def scenario() -> None:
        async with FunctionServer(hostile_functions()) as server:
            module = parse_module(module_yaml(server.url, call="200ms"))
            async with LocalRuntime(module, tmp_path / "db.sqlite", offline=True,
                                    failure_pause=30) as runtime:  # fmt: skip
                runner, url = await serve_runtime(runtime)
                try:
                    await runtime.send(
                        Address("com.example/hostile", HOSTILE), make_value("string", "ok")
                    )
                    await runtime.send(
                        Address("com.example/hostile", "f" + HOSTILE), make_value("string", "fail")
                    )
                    while not runtime.status()["failures"]:
                        await asyncio.sleep(0.05)
                    async with chromium(tmp_path / "profile") as page:
                        await page.goto(f"{url}/")
                        failure = await page.wait_for("document.getElementById('failures')"
                                                      ".innerText")  # fmt: skip
                        assert f"com.example/hostile/f{shown}: POST " in failure
                        [stuck] = await page.rows("stuck")
                        assert stuck[0] == f"com.example/hostile/f{shown}"
                        [record] = await page.rows("egress")
                        assert f"topic={shown} key={shown} value=" in record[2]
                        await page.goto(
                            f"{url}/#address=" + quote(f"com.example/hostile/{HOSTILE}", safe="")
                        )
                        await page.wait_for("document.getElementById('state').rows.length")
                        assert await page.rows("state") == [
                            ["note", shown, "io.statefun.types/string", "", "EditDelete"]
                        ]
                        assert await page.evaluate("window.ran ?? 'none'") == "none"
                        assert not await page.evaluate(
                            r"/[\u202a-\u202e\u2066-\u2069]/.test(document.body.innerText)"
                        )
                finally:
                    await runner.cleanup()

    run(scenario())
