"""How an interpreter was built, and how fast it runs plain bytecode: run it with each Python
to compare (benchmarks/README.md, "The interpreter's build").

    /usr/bin/python3.11 benchmarks/interpreter.py
    ~/.pyenv/versions/3.11.7/bin/python benchmarks/interpreter.py

Prints the build's configure arguments and whether the interpreter is linked to a shared
libpython, then five pure-Python loops (the fastest of 7 runs of each, in ms). Debian leaves
its PGO and LTO flags out of sysconfig, so there the loops say more than the flags.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import time
from typing import Any, Callable


def dict_str(n: int = 200_000) -> Any:
    counts: dict[str, int] = {}
    for i in range(n):
        key = "k" + str(i % 1000)
        counts[key] = counts.get(key, 0) + 1
    return counts


class Point:
    __slots__ = ("x", "y")

    def __init__(self, x: int, y: int) -> None:
        self.x = x
        self.y = y

    def add(self, other: Point) -> Point:
        return Point(self.x + other.x, self.y + other.y)


def calls_attrs(n: int = 200_000) -> Any:
    point, step = Point(0, 0), Point(1, 2)
    for _ in range(n):
        point = point.add(step)
    return point


def floats(n: int = 300_000) -> Any:
    x = 0.0
    for i in range(n):
        x = x * 0.5 + i * 1.5 - x / 3.0
    return x


def bytes_join(n: int = 100_000) -> Any:
    parts = []
    for i in range(n):
        head = bytes((i & 0x7F, 0x12, 0x03))
        parts.append(head + b"abc")
    return b"".join(parts)


def generator(n: int = 300_000) -> Any:
    return sum(x * 2 for x in range(n) if x & 1)


LOOPS: list[Callable[[], Any]] = [dict_str, calls_attrs, floats, bytes_join, generator]


def fastest_ms(loop: Callable[[], Any], runs: int = 7) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        loop()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def main() -> None:
    print(f"{sys.executable}: Python {sys.version.split()[0]}")
    print(f"  CONFIG_ARGS: {sysconfig.get_config_var('CONFIG_ARGS')}")
    maps = "/proc/self/maps"
    if os.path.exists(maps):
        with open(maps) as f:
            shared = any("libpython" in line for line in f)
        print(f"  libpython: {'shared' if shared else 'linked into the executable'}")
    print("  " + "  ".join(f"{loop.__name__}={fastest_ms(loop):.1f}" for loop in LOOPS) + " ms")


if __name__ == "__main__":
    main()
