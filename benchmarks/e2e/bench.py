"""Messages per second end to end, Kafka in to Kafka out (exactly once, read_committed).

One counter function (``server.py``) served by aiohttp, on each runtime: our SDK against the
official SDK 3.3.0 as pip installs it, the same code, on each real runtime; and statefun-local
(our SDK) against them, on the same workload. Each run starts its runtime, warms it up with
``--warmup`` messages, then:

- **throughput**: ``--messages`` messages over ``--ids`` ids produced at once; messages per
  second from the first produced to the last read back;
- **latency**: ``--paced`` messages at ``--rate`` per second; from each record's produce time
  to the moment a ``read_committed`` consumer gets its result, p50 and p99.

    nox -s bench_e2e                       # all runtimes
    nox -s bench_local                     # includes: statefun-local alone
    python benchmarks/e2e/bench.py --runtimes statefun-local --messages 50000

Each configuration runs ``--repeat`` times, interleaved with the others, and its median is
reported: ratios come from one run of the script (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(HERE.parent)]

from run import OFFICIAL, Impl, ensure_venv, python_of  # noqa: E402

from statefun_core import StringType  # noqa: E402
from tests.e2e import kit  # noqa: E402

TEMPLATE = HERE / "module.yaml"
VALUE = StringType.serializer().serialize("+1")


@dataclass
class Result:
    per_second: float
    p50_ms: float
    p99_ms: float


def official_python() -> str:
    impl = Impl("o", "official-e2e", "official", [[OFFICIAL, "aiohttp"]])
    ensure_venv(impl, f"{sys.version_info[0]}.{sys.version_info[1]}", recreate=False)
    return str(python_of(impl.venv))


class Run:
    """One runtime and one SDK on fresh topics."""

    def __init__(self, kafka: kit.Kafka, args: argparse.Namespace, workdir: Path) -> None:
        self.kafka = kafka
        self.args = args
        self.workdir = workdir
        self.prefix = f"bench-{uuid.uuid4().hex[:6]}-"
        self.sent = 0
        self.produced_at: dict[tuple[str, int], float] = {}  # (id, n-th) -> time
        self.per_id: dict[str, int] = {}
        kafka.create_topics([self.prefix + "in", self.prefix + "out"], partitions=2)

    def send(self, count: int, rate: Optional[float] = None) -> None:
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.kafka.bootstrap, "linger.ms": 5})
        started = time.monotonic()
        for index in range(count):
            if rate:
                pause = started + index / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                    producer.poll(0)
            name = f"id{self.sent % self.args.ids}"
            self.sent += 1
            self.per_id[name] = self.per_id.get(name, 0) + 1
            self.produced_at[name, self.per_id[name]] = time.time()
            while True:
                try:
                    producer.produce(self.prefix + "in", key=name.encode(), value=VALUE)
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.flush(60)

    def latencies(self, records: list[kit.Record]) -> list[float]:
        return [(record.received - self.produced_at[record.key or "", int(record.text)]) * 1000
                for record in records]  # fmt: skip

    def measure(self) -> Result:
        args = self.args
        reader = self.prefix + "out"
        self.send(args.warmup)
        if len(self.kafka.read(reader, args.warmup, timeout=300)) < args.warmup:
            raise SystemExit(f"the warm-up did not come through; see {self.workdir}")
        started = time.monotonic()
        self.send(args.messages)
        total = args.warmup + args.messages
        if len(self.kafka.read(reader, total, timeout=900)) < total:
            raise SystemExit(f"not every record came through; see {self.workdir}")
        per_second = args.messages / (time.monotonic() - started)
        # the reader runs while the paced records go in: it stamps each result as it comes
        with ThreadPoolExecutor(1) as pool:
            reading = pool.submit(self.kafka.read, reader, total + args.paced, 300)
            time.sleep(2)  # it has caught up with what is already there
            self.send(args.paced, rate=args.rate)
            records = reading.result()[total:]
        latencies = sorted(self.latencies(records))
        quantiles = statistics.quantiles(latencies, n=100)
        return Result(per_second, quantiles[49], quantiles[98])


def run_one(kafka: kit.Kafka, runtime: str, python: str, sdk: str, args: argparse.Namespace,
            workdir: Path) -> Result:  # fmt: skip
    bench = Run(kafka, args, workdir)
    port = kit.free_port()
    command = [python, str(HERE / "server.py"), sdk, str(port), bench.prefix + "out"]
    server = kit.Process(f"{sdk} server", command, workdir / f"{sdk}.log")
    processes = [server]
    try:
        kit.wait_for_port(port, server, 60)
        module = kit.render_module(workdir, f"http://127.0.0.1:{port}/statefun",
                                   kafka.bootstrap, bench.prefix, TEMPLATE)  # fmt: skip
        if runtime == kit.LOCAL.name:
            job, _ = kit.LOCAL.start(module, workdir)
        else:
            job = kit.ALL_RUNTIMES[runtime].start(module, workdir)
        processes.append(job)
        return bench.measure()
    finally:
        for process in reversed(processes):
            process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--ids", type=int, default=200)
    parser.add_argument("--paced", type=int, default=5000, help="messages of the latency run")
    parser.add_argument("--rate", type=float, default=1000, help="their rate, per second")
    parser.add_argument("--runtimes", nargs="+", default=[*kit.ALL_RUNTIMES, kit.LOCAL.name])
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each, interleaved; the median is reported")  # fmt: skip
    args = parser.parse_args()

    runs = []
    for _ in range(args.repeat):
        for name in args.runtimes:
            if name in kit.ALL_RUNTIMES:
                runs.append((name, official_python(), "statefun"))
            runs.append((name, sys.executable, "statefun_core"))
    measured: dict[tuple[str, str], list[Result]] = {}
    unavailable: set[str] = set()
    with tempfile.TemporaryDirectory() as temp:
        kafka = kit.Kafka(Path(temp))
        kafka.start()
        try:
            for runtime, python, sdk in runs:
                if runtime in unavailable:
                    continue
                workdir = Path(tempfile.mkdtemp(dir=temp))
                try:
                    result = run_one(kafka, runtime, python, sdk, args, workdir)
                except kit.Unavailable as error:
                    print(f"{runtime}: not run: {str(error).splitlines()[0]}", file=sys.stderr)
                    unavailable.add(runtime)
                    continue
                measured.setdefault((runtime, sdk), []).append(result)
                print(
                    f"{runtime:16} {sdk:14} {result.per_second:8.0f} msg/s  p50 "
                    f"{result.p50_ms:.0f} ms  p99 {result.p99_ms:.0f} ms",
                    file=sys.stderr,
                )
        finally:
            kafka.stop()
    results = {
        key: Result(*(statistics.median(getattr(r, name) for r in found)
                      for name in ("per_second", "p50_ms", "p99_ms")))
        for key, found in measured.items()
    }  # fmt: skip
    report(args, results)


def report(args: argparse.Namespace, results: dict[tuple[str, str], Result]) -> None:
    print(
        f"\n{args.messages} messages over {args.ids} ids (after {args.warmup} to warm up); "
        f"latency: {args.paced} messages at {args.rate:.0f}/s; median of {args.repeat} "
        "interleaved runs\n"
    )
    print("| runtime | SDK | msg/s | ours / official | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    for name in args.runtimes:
        ours = results.get((name, "statefun_core"))
        theirs = results.get((name, "statefun"))
        if ours is None:
            print(f"| {name} | | not available here | | | |")
            continue
        if theirs is not None:
            print(
                f"| {name} | official 3.3.0 | {theirs.per_second:.0f} | | "
                f"{theirs.p50_ms:.0f} | {theirs.p99_ms:.0f} |"
            )
        ratio = f"{ours.per_second / theirs.per_second:.2f}" if theirs else ""
        print(
            f"| {name} | statefun-core | {ours.per_second:.0f} | {ratio} | "
            f"{ours.p50_ms:.0f} | {ours.p99_ms:.0f} |"
        )
    local = results.get((kit.LOCAL.name, "statefun_core"))
    others = [(name, result) for (name, sdk), result in results.items()
              if sdk == "statefun_core" and name != kit.LOCAL.name]  # fmt: skip
    if local and others:
        against = ", ".join(f"{local.per_second / result.per_second:.2f} of {name}"
                            for name, result in others)  # fmt: skip
        print(f"\nstatefun-local's throughput: {against}")


if __name__ == "__main__":
    main()
