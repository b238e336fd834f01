"""Requests per second of statefun_core.asgi under uvicorn against a hand-written endpoint.

    python benchmarks/http/asgi_wrk.py                  # 20 rounds, ~5 minutes
    python benchmarks/http/asgi_wrk.py --quick          # a short, noisy run
    python benchmarks/http/asgi_wrk.py --kinds floor statefun --duration 2 --rounds 40
    python benchmarks/http/asgi_wrk.py --http httptools      # uvicorn[standard]'s server

Four single-process uvicorn servers (one event loop each, the same options): ``statefun``
(``StatefunASGI`` serving the user guide's greeter), ``floor`` (the core benchmark's hand-written
protobuf greeter in a hand-written ASGI endpoint, no SDK), ``handler`` (the same endpoint awaiting
``handle_async`` on the body) and ``bare`` (the body read, fixed bytes answered). wrk posts real
``ToFunction`` bodies over loopback, rotating over ``--addresses`` ids, each carrying ``seen_count``
so no discovery round happens; each of ``--rounds`` rounds starts new server processes, which take
turns (see ``wrk.rounds``). With two or more CPUs the servers are pinned to CPU 0 and wrk to the
others. The report is the other integrations' (``wrk.report``), under the same rule: statefun at 97%
or more of the floor's requests/s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from wrk import (
    Cpus,
    Server,
    add_arguments,
    greeter_reply,
    greeter_requests,
    parse_args,
    report,
    rounds,
    write_script,
)

from statefun_core.testing.endpoint import free_port

HERE = Path(__file__).resolve().parent


def start(kind: str, fixed_reply: bytes, http: str, cpus: Cpus) -> Server:
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
        "--http", http, "--loop", "asyncio",
        "--app-dir", str(HERE), "--log-level", "warning", "--no-access-log", "--lifespan", "off",
        "asgi_app:app",
    ]  # fmt: skip
    env = {**os.environ, "BENCH_KIND": kind, "BENCH_FIXED_REPLY": fixed_reply.hex()}
    # not from the checkout: `python -m` puts the working directory first on sys.path, where
    # the checkout's sources would shadow an installed compiled core
    process = subprocess.Popen(cpus.command(cpus.server, command), env=env, cwd=HERE)
    return Server(f"uvicorn {kind}", f"http://127.0.0.1:{port}/", process)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_arguments(parser, connections=64)
    parser.add_argument(
        "--http", choices=["h11", "httptools"], default="h11",
        help="uvicorn's HTTP/1.1 implementation: h11 (what plain `pip install uvicorn` runs) or "
        "httptools (what uvicorn[standard] runs: a faster server, so the SDK's share is larger)",
    )  # fmt: skip
    args = parse_args(parser)
    cpus = Cpus()

    bodies = greeter_requests(args.addresses)
    fixed_reply = greeter_reply(bodies[0])
    with tempfile.TemporaryDirectory() as tmp:
        script = write_script(Path(tmp) / "greeter.lua", bodies)
        runs = rounds(
            lambda kind: start(kind, fixed_reply, args.http, cpus), bodies, script, args, cpus
        )

    import uvicorn

    report(
        f"uvicorn {uvicorn.__version__}, one process, wrk -t{args.threads} "
        f"-c{args.connections} -d{args.duration:g}s, {args.rounds} round(s), {args.addresses} "
        f"addresses, server pinned: {cpus.pinned}, Python {sys.version.split()[0]}",
        {f"asgi ({args.http})": runs},
    )


if __name__ == "__main__":
    main()
