"""The differential test: the same requests and the same function code on the official SDK
(``apache-flink-statefun==3.3.0`` in its own virtual environment, with the protobuf it installs)
and on statefun-core through ``handle_sync`` and ``handle_async``; replies compared after parsing.

    python -m tests.differential.run                       # 10 seeds x 300 requests
    python -m tests.differential.run --seeds 500 --requests 200     # the long run
    python -m tests.differential.run --first-seed 1234 --seeds 1    # one seed again
    python -m tests.differential.run --dead-letters        # with final failures

A reply is compared as a parsed ``FromFunction`` (every value's bytes exactly); a batch that
failed on both sides is compared by the class of the function's error (ours raises
``FunctionFailedError`` with it as the cause). An error a command catches is traced by the
standard class it is an instance of, what an ``except`` clause sees: our ``StringType``
raises ``UnicodeEncodeError`` where the official SDK's protobuf raises a plain ``ValueError``
(docs/migration.md). The deliberate
deviations (``generator.DEVIATIONS``, documented in docs/migration.md) are checked, counted and
named: each must show exactly as documented in the traces, and the same request with the
deviating commands made no-ops must then agree. Any other difference is shrunk (invocations
and commands removed while it persists) and printed as a reproduction: seed, request, program
and both replies. The official SDK's venv is made on first use under
``tests/.venv-official`` (``STATEFUN_OFFICIAL_PYTHON`` names another interpreter).

With ``--dead-letters``, half the requests get one or two invocations that raise, which our
functions declare final (a dead-letter policy the official SDK does not have): our reply, its
dead-letter records checked and taken out, must be the official SDK's reply to the same request
without those invocations. Whatever state a failed invocation wrote, read or deleted, of any
type, and whatever it sent, is gone, and the invocations after it see the storage as before it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from google.protobuf import text_format

import statefun_core
from statefun_core import RequestReplyHandler, make_plugin_manager, protocol

from ..official.sdk import official_env, official_python
from .generator import DEVIATIONS, Case, Generator, Invocation, add_raises
from .program import PROGRAM_TYPENAME, TRACE_TYPENAME, build

HERE = Path(__file__).resolve().parent

Outcome = dict[str, Any]  # {"reply": bytes} or {"failed": "<error class>"}

#: Where our functions send what they raise, in dead-letter mode.
DEAD_LETTERS = "fuzz/dead-letters"


# --- the two sides ------------------------------------------------------------------------


class Official:
    """The official SDK's worker process (``official_worker.py``); stopped by its PID."""

    def __init__(self) -> None:
        # the log lives as long as the worker (closed in stop)
        self.log = tempfile.NamedTemporaryFile(prefix="differential-official-")  # noqa: SIM115
        self.process = subprocess.Popen(
            [official_python(), str(HERE / "official_worker.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=official_env(),
        )
        try:
            self.versions = self._read()["ready"]
        except BaseException:
            self.stop()
            raise

    def _read(self) -> Any:
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line:
            self.log.seek(0)
            raise RuntimeError("the official SDK's worker died:\n" + self.log.read().decode())
        return json.loads(line)

    def handle(self, requests: list[bytes]) -> list[Outcome]:
        assert self.process.stdin is not None
        encoded = [base64.b64encode(request).decode() for request in requests]
        self.process.stdin.write(json.dumps({"requests": encoded}) + "\n")
        self.process.stdin.flush()
        outcomes = []
        for answer in self._read()["replies"]:
            if "reply" in answer:
                outcomes.append({"reply": base64.b64decode(answer["reply"])})
            else:
                outcomes.append(answer)
        return outcomes

    def stop(self) -> None:
        """End the worker (the end of its input, then a kill if it lingers) and close its pipes
        and log, which would otherwise be left to the garbage collector (a ResourceWarning)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        with contextlib.suppress(BrokenPipeError):  # a worker that died reads no more
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        self.log.close()


class Ours:
    """statefun-core in this process, through both drivers; with ``dead_letters``, what the
    functions raise (``ValueError``) is final and goes to ``DEAD_LETTERS``."""

    def __init__(self, dead_letters: bool = False) -> None:
        plugins = make_plugin_manager(load_entrypoints=False)
        options: dict[str, Any] = {"final_errors": (ValueError,)} if dead_letters else {}
        functions = build(statefun_core, protocol.Address, **options)
        egress = statefun_core.DeadLetterEgress(DEAD_LETTERS) if dead_letters else None
        self.handler = RequestReplyHandler(functions, plugins=plugins, dead_letters=egress)
        self.loop = asyncio.new_event_loop()

    def handle(self, request: bytes) -> dict[str, Outcome]:
        outcomes = {}
        for driver in ("handle_sync", "handle_async"):
            try:
                if driver == "handle_sync":
                    reply = self.handler.handle_sync(request)
                else:
                    reply = self.loop.run_until_complete(self.handler.handle_async(request))
            except statefun_core.FunctionFailedError as error:
                # the function's own error, which the official SDK lets through as it is
                outcomes[driver] = {"failed": type(error.__cause__).__name__}
            else:
                outcomes[driver] = {"reply": reply}
        return outcomes

    def stop(self) -> None:
        self.loop.close()


# --- comparing ----------------------------------------------------------------------------


def parsed(outcome: Outcome) -> Any:
    if "reply" not in outcome:
        return outcome
    return protocol.FromFunction.FromString(outcome["reply"])


def same(official: Outcome, ours: Outcome) -> bool:
    return bool(parsed(official) == parsed(ours))


def show(outcome: Outcome) -> str:
    if "reply" not in outcome:
        return f"the batch failed: {outcome['failed']}"
    text = text_format.MessageToString(parsed(outcome), as_utf8=True)
    return text.rstrip() or "(an empty FromFunction)"


def traces(outcome: Outcome) -> Optional[list[Any]]:
    """The traces the invocations sent, in order (None for a failed batch)."""
    if "reply" not in outcome:
        return None
    result = parsed(outcome).invocation_result
    found = []
    for message in result.outgoing_messages:
        if f"{message.target.namespace}/{message.target.type}" == TRACE_TYPENAME:
            found.append(
                json.loads(
                    statefun_core.StringType.serializer().deserialize(message.argument.value)
                )
            )
    return found


def without_dead_letters(case: Case, outcome: Outcome) -> Outcome:
    """Our reply without its dead-letter records, once each is found as expected: one per
    invocation that raised, in order; else a failed outcome that says what is wrong."""
    if "reply" not in outcome:
        return outcome
    reply = parsed(outcome)
    if reply.HasField("incomplete_invocation_context"):
        return outcome
    egresses = reply.invocation_result.outgoing_egresses
    records = [
        statefun_core.DeadLetterRecord.from_json(egress.argument.value)
        for egress in egresses
        if f"{egress.egress_namespace}/{egress.egress_type}" == DEAD_LETTERS
    ]
    found = [
        (r.function_type, r.function_id, r.caller_type, r.caller_id, r.message_typename,
         r.message_value, r.error_class, r.error_message, r.attempts)
        for r in records
    ]  # fmt: skip
    expected = []
    for invocation in case.raising():
        caller = invocation.caller if invocation.caller and any(invocation.caller) else None
        expected.append(
            (case.function, case.id,
             None if caller is None else f"{caller[0]}/{caller[1]}",
             None if caller is None else caller[2],
             PROGRAM_TYPENAME, json.dumps(invocation.program).encode(),
             "builtins.ValueError", "the program raised", 1)
        )  # fmt: skip
    if found != expected:
        return {"failed": f"dead-letter records {found} where {expected} were expected"}
    kept = [e for e in egresses if f"{e.egress_namespace}/{e.egress_type}" != DEAD_LETTERS]
    del egresses[:]
    egresses.extend(kept)
    if not case.without_raising().invocations and reply.invocation_result.ByteSize() == 0:
        # every invocation dead-lettered: the official SDK answers an empty batch with an
        # empty FromFunction, which the runtime reads as this empty result
        reply.ClearField("invocation_result")
    return {"reply": reply.SerializeToString()}


class Differential:
    """Runs cases on both sides and keeps the score (``dead_letters``: see the module)."""

    def __init__(self, dead_letters: bool = False) -> None:
        self.dead_letters = dead_letters
        self.official = Official()
        try:
            self.ours = Ours(dead_letters)
        except BaseException:
            self.official.stop()
            raise
        self.requests = 0
        self.dead_lettered = 0  # invocations that raised, their records checked
        self.failed_batches = 0
        self.missing_state = 0
        self.deviations: collections.Counter[str] = collections.Counter()
        self.differences: list[tuple[Case, str]] = []  # (the shrunk case, its report)

    def stop(self) -> None:
        self.official.stop()
        self.ours.stop()

    def outcomes(self, cases: list[Case]) -> list[tuple[Outcome, dict[str, Outcome]]]:
        if not self.dead_letters:
            requests = [case.request() for case in cases]
            official = self.official.handle(requests)
            return [(theirs, self.ours.handle(ask)) for theirs, ask in zip(official, requests)]
        official = self.official.handle([case.without_raising().request() for case in cases])
        return [
            (theirs, {driver: without_dead_letters(case, outcome)
                      for driver, outcome in self.ours.handle(case.request()).items()})
            for theirs, case in zip(official, cases)
        ]  # fmt: skip

    def differs(self, case: Case) -> bool:
        ((official, ours),) = self.outcomes([case])
        return not all(same(official, outcome) for outcome in ours.values())

    def run_seed(self, seed: int, count: int) -> None:
        cases = Generator(seed).cases(count)
        if self.dead_letters:
            rng = random.Random(f"dead letters {seed}")
            for case in cases:
                add_raises(case, rng)
        for case, (official, ours) in zip(cases, self.outcomes(cases)):
            self.requests += 1
            if "failed" in official:
                self.failed_batches += 1
            elif parsed(official).HasField("incomplete_invocation_context"):
                self.missing_state += 1
            else:
                self.dead_lettered += len(case.raising()) if self.dead_letters else 0
            if case.deviations:
                self.check_deviations(case, official, ours)
            elif not all(same(official, outcome) for outcome in ours.values()):
                self.report(case)

    def check_deviations(self, case: Case, official: Outcome, ours: dict[str, Outcome]) -> None:
        """Each deviating command must show as documented, and the rest must agree."""
        theirs = traces(official)
        if theirs == []:  # a missing-state reply: no command ran
            if not all(same(official, outcome) for outcome in ours.values()):
                self.report(case)
            return
        for driver, outcome in ours.items():
            mine = traces(outcome)
            if theirs is None or mine is None:
                self.report(case, f"a batch with a deviation failed ({driver})")
                return
            for name, i, j in case.deviations:
                if theirs[i][j] == mine[i][j]:
                    continue  # the command failed before it could deviate (a bad message)
                if theirs[i][j] != ["ok", None] or mine[i][j] != ["raised", "ValueError"]:
                    self.report(case, f"deviation {name!r} not as documented ({driver})")
                    return
        stripped = case.without_deviations()
        if self.differs(stripped):
            self.report(stripped)
            return
        for name, i, j in case.deviations:
            if theirs[i][j] == ["ok", None]:
                self.deviations[name] += 1

    def report(self, case: Case, why: str = "the replies differ") -> None:
        if case.deviations == [] and why == "the replies differ":
            case = self.shrink(case)
        ((official, ours),) = self.outcomes([case])
        lines = [f"DIFFERENCE: {why}", case.describe()]
        if self.dead_letters:
            lines.append("  (official: the request without the invocations that raise)")
        lines.append(f"  request (base64): {base64.b64encode(case.request()).decode()}")
        lines.append("  official:\n" + _indent(show(official)))
        for driver, outcome in ours.items():
            verdict = "same as official" if same(official, outcome) else _indent(show(outcome))
            lines.append(
                f"  ours, {driver}:\n{verdict}"
                if "\n" in verdict
                else f"  ours, {driver}: {verdict}"
            )
        self.differences.append((case, "\n".join(lines)))
        print(self.differences[-1][1], flush=True)

    def shrink(self, case: Case) -> Case:
        """Remove invocations, then commands, while the replies still differ."""
        changed = True
        while changed:
            changed = False
            for i in range(len(case.invocations) - 1, -1, -1):
                if len(case.invocations) > 1:
                    candidate = _with(
                        case, [inv for n, inv in enumerate(case.invocations) if n != i]
                    )
                    if self.differs(candidate):
                        case, changed = candidate, True
            for i, invocation in enumerate(case.invocations):
                for j in range(len(invocation.program) - 1, -1, -1):
                    program = invocation.program[:j] + invocation.program[j + 1 :]
                    invocations = list(case.invocations)
                    invocations[i] = Invocation(program, invocation.caller)
                    candidate = _with(case, invocations)
                    if self.differs(candidate):
                        case, changed = candidate, True
                        invocation = invocations[i]
        return case

    def summary(self, seconds: float, seeds: int) -> str:
        deviations = ", ".join(
            f"{name}: {count}" for name, count in sorted(self.deviations.items())
        )
        dead_lettered = (
            f"{self.dead_lettered} invocations dead-lettered; " if self.dead_letters else ""
        )
        return (
            f"{self.requests} requests over {seeds} seeds in {seconds:.1f} s "
            f"(official: statefun {self.official.versions['statefun']}, protobuf "
            f"{self.official.versions['protobuf']}; ours: protobuf "
            f"{__import__('google.protobuf').protobuf.__version__}); "
            f"{self.failed_batches} failed batches, {self.missing_state} missing-state replies; "
            f"{dead_lettered}deliberate deviations (each checked): {deviations or 'none'} "
            f"[known: {len(DEVIATIONS)}]; differences: {len(self.differences)}"
        )


def _with(case: Case, invocations: list[Invocation]) -> Case:
    return Case(case.seed, case.index, case.function, case.id, case.states, invocations)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def run(
    first_seed: int,
    seeds: int,
    requests: int,
    max_differences: int = 20,
    dead_letters: bool = False,
) -> Differential:
    """Run ``seeds`` seeds of ``requests`` requests each; stop after the seed in which the
    ``max_differences``-th difference was found."""
    differential = Differential(dead_letters)
    try:
        for seed in range(first_seed, first_seed + seeds):
            differential.run_seed(seed, requests)
            if len(differential.differences) >= max_differences:
                break
    finally:
        differential.stop()
    return differential


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="how many seeds (default 10)")
    parser.add_argument("--requests", type=int, default=300, help="requests per seed (300)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--max-differences", type=int, default=20, help="stop after (20)")
    parser.add_argument(
        "--dead-letters", action="store_true", help="with final failures (see above)"
    )
    arguments = parser.parse_args(argv)
    started = time.monotonic()
    differential = run(
        arguments.first_seed,
        arguments.seeds,
        arguments.requests,
        arguments.max_differences,
        arguments.dead_letters,
    )
    print(differential.summary(time.monotonic() - started, arguments.seeds))
    return 1 if differential.differences else 0


if __name__ == "__main__":
    sys.exit(main())
