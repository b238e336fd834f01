"""Cold start of the AWS Lambda handler: a fresh interpreter imports the greeter's module (the
core, the functions, ``LambdaHandler``) and answers its first event.

    python benchmarks/http/lambda_cold_start.py            # 20 fresh processes
    python benchmarks/http/lambda_cold_start.py --runs 50

Each run is a new ``python`` process. It reports, as medians over the runs: *import*, from
before the first import to the handler made (what Lambda's init phase pays beyond the
runtime's own start); *first reply*, the first event answered (a ``ToFunction`` for the
greeter in a function URL's payload 2.0, base64); *second reply*, for scale; and *process*,
from spawning the interpreter to its exit, as the parent sees it. *Import to first reply* is
given as wall time and as the CPU time the process spent on it: the CPU time varies less on a
busy machine, and Lambda gives a function a share of a CPU by its memory, so it is what a cold
start scales with there. No AWS service is involved: Lambda adds its own start of the runtime
and of the execution environment.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import time
started = time.perf_counter()
started_cpu = time.process_time()
import sys
sys.path.insert(0, {examples!r})
from statefun_core.aws_lambda import LambdaHandler
from greeter_functions import functions
statefun = LambdaHandler(functions)
imported = time.perf_counter()
import json
event = json.loads({event!r})
response = statefun(event, None)
first = time.perf_counter()
first_cpu = time.process_time() - started_cpu
assert response["statusCode"] == 200, response
statefun(event, None)
second = time.perf_counter()
print(json.dumps({{"import": imported - started, "first": first - imported,
                  "second": second - first, "cpu": first_cpu}}))
"""


def the_event() -> str:
    from statefun_core.testing import wire
    from statefun_core.testing.aws_lambda import gateway_event

    body = wire.to_function("com.example.fns/greeter", "Ann", ["Ann"], {"seen_count": 1})
    return json.dumps(gateway_event(body, gateway="function_url"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    code = CHILD.format(examples=str(ROOT / "examples"), event=the_event())
    runs: dict[str, list[float]] = {
        "import": [], "first": [], "second": [], "cpu": [], "process": []
    }  # fmt: skip
    for _ in range(args.runs):
        spawned = time.perf_counter()
        output = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        runs["process"].append(time.perf_counter() - spawned)
        for key, value in json.loads(output).items():
            runs[key].append(value)
    print(f"{args.runs} fresh processes, Python {sys.version.split()[0]}; medians (p90):")
    labels = {"import": "import and make the handler", "first": "first reply",
              "second": "second reply", "process": "process, spawn to exit"}  # fmt: skip
    for key, label in labels.items():
        values = sorted(runs[key])
        p90 = values[int(0.9 * (len(values) - 1))]
        print(f"  {label:28} {statistics.median(values) * 1000:8.1f} ms  ({p90 * 1000:.1f} ms)")
    cold = [i + f for i, f in zip(runs["import"], runs["first"])]
    print(f"  {'import to first reply':28} {statistics.median(cold) * 1000:8.1f} ms")
    cpu = statistics.median(runs["cpu"]) * 1000
    print(f"  {'import to first reply, CPU':28} {cpu:8.1f} ms")


if __name__ == "__main__":
    main()
