"""Requests per second of statefun_flask and statefun_django against a bare view, under wrk.

    python benchmarks/http/flask_django_wrk.py                  # 20 rounds each, ~15 minutes
    python benchmarks/http/flask_django_wrk.py --kinds floor statefun     # the target only
    python benchmarks/http/flask_django_wrk.py --quick          # a short, noisy run
    python benchmarks/http/flask_django_wrk.py --frameworks django --rounds 40

``flask`` and ``django`` run under gunicorn with sync workers; ``django-uvicorn`` runs the same
Django project under uvicorn (one process, httptools, asyncio), with async views throughout. For
each framework four servers run, with the same number of workers: ``statefun`` (the user guide's
greeter behind our integration) and ``bare`` (a plain view of the same framework reading the body
and answering fixed bytes of the same size); a third, ``handler`` (a plain view calling
``handle_sync``), splits the gap into the core's share and the integration's, and a fourth,
``floor`` (a plain view answering with the core benchmark's hand-written protobuf greeter, no SDK at
all), shows the most any SDK could reach. wrk posts real ``ToFunction`` bodies over loopback,
rotating over ``--addresses`` ids, each carrying ``seen_count`` so that no discovery round happens.
Each of ``--rounds`` rounds starts new server processes, which take turns (see ``wrk.rounds``); the
table shows the medians, and the ratio the target is about comes with a 95% confidence interval
(``wrk.report``). With two or more CPUs the servers are pinned to CPU 0 and wrk to the others.
Besides requests/s, the servers' CPU time per request is reported: on a busy machine it is the
steadier measure of what a request costs. Installed plugins are not loaded
(STATEFUN_DISABLE_PLUGIN_AUTOLOAD=1): this measures the integration and the core, not metrics or
tracing. Targets: statefun >= 97% of the floor's requests/s, and the integration at most 3 us of
server CPU per request over ``handler``.
"""

from __future__ import annotations

import argparse
import os
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

APPS = {
    "flask": "flask_app:make_app('{kind}')",
    "django": "django_app:application",
    "django-uvicorn": "django_app:application",
}
# the path module.yaml names (`urlPathTemplate: http://host:8000/statefun`), no slash
PATHS = {"flask": "/statefun", "django": "/statefun", "django-uvicorn": "/statefun"}


def start(framework: str, kind: str, fixed_reply: bytes, workers: int, cpus: Cpus) -> Server:
    """``gunicorn`` with sync workers (uvicorn for ``django-uvicorn``) on an ephemeral port of
    127.0.0.1."""
    port = free_port()
    app = APPS[framework].format(kind=kind)
    if framework == "django-uvicorn":
        command = [
            sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
            "--app-dir", str(HERE), "--http", "httptools", "--loop", "asyncio",
            "--log-level", "warning", "--no-access-log", app,
        ]  # fmt: skip
    else:
        command = [
            sys.executable, "-m", "gunicorn", "-k", "sync", "-w", str(workers),
            "-b", f"127.0.0.1:{port}", "--chdir", str(HERE), "--log-level", "warning", app,
        ]  # fmt: skip
    env = {
        **os.environ,
        "BENCH_KIND": kind,
        "BENCH_ASGI": "1" if framework == "django-uvicorn" else "0",
        "BENCH_FIXED_REPLY": fixed_reply.hex(),
        "STATEFUN_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    # not from the checkout: `python -m` puts the working directory first on sys.path, where
    # the checkout's sources would shadow an installed compiled core
    process = subprocess.Popen(cpus.command(cpus.server, command), env=env, cwd=HERE)
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

    results: dict[str, dict[str, list[Result]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        script = write_script(Path(tmp) / "greeter.lua", bodies)
        for framework in args.frameworks:
            results[framework] = rounds(
                partial(start, framework, fixed_reply=fixed_reply, workers=args.workers, cpus=cpus),
                bodies,
                script,
                args,
                cpus,
            )

    report(
        f"gunicorn sync x{args.workers} (uvicorn: 1 process), wrk -t{args.threads} "
        f"-c{args.connections} -d{args.duration:g}s, {args.rounds} round(s), "
        f"{args.addresses} addresses, server pinned: {cpus.pinned}, "
        f"Python {sys.version.split()[0]}",
        results,
    )


if __name__ == "__main__":
    main()
