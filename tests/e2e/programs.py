"""Random programs for the interpreter functions ``e2e.fns/interp`` and ``e2e.fns/interp-b``
(functions.py), and what a correct runtime makes of them: the randomized differential scenario
of test_scenarios.py.

A program is the JSON value of a message: a list of steps, each a list, run in order by the
invocation that receives it:

- ``["append", value]``: the state ``log`` (a JSON list) gets ``value`` at its end;
- ``["incr"]``, ``["zero"]``: the state ``count`` (a long) plus one, or 0 (present: no bytes);
- ``["delete", name]``: the state ``log`` or ``count`` deleted;
- ``["emit", key, tag]``: a record on the egress topic ``interpreted`` keyed ``key`` (``""``:
  no key), its value the JSON of :func:`record_value`: the address, the caller, both states
  and ``n``, the count of records this address emitted (the state ``emitted``), so that a
  record's value says where it stands among its address' records;
- ``["send", typename, id, steps]``: a message to a function, ``steps`` its program;
- ``["later", typename, id, delay_ms, token, steps]``: the same after ``delay_ms``,
  cancellable when ``token`` is not null;
- ``["cancel", token]``: the delayed message of ``token`` cancelled (scope: the id);
- ``["fail", tag, times]``: the invocation fails (raises) on its first ``times`` attempts.

The generator only writes programs whose outcome the runtime's guarantees fix
(/work/shared/docs/protocol.md, §4.3 and §7), so that every correct runtime emits exactly the
records :func:`expected_records` computes:

- every address hears from one sender only: its parent (the ingress, a function or a timer),
  in the order it sends; or from its parent once and then from itself (a "single" address);
  never from two senders, whose messages may interleave in any order, nor a delayed and an
  immediate message, which have no order between them;
- a delayed message goes to an address of its own; a token is scheduled once, and again only
  after the step that cancelled it. A token is cancelled in the invocation that scheduled it
  (in list order: before the schedule, a no-op; after it, the message never comes), or, when
  scheduled with a delay longer than the test (:data:`NEVER_MS`), by an address of the same id
  the scheduler sent a message to afterwards, possibly of the other function type: that
  address may schedule the token again, which a runtime that kept it pending would refuse.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

INTERP, INTERP_B = "e2e.fns/interp", "e2e.fns/interp-b"
#: the ingress topic of each function type (module.yaml), and the egress topic
INGRESS_TOPIC = {INTERP: "programs", INTERP_B: "programs-b"}
EGRESS_TOPIC = "interpreted"
#: a delay no test waits for: its message is only ever cancelled
NEVER_MS = 3_600_000


Step = list[Any]
Address = tuple[str, str]
#: (typename, id, program) of one ingress record, in the order they are produced
Root = tuple[str, str, list[Step]]


class State(Protocol):
    def get(self, name: str) -> Any: ...
    def set(self, name: str, value: Any) -> None: ...
    def delete(self, name: str) -> None: ...


class Outbox(Protocol):
    def send(self, typename: str, id: str, steps: list[Step]) -> None: ...
    def send_after(
        self, typename: str, id: str, delay_ms: int, token: Optional[str], steps: list[Step]
    ) -> None: ...
    def cancel(self, token: str) -> None: ...
    def emit(self, key: str, value: str) -> None: ...


def record_value(at: str, n: int, tag: str, caller: Optional[str], state: State) -> str:
    return json.dumps(
        {"at": at, "n": n, "tag": tag, "caller": caller,
         "log": state.get("log"), "count": state.get("count")},
        ensure_ascii=False, sort_keys=True,
    )  # fmt: skip


def run(
    steps: Sequence[Step],
    at: str,
    caller: Optional[str],
    state: State,
    out: Outbox,
    fail: Callable[[str, int], None],
) -> None:
    """One invocation of ``steps`` at the address ``at`` (``typename/id``): the function's and
    the model's, which differ in their ``state``, ``out`` and ``fail``."""
    for kind, *args in steps:
        if kind == "append":
            state.set("log", [*(state.get("log") or []), args[0]])
        elif kind == "incr":
            state.set("count", (state.get("count") or 0) + 1)
        elif kind == "zero":
            state.set("count", 0)
        elif kind == "delete":
            state.delete(args[0])
        elif kind == "emit":
            key, tag = args
            n = (state.get("emitted") or 0) + 1
            state.set("emitted", n)
            out.emit(key, record_value(at, n, tag, caller, state))
        elif kind == "send":
            out.send(*args)
        elif kind == "later":
            out.send_after(*args)
        elif kind == "cancel":
            out.cancel(args[0])
        elif kind == "fail":
            fail(*args)
        else:
            raise ValueError(f"no such step: {kind}")


# --- what a correct runtime does ---------------------------------------------------------


