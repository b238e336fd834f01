"""Random programs for the interpreter functions ``e2e.fns/interp`` and ``e2e.fns/interp-b``
(functions.py), and what a correct runtime makes of them: the randomized differential scenario
of test_scenarios.py.

A program is the JSON value of a message: a list of steps, each a list, run in order by the
invocation that receives it (a record of the ingress topic ``programs-both``, which targets
both types, holds an object: each type's program by its typename):

- ``["append", value]``: the state ``log`` (a JSON list) gets ``value`` at its end;
- ``["incr"]``, ``["zero"]``: the state ``count`` (a long) plus one, or 0 (present: no bytes);
- ``["delete", name]``: the state ``log`` or ``count`` deleted;
- ``["emit", key, tag]``: a record on the egress topic ``interpreted`` keyed ``key`` (``""``:
  no key), its value the JSON of :func:`record_value`: the address, the caller, both states
  and ``n``, the count of records this address emitted (the state ``emitted``), so that a
  record's value says where it stands among its address' records;
- ``["send", typename, id, steps]``: a message to a function, ``steps`` its program;
- ``["reply", steps]``: a message to the caller;
- ``["later", typename, id, delay_ms, token, steps]``: the same after ``delay_ms``,
  cancellable when ``token`` is not null;
- ``["cancel", token]``: the delayed message of ``token`` cancelled (scope: the id);
- ``["fail", tag, times]``: the invocation fails (raises) on its first ``times`` attempts;
- ``["poison", tag]``: the invocation fails for good (a ``ValueError``, a final error of both
  types): the SDK drops its effects, keeps the rest of its batch's, and writes a record to
  the dead-letter topic ``interpreted-dead`` instead.

The generator only writes programs whose outcome the runtime's guarantees fix
(protocol.md §4.3 and §7), so that every correct runtime emits exactly the
records :func:`expected_records` computes:

- every address hears from one sender only, in the order it sends: its parent (the ingress,
  a function, or the delayed messages of one reply), or its parent once and then one other:
  itself, or a child that replies (a "single" address); never from two senders at a time,
  whose messages may interleave in any order, nor a delayed and an immediate message, which
  have no order between them;
- the delayed messages of one reply to one address have delays that never decrease: they
  come in the order they were scheduled (those due at the same time too);
- a token is scheduled once, and again only after the step that cancelled it. A token is
  cancelled in the reply that scheduled it (in list order: before the schedule, a no-op;
  after it, the message never comes), or, when scheduled with a delay longer than the test
  (:data:`NEVER_MS`), by an address of the same id the scheduler sent a message to
  afterwards, possibly of the other function type: that address may schedule the token
  again, which a runtime that kept it pending would refuse.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

INTERP, INTERP_B = "e2e.fns/interp", "e2e.fns/interp-b"
#: the ingress topics of module.yaml, and the function types each targets
INGRESS_TOPICS = {"programs": [INTERP], "programs-b": [INTERP_B],
                  "programs-both": [INTERP, INTERP_B]}  # fmt: skip
EGRESS_TOPIC = "interpreted"
DEAD_LETTER_TOPIC = "interpreted-dead"
#: a delay no test waits for: its message is only ever cancelled
NEVER_MS = 3_600_000

Step = list[Any]
Address = tuple[str, str]
#: (topic, key, value) of one ingress record, in the order they are produced
Root = tuple[str, str, Any]


class State(Protocol):
    def get(self, name: str) -> Any: ...
    def set(self, name: str, value: Any) -> None: ...
    def delete(self, name: str) -> None: ...


class Outbox(Protocol):
    def send(self, typename: str, id: str, steps: list[Step]) -> None: ...
    def send_after(
        self, typename: str, id: str, delay_ms: float, token: Optional[str], steps: list[Step]
    ) -> None: ...
    def cancel(self, token: str) -> None: ...
    def emit(self, key: str, value: str) -> None: ...


def steps_of(value: Any, typename: str) -> list[Step]:
    """The program of a message's value for the function type ``typename``."""
    return value[typename] if isinstance(value, dict) else value  # type: ignore[no-any-return]


def record_value(at: Address, n: int, tag: str, caller: Optional[Address], state: State) -> str:
    return json.dumps(
        {"at": "/".join(at), "n": n, "tag": tag, "caller": caller and "/".join(caller),
         "log": state.get("log"), "count": state.get("count")},
        ensure_ascii=False, sort_keys=True,
    )  # fmt: skip


