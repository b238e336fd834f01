"""Requests per second of statefun_aiohttp and statefun_tornado against a bare endpoint, under wrk.

    python benchmarks/http/aiohttp_tornado_wrk.py                 # both frameworks, ~2 minutes
    python benchmarks/http/aiohttp_tornado_wrk.py --quick         # a short, noisy run
    python benchmarks/http/aiohttp_tornado_wrk.py --frameworks tornado --duration 20

For each framework three servers run, each a single process on one event loop: ``statefun``
(the user guide's async greeter behind our integration), ``bare`` (the same framework reading
the body and answering the same reply as fixed bytes) and ``floor`` (the same framework with
the core benchmark's hand-written protobuf greeter: no SDK at all). wrk posts real
``ToFunction`` bodies over loopback, rotating over ``--addresses`` ids, each request carrying
``seen_count`` so no discovery round happens. The servers take turns for ``--rounds`` rounds;
the table shows the median, and the server's CPU time per request (read from /proc), which
holds steady when other processes share the machine. With two or more CPUs the server is
pinned to CPU 0 and wrk to the others.
Target: statefun >= 80% of bare requests/s.
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

from statefun_core import protocol
from statefun_core.types import IntType, StringType

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "examples"))
from greeter_functions import functions  # noqa: E402

from statefun_core import RequestReplyHandler, make_plugin_manager  # noqa: E402

SERVERS = {"aiohttp": HERE / "aiohttp_server.py", "tornado": HERE / "tornado_server.py"}
KINDS = ("bare", "floor", "statefun")
TARGET = 0.80

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
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d\\n", summary.requests,
    summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def greeter_request(id: str, seen: int) -> bytes:
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
    return request.SerializeToString()


def lua_string(data: bytes) -> str:
    return '"' + "".join(f"\\{byte}" for byte in data) + '"'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, framework: str, kind: str, fixed_reply: bytes, cpu: Optional[str]):
        self.name = f"{framework} {kind}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/statefun"
        command = [sys.executable, str(SERVERS[framework]), kind, str(self.port)]
        if cpu is not None:
            command = ["taskset", "-c", cpu, *command]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE)
        assert self.process.stdin is not None
        self.process.stdin.write(fixed_reply)
        self.process.stdin.close()

    def post(self, body: bytes) -> bytes:
        deadline = time.monotonic() + 20
        while True:
            try:
                request = urllib.request.Request(self.url, data=body, method="POST")
                with urllib.request.urlopen(request, timeout=5) as response:
                    assert response.headers["Content-Type"] == "application/octet-stream"
                    return bytes(response.read())
            except (ConnectionError, urllib.error.URLError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{self.name} server did not start") from None
                time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used (Linux /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def run_wrk(
    server: Server, script: Path, seconds: float, threads: int, connections: int, cpu: Optional[str]
) -> dict[str, float]:
    """One wrk run: requests/s, latency percentiles and the server's CPU time per request."""
    url = server.url
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url]
    if cpu is not None:
        command = ["taskset", "-c", cpu, *command]
    cpu_before = server.cpu_seconds()
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu_used = server.cpu_seconds() - cpu_before
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    requests, duration_us, bad_status, socket_errors, p50, p99 = (int(v) for v in line.split()[1:])
    if bad_status:
        raise SystemExit(f"{server.name} answered {bad_status} requests with an error status")
    return {
        "rps": requests / (duration_us / 1e6),
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
        "cpu_us": cpu_used / requests * 1e6,
        "socket_errors": socket_errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--frameworks", nargs="+", choices=sorted(SERVERS), default=["aiohttp", "tornado"]
    )
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
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
    expected = protocol.FromFunction.FromString(fixed_reply)

    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "greeter.lua"
        script.write_text(LUA % ", ".join(lua_string(body) for body in bodies))
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        for framework in args.frameworks:
            servers = {kind: Server(framework, kind, fixed_reply, server_cpu) for kind in KINDS}
            try:
                for server in servers.values():
                    reply = protocol.FromFunction.FromString(server.post(bodies[0]))
                    assert reply == expected, f"{server.name} answered {reply}"
                    run_wrk(server, script, 2, args.threads, args.connections, wrk_cpu)
                for round in range(args.rounds):
                    shift = round % len(KINDS)  # each endpoint takes each place in turn
                    for kind in KINDS[shift:] + KINDS[:shift]:
                        result = run_wrk(
                            servers[kind],
                            script,
                            args.duration,
                            args.threads,
                            args.connections,
                            wrk_cpu,
                        )
                        results.setdefault((framework, kind), []).append(result)
                        print(
                            f"  round {round + 1} {framework} {kind}: {result['rps']:.0f} req/s,"
                            f" {result['cpu_us']:.0f} CPU us/req,"
                            f" {result['socket_errors']} socket errors/timeouts",
                            file=sys.stderr,
                        )
            finally:
                for server in servers.values():
                    server.stop()
    report(args, results, pinned)


def report(
    args: argparse.Namespace, results: dict[tuple[str, str], list[dict[str, float]]], pinned: bool
) -> None:
    print(
        f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration:g}s, {args.rounds} "
        f"round(s), {args.addresses} addresses, server pinned: {pinned}, "
        f"Python {sys.version.split()[0]}"
    )
    print(
        f"{'framework':<10}{'endpoint':<10}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'CPU us/req':>11}{'req/s vs bare':>15}{'CPU vs bare':>13}"
    )
    for framework in args.frameworks:
        medians = {}
        for kind in KINDS:
            runs = results[(framework, kind)]
            medians[kind] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        bare = medians["bare"]
        for kind, median in medians.items():
            print(
                f"{framework:<10}{kind:<10}{median['rps']:>8.0f}{median['p50_ms']:>8.1f}"
                f"{median['p99_ms']:>8.1f}{median['cpu_us']:>11.0f}"
                f"{median['rps'] / bare['rps']:>15.0%}{bare['cpu_us'] / median['cpu_us']:>13.0%}"
            )
        ratio = medians["statefun"]["rps"] / bare["rps"]
        verdict = "meets" if ratio >= TARGET else "is BELOW"
        print(
            f"{framework}: statefun at {ratio:.0%} of bare req/s {verdict} the {TARGET:.0%} target"
        )
    print(
        "\nCPU vs bare: bare's CPU time per request / this one's, the req/s ratio the server\n"
        "would reach with a CPU to itself. floor: the hand-written protobuf greeter of\n"
        "benchmarks/core, no SDK: what any SDK costs at least."
    )


if __name__ == "__main__":
    main()