class _DictState(dict):  # type: ignore[type-arg]
    def set(self, name: str, value: Any) -> None:
        self[name] = value

    def delete(self, name: str) -> None:
        self.pop(name, None)


@dataclass
class _Recorded:
    sends: list[tuple[str, str, list[Step]]] = field(default_factory=list)
    delayed: list[tuple[Any, ...]] = field(default_factory=list)  # sends and cancels, in order
    records: list[tuple[str, str]] = field(default_factory=list)

    def send(self, typename: str, id: str, steps: list[Step]) -> None:
        self.sends.append((typename, id, steps))

    def send_after(
        self, typename: str, id: str, delay_ms: int, token: Optional[str], steps: list[Step]
    ) -> None:
        self.delayed.append(("later", typename, id, delay_ms, token, steps))

    def cancel(self, token: str) -> None:
        self.delayed.append(("cancel", token))

    def emit(self, key: str, value: str) -> None:
        self.records.append((key, value))


def expected_records(roots: Sequence[Root]) -> list[tuple[str, str]]:
    """Every record a correct runtime emits for ``roots``, (key, value), in one order it may
    emit them in. Raises if the programs break a rule a correct runtime would fail on (a
    token scheduled while pending), which would be the generator's fault."""
    states: dict[Address, _DictState] = defaultdict(_DictState)
    queue = deque((typename, id, None, steps) for typename, id, steps in roots)
    pending: dict[tuple[str, str], tuple[Any, ...]] = {}  # (id, token): the message
    records: list[tuple[str, str]] = []
    while queue:
        typename, id, caller, steps = queue.popleft()
        at = f"{typename}/{id}"
        out = _Recorded()
        run(steps, at, caller, states[typename, id], out, fail=lambda tag, times: None)
        records += out.records
        queue.extend((t, i, at, s) for t, i, s in out.sends)
        scheduled = []
        for kind, *args in out.delayed:
            if kind == "cancel":
                pending.pop((id, args[0]), None)
                continue
            target_type, target_id, delay_ms, token, target_steps = args
            message = (target_type, target_id, at, target_steps)
            if token is None:
                scheduled.append((delay_ms, message))
                continue
            if (id, token) in pending:
                raise AssertionError(f"{at} schedules {token!r} while it is pending")
            pending[id, token] = (delay_ms, message)
        # a message due in the test is delivered now: its address hears from nobody else, and
        # its token is never scheduled again, so when it comes changes nothing
        for key, (delay_ms, _) in list(pending.items()):
            if delay_ms < NEVER_MS:
                scheduled.append(pending.pop(key))
        queue.extend(message for _, message in scheduled)
    return records


# --- the generator -----------------------------------------------------------------------

#: egress record keys besides the address' id: none, shared by all, beyond ASCII
KEYS = ["", "shared", "é ✓", "a/b", "\U0001f642"]
VALUES: list[Any] = [0, 1, -1, 2**53 + 1, 0.5, "", "x", "héllo ✓", "\u05e9\u05dc\u05d5\u05dd",
                     "\U0001f642", None, True, [1, "a"], {"k": "v"}]  # fmt: skip
DELAYS_MS = [0, 1, 30, 200, 700]
#: odd endings of ids: a space, slash, right-to-left text, an emoji, a combining mark
ID_SUFFIXES = ["", "", "", " x", "/y", "\u05e9", "\U0001f600", "e\u0301"]


