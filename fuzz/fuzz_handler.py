"""Coverage-guided fuzzing of RequestReplyHandler.handle_sync and handle_async with atheris.

Each input is read as a list of choices (``tests/hardening/fuzz_target.generate``): random
bytes, or a ToFunction encoded by hand with malformed fields here and there. Both drivers must
end alike, in a valid FromFunction or a documented StatefunError (``fuzz_target.check``);
anything else is a crash, written under ``-artifact_prefix``. Run from the repository root::

    python fuzz/fuzz_handler.py fuzz/work/corpus -runs=500000 -artifact_prefix=fuzz/crashes/

``--raw`` (before the libFuzzer arguments) feeds each input to the handler as it is: libFuzzer's
byte-level mutations of real requests, seeded with fuzz/corpus/::

    python fuzz/fuzz_handler.py --raw fuzz/work/raw fuzz/corpus -runs=200000

``--export CORPUS DIR`` writes the request each (structured) corpus input generates to DIR,
named by its hash: how fuzz/corpus/ is made from a minimized corpus (see fuzz/README.md).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports(include=["statefun_core"]):
    import statefun_core  # noqa: F401

from tests.hardening import fuzz_target

HANDLER = fuzz_target.make_handler()


def request_for(data: bytes) -> bytes:
    return fuzz_target.generate(atheris.FuzzedDataProvider(data))


def test_one_input(data: bytes) -> None:
    fuzz_target.check(HANDLER, request_for(data))


def test_one_raw_input(data: bytes) -> None:
    fuzz_target.check(HANDLER, data)


def export(corpus: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(corpus.iterdir()):
        request = request_for(path.read_bytes())
        (out / hashlib.sha1(request).hexdigest()[:16]).write_bytes(request)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--export":
        export(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    raw = "--raw" in sys.argv
    argv = [arg for arg in sys.argv if arg != "--raw"]
    atheris.Setup(argv, test_one_raw_input if raw else test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
