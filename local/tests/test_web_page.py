"""The web page's script, run by Node (when installed) against a real ``/api/status``."""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
from statefun_local import Failure, make_value

from statefun_core.engine import Address

from .conftest import run, serving
from .test_runtime import greeter_functions

NODE = shutil.which("node")

# A minimal DOM: enough for the page's refresh() to fill its tables.
HARNESS = """
const fs = require("fs");
const [script, statusFile] = process.argv.slice(2);
const status = JSON.parse(fs.readFileSync(statusFile, "utf8"));
const elements = {};
function el(tag) {
  return { tag, children: [], textContent: "", className: "", hidden: false,
           append(...c) { this.children.push(...c); },
           replaceChildren(...c) { this.children = c; } };
}
global.document = { getElementById: id => (elements[id] ||= el(id)), createElement: el };
global.fetch = async () => ({ json: async () => status });
global.setInterval = () => {};
eval(fs.readFileSync(script, "utf8"));
setTimeout(() => {
  const rows = id => elements[id].children.map(r => r.children.map(c => c.textContent));
  console.log(JSON.stringify({
    summary: elements.summary.textContent, functions: rows("functions"), egress: rows("egress"),
    failuresHidden: elements["failures-box"].hidden,
    failures: elements.failures.children.map(li => li.textContent),
    connectionsHidden: elements["connections-box"].hidden, connections: rows("connections")}));
}, 50);
"""


@pytest.mark.skipif(NODE is None, reason="needs Node.js to run the page's script")
def test_the_page_shows_functions_egress_and_failures(tmp_path: Path) -> None:
    async def status() -> dict:  # type: ignore[type-arg]
        async with serving(greeter_functions(), tmp_path / "db.sqlite") as (_, runtime):
            for name in ["Ann", "Bob"]:
                await runtime.send(Address("com.example/greeter", name), make_value("string", name))
            await runtime.wait_until_idle()
            runtime.failures.append(Failure("2026-01-01T00:00:00+00:00", "com.example/x/y",
                                            "HTTP 500: boom", 1))
            return runtime.status()

    page = resources.files("statefun_local").joinpath("web/index.html").read_text("utf-8")
    script = page[page.index("<script>") + len("<script>"):page.index("</script>")]
    (tmp_path / "page.js").write_text(script)
    (tmp_path / "harness.js").write_text(HARNESS)
    shown_status = run(status())
    assert shown_status["connections"] == []  # offline
    # what a Kafka ingress and egress report (kafka.py's status()), as the page gets it
    shown_status["connections"] = [
        {"kind": "ingress", "id": "com.example/names", "broker": "k:9092", "state": "connected",
         "error": None, "group": "g", "topics": ["names"], "partitions": 2, "records": 7,
         "lag": 3, "skipped": ["names/0@5: a record without a key can not be routed to an id"]},
        {"kind": "egress", "id": "com.example/greets", "broker": "k:9092",
         "state": "unreachable", "error": "broker k:9092 unreachable", "semantic": "exactly-once",
         "records": 4, "position": 9},
    ]  # fmt: skip
    (tmp_path / "status.json").write_text(json.dumps(shown_status))
    result = subprocess.run(
        [NODE, str(tmp_path / "harness.js"), str(tmp_path / "page.js"),
         str(tmp_path / "status.json")],
        capture_output=True, text=True, timeout=60, check=True,
    )
    shown = json.loads(result.stdout)
    assert "4 delivered" in shown["summary"]
    assert [row[0] for row in shown["functions"]] == ["com.example/greeter", "com.example/inbox"]
    assert sorted(row[2] for row in shown["egress"]) == [
        "topic=greetings key=Ann value=Hello Ann for the 1th time!",
        "topic=greetings key=Bob value=Hello Bob for the 1th time!",
    ]
    assert shown["failuresHidden"] is False
    assert shown["failures"] == ["2026-01-01T00:00:00+00:00 com.example/x/y: HTTP 500: boom"]
    assert shown["connectionsHidden"] is False
    assert shown["connections"] == [
        ["ingress", "com.example/names", "k:9092", "connected", "names · g", 7, 3,
         "names/0@5: a record without a key can not be routed to an id"],
        ["egress", "com.example/greets", "k:9092", "unreachable", "exactly-once", 4, "",
         "broker k:9092 unreachable"],
    ]  # fmt: skip