class Generator:
    """The programs of one root (an id of its own) and of every address they reach."""

    def __init__(self, rng: random.Random, index: int, max_messages: int = 12) -> None:
        self.rng = rng
        self.prefix = f"p{index}"
        self.uids = 0
        self.messages_left = max_messages
        #: every address so far: "single" (its sender sends it one message, then it may send
        #: to itself) or "multi" (its sender sends it any number)
        self.kinds: dict[Address, str] = {}
        #: the "multi" addresses each address created, which it may send to again
        self.children: dict[Address, list[Address]] = defaultdict(list)

    def uid(self, label: str) -> str:
        self.uids += 1
        return f"{self.prefix}{label}{self.uids}"

    def roots(self) -> list[Root]:
        rng = self.rng
        root = (rng.choice([INTERP, INTERP_B]), self.prefix + rng.choice(ID_SUFFIXES))
        records = 1 if rng.random() < 0.6 else rng.randint(2, 3)
        self.kinds[root] = "single" if records == 1 else "multi"
        return [(*root, self.program(root, 0, [])) for _ in range(records)]

    def new_address(self, typename: str, id: str, kind: str) -> Address:
        address = (typename, id)
        assert address not in self.kinds
        self.kinds[address] = kind
        return address

    def program(self, at: Address, depth: int, cancellable: list[str]) -> list[Step]:
        """The steps of one message to ``at``. ``cancellable``: tokens of messages scheduled
        with NEVER_MS in ``at``'s id before this message was sent, that no one has yet
        been given to cancel."""
        rng = self.rng
        steps: list[Step] = []
        #: tokens this invocation schedules that later steps may cancel
        never: list[str] = []
        while cancellable and rng.random() < 0.5:
            token = cancellable.pop(rng.randrange(len(cancellable)))
            steps.append(["cancel", token])
            if rng.random() < 0.5:  # the token is free again
                steps.append(self.later(at, depth, token, short=True))
        for _ in range(rng.randint(0, 5)):
            steps += self.step(at, depth, never)
        if rng.random() < 0.8:
            steps.append(self.emit(at))
        return steps

    def emit(self, at: Address) -> Step:
        return ["emit", self.rng.choice([at[1], *KEYS]), self.uid("e")]

    def step(self, at: Address, depth: int, never: list[str]) -> list[Step]:
        rng = self.rng
        can_send = depth < 4 and self.messages_left > 0
        kinds = ["append", "incr", "zero", "delete", "emit", "cancel", "fail"]
        weights = [3, 2, 0.5, 1, 2, 0.3, 0.3]
        if can_send:
            kinds += ["send", "later"]
            weights += [3, 1.5]
        kind = rng.choices(kinds, weights)[0]
        if kind == "append":
            value = rng.choice(VALUES) if rng.random() < 0.98 else "z" * 10_000
            return [["append", value]]
        if kind in ("incr", "zero"):
            return [[kind]]
        if kind == "delete":
            return [["delete", rng.choice(["log", "count"])]]
        if kind == "emit":
            return [self.emit(at)]
        if kind == "cancel":  # a token never scheduled, or one this invocation scheduled
            if never and rng.random() < 0.5:
                return [["cancel", never.pop(rng.randrange(len(never)))]]
            return [["cancel", self.uid("unknown")]]
        if kind == "fail":
            return [["fail", self.uid("f"), rng.choice([1, 1, 2])]]
        self.messages_left -= 1
        if kind == "send":
            return [self.send(at, depth, never)]
        return self.delayed(at, depth, never)

    def send(self, at: Address, depth: int, never: list[str]) -> Step:
        rng = self.rng
        typename, id = at
        other = INTERP_B if typename == INTERP else INTERP
        choices = ["new", "new"]
        if self.kinds[at] == "single":
            choices.append("itself")
        if self.children[at]:
            choices += ["again", "again"]
        if (other, id) not in self.kinds:
            choices.append("same-id")
        choice = rng.choice(choices)
        if choice == "itself":
            target = at
        elif choice == "again":
            target = rng.choice(self.children[at])
        else:
            kind = rng.choice(["single", "multi"])
            if choice == "same-id":
                target = self.new_address(other, id, kind)
            else:
                target_id = self.uid(".") + rng.choice(ID_SUFFIXES)
                target = self.new_address(rng.choice([INTERP, INTERP_B]), target_id, kind)
            if kind == "multi":
                self.children[at].append(target)
        # an address of the same id may cancel what this invocation scheduled for never
        cancellable = never if target[1] == id else []
        return ["send", *target, self.program(target, depth + 1, cancellable)]

    def later(self, at: Address, depth: int, token: Optional[str], short: bool) -> Step:
        """A delayed message to an address of its own."""
        rng = self.rng
        target = self.new_address(rng.choice([INTERP, INTERP_B]), self.uid("~"), "single")
        delay = rng.choice(DELAYS_MS) if short else NEVER_MS
        return ["later", *target, delay, token, self.program(target, depth + 1, [])]

    def delayed(self, at: Address, depth: int, never: list[str]) -> list[Step]:
        """A delayed message: without a token; or with one, the token's rules in one
        invocation; or for never, left to later steps or an address of this id to cancel."""
        rng = self.rng
        pattern = rng.choice(["plain", "token", "cancelled", "cancel-first", "rescheduled",
                              "never"])  # fmt: skip
        if pattern == "plain":
            return [self.later(at, depth, None, short=True)]
        token = self.uid("t") + rng.choice(["", "\x00", " \u05e9\U0001f642"])
        if pattern == "token":
            return [self.later(at, depth, token, short=True)]
        if pattern == "cancelled":
            return [self.later(at, depth, token, short=True), ["cancel", token]]
        if pattern == "cancel-first":
            return [["cancel", token], self.later(at, depth, token, short=True)]
        if pattern == "rescheduled":
            return [self.later(at, depth, token, short=True), ["cancel", token],
                    self.later(at, depth, token, short=True)]  # fmt: skip
        never.append(token)
        return [self.later(at, depth, token, short=False)]


def generate(seed: int, count: int) -> list[Root]:
    """``count`` programs, each at ids of its own, in the order their records are produced."""
    rng = random.Random(seed)
    return [root for index in range(count) for root in Generator(rng, index).roots()]
