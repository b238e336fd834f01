"""Requests per second of statefun_flask and statefun_django against a bare view, under wrk.

    python benchmarks/http/flask_django_wrk.py                  # both frameworks, ~2 minutes
    python benchmarks/http/flask_django_wrk.py --quick          # a short, noisy run
    python benchmarks/http/flask_django_wrk.py --frameworks django --duration 20

For each framework two gunicorn servers run, with the same number of sync workers: ``statefun``
(the user guide's greeter behind our integration) and ``bare`` (a plain view of the same
framework reading the body and answering fixed bytes of the same size); a third, ``handler``
(a plain view calling ``handle_sync``), splits the gap into the core's share and the
integration's, and a fourth, ``floor`` (a plain view answering with the core benchmark's
hand-written protobuf greeter, no SDK at all), shows the most any SDK could reach. wrk posts real
``ToFunction`` bodies over loopback, rotating over ``--addresses`` ids, each carrying
``seen_count`` so that no discovery round happens. The two take turns for ``--rounds`` rounds;
the table shows the median. With two or more CPUs the servers are pinned to CPU 0 and wrk to
the others. Besides requests/s, the servers' CPU time per request is reported: on a busy
machine it is the steadier measure of what a request costs. Installed plugins are not loaded
(STATEFUN_DISABLE_PLUGIN_AUTOLOAD=1): this measures the integration and the core, not metrics
or tracing. Target: statefun >= 90% of bare.
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

APPS = {"flask": "flask_app:make_app('{kind}')", "django": "django_app:application"}
PATHS = {"flask": "/statefun", "django": "/statefun/"}
KINDS = ("bare", "floor", "handler", "statefun")
TARGET = 0.90


def start(framework: str, kind: str, fixed_reply: bytes, workers: int, cpus: Cpus) -> Server:
    """``gunicorn`` with sync workers on an ephemeral port of 127.0.0.1."""
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "-k", "sync", "-w", str(workers),
        "-b", f"127.0.0.1:{port}", "--chdir", str(HERE), "--log-level", "warning",
        APPS[framework].format(kind=kind),
    ]  # fmt: skip
    env = {
        **os.environ,
        "BENCH_KIND": kind,
        "BENCH_FIXED_REPLY": fixed_reply.hex(),
        "STATEFUN_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    process = subprocess.Popen(cpus.command(cpus.server, command), env=env)
    return Server(f"{framework} {kind}", f"http://127.0.0.1:{port}{PATHS[framework]}", process)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--frameworks", nargs="+", choices=sorted(APPS), default=sorted(APPS))
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers, per server")
    add_arguments(parser, connections=16)
    args = parse_args(parser)
    cpus = Cpus()

    bodies = greeter_requests(args.addresses)
    fixed_reply = greeter_reply(bodies[0])

    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        script = write_script(Path(tmp) / "greeter.lua", bodies)
        for framework in args.frameworks:
            servers = {
                kind: start(framework, kind, fixed_reply, args.workers, cpus) for kind in KINDS
            }
            try:
                check_replies(servers, bodies[0], fixed_reply)
                results[framework] = take_turns(servers, script, args, cpus)
            finally:
                for server in servers.values():
                    server.stop()

    print(
        f"\ngunicorn sync x{args.workers}, wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration:g}s, {args.rounds} round(s), {args.addresses} addresses, "
        f"server pinned: {cpus.pinned}, Python {sys.version.split()[0]}"
    )
    print(
        f"{'framework':<10}{'endpoint':<10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'CPU us/req':>12}"
    )
    for framework in args.frameworks:
        medians = results[framework]
        for kind in KINDS:
            median = medians[kind]
            print(
                f"{framework:<10}{kind:<10}{median['rps']:>10.0f}{median['p50_ms']:>9.2f}"
                f"{median['p99_ms']:>9.2f}{median['cpu_us']:>12.0f}"
            )
        ratio = medians["statefun"]["rps"] / medians["bare"]["rps"]
        cpu_ratio = medians["bare"]["cpu_us"] / medians["statefun"]["cpu_us"]
        verdict = "meets" if ratio >= TARGET else "BELOW"
        print(
            f"{framework:<10}{'ratio':<10}{ratio:>10.0%}  {verdict} the {TARGET:.0%} target; "
            f"by server CPU per request: {cpu_ratio:.0%}"
        )
        floor_ratio = medians["floor"]["rps"] / medians["bare"]["rps"]
        print(f"{framework:<10}{'floor':<10}{floor_ratio:>10.0%}  with no SDK at all")
        core_us = medians["handler"]["cpu_us"] - medians["bare"]["cpu_us"]
        ours_us = medians["statefun"]["cpu_us"] - medians["handler"]["cpu_us"]
        print(
            f"{framework:<10}{'split':<10}  server CPU per request over bare: core (handle_sync) "
            f"{core_us:+.0f} us, integration {ours_us:+.0f} us"
        )


if __name__ == "__main__":
    main()
