"""Keep a small corpus: the smallest request for each distinct shape and outcome.

    python fuzz/prune.py fuzz/work/export fuzz/corpus [--max 300] [--max-bytes 16384]

A shape is what the handler branches on: the target function, whether the body parses, how
many invocations (bucketed), the states sent (name, typename, has_value), the arguments'
typenames, and the outcome of ``fuzz_target.check``. Inputs larger than ``--max-bytes`` are
dropped unless no smaller one has their shape.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.hardening import fuzz_target
from tests.hardening.fuzz_target import _parse_request


def shape(handler: Any, data: bytes) -> tuple[Any, ...]:
    outcome = fuzz_target.check(handler, data)
    label = outcome[:1] if outcome[0] == "ok" else outcome
    request = _parse_request(data)
    if request is None:
        return ("unparsable", len(data) > 64, label)
    batch = request.invocation
    invocations = len(batch.invocations)
    bucket = next(b for b in (0, 1, 2, 8, 63, 64, 65, 1 << 30) if invocations <= b)
    states = tuple(sorted(
        (s.state_name, s.state_value.typename, s.state_value.has_value) for s in batch.state
    ))  # fmt: skip
    arguments = tuple(sorted({i.argument.typename for i in batch.invocations}))
    callers = tuple(sorted({i.HasField("caller") for i in batch.invocations}))
    target = (batch.target.namespace, batch.target.type, bool(batch.target.id))
    return (target, bucket, states, arguments, callers, label)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--max", type=int, default=300)
    parser.add_argument("--max-bytes", type=int, default=16384)
    args = parser.parse_args()
    handler = fuzz_target.make_handler()
    best: dict[tuple[Any, ...], Path] = {}
    for path in sorted(args.source.iterdir(), key=lambda p: p.stat().st_size):
        best.setdefault(shape(handler, path.read_bytes()), path)
    kept = sorted(best.values(), key=lambda p: p.stat().st_size)
    small = [p for p in kept if p.stat().st_size <= args.max_bytes]
    large = [p for p in kept if p.stat().st_size > args.max_bytes][:2]
    args.target.mkdir(parents=True, exist_ok=True)
    for path in small[: args.max - len(large)] + large:
        shutil.copy(path, args.target / path.name)
    print(f"{len(best)} shapes; kept {min(len(small), args.max - len(large)) + len(large)}")


if __name__ == "__main__":
    main()
