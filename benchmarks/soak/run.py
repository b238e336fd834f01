"""Long soak runs: each integration under sustained load, and the local runtime under faults.

    python benchmarks/soak/run.py http [--seconds 120] [--addresses 1000] [--connections 64]
    python benchmarks/soak/run.py local [--seed 7] [--waves 10] [--per-wave 300]

``http`` serves the fuzz functions with each integration (tests/hardening/serve.py) and plays
the runtime against it (tests/hardening/soak.py): every reply is checked, the server's RSS
sampled. ``local`` is tests/hardening/smoke.py at a larger size. Both print their figures and
exit non-zero on any wrong reply, lost or duplicated effect, or memory growth over the bound.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.hardening.servers import FRAMEWORKS, running
from tests.hardening.smoke import NEVER, run_smoke
from tests.hardening.soak import soak

MiB = 1024 * 1024


def http(args: argparse.Namespace) -> int:
    failed = 0
    for framework in args.framework or FRAMEWORKS:
        with running(framework) as server:
            result = asyncio.run(soak(server, args.seconds, args.addresses, args.connections))
        print(result.summary(), flush=True)
        if result.errors or result.growth() > args.max_growth_mib * MiB:
            print(f"  FAILED: {result.errors[:3]}", flush=True)
            failed += 1
    return 1 if failed else 0


def local(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as workdir:
        result = asyncio.run(
            run_smoke(Path(workdir), args.seed, args.waves, args.per_wave, args.failure_rate)
        )
    print(result.summary())
    duplicated = [record for record, n in Counter(result.egress).items() if n > 1]
    ok = (
        result.counts == result.expected
        and not duplicated
        and sorted(result.egress) == sorted(result.expected_egress)
        and not any(record.startswith(NEVER) for record in result.egress)
    )
    print("counters exact, egress exactly once" if ok else "FAILED")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(required=True)
    run_http = commands.add_parser("http", help="each integration under sustained load")
    run_http.add_argument("--seconds", type=float, default=120)
    run_http.add_argument("--addresses", type=int, default=1000)
    run_http.add_argument("--connections", type=int, default=64)
    run_http.add_argument("--max-growth-mib", type=float, default=32)
    run_http.add_argument("--framework", action="append", choices=FRAMEWORKS)
    run_http.set_defaults(run=http)
    run_local = commands.add_parser("local", help="the local runtime under faults, larger")
    run_local.add_argument("--seed", type=int, default=7)
    run_local.add_argument("--waves", type=int, default=10)
    run_local.add_argument("--per-wave", type=int, default=300)
    run_local.add_argument("--failure-rate", type=float, default=0.1)
    run_local.set_defaults(run=local)
    args = parser.parse_args()
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