def run(
    steps: Sequence[Step],
    at: Address,
    caller: Optional[Address],
    state: State,
    out: Outbox,
    fail: Callable[[str, int], None],
) -> None:
    """One invocation of ``steps`` at the address ``at``: the function's and the model's,
    which differ in their ``state``, ``out`` and ``fail``."""
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
        elif kind == "reply":
            assert caller is not None, f"{at} replies to no caller"
            out.send(*caller, *args)
        elif kind == "later":
            out.send_after(*args)
        elif kind == "cancel":
            out.cancel(args[0])
        elif kind == "fail":
            fail(*args)
        elif kind == "poison":
            raise ValueError(f"{args[0]} is poison")
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
        self, typename: str, id: str, delay_ms: float, token: Optional[str], steps: list[Step]
    ) -> None:
        self.delayed.append(("later", typename, id, delay_ms, token, steps))

    def cancel(self, token: str) -> None:
        self.delayed.append(("cancel", token))

    def emit(self, key: str, value: str) -> None:
        self.records.append((key, value))


def dead_letter(at: Address, caller: Optional[Address], value: Any, error: str) -> str:
    """What the test compares of a dead-letter record: the address, the caller, the message's
    value (as JSON) and the error's message."""
    return json.dumps([at, caller, value, error], ensure_ascii=False, sort_keys=True)


@dataclass
class Outcome:
    #: (key, value) of each record on EGRESS_TOPIC
    records: list[tuple[str, str]] = field(default_factory=list)
    #: :func:`dead_letter` of each record on DEAD_LETTER_TOPIC
    dead_letters: list[str] = field(default_factory=list)


def expected(roots: Sequence[Root]) -> Outcome:
    """Every record a correct runtime emits for ``roots``, in one order it may emit them in.
    Raises if the programs break a rule a correct runtime would fail on (a token scheduled
    while pending), which would be the generator's fault."""
    states: dict[Address, _DictState] = defaultdict(_DictState)
    queue = deque(
        (typename, id, None, value)
        for topic, id, value in roots
        for typename in INGRESS_TOPICS[topic]
    )
    pending: dict[tuple[str, str], tuple[Any, ...]] = {}  # (id, token): (delay, seq, message)
    outcome = Outcome()
    while queue:
        typename, id, caller, value = queue.popleft()
        at = (typename, id)
        out = _Recorded()
        state = states[at]
        before = dict(state)
        try:
            run(steps_of(value, typename), at, caller, state, out, fail=lambda tag, times: None)
        except ValueError as error:  # final: no effects but the dead letter
            state.clear()
            state.update(before)
            outcome.dead_letters.append(dead_letter(at, caller, value, str(error)))
            continue
        outcome.records += out.records
        queue.extend((t, i, at, s) for t, i, s in out.sends)
        scheduled = []
        for seq, (kind, *args) in enumerate(out.delayed):
            if kind == "cancel":
                pending.pop((id, args[0]), None)
                continue
            target_type, target_id, delay_ms, token, target_steps = args
            timer = (delay_ms, seq, (target_type, target_id, at, target_steps))
            if token is None:
                scheduled.append(timer)
                continue
            if (id, token) in pending:
                raise AssertionError(f"{at} schedules {token!r} while it is pending")
            pending[id, token] = timer
        # a message due in the test is delivered now: its address hears from nobody else, and
        # its token is never scheduled again, so when it comes changes nothing
        for key, (delay_ms, _, _) in list(pending.items()):
            if delay_ms < NEVER_MS:
                scheduled.append(pending.pop(key))
        queue.extend(message for _, _, message in sorted(scheduled, key=lambda t: t[:2]))
    return outcome


# --- the generator -----------------------------------------------------------------------

#: egress record keys besides the address' id: none, shared by all, beyond ASCII
KEYS = ["", "shared", "é ✓", "a/b", "\U0001f642", "a\x00b"]
VALUES: list[Any] = [0, 1, -1, 2**53 + 1, 0.5, "", "x", "héllo ✓", "\u05e9\u05dc\u05d5\u05dd",
                     "\U0001f642", None, True, [1, "a"], {"k": "v"}]  # fmt: skip
