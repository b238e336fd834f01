"""Benchmark the core SDK's ``RequestReplyHandler`` against the official SDK and a floor.

    python benchmarks/run.py            # full run (a few minutes the first time: venvs)
    python benchmarks/run.py --quick    # a short run, to check that it works
    python benchmarks/run.py --profile d --payloads batch100
    python benchmarks/run.py --instructions --impls cd     # callgrind counts, load-proof
    python benchmarks/run.py --cycles --impls cd           # ... with caches and branches
    python benchmarks/run.py --impls cd --candidate /tmp/try   # A/B a copy of statefun_core

Standard library only: it makes one virtualenv per implementation under
``benchmarks/.venvs/``, runs one worker process in each (``core/worker.py``), hands every
worker the same request bytes, checks that the replies agree, then times the
implementations in interleaved rounds. See README.md for how to read the table.
"""

from __future__ import annotations

import argparse
import base64
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENVS = HERE / ".venvs"
RESULTS = HERE / "results"
DESCRIPTORS = ROOT / "statefun_core" / "protocol" / "statefun.desc"
OFFICIAL = "apache-flink-statefun==3.3.0"
TARGET = 1.5  # ours within 1.5x of the floor

sys.path.insert(0, str(HERE))
from core.payloads import INVOCATIONS, PAYLOADS, build  # noqa: E402

HANDLERS = ("sync", "async")


@dataclass
class Impl:
    key: str
    name: str
    worker: str  # the worker's IMPL argument
    installs: list[list[str]]  # one `pip install` argument list per step
    pythonpath: str = ""  # put first on the worker's sys.path (a candidate statefun_core)
    launcher: list[str] = field(default_factory=list)  # e.g. valgrind and its options
    dumps: int = 0  # callgrind dumps made so far (with --instructions)
    venv_name: str = ""  # another implementation's venv, shared
    python: str = "3.11"
    info: dict[str, str] = field(default_factory=dict)
    process: Any = None

    @property
    def venv(self) -> Path:
        # "3.11", or an interpreter's path ("/usr/bin/python3.11": "usr-bin-python3.11")
        python = re.sub(r"[^\w.]+", "-", self.python).strip("-")
        return VENVS / f"{self.venv_name or self.name}-py{python}"

    def ask(self, op: str, **arguments: Any) -> dict[str, Any]:
        self.process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"worker {self.key} ({self.name}) died; see its stderr above")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise SystemExit(f"worker {self.key} ({self.name}) failed on {op}: {answer['error']}")
        return answer


def implementations(official_upb_protobuf: str, candidate: Path | None) -> list[Impl]:
    ours = [["-e", str(ROOT), "protobuf"]]
    return [
        Impl("a", "official", "official", [[OFFICIAL]]),
        Impl(
            "b",
            "official-upb",
            "official",
            [["--no-deps", OFFICIAL], [official_upb_protobuf]],
        ),
        Impl("c", "floor", "floor", [["protobuf"]]),
        Impl("d", "ours", "ours", ours),
        *(
            [Impl("e", "candidate", "ours", ours, pythonpath=str(candidate), venv_name="ours")]
            if candidate
            else []
        ),
    ]


# --- virtualenvs ------------------------------------------------------------------------------


