"""Requests per second of statefun_flask and statefun_django against a bare view, under wrk.

    python benchmarks/http/flask_django_wrk.py                  # both frameworks, ~2 minutes
    python benchmarks/http/flask_django_wrk.py --quick          # a short, noisy run
    python benchmarks/http/flask_django_wrk.py --frameworks django --duration 20

For each framework two gunicorn servers run, with the same number of sync workers: ``statefun``
(the user guide's greeter behind our integration) and ``bare`` (a plain view of the same
framework reading the body and answering fixed bytes of the same size); a third, ``handler``
(a plain view calling ``handle_sync``), splits the gap into the core's share and the
integration's. wrk posts real
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
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Optional

from statefun_core import RequestReplyHandler, make_plugin_manager, protocol
from statefun_core.types import IntType, StringType

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "examples"))
from greeter_functions import functions  # noqa: E402

APPS = {"flask": "flask_app:make_app('{kind}')", "django": "django_app:application"}
PATHS = {"flask": "/statefun", "django": "/statefun/"}
KINDS = ("bare", "handler", "statefun")
TARGET = 0.90


LUA = """
local bodies = {%s}
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/octet-stream"
request = function()
  n = n %% #bodies + 1
  return wrk.format(nil, nil, nil, bodies[n])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def greeter_request(id: str, seen: int) -> bytes:
    """A ``ToFunction`` for the greeter at ``id`` carrying ``seen_count``: no discovery."""
    request = protocol.ToFunction()
    batch = request.invocation
    batch.target.namespace, batch.target.type = "com.example.fns", "greeter"
    batch.target.id = id
    state = batch.state.add(state_name="seen_count")
    state.state_value.typename = IntType.typename
    state.state_value.has_value = True
    state.state_value.value = IntType.serializer().serialize(seen)
    invocation = batch.invocations.add()
    invocation.argument.typename = StringType.typename
    invocation.argument.has_value = True
    invocation.argument.value = StringType.serializer().serialize(id)
    return bytes(request.SerializeToString())


def lua_string(data: bytes) -> str:
    return '"' + "".join(f"\\{byte}" for byte in data) + '"'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_wrk(
    url: str, script: Path, seconds: float, threads: int, connections: int, cpu: Optional[str]
) -> dict[str, float]:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url]
    if cpu is not None:
        command = ["taskset", "-c", cpu, *command]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    requests, duration_us, errors, p50, p99 = (int(v) for v in line.split()[1:])
    if errors:
        raise SystemExit(f"wrk saw {errors} errors against {url}:\n{output}")
    return {
        "requests": requests,
        "rps": requests / (duration_us / 1e6),
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
    }


class Server:
    """``gunicorn`` with sync workers on an ephemeral port of 127.0.0.1."""

    def __init__(
        self, framework: str, kind: str, fixed_reply: bytes, workers: int, cpu: Optional[str]
    ) -> None:
        self.name = f"{framework} {kind}"
        port = free_port()
        self.url = f"http://127.0.0.1:{port}{PATHS[framework]}"
        command = [
            sys.executable, "-m", "gunicorn", "-k", "sync", "-w", str(workers),
            "-b", f"127.0.0.1:{port}", "--chdir", str(HERE), "--log-level", "warning",
            APPS[framework].format(kind=kind),
        ]  # fmt: skip
        if cpu is not None:
            command = ["taskset", "-c", cpu, *command]
        env = {
            **os.environ,
            "BENCH_KIND": kind,
            "BENCH_FIXED_REPLY": fixed_reply.hex(),
            "STATEFUN_DISABLE_PLUGIN_AUTOLOAD": "1",
        }
        self.process = subprocess.Popen(command, env=env)

    def post(self, body: bytes) -> bytes:
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request(self.url, data=body, method="POST")
                with urllib.request.urlopen(request, timeout=5) as response:
                    assert response.headers["Content-Type"] == "application/octet-stream"
                    return bytes(response.read())
            except OSError:  # not listening yet (URLError, reset, timeout)
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{self.name} server did not start") from None
                time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """CPU time used so far by the gunicorn master and its workers."""
        pids = [self.process.pid]
        children = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True
        )
        pids += [int(pid) for pid in children.stdout.split()]
        ticks = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--frameworks", nargs="+", choices=sorted(APPS), default=sorted(APPS))
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers, per server")
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--addresses", type=int, default=100, help="distinct ids to rotate over")
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rounds = 3, 1
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")

    cpus = os.cpu_count() or 1
    pinned = cpus >= 2 and shutil.which("taskset") is not None
    server_cpu = "0" if pinned else None
    wrk_cpu = f"1-{cpus - 1}" if pinned else None

    bodies = [greeter_request(f"user-{n}", n) for n in range(args.addresses)]
    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    fixed_reply = handler.handle_sync(bodies[0])

    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "greeter.lua"
        script.write_text(LUA % ", ".join(lua_string(body) for body in bodies))
        for framework in args.frameworks:
            servers = {
                kind: Server(framework, kind, fixed_reply, args.workers, server_cpu)
                for kind in KINDS
            }
            try:
                for server in servers.values():
                    reply = server.post(bodies[0])
                    assert len(reply) == len(fixed_reply), (server.name, reply)
                    if not server.name.endswith("bare"):
                        assert reply == fixed_reply, f"{server.name}: the reply differs"
                    run_wrk(server.url, script, 2, args.threads, args.connections, wrk_cpu)
                for round in range(args.rounds):
                    for kind in KINDS[round % len(KINDS) :] + KINDS[: round % len(KINDS)]:
                        cpu_before = servers[kind].cpu_seconds()
                        result = run_wrk(
                            servers[kind].url,
                            script,
                            args.duration,
                            args.threads,
                            args.connections,
                            wrk_cpu,
                        )
                        cpu_used = servers[kind].cpu_seconds() - cpu_before
                        result["cpu_us"] = cpu_used / result["requests"] * 1e6
                        results.setdefault((framework, kind), []).append(result)
                        print(
                            f"  round {round + 1} {framework} {kind}: {result['rps']:.0f} req/s, "
                            f"{result['cpu_us']:.0f} server CPU us/request",
                            file=sys.stderr,
                        )
            finally:
                for server in servers.values():
                    server.stop()

    print(
        f"\ngunicorn sync x{args.workers}, wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration:g}s, {args.rounds} round(s), {args.addresses} addresses, "
        f"server pinned: {pinned}, Python {sys.version.split()[0]}"
    )
    print(
        f"{'framework':<10}{'endpoint':<10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'CPU us/req':>12}"
    )
    for framework in args.frameworks:
        medians = {}
        for kind in KINDS:
            runs = results[(framework, kind)]
            medians[kind] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
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
        core_us = medians["handler"]["cpu_us"] - medians["bare"]["cpu_us"]
        ours_us = medians["statefun"]["cpu_us"] - medians["handler"]["cpu_us"]
        print(
            f"{framework:<10}{'split':<10}  server CPU per request over bare: core (handle_sync) "
            f"{core_us:+.0f} us, integration {ours_us:+.0f} us"
        )


if __name__ == "__main__":
    main()
