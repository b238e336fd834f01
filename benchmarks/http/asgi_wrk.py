"""Requests per second of statefun_core.asgi under uvicorn against a hand-written ASGI endpoint.

    python benchmarks/http/asgi_wrk.py                  # ~2 minutes
    python benchmarks/http/asgi_wrk.py --quick          # a short, noisy run

Four single-process uvicorn servers (one event loop each, the same options): ``statefun``
(``StatefunASGI`` serving the user guide's greeter), ``handler`` (the floor for it: a
hand-written ASGI endpoint awaiting ``handle_async`` on the body), ``bare`` (the body read,
fixed bytes answered) and ``floor`` (the core benchmark's hand-written protobuf greeter, no
SDK). wrk posts real ``ToFunction`` bodies over loopback, rotating over ``--addresses`` ids,
each carrying ``seen_count`` so no discovery round happens; the servers take turns for
``--rounds`` rounds and the table shows the medians, with the servers' CPU time per request
(steadier on a busy machine). With two or more CPUs the servers are pinned to CPU 0 and wrk
to the others. Target: statefun within 3% of handler.
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
    check_replies,
    greeter_reply,
    greeter_requests,
    parse_args,
    take_turns,
    write_script,
)

from statefun_core.testing.endpoint import free_port

HERE = Path(__file__).resolve().parent
KINDS = ("bare", "floor", "handler", "statefun")
TARGET = 0.97


def start(kind: str, fixed_reply: bytes, cpus: Cpus) -> Server:
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
        "--app-dir", str(HERE), "--log-level", "warning", "--no-access-log", "--lifespan", "off",
        "asgi_app:app",
    ]  # fmt: skip
    env = {**os.environ, "BENCH_KIND": kind, "BENCH_FIXED_REPLY": fixed_reply.hex()}
    process = subprocess.Popen(cpus.command(cpus.server, command), env=env)
    return Server(f"uvicorn {kind}", f"http://127.0.0.1:{port}/", process)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_arguments(parser, connections=64)
    args = parse_args(parser)
    cpus = Cpus()

    bodies = greeter_requests(args.addresses)
    fixed_reply = greeter_reply(bodies[0])
    with tempfile.TemporaryDirectory() as tmp:
        script = write_script(Path(tmp) / "greeter.lua", bodies)
        servers = {kind: start(kind, fixed_reply, cpus) for kind in KINDS}
        try:
            check_replies(servers, bodies[0], fixed_reply)
            medians = take_turns(servers, script, args, cpus)
        finally:
            for server in servers.values():
                server.stop()

    import uvicorn

    print(
        f"\nuvicorn {uvicorn.__version__}, one process, wrk -t{args.threads} "
        f"-c{args.connections} -d{args.duration:g}s, {args.rounds} round(s), {args.addresses} "
        f"addresses, server pinned: {cpus.pinned}, Python {sys.version.split()[0]}"
    )
    print(f"{'endpoint':<10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU us/req':>12}")
    for kind in KINDS:
        median = medians[kind]
        print(
            f"{kind:<10}{median['rps']:>10.0f}{median['p50_ms']:>9.2f}"
            f"{median['p99_ms']:>9.2f}{median['cpu_us']:>12.0f}"
        )
    ratio = medians["statefun"]["rps"] / medians["handler"]["rps"]
    cpu_ratio = medians["handler"]["cpu_us"] / medians["statefun"]["cpu_us"]
    verdict = "meets" if ratio >= TARGET else "BELOW"
    print(
        f"statefun / handler: {ratio:.1%} of req/s, {verdict} the {TARGET:.0%} target; "
        f"by server CPU per request: {cpu_ratio:.1%}"
    )


if __name__ == "__main__":
    main()
