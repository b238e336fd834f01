"""Requests per second of statefun_aiohttp and statefun_tornado against a bare endpoint, under wrk.

    python benchmarks/http/aiohttp_tornado_wrk.py                 # 20 rounds each, ~9 minutes
    python benchmarks/http/aiohttp_tornado_wrk.py --kinds floor statefun  # the target only
    python benchmarks/http/aiohttp_tornado_wrk.py --quick         # a short, noisy run
    python benchmarks/http/aiohttp_tornado_wrk.py --frameworks tornado --rounds 40

For each framework four servers run, each a single process on one event loop: ``statefun``
(the user guide's async greeter behind our integration), ``bare`` (the same framework reading
the body and answering the same reply as fixed bytes), ``floor`` (the same framework with
the core benchmark's hand-written protobuf greeter: no SDK at all) and ``handler`` (a plain
view awaiting ``handle_async``: what the core costs over the floor, and the integration over
it). wrk posts real
``ToFunction`` bodies over loopback, rotating over ``--addresses`` ids, each request carrying
``seen_count`` so no discovery round happens. Each of ``--rounds`` rounds starts new server
processes, which take turns (see ``wrk.rounds``); the table shows the medians, and the
server's CPU time per request (read from /proc), which holds steady when other processes share
the machine; the ratio the target is about comes with a 95% confidence interval
(``wrk.report``). With two or more CPUs the server is
pinned to CPU 0 and wrk to the others.
Targets: statefun >= 97% of the floor's requests/s, and the integration at most 3 us of server
CPU per request over ``handler``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

from wrk import (
    Cpus,
    Result,
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

SERVERS = {"aiohttp": HERE / "aiohttp_server.py", "tornado": HERE / "tornado_server.py"}


def start(framework: str, kind: str, fixed_reply: bytes, cpus: Cpus) -> Server:
    """One process on one event loop; the bare server reads its fixed reply from stdin."""
    port = free_port()
    command = [sys.executable, str(SERVERS[framework]), kind, str(port)]
    process = subprocess.Popen(cpus.command(cpus.server, command), stdin=subprocess.PIPE)
    server = Server(f"{framework} {kind}", f"http://127.0.0.1:{port}/statefun", process)
    assert process.stdin is not None
    try:
        process.stdin.write(fixed_reply)
        process.stdin.close()
    except BaseException:
        server.stop()
        raise
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--frameworks", nargs="+", choices=sorted(SERVERS), default=["aiohttp", "tornado"]
    )
    add_arguments(parser, connections=64)
    args = parse_args(parser)
    cpus = Cpus()

    bodies = greeter_requests(args.addresses)
    fixed_reply = greeter_reply(bodies[0])

    results: dict[str, dict[str, list[Result]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        script = write_script(Path(tmp) / "greeter.lua", bodies)
        for framework in args.frameworks:
            results[framework] = rounds(
                partial(start, framework, fixed_reply=fixed_reply, cpus=cpus),
                bodies,
                script,
                args,
                cpus,
            )
    report(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s, {args.rounds} "
        f"round(s), {args.addresses} addresses, server pinned: {cpus.pinned}, "
        f"Python {sys.version.split()[0]}",
        results,
    )


if __name__ == "__main__":
    main()
