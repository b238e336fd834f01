"""Messages per second end to end, Kafka in to Kafka out (exactly once, read_committed).

One counter function (``server.py``) served by aiohttp, on each real runtime: our SDK against
the official SDK 3.3.0 as pip installs it, the same code; and statefun-local against each
runtime with our SDK. Every run starts its runtime, warms it up with ``--warmup`` messages,
then times ``--messages`` messages over ``--ids`` ids, from the first record produced to the
last record read. Ratios are within this run (the machine is shared).

    nox -s bench_e2e                 # or: python benchmarks/e2e/bench.py --messages 20000

statefun-local takes its records over its HTTP ingress route (``POST /records/...``, one
record a request, 8 at a time), which is its only way in until it reads Kafka itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(HERE.parent)]

from run import OFFICIAL, Impl, ensure_venv, python_of  # noqa: E402

from statefun_core import StringType  # noqa: E402
from tests.e2e import kit  # noqa: E402

TEMPLATE = HERE / "module.yaml"


def official_python() -> str:
    impl = Impl("o", "official-e2e", "official", [[OFFICIAL, "aiohttp"]])
    ensure_venv(impl, f"{sys.version_info[0]}.{sys.version_info[1]}", recreate=False)
    return str(python_of(impl.venv))


def records(count: int, ids: int, start: int = 0) -> list[tuple[str, bytes]]:
    value = StringType.serializer().serialize("+1")
    return [(f"id{(start + index) % ids}", value) for index in range(count)]


def run_one(
    kafka: kit.Kafka, runtime: str, python: str, sdk: str, args: argparse.Namespace, workdir: Path
) -> float:
    prefix = f"bench-{uuid.uuid4().hex[:6]}-"
    kafka.create_topics([prefix + "in", prefix + "out"], partitions=2)
    port = kit.free_port()
    server = kit.Process(
        f"{sdk} server",
        [python, str(HERE / "server.py"), sdk, str(port), prefix + "out"],
        workdir / f"{sdk}.log",
    )
    processes = [server]
    try:
        kit.wait_for_port(port, server, 60)
        module = kit.render_module(
            workdir, f"http://127.0.0.1:{port}/statefun", kafka.bootstrap, prefix, TEMPLATE
        )
        if runtime == kit.LOCAL.name:
            job, local_port = kit.LOCAL.start(module, workdir)

            def send(batch: list[tuple[str, bytes]]) -> None:
                def post(record: tuple[str, bytes]) -> None:
                    query = urllib.parse.urlencode({"topic": prefix + "in", "key": record[0]})
                    url = f"http://127.0.0.1:{local_port}/records/bench/in?{query}"
                    urllib.request.urlopen(
                        urllib.request.Request(url, record[1]), timeout=60
                    ).close()

                with ThreadPoolExecutor(8) as pool:
                    list(pool.map(post, batch))

            def read(count: int) -> int:
                seen, after = 0, 0
                deadline = time.monotonic() + 600
                while seen < count and time.monotonic() < deadline:
                    url = f"http://127.0.0.1:{local_port}/api/egress?after={after}&wait=1"
                    with urllib.request.urlopen(url, timeout=60) as reply:
                        got = json.load(reply)["records"]
                    if got:
                        after = got[-1]["seq"]
                        seen += len(got)
                return seen
        else:
            job = kit.ALL_RUNTIMES[runtime].start(module, workdir)

            def send(batch: list[tuple[str, bytes]]) -> None:
                kafka.produce(prefix + "in", batch)

            def read(count: int) -> int:
                return len(kafka.read(prefix + "out", count, timeout=600))

        processes.append(job)
        send(records(args.warmup, args.ids))
        if read(args.warmup) < args.warmup:
            raise SystemExit(f"{runtime}/{sdk}: the warm-up did not come through; see {workdir}")
        started = time.monotonic()
        send(records(args.messages, args.ids, args.warmup))
        total = args.warmup + args.messages
        if read(total) < total:
            raise SystemExit(f"{runtime}/{sdk}: not every record came through; see {workdir}")
        return args.messages / (time.monotonic() - started)
    finally:
        for process in reversed(processes):
            process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--ids", type=int, default=200)
    args = parser.parse_args()

    official = official_python()
    with tempfile.TemporaryDirectory() as temp:
        kafka = kit.Kafka(Path(temp))
        kafka.start()
        try:
            results: dict[tuple[str, str], float] = {}
            runs = [(name, official, "statefun") for name in kit.ALL_RUNTIMES]
            runs += [(name, sys.executable, "statefun_core") for name in kit.ALL_RUNTIMES]
            runs += [(kit.LOCAL.name, sys.executable, "statefun_core")]
            for runtime, python, sdk in runs:
                workdir = Path(tempfile.mkdtemp(dir=temp))
                try:
                    results[runtime, sdk] = run_one(kafka, runtime, python, sdk, args, workdir)
                except kit.Unavailable as error:
                    print(f"{runtime}: not run: {str(error).splitlines()[0]}", file=sys.stderr)
                    continue
                print(f"{runtime:16} {sdk:14} {results[runtime, sdk]:8.0f} msg/s", file=sys.stderr)
        finally:
            kafka.stop()

    print(f"\n{args.messages} messages over {args.ids} ids, after {args.warmup} to warm up\n")
    print("| runtime | official SDK 3.3.0 msg/s | statefun-core msg/s | ours / official |")
    print("|---|---|---|---|")
    for name in kit.ALL_RUNTIMES:
        theirs, ours = results.get((name, "statefun")), results.get((name, "statefun_core"))
        if theirs and ours:
            print(f"| {name} | {theirs:.0f} | {ours:.0f} | {ours / theirs:.2f} |")
        else:
            print(f"| {name} | not available here | | |")
    local = results.get((kit.LOCAL.name, "statefun_core"))
    if local:
        print("\n| statefun-local msg/s | against each runtime (ours) |\n|---|---|")
        against = ", ".join(
            f"{name}: {local / results[name, 'statefun_core']:.2f}"
            for name in kit.ALL_RUNTIMES
            if (name, "statefun_core") in results
        )
        print(f"| {local:.0f} | {against} |")


if __name__ == "__main__":
    main()
