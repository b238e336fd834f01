"""What the HTTP benchmarks share: greeter request bodies, the servers they start, wrk runs
(with the servers' CPU time per request) and the rounds in which the endpoints take turns."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable, Optional

from statefun_core import RequestReplyHandler, make_plugin_manager, protocol
from statefun_core.testing import wire

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from greeter_functions import functions

Result = dict[str, float]

#: The endpoints each framework serves (see benchmarks/README.md): fixed bytes, the
#: hand-written protobuf greeter with no SDK, a plain view calling the core's handler, ours.
KINDS = ("bare", "floor", "handler", "statefun")

#: wrk posts the bodies in turn and prints one RESULT line: requests, duration (us),
#: non-2xx answers, socket errors and timeouts, p50 and p99 latency (us).
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


def core_build() -> str:
    """Which build of the core the servers import: compiled by mypyc or Python."""
    from statefun_core import handler

    return "Python" if handler.__file__.endswith(".py") else "compiled (mypyc)"


def greeter_requests(addresses: int) -> list[bytes]:
    """``ToFunction`` bodies for the greeter at ``user-0``...: each carries ``seen_count``, so
    no discovery round happens."""
    return [
        wire.to_function("com.example.fns/greeter", f"user-{n}", [f"user-{n}"], {"seen_count": n})
        for n in range(addresses)
    ]


def write_script(path: Path, bodies: list[bytes]) -> Path:
    lua_strings = ('"' + "".join(f"\\{byte}" for byte in body) + '"' for body in bodies)
    path.write_text(LUA % ", ".join(lua_strings))
    return path


def greeter_reply(body: bytes) -> bytes:
    """The guide's greeter's reply to ``body``, from the core handler with no plugins: what
    every endpoint must answer (a bare one answers it as fixed bytes)."""
    handler = RequestReplyHandler(functions, plugins=make_plugin_manager(load_entrypoints=False))
    return handler.handle_sync(body)


class Server:
    """A server process answering ``POST`` at ``url``; ``name`` is ``"<framework> <kind>"``."""

    def __init__(self, name: str, url: str, process: subprocess.Popen[bytes]) -> None:
        self.name = name
        self.url = url
        self.process = process

    def post(self, body: bytes) -> bytes:
        """POST ``body``, waiting for the server to listen."""
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
        """User + system CPU time used so far by the server and its worker processes."""
        children = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True
        )
        ticks = 0
        for pid in [self.process.pid, *map(int, children.stdout.split())]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:  # a worker that just exited
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def check_replies(servers: dict[str, Server], body: bytes, expected: bytes) -> None:
    """Every server answers ``body`` with ``expected`` (compared as messages), the bare one
    with bytes of the same size."""
    reply = protocol.FromFunction.FromString(expected)
    for kind, server in servers.items():
        answer = server.post(body)
        assert len(answer) == len(expected), f"{server.name} answered {answer!r}"
        if kind != "bare":
            parsed = protocol.FromFunction.FromString(answer)
            assert parsed == reply, f"{server.name} answered {parsed}"


def add_arguments(parser: argparse.ArgumentParser, *, connections: int) -> None:
    parser.add_argument("--duration", type=float, default=2, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=20, help="each with new server processes")
    parser.add_argument("--connections", type=int, default=connections)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--addresses", type=int, default=100, help="distinct ids to rotate over")
    parser.add_argument(
        "--kinds", nargs="+", choices=KINDS, default=list(KINDS),
        help="endpoints to run (floor and statefun at least): fewer kinds, more rounds",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s")


def parse_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    args = parser.parse_args()
    if not {"floor", "statefun"} <= set(args.kinds):
        parser.error("--kinds needs floor and statefun, the two the target compares")
    args.kinds = [kind for kind in KINDS if kind in args.kinds]
    if args.quick:
        args.duration, args.rounds = 3, 1
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    return args


class Cpus:
    """With two or more CPUs (and taskset), the servers run on CPU 0 and wrk on the others."""

    def __init__(self) -> None:
        count = os.cpu_count() or 1
        self.pinned = count >= 2 and shutil.which("taskset") is not None
        self.server = "0" if self.pinned else None
        self.wrk = f"1-{count - 1}" if self.pinned else None

    @staticmethod
    def command(cpu: Optional[str], command: list[str]) -> list[str]:
        return command if cpu is None else ["taskset", "-c", cpu, *command]


def run_wrk(
    server: Server, script: Path, args: argparse.Namespace, cpus: Cpus, seconds: float
) -> Result:
    """One wrk run: requests/s, latency percentiles and the server's CPU time per request."""
    command = [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds:g}s",
        "-s", str(script), server.url,
    ]  # fmt: skip
    cpu_before = server.cpu_seconds()
    output = subprocess.run(
        cpus.command(cpus.wrk, command), capture_output=True, text=True, check=True
    ).stdout
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