def python_of(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def find_python(version: str) -> str:
    """An interpreter for ``version`` ("3.12"), or ``version`` itself if it is a path."""
    if os.sep in version:
        return version
    candidates = [shutil.which(f"python{version}") or ""]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python")))
    for candidate in candidates:
        probe = [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]
        if (
            candidate
            and subprocess.run(probe, capture_output=True, text=True).stdout.strip() == version
        ):
            return candidate
    return version  # let uv (or venv) find it


def ensure_venv(impl: Impl, python: str, recreate: bool) -> None:
    """Make (or reuse) the implementation's venv; the spec file says what it was made with."""
    spec = json.dumps({"python": python, "installs": impl.installs})
    marker = impl.venv / "benchmark-spec.json"
    if not recreate and marker.exists() and marker.read_text() == spec:
        return
    print(f"  making {impl.venv.relative_to(ROOT)} ...", file=sys.stderr)
    shutil.rmtree(impl.venv, ignore_errors=True)
    uv = shutil.which("uv")
    if uv:
        subprocess.run([uv, "venv", "-q", "-p", find_python(python), str(impl.venv)], check=True)
        pip = [uv, "pip", "install", "-q", "--python", str(python_of(impl.venv))]
    else:
        interpreter = find_python(python)
        subprocess.run([interpreter, "-m", "venv", str(impl.venv)], check=True)
        pip = [str(python_of(impl.venv)), "-m", "pip", "install", "-q"]
    for arguments in impl.installs:
        subprocess.run([*pip, *arguments], check=True)
    marker.write_text(spec)


def start(impl: Impl) -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if impl.worker == "official":  # a PYTHONPATH with statefun-compat's src would be measured
        env.pop("PYTHONPATH", None)
    if impl.pythonpath:
        env["PYTHONPATH"] = impl.pythonpath
    impl.process = subprocess.Popen(
        [
            *impl.launcher,
            str(python_of(impl.venv)),
            *["-m", "core.worker", impl.worker, str(DESCRIPTORS)],
        ],
        cwd=HERE,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = impl.process.stdout.readline()
    if not line:
        raise SystemExit(f"worker {impl.key} ({impl.name}) did not start; see its stderr above")
    impl.info = json.loads(line)


def stop(impl: Impl) -> None:
    if impl.process is not None and impl.process.poll() is None:
        impl.process.stdin.write(json.dumps({"op": "exit"}) + "\n")
        impl.process.stdin.flush()
        impl.process.wait(timeout=10)


# --- verification ------------------------------------------------------------------------------


def verify(impls: list[Impl], payloads: list[str], judge: Impl) -> bool:
    """Every implementation's reply, per payload and handler, must parse to the same
    ``FromFunction`` (``judge``, a worker with the newest protobuf, compares them)."""
    print("Replies (parsed with the newest protobuf and compared):")
    ok = True
    for payload in payloads:
        replies: dict[str, bytes] = {}
        for handler in HANDLERS:
            for impl in impls:
                reply = impl.ask("reply", payload=payload, handler=handler)["reply"]
                replies[f"{impl.key}/{handler}"] = base64.b64decode(reply)
        verdict = judge.ask(
            "equivalent", replies={k: base64.b64encode(v).decode() for k, v in replies.items()}
        )
        groups: dict[bytes, list[str]] = {}
        for label, reply in replies.items():
            groups.setdefault(reply, []).append(label)
        identical = " = ".join(",".join(labels) for labels in groups.values())
        sizes = sorted({len(reply) for reply in replies.values()})
        state = "equivalent" if verdict["equal"] else "DIFFERENT"
        print(f"  {payload:9} {state}; byte-identical groups: {identical}; bytes {sizes}")
        if not verdict["equal"]:
            ok = False
            for label, text in verdict["differing"].items():
                print(f"    --- {label}\n" + "\n".join("    " + t for t in text.splitlines()))
    return ok


# --- timing ------------------------------------------------------------------------------------


def run_rounds(
    impls: list[Impl], cells: list[tuple[str, str]], rounds: int, block_ns: int, clock: str
) -> dict[tuple[str, str, str], list[float]]:
    """Per (impl, payload, handler): µs per request, one value per round. Each round times
    every cell on every implementation in turn, rotating the order from round to round.
    ``clock`` is "wall" (``perf_counter_ns``) or "cpu" (the worker thread's CPU time)."""
    answer = "ns" if clock == "wall" else "cpu_ns"
    sizes = {
        (impl.key, payload, handler): impl.ask(
            "calibrate", payload=payload, handler=handler, target_ns=block_ns
        )["n"]
        for payload, handler in cells
        for impl in impls
    }
    samples: dict[tuple[str, str, str], list[float]] = {key: [] for key in sizes}
    started = time.monotonic()
    for r in range(rounds):
        for payload, handler in cells:
            order = impls[r % len(impls) :] + impls[: r % len(impls)]
            for impl in order:
                key = (impl.key, payload, handler)
                ns = impl.ask("time", payload=payload, handler=handler, n=sizes[key])[answer]
                samples[key].append(ns / sizes[key] / 1000)
        if r == 0:
            estimate = (time.monotonic() - started) * rounds
            print(f"Timing {rounds} rounds (about {estimate:.0f} s) ...", file=sys.stderr)
    return samples


def count_under_callgrind(
    impls: list[Impl], cells: list[tuple[str, str]], dumps: Path, cycles: bool = False
) -> dict[tuple[str, str, str], list[float]]:
    """Per (impl, payload, handler): thousands of instructions (or estimated cycles) per
    request, from callgrind (one value: the count is the same from run to run, whatever else
    the machine does)."""
    counts: dict[tuple[str, str, str], list[float]] = {}
    for payload, handler in cells:
        n = max(5, 100 // INVOCATIONS[payload])
        for impl in impls:
            impl.ask("count", payload=payload, handler=handler, n=n)
            impl.dumps += 2  # the second holds the n requests
            text = (dumps / f"{impl.key}.cg.{impl.dumps}").read_text()
            lines = text.splitlines()
            events = next(line for line in lines if line.startswith("events:")).split()[1:]
            totals = next(line for line in lines if line.startswith("totals:")).split()[1:]
            total = dict(zip(events, map(int, totals)))
            counts[(impl.key, payload, handler)] = [
                (estimated_cycles(total) if cycles else total["Ir"]) / n / 1000
            ]
    return counts


def estimated_cycles(events: dict[str, int]) -> float:
    """Cycles from callgrind's simulated events: each instruction one cycle, a first-level
    cache miss 10 more, a last-level miss 100, a mispredicted branch 20.

    The weights are rough, but on one invocation the sum tracks the clock where instructions
    alone do not: an interpreter's bytecode misses its instruction cache and mispredicts its
    dispatch far more than protobuf's C, so an SDK's extra bytecode costs more cycles than its
    instructions say. It overstates long loops (batch100), whose branches a real CPU's
    predictor learns better than callgrind's simple model.
    """
    first = events["I1mr"] + events["D1mr"] + events["D1mw"]
    last = events["ILmr"] + events["DLmr"] + events["DLmw"]
    return events["Ir"] + 10 * first + 100 * last + 20 * (events["Bcm"] + events["Bim"])


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4)
    return q1, statistics.median(values), q3


def report(
    impls: list[Impl],
    cells: list[tuple[str, str]],
    samples: dict[tuple[str, str, str], list[float]],
    unit: str = "µs",
) -> dict[str, Any]:
    keys = [impl.key for impl in impls]
    median = {key: statistics.median(values) for key, values in samples.items()}
    ratios = [(k, "c") for k in ("d", "e", "a", "b") if k in keys and "c" in keys]
    header = f"{'payload':9} {'handler':7} " + " ".join(f"{k + ' ' + unit:>9}" for k in keys)
    header += "".join(f" {f'{x}/{y}':>6}" for x, y in ratios)
    if ("d", "c") in ratios:
        header += f"  target d/c<={TARGET}"
    print(header)
    print("-" * len(header))
    rows = []
    for payload, handler in cells:
        row = {"payload": payload, "handler": handler}
        line = f"{payload:9} {handler:7} "
        line += " ".join(f"{median[(k, payload, handler)]:9.1f}" for k in keys)
        for x, y in ratios:
            # paired: x and y ran moments apart in each round, so load that comes and goes
            # between rounds cancels out
            xs, ys = samples[(x, payload, handler)], samples[(y, payload, handler)]
            ratio = statistics.median(a / b for a, b in zip(xs, ys))
            row[f"{x}/{y}"] = round(ratio, 3)
            row[f"{x}/{y} of medians"] = round(statistics.median(xs) / statistics.median(ys), 3)
            line += f" {ratio:6.2f}"
        if ("d", "c") in ratios:
            line += "  ok" if round(row["d/c"], 2) <= TARGET else "  MISS"
        for k in keys:
            q1, q2, q3 = quartiles(samples[(k, payload, handler)])
            row[k] = {"median": round(q2, 3), "q1": round(q1, 3), "q3": round(q3, 3)}
        rows.append(row)
        print(line)
    if rounds_of(samples) == 1:
        return {"rows": rows, "unit": unit}
    spread, where = max(
        ((q3 - q1) / q2, key)
        for key, (q1, q2, q3) in ((k, quartiles(v)) for k, v in samples.items())
    )
    print(f"\nLargest spread between rounds (IQR / median): {spread:.1%} at {'/'.join(where)}")
    if hasattr(os, "getloadavg"):
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"Load average at the end (1, 5, 15 min): {load} on {os.cpu_count()} CPUs")
    return {"rows": rows, "unit": unit}


def rounds_of(samples: dict[tuple[str, str, str], list[float]]) -> int:
    return len(next(iter(samples.values())))


# --- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="few short rounds (a smoke test)")
    parser.add_argument("--rounds", type=int, help="rounds of timing (default 100, quick 5)")
    parser.add_argument("--block-ms", type=float, help="time per timed block (default 25, quick 5)")
    parser.add_argument("--payloads", default=",".join(PAYLOADS), help="comma-separated")
    parser.add_argument("--handlers", default=",".join(HANDLERS), help="comma-separated")
    parser.add_argument("--impls", default="abcd", help="which implementations, e.g. cd")
    parser.add_argument(
        "--python",
        default="3.11",
        help="Python of every venv: a version (default 3.11) or an interpreter's path",
    )
    parser.add_argument(
        "--official-upb-protobuf", default="protobuf", help="protobuf requirement for (b)"
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: perf_counter_ns (default); cpu: the worker thread's CPU time, steadier "
        "on a busy machine (it leaves out the time the worker waits for a CPU)",
    )
    parser.add_argument("--recreate", action="store_true", help="rebuild the venvs")
    parser.add_argument(
        "--candidate",
        type=Path,
        metavar="DIR",
        help="also time e: the statefun_core package found in DIR (a copy of a checkout with a "
        "change to try), in ours' venv",
    )
    parser.add_argument("--profile", metavar="IMPL", help="cProfile one implementation instead")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per request under valgrind's callgrind instead of timing: "
        "slow, but the same on a busy machine as on a quiet one",
    )
    parser.add_argument(
        "--cycles",
        action="store_true",
        help="like --instructions, with callgrind's cache and branch simulation: estimated "
        "cycles per request, which track the clock more closely (slower still)",
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "latest.json", help="results file")
    args = parser.parse_args()
    rounds = args.rounds or (5 if args.quick else 100)
    block_ns = int((args.block_ms or (5 if args.quick else 25)) * 1e6)
    payloads = [p for p in args.payloads.split(",") if p]
    handlers = [h for h in args.handlers.split(",") if h]
    unknown = set(payloads) - set(PAYLOADS) | set(handlers) - set(HANDLERS)
    if unknown:
        parser.error(f"unknown payloads or handlers: {sorted(unknown)}")
    cells = [(payload, handler) for payload in payloads for handler in handlers]

    candidate = args.candidate.resolve() if args.candidate else None
    everything = implementations(args.official_upb_protobuf, candidate)
    impls_arg = args.impls + ("e" if args.candidate else "")
    wanted = set(impls_arg + (args.profile or "") + "cd")  # c judges the replies, e needs d's venv
    impls = [impl for impl in everything if impl.key in wanted]
    for impl in impls:
        impl.python = args.python
    print("Preparing virtualenvs ...", file=sys.stderr)
    for impl in impls:
        if not impl.venv_name:
            ensure_venv(impl, args.python, args.recreate)
    requests = build()
    encoded = {name: base64.b64encode(requests[name]).decode() for name in payloads}
    dumps = Path(tempfile.mkdtemp(prefix="statefun-bench-"))
    counting = args.instructions or args.cycles
    if counting:
        valgrind = shutil.which("valgrind")
        if not valgrind:
            parser.error("--instructions and --cycles need valgrind (apt-get install valgrind)")
        simulate = ["--cache-sim=yes", "--branch-sim=yes"] if args.cycles else []
        for impl in impls:
            impl.launcher = [
                valgrind,
                "--tool=callgrind",
                *simulate,
                "--dump-before=getppid",
                f"--callgrind-out-file={dumps / impl.key}.cg",
                f"--log-file={dumps / impl.key}.log",
            ]
    try:
        for impl in impls:
            start(impl)
            impl.ask("load", payloads=encoded)
        print("Implementations:")
        for impl in impls:
            info = impl.info
            what = info.get("sdk", "no SDK: the request parsed and the reply built by hand")
            print(
                f"  {impl.key} {impl.name:13} Python {info['python']}, protobuf "
                f"{info['protobuf']} ({info['backend']}); {what}"
            )
        print("Payloads (request bytes identical for every implementation):")
        for name in payloads:
            print(f"  {name:9} {len(requests[name]):6} bytes  {PAYLOADS[name]}")
        judge = next(impl for impl in impls if impl.key == "c")
        if not verify(impls, payloads, judge):
            print("The implementations disagree; not timing them.")
            return 1
        if args.profile:
            profiled = next(impl for impl in impls if impl.key == args.profile)
            for payload, handler in cells:
                n = profiled.ask("calibrate", payload=payload, handler=handler, target_ns=10**9)
                text = profiled.ask("profile", payload=payload, handler=handler, n=n["n"], top=25)[
                    "text"
                ]
                print(f"\n=== {profiled.name}: {payload} / {handler}, {n['n']} requests")
                print(text)
            return 0
        timed = [impl for impl in impls if impl.key in impls_arg]
        if counting:
            print("Counting under callgrind ...", file=sys.stderr)
            samples = count_under_callgrind(timed, cells, dumps, cycles=args.cycles)
        else:
            samples = run_rounds(timed, cells, rounds, block_ns, args.clock)
    finally:
        for impl in impls:
            stop(impl)
        shutil.rmtree(dumps, ignore_errors=True)
    if args.cycles:
        print("\nThousands of estimated cycles per request (callgrind); ratios to the floor c:")
        results = report(timed, cells, samples, unit="kC")
    elif args.instructions:
        print("\nThousands of instructions per request (callgrind); ratios to the floor c:")
        results = report(timed, cells, samples, unit="kI")
    else:
        what = "wall-clock" if args.clock == "wall" else "CPU"
        print(
            f"\nMedian {what} µs per request over {rounds} rounds; ratios to the floor c "
            "(medians of the per-round ratios):"
        )
        results = report(timed, cells, samples)
    results["implementations"] = {impl.key: {"name": impl.name, **impl.info} for impl in impls}
    results["rounds"] = rounds_of(samples)
    results["clock"] = "cycles" if args.cycles else "instructions" if counting else args.clock
    results["command"] = " ".join(sys.argv)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"Results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
