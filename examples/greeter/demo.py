"""The greeter, end to end, in one command: ``python examples/greeter/demo.py``.

Starts the function server (``app.py``) and the local runtime (``module.yaml``, a SQLite file
in a temporary directory), sends a few names through the runtime's HTTP ingress, prints the
greetings that reach the Kafka egress, and stops. Needs ``pip install -e . -e local
-e integrations/aiohttp`` (or run ``python examples/greeter/bootstrap.py``, which does that in
a fresh virtual environment first).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
from pathlib import Path

import aiohttp
from aiohttp import web

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from app import make_app as make_function_app  # noqa: E402
from statefun_local import LocalRuntime, load_module, make_app  # noqa: E402
from statefun_local.inspection import parse_address  # noqa: E402

NAMES = ["Ann", "Bob", "Ann", "Cid", "Ann", "Bob"]


async def start(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def demo(db: Path) -> None:
    functions, functions_port = await start(make_function_app())
    print(f"function server  http://127.0.0.1:{functions_port}/statefun")

    # module.yaml points at port 8000; the demo's server listens on a free port instead.
    module = load_module(HERE / "module.yaml")
    module.endpoints = [
        dataclasses.replace(e, url_path_template=f"http://127.0.0.1:{functions_port}/statefun")
        for e in module.endpoints
    ]
    # no broker here: the Kafka ingress is fed over HTTP and the egress read from the database
    runtime = LocalRuntime(module, db, module_name="examples/greeter/module.yaml", offline=True)
    await runtime.start()
    web_runner, port = await start(make_app(runtime))
    url = f"http://127.0.0.1:{port}"
    print(f"local runtime    {url}/  (database {db})")
    try:
        async with aiohttp.ClientSession() as session:
            for name in NAMES:
                async with session.post(
                    f"{url}/ingress/com.example.fns/greeter/{name}",
                    json={"type": "string", "value": name},
                ) as response:
                    response.raise_for_status()
                print(f"sent             {name!r} to com.example.fns/greeter/{name}")
            await runtime.wait_until_idle(timeout=30)
            async with session.get(f"{url}/api/egress?after=0") as response:
                records = (await response.json())["records"]
        print(f"\negress com.example/greets ({len(records)} records):")
        for record in records:
            kafka = record["record"]["kafka"]
            print(f"  topic={kafka['topic']}  key={kafka['key']:<4} {kafka['value']}")
        ann = runtime.inspect(parse_address("com.example.fns/greeter/Ann"))
        seen = ann["state"]["seen_count"]
        print(
            f"\nstate of com.example.fns/greeter/Ann: seen_count = {seen['value']} ({seen['type']})"
        )
        if runtime.failures:
            raise SystemExit(f"failures: {[f.error for f in runtime.failures]}")
        if len(records) != len(NAMES):
            raise SystemExit(f"expected {len(NAMES)} greetings, got {len(records)}")
    finally:
        await web_runner.cleanup()
        await runtime.stop()
        await functions.cleanup()
    print("stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="keep the database here (default: a temp dir)")
    args = parser.parse_args()
    if args.db:
        asyncio.run(demo(args.db))
        return
    with tempfile.TemporaryDirectory(prefix="statefun-demo-") as tmp:
        asyncio.run(demo(Path(tmp) / "greeter.db"))


if __name__ == "__main__":
    main()