#: 0.4: under a millisecond, which the SDK sends as 0
DELAYS_MS = [0, 0.4, 1, 30, 200, 700]
#: odd endings of ids: a space, slash, right-to-left text, an emoji, a combining mark, a NUL,
#: 5 kB
ID_SUFFIXES = ["", "", "", "", "", " x", "/y", "\u05e9", "\U0001f600", "e\u0301", "\x00z",
               "L" * 5000]  # fmt: skip
#: no messages from a program this deep
LEAF = 4


class Generator:
    """The programs of one root (an id of its own) and of every address they reach."""

    def __init__(self, rng: random.Random, index: int, max_messages: int = 12) -> None:
        self.rng = rng
        self.prefix = f"p{index}"
        self.uids = 0
        self.messages_left = max_messages
        #: every address so far: "single" (its parent sends it one message, then one other
        #: sender may), "multi" (its parent sends it any number)
        self.kinds: dict[Address, str] = {}
        #: the sender of a "single" address after its parent: itself or a child that replies
        self.second_sender: dict[Address, Address] = {}
        #: the "multi" addresses each address created, which it may send to again
        self.children: dict[Address, list[Address]] = defaultdict(list)

    def uid(self, label: str) -> str:
        self.uids += 1
        return f"{self.prefix}{label}{self.uids}"

    def roots(self) -> list[Root]:
        rng = self.rng
        topic = rng.choice([*INGRESS_TOPICS, "programs"])
        id = self.prefix + rng.choice(ID_SUFFIXES)
        records = 1 if rng.random() < 0.6 else rng.randint(2, 3)
        for typename in INGRESS_TOPICS[topic]:
            self.new_address(typename, id, "single" if records == 1 else "multi")
        roots: list[Root] = []
        for _ in range(records):
            values = {t: self.program((t, id), 0, []) for t in INGRESS_TOPICS[topic]}
            roots.append((topic, id, values if len(values) > 1 else values.popitem()[1]))
        return roots

    def new_address(self, typename: str, id: str, kind: str) -> Address:
        address = (typename, id)
        assert address not in self.kinds
        self.kinds[address] = kind
        return address

    def takes_from(self, at: Address, sender: Address) -> bool:
        """Whether ``sender`` may be the one sender of ``at`` after its parent (and takes that
        place if it is free)."""
        if self.kinds[at] != "single":
            return False
        return self.second_sender.setdefault(at, sender) == sender

    def program(
        self, at: Address, depth: int, cancellable: list[str], caller: Optional[Address] = None
    ) -> list[Step]:
        """The steps of one message to ``at``. ``cancellable``: tokens of messages scheduled
        with NEVER_MS in ``at``'s id before this message was sent, that no one has yet
        been given to cancel; ``caller``: the sender, when ``at`` may reply to it."""
        rng = self.rng
        steps: list[Step] = []
        #: tokens this invocation schedules for never, that later steps may cancel
        never: list[str] = []
        while cancellable and rng.random() < 0.5:
            token = cancellable.pop(rng.randrange(len(cancellable)))
            steps.append(["cancel", token])
            if rng.random() < 0.5:  # the token is free again
                steps.append(self.later(depth, token, self.delay()))
        for _ in range(rng.randint(0, 5)):
            steps += self.step(at, depth, never, caller)
        if rng.random() < 0.8:
            steps.append(self.emit(at))
        return steps

    def emit(self, at: Address) -> Step:
        return ["emit", self.rng.choice([at[1], *KEYS]), self.uid("e")]

    def delay(self) -> float:
        return self.rng.choice(DELAYS_MS)

    def step(
        self, at: Address, depth: int, never: list[str], caller: Optional[Address]
    ) -> list[Step]:
        rng = self.rng
        kinds = ["append", "incr", "zero", "delete", "emit", "cancel", "fail", "poison"]
        weights = [3, 2, 0.5, 1, 2, 0.3, 0.3, 0.15]
        if depth < LEAF and self.messages_left > 0:
            kinds += ["send", "later", "burst"]
            weights += [3, 1.5, 0.3]
            if caller is not None:
                kinds.append("reply")
                weights.append(5)
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
        if kind == "poison":
            return [["poison", self.uid("x")]]
        self.messages_left -= 1
        if kind == "send":
            return [self.send(at, depth, never)]
        if kind == "reply":
            assert caller is not None
            cancellable = never if caller[1] == at[1] else []
            return [["reply", self.program(caller, depth + 1, cancellable)]]
        if kind == "burst":  # many messages at once to one address: batches
            target = self.child(at, "multi")
            return [["send", *target, self.program(target, LEAF, [])]
                    for _ in range(rng.randint(3, 12))]  # fmt: skip
        return self.delayed(at, depth, never)

    def child(self, at: Address, kind: str, same_id: bool = False) -> Address:
        """A new address ``at`` sends to: at its id of the other function type, or a new id."""
        if same_id:
            other = INTERP_B if at[0] == INTERP else INTERP
            target = self.new_address(other, at[1], kind)
        else:
            target_id = self.uid(".") + self.rng.choice(ID_SUFFIXES)
            target = self.new_address(self.rng.choice([INTERP, INTERP_B]), target_id, kind)
        if kind == "multi":
            self.children[at].append(target)
        return target

    def send(self, at: Address, depth: int, never: list[str]) -> Step:
        rng = self.rng
        typename, id = at
        other = INTERP_B if typename == INTERP else INTERP
        choices = ["new", "new"]
        if self.kinds[at] == "single" and self.second_sender.get(at, at) == at:
            choices.append("itself")
        if self.children[at]:
            choices += ["again", "again"]
        if (other, id) not in self.kinds:
            choices.append("same-id")
        choice = rng.choice(choices)
        replies_to = None
        if choice == "itself":
            self.takes_from(at, at)
            target = at
        elif choice == "again":
            target = rng.choice(self.children[at])
        else:
            target = self.child(at, rng.choice(["single", "multi"]), choice == "same-id")
            if (
                self.kinds[target] == "single"
                and rng.random() < 0.6
                and self.takes_from(at, target)
            ):
                replies_to = at
        # an address of the same id may cancel what this invocation scheduled for never
        cancellable = never if target[1] == id else []
        return ["send", *target, self.program(target, depth + 1, cancellable, replies_to)]

    def later(self, depth: int, token: Optional[str], delay: float) -> Step:
        """A delayed message to a new address."""
        target = self.new_address(self.rng.choice([INTERP, INTERP_B]), self.uid("~"), "single")
        return ["later", *target, delay, token, self.program(target, depth + 1, [])]

    def delayed(self, at: Address, depth: int, never: list[str]) -> list[Step]:
        """Delayed messages: without a token; or with one, the token's rules in one
        invocation; or several to one address; or for never, left to later steps or an
        address of this id to cancel."""
        rng = self.rng
        pattern = rng.choice(["plain", "token", "cancelled", "cancel-first", "rescheduled",
                              "never", "several"])  # fmt: skip
        if pattern == "plain":
            return [self.later(depth, None, self.delay())]
        if pattern == "several":  # in the order scheduled: their delays never decrease
            target = self.new_address(rng.choice([INTERP, INTERP_B]), self.uid("~"), "multi")
            delays = sorted(self.delay() for _ in range(rng.randint(2, 4)))
            steps: list[Step] = []
            for delay in delays:
                token = self.uid("t") if rng.random() < 0.5 else None
                steps.append(["later", *target, delay, token, self.program(target, LEAF, [])])
                if token is not None and rng.random() < 0.3:
                    steps.append(["cancel", token])
            return steps
        token = self.uid("t") + rng.choice(["", "", "\x00", " \u05e9\U0001f642", "T" * 5000])
        if pattern == "token":
            return [self.later(depth, token, self.delay())]
        if pattern == "cancelled":
            return [self.later(depth, token, self.delay()), ["cancel", token]]
        if pattern == "cancel-first":
            return [["cancel", token], self.later(depth, token, self.delay())]
        if pattern == "rescheduled":
            return [self.later(depth, token, self.delay()), ["cancel", token],
                    self.later(depth, token, self.delay())]  # fmt: skip
        never.append(token)
        return [self.later(depth, token, NEVER_MS)]


def generate(seed: int, count: int) -> list[Root]:
    """``count`` programs, each at ids of its own, in the order their records are produced."""
    rng = random.Random(seed)
    return [root for index in range(count) for root in Generator(rng, index).roots()]