def rounds(
    start: Callable[[str], Server],
    bodies: list[bytes],
    script: Path,
    args: argparse.Namespace,
    cpus: Cpus,
) -> dict[str, list[Result]]:
    """``args.rounds`` rounds, each with new server processes (``start(kind)`` for each of
    ``args.kinds``) that take turns, each in every place in turn over the rounds, after a
    1 s warm-up each; each endpoint kind's results, round by round.

    A server process is one draw of what a process's start decides (its hash seed, where its
    objects land in memory), which moves its speed by a few percent for good: with the same
    processes in every round, the rounds agree on a ratio that the next processes do not.
    """
    kinds = list(args.kinds)
    expected = greeter_reply(bodies[0])
    runs: dict[str, list[Result]] = {kind: [] for kind in kinds}
    for round in range(args.rounds):
        with contextlib.ExitStack() as running:  # stops every server started, come what may
            servers: dict[str, Server] = {}
            for kind in kinds:
                servers[kind] = start(kind)
                running.callback(servers[kind].stop)
            check_replies(servers, bodies[0], expected)
            for server in servers.values():
                run_wrk(server, script, args, cpus, 1)
            shift = round % len(kinds)
            for kind in kinds[shift:] + kinds[:shift]:
                result = run_wrk(servers[kind], script, args, cpus, args.duration)
                runs[kind].append(result)
                print(
                    f"  round {round + 1} {servers[kind].name}: {result['rps']:.0f} req/s,"
                    f" {result['cpu_us']:.1f} server CPU us/req,"
                    f" {result['socket_errors']:.0f} socket errors/timeouts",
                    file=sys.stderr,
                )
    return runs


#: The issue's targets: our endpoint at >= 97% of the floor's requests/s, and at most 3 us of
#: server CPU per request over the ``handler`` view (the integration's own cost).
TARGET_RATIO = 0.97
#: The fewest rounds whose range is a 95% confidence interval for their median (from 9 on,
#: the interval is narrower than the range).
MIN_ROUNDS = 6
TARGET_INTEGRATION_US = 3.0


def report(header: str, results: dict[str, dict[str, list[Result]]]) -> None:
    """The table of medians by framework and endpoint, then the ratios and CPU differences
    that the targets are about, each the median over the rounds of that round's value (the
    endpoints of a round ran moments apart, so load that comes and goes cancels out).

    The ratio comes with a 95% confidence interval for that median, and the verdict is
    taken from the interval: "meets" only when all of it is at or above the target, "BELOW"
    when all of it is under, "undecided" when it straddles the target (more rounds narrow it;
    fewer than ``MIN_ROUNDS`` cannot tell).
    """
    print(f"\n{header}; the core {core_build()}")
    print(
        f"{'framework':<16}{'endpoint':<10}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'CPU us/req':>11}"
    )
    for framework, runs in results.items():
        for kind, kind_runs in runs.items():
            median = {key: statistics.median(run[key] for run in kind_runs) for key in kind_runs[0]}
            print(
                f"{framework:<16}{kind:<10}{median['rps']:>9.0f}{median['p50_ms']:>8.2f}"
                f"{median['p99_ms']:>8.2f}{median['cpu_us']:>11.1f}"
            )
    print()
    for framework, runs in results.items():
        ratios = _each_round(runs, lambda r: r["statefun"]["rps"] / r["floor"]["rps"])
        ratio = statistics.median(ratios)
        low, high = median_interval(ratios)
        verdict = "meets" if low >= TARGET_RATIO else "undecided"
        if high < TARGET_RATIO:
            verdict = "BELOW"
        if len(ratios) < MIN_ROUNDS:
            verdict = f"too few rounds to tell, {MIN_ROUNDS} at least"
        cpu_ratio = _per_round(runs, lambda r: r["floor"]["cpu_us"] / r["statefun"]["cpu_us"])
        interval = "95% CI" if len(ratios) >= MIN_ROUNDS else "range"
        line = (
            f"{framework}: statefun / floor {ratio:.1%} of req/s ({interval} {low:.1%} to "
            f"{high:.1%} over {len(ratios)} rounds: {verdict}, target {TARGET_RATIO:.0%}), "
            f"{cpu_ratio:.1%} by server CPU per request"
        )
        if "handler" in runs:
            core = _per_round(runs, lambda r: r["handler"]["cpu_us"] - r["floor"]["cpu_us"])
            integration = _per_round(
                runs, lambda r: r["statefun"]["cpu_us"] - r["handler"]["cpu_us"]
            )
            line += (
                f"; server CPU per request over the floor: core {core:+.1f} us, integration "
                f"{integration:+.1f} us "
                f"({'meets' if integration <= TARGET_INTEGRATION_US else 'OVER'} "
                f"{TARGET_INTEGRATION_US:g} us)"
            )
        print(line)
    print(
        "\nMedians over the rounds of each round's ratio or difference. floor: a plain view "
        "with the\nhand-written protobuf greeter of benchmarks/core, no SDK; handler: a plain "
        "view calling\nthe core's handler; bare: fixed bytes. core = handler - floor, "
        "integration = statefun - handler."
    )


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free confidence interval for the median of ``values``: the order
    statistics whose ranks a fair coin (Binomial(n, 1/2)) brackets with ``confidence``.
    Too few values for that confidence give their whole range."""
    ordered = sorted(values)
    n = len(ordered)
    tail = (1 - confidence) / 2
    below = 0.0  # P(Binomial(n, 1/2) < k), for k = 0, 1, ...
    k = 0
    while below + math.comb(n, k) / 2**n <= tail:
        below += math.comb(n, k) / 2**n
        k += 1
    if k == 0:
        return ordered[0], ordered[-1]
    return ordered[k - 1], ordered[n - k]


def _each_round(
    runs: dict[str, list[Result]], value: Callable[[dict[str, Result]], float]
) -> list[float]:
    """``value`` of each round's results by endpoint kind."""
    rounds = len(next(iter(runs.values())))
    return [value({kind: runs[kind][n] for kind in runs}) for n in range(rounds)]


def _per_round(runs: dict[str, list[Result]], value: Callable[[dict[str, Result]], float]) -> float:
    """The median over the rounds of ``value`` of one round's results by endpoint kind."""
    return statistics.median(_each_round(runs, value))
