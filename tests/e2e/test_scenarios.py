"""Every scenario on each real runtime, the functions served by statefun-aiohttp: Kafka in,
Kafka out (read_committed), nothing but what a user of the runtime sees."""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from datetime import timedelta

from statefun_core import DeadLetterRecord, StringType

from . import programs
from .kit import Application, java_partition


def string(value: str) -> bytes:
    """A record value for an ``io.statefun.types/string`` ingress topic: the type's bytes."""
    return StringType.serializer().serialize(value)


def command(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def by_key(records: list) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for record in records:
        out.setdefault(record.key, []).append(record.text)
    return out


def test_greeter_keeps_state_across_messages(application: Application) -> None:
    application.send("names", [(name, string(name)) for name in ["Ann", "Bo", "Ann", "Ann"]])
    greetings = by_key(application.read("greetings", 4, settle=2))
    assert greetings == {
        "Ann": [f"Hello Ann for the {n}th time!" for n in range(3)],
        "Bo": ["Hello Bo for the 0th time!"],
    }


def test_fan_out_across_types_and_replies_to_the_caller(application: Application) -> None:
    application.send(
        "fanout", [("F1", command(op="fanout", n=5)), ("F2", command(op="fanout", n=2))]
    )
    done = by_key(application.read("fanned", 2, settle=2))
    assert done == {
        "F1": [",".join(f"F1-{index}" for index in range(5))],
        "F2": ["F2-0,F2-1"],
    }


def test_delayed_messages_and_cancellation(application: Application) -> None:
    application.send("delay", [
        ("D", command(op="send", label="late", after_ms=3000)),
        ("D", command(op="send", label="cancelled", after_ms=2000, token="t-cancel")),
        ("D", command(op="send", label="early", after_ms=1000, token="t-keep")),
        ("D", command(op="cancel", token="t-cancel")),
        ("D", command(op="cancel", token="no-such-token")),
    ])  # fmt: skip
    assert by_key(application.read("delays", 2, settle=4)) == {"D": ["early", "late"]}


def test_cancellation_tokens_in_order_reused_and_shared_by_the_id(
    application: Application,
) -> None:
    """Steps apply in order (send then cancel: cancelled; cancel then send: sent); a delay of 0
    goes; the scheduler is the caller; a delivered token is free again; and the token's scope
    is the id, not the function type: another type at the same id cancels it."""
    application.send("timer", [("X", command(steps=[
        ["send", "send-then-cancel", 300, "t1"], ["cancel", "t1"],
        ["cancel", "t2"], ["send", "cancel-then-send", 300, "t2"],
        ["send", "zero", 0, None],
        ["send", "cancelled-by-the-peer", 3000, "t3"], ["peer-cancel", "t3"],
    ]))])  # fmt: skip
    assert sorted(r.text for r in application.read("timers", 2)) == [
        "cancel-then-send from e2e.fns/timer/X", "zero from e2e.fns/timer/X",
    ]  # fmt: skip
    application.send("timer", [("X", command(steps=[["send", "reused", 300, "t2"]]))])
    delivered = [record.text for record in application.read("timers", 3, settle=4)]
    assert delivered[2:] == ["reused from e2e.fns/timer/X"]


def test_delays_and_tokens_that_are_not_round_or_simple(application: Application) -> None:
    """A delay under a millisecond is none (the SDK sends whole milliseconds); the longest
    ``timedelta`` (2.7 million years) waits, and is cancelled by its token: one with an emoji,
    right-to-left text, a combining mark and a NUL, free again once cancelled; a token of
    10 kB is a token like any other."""
    odd = "\U0001f642\u05e9\u0301\x00x"
    longest_ms = timedelta.max // timedelta(milliseconds=1)
    application.send("timer", [("Y", command(steps=[
        ["send", "longest", longest_ms, odd], ["send", "longest-kept", longest_ms, "kept"],
        ["cancel", odd], ["send", "sub-millisecond", 0.4, None],
        ["send", "long-token", 300, "T" * 10_000], ["send", "token-again", 600, odd],
    ]))])  # fmt: skip
    import time

    deadline = time.monotonic() + 120
    mine: list[str] = []
    while len(mine) < 3 and time.monotonic() < deadline:  # after other scenarios' timers
        records = application.read("timers", 1000, timeout=5)
        mine = [record.text for record in records if record.text.endswith("/Y")]
    records = application.read("timers", len(records), settle=2)  # and any that comes later
    assert [record.text for record in records if record.text.endswith("/Y")] == [
        f"{label} from e2e.fns/timer/Y"
        for label in ("sub-millisecond", "long-token", "token-again")
    ]


def test_failed_attempts_are_retried_to_exactly_one_effect(application: Application) -> None:
    application.send("flaky", [("X", command(payload="p1", fail=3)),
                               ("X", command(payload="p2", fail=0))])  # fmt: skip
    attempts = by_key(application.read("attempts", 4, settle=3))
    # a failed attempt's egress records and state writes are never seen
    assert attempts == {"X": ["p1:4", "successes=1", "p2:1", "successes=2"]}


def test_a_final_failure_goes_to_the_dead_letter_topic_and_the_job_runs_on(
    application: Application,
) -> None:
    poisoned = command(payload="p2", poison=True)
    application.send("poison", [("P", command(payload="p1")), ("P", poisoned),
                                ("P", command(payload="p3"))])  # fmt: skip
    (dead,) = application.read("dead-letters", 1, settle=2)
    assert dead.key == "e2e.fns/poison/P"
    record = DeadLetterRecord.from_json(dead.value)
    assert (record.function_type, record.function_id) == ("e2e.fns/poison", "P")
    assert (record.caller_type, record.caller_id) == (None, None)  # from the ingress
    assert (record.message_typename, record.message_value) == ("e2e/command", poisoned)
    assert record.error_class == "builtins.ValueError"
    assert record.error_message == "p2 can never succeed"
    # the poisoned message's state write and egress record are dropped, and the job runs on
    application.send("poison", [("P", command(payload="p4"))])
    survivors = by_key(application.read("survivors", 3, settle=2))
    assert survivors == {"P": ["p1:kept=1", "p3:kept=2", "p4:kept=3"]}


def test_every_type_through_state_and_messages(application: Application) -> None:
    """Each type's zero too (id ``Z``): a built-in one is no bytes, but present, not None."""
    from .functions import TYPED_VALUES

    application.send("types", [
        ("T", command(op="write")), ("T", command(op="read")),
        ("Z", command(op="write", zeros=True)), ("Z", command(op="read")),
    ])  # fmt: skip
    records = application.read("typed", 2 * len(TYPED_VALUES), settle=1)
    typed = {record.key: record.text for record in records}
    assert {key: text for key, text in typed.items() if key.startswith("Z.")} == {
        "Z.b": "io.statefun.types/bool False",
        "Z.i": "io.statefun.types/int 0",
        "Z.l": "io.statefun.types/long 0",
        "Z.f": "io.statefun.types/float 0.0",
        "Z.d": "io.statefun.types/double 0.0",
        "Z.s": "io.statefun.types/string ''",
        "Z.p": 'tests.e2e.functions/Profile {"name":"","tags":[]}',
        "Z.m": "e2e/point Point(x=0, y=0.0)",
    }
    assert {key: text for key, text in typed.items() if key.startswith("T.")} == {
        "T.b": "io.statefun.types/bool True",
        "T.i": "io.statefun.types/int -2147483648",
        "T.l": "io.statefun.types/long 9007199254740993",
        "T.f": "io.statefun.types/float 1.5",
        "T.d": "io.statefun.types/double -0.1",
        "T.s": "io.statefun.types/string 'héllo ✓'",
        "T.p": 'tests.e2e.functions/Profile {"name":"Ann","tags":["a","b"]}',
        "T.m": "e2e/point Point(x=3, y=0.25)",
    }


def test_egress_records_keep_keys_and_headers(application: Application) -> None:
    application.send("egress", [("K1", command(value="v1")), ("K2", command(value="v2"))])
    records = sorted(application.read("records", 2, settle=2), key=lambda r: r.key or "")
    assert [(r.key, r.text) for r in records] == [("K1", "v1"), ("K2", "v2")]
    if application.runtime.name == "apache-statefun":
        # Apache StateFun 3.3's KafkaProducerRecord has no field 4: records carry no headers
        assert all(record.headers == [] for record in records)
    else:
        assert all(
            record.headers == [("h", b"1"), ("h", b"\x00\x02"), ("null", None), ("empty", b"")]
            for record in records
        )


def test_state_expires_after_write_and_after_call(application: Application) -> None:
    import time

    for _ in range(9):  # a message each second from 0 s to 8 s; both written at 0 s, TTL 4 s
        application.send("ttl", [("E", string("tick"))])
        time.sleep(1)
    time.sleep(5)  # idle past the TTL
    application.send("ttl", [("E", string("tick"))])
    seen = by_key(application.read("expiry", 10, settle=2))["E"]
    # every check is 2 s away from an expiry, for a busy machine
    assert seen[0] == "None None"
    assert seen[1:3] == ["1 1", "1 1"]  # 1 s, 2 s
    assert seen[6:9] == ["None 1"] * 3  # 6 s to 8 s: the write is gone, the last call is 1 s ago
    assert seen[9] == "None None"  # 6 s after the last call


def test_a_record_key_becomes_the_id_as_java_decodes_it(application: Application) -> None:
    """The empty key is the id "", and a key that is not UTF-8 is decoded as Java decodes it
    (``new String(key, UTF_8)``: U+FFFD for what is not UTF-8, an encoded surrogate, as CESU-8
    writes half of an emoji, one U+FFFD where Python's "replace" puts one per byte). A record
    with no key or no value fails the job on the runtime (statefun-local passes it over): not
    sent here."""
    application.send("keys", [
        (b"", string("empty")), (b"\xff", string("bad")), (b"a\xc3", string("cut")),
        ("K\u00e9", string("plain")), (b"\xed\xa0\xbd\xed\xb8\x80", string("cesu")),
        *[(key, string("odd")) for key in ODD_KEYS],
    ])  # fmt: skip
    records = application.read("keys-seen", 5 + len(ODD_KEYS), settle=2)
    seen = {record.text: record.key for record in records if not record.text.endswith(" odd")}
    assert seen == {
        '"" empty': None,  # an egress record's empty key is no key at all
        '"\\ufffd" bad': "\ufffd",
        '"a\\ufffd" cut': "a\ufffd",
        '"K\\u00e9" plain': "K\u00e9",
        '"\\ufffd\\ufffd" cesu': "\ufffd\ufffd",
    }
    # ids that are not ASCII-simple are kept as they are, in the egress record's key too
    odd = sorted((record.key, record.text) for record in records if record.text.endswith(" odd"))
    assert odd == sorted((key, f"{json.dumps(key)} odd") for key in ODD_KEYS)


#: record keys (so ids) that are valid UTF-8 but not ASCII-simple: NUL, right-to-left, a
#: combining mark, an emoji, slashes and spaces, 10 kB
ODD_KEYS = ["a\x00b", "\u05e9\u05dc\u05d5\u05dd", "e\u0301", "\U0001f642", "a/b c/", "x" * 10_000]


def test_a_function_type_and_its_state_named_beyond_ascii(application: Application) -> None:
    """``e2e.fns/ünï ש😀`` (a space, right-to-left text, an emoji) with a state ``größe``:
    messages reach it by that name, and its state counts them."""
    application.send("keys", [("U", string("beyond-ascii")), ("U", string("beyond-ascii"))])
    seen = [(record.key, record.text) for record in application.read("beyond-ascii", 2, settle=2)]
    typename = "e2e.fns/ünï \u05e9\U0001f600"
    assert seen == [("U", f"{typename} größe=1"), ("U", f"{typename} größe=2")]


def test_an_ingress_without_a_startup_position_starts_at_latest(application: Application) -> None:
    """module.yaml's ``e2e/unpositioned`` has no ``startupPosition``. Before the runtime started,
    its group had committed offset 0 and ``A-0``, ``A-1`` went on the topic (``Application.
    before_the_runtime``): group-offsets, which StateFun's docs call the default, would take
    them. The runtime starts at the end of each partition instead (RoutableKafkaIngressSpec's
    builder: ``fromLatest()``), and so does statefun-local."""
    import time

    topic = application.topic("unpositioned")
    deadline = time.monotonic() + 120

    def produce(label: str) -> None:
        for partition in (0, 1):
            application.kafka.produce(topic, [(f"{label}-{partition}", string(label))],
                                      partition=partition)  # fmt: skip

    def taken(count: int, settle: float = 0) -> list[str]:
        records = application.read("unpositioned-taken", count, timeout=2, settle=settle)
        assert time.monotonic() < deadline, f"only {[r.key for r in records]} taken in 120 s"
        return [record.key or "" for record in records]

    probe = 0
    while True:  # probes until the ingress takes one: then it is consuming
        produce(f"probe{probe}")
        probe += 1
        if taken(1):
            break
    produce("B")
    seen: list[str] = []
    while not {"B-0", "B-1"} <= set(seen):
        seen = taken(len(seen) + 1)
    seen = taken(len(seen), settle=2)  # and whatever else comes within 2 s
    assert [key for key in seen if key.startswith("A-")] == [], "it started where the group was"
    assert sorted(key for key in seen if not key.startswith("probe")) == ["B-0", "B-1"]


def test_an_ingress_starts_where_the_runtimes_kafka_consumer_does(
    application: Application,
) -> None:
    """Two ingresses of module.yaml whose topics had records before the runtime started
    (``Application.before_the_runtime``), each with ``autoOffsetResetPosition: earliest``.
    ``e2e/dated`` starts at a date after every record (an hour ago; they are two hours old):
    no record is at or after it, and the runtime's consumer (FlinkKafkaConsumer) starts at the
    end of each partition, not at the reset position. ``e2e/specific`` names offset 1 of
    partition 0 only: partition 1 starts where the group committed (offset 1), as with
    group-offsets."""
    import time

    deadline = time.monotonic() + 120
    partitions = [(topic, partition) for topic in ("dated", "specific") for partition in (0, 1)]
    probes: set[str] = set()
    taken: set[str] = set()
    # probes until each partition gave one: all four are read (a probe sent before a consumer
    # took its position at the end is passed over)
    while not all(any(f"{t}-probe-{p}-" in key for key in taken) for t, p in partitions):
        assert time.monotonic() < deadline, f"only {sorted(taken)} taken in 120 s"
        for topic, partition in partitions:
            key = f"{topic}-probe-{partition}-{len(probes)}"
            probes.add(key)
            application.kafka.produce(application.topic(topic), [(key, string("probe"))],
                                      partition=partition)  # fmt: skip
        records = application.read("positioned-taken", len(probes) + 2, timeout=3)
        taken = {record.key or "" for record in records}
    records = application.read("positioned-taken", len(taken), settle=2)
    assert sorted(r.key for r in records if r.key not in probes) == [
        "specific-A-0-1", "specific-A-1-1",
    ]  # fmt: skip


def test_a_sasl_login_written_for_the_java_client_reads_the_topic(
    application: Application,
) -> None:
    """module.yaml's ``e2e/sasl`` reads the broker's SASL listener with the Java client's
    ``sasl.jaas.config`` (a PLAIN login): the runtime's Kafka client takes it as it is,
    statefun-local as librdkafka's ``sasl.username`` and ``sasl.password``."""
    import time

    application.send("logins", [("Sasl", string("Sasl"))])
    deadline = time.monotonic() + 120
    greeted: list[str] = []
    while not greeted and time.monotonic() < deadline:  # among the other scenarios' greetings
        records = application.read("greetings", 1, timeout=10, settle=2)
        greeted = [record.text for record in records if record.key == "Sasl"]
    assert greeted == ["Hello Sasl for the 0th time!"]


def test_a_keyed_egress_record_goes_to_the_partition_the_java_client_picks(
    application: Application,
) -> None:
    """The runtime's Kafka egress leaves the partition to the Java client's default partitioner
    (murmur2 of the key), so a key's records share a partition with what other Java producers
    write for it. Two partitions, 24 keys: a partitioner of its own would agree by chance
    once in 2**24."""
    keys = [f"key-{n}" for n in range(20)] + ["é", "✓✓", "a b c d e", "0123456789abcdef"]
    application.send("placing", [("P", command(keys=keys))])
    records = application.read("placed", len(keys), settle=1)
    assert sorted(record.key or "" for record in records) == sorted(keys)
    assert {r.key: r.partition for r in records} == {
        key: java_partition(key.encode(), 2) for key in keys
    }


def test_one_call_at_a_time_per_address_and_what_waits_goes_as_one_batch(
    application: Application,
) -> None:
    """While ``A``'s call is under way (held until ``B``'s message came: other addresses go on
    meanwhile), the messages for ``A`` wait at the runtime, in order; when the call returns
    they go as one batch, in arrival order, and never two calls to ``A`` at once."""
    warm = [("A", command(n=-1)), ("B", command(n=-1))]  # the first call to a type blocks
    application.send("batches", warm)  # Apache's operator until it returns
    assert sorted(r.text for r in application.read("batched", 2)) == ["-1@0", "-1@0"]
    burst = [("A", command(n=0, hold="A")), *[("A", command(n=n)) for n in range(1, 21)],
             ("B", command(release="A"))]  # fmt: skip
    application.kafka.produce(application.topic("batches"), burst, partition=0)
    assert by_key(application.read("batched", 2 + 22, settle=1)) == {
        "A": ["-1@0", "0@0 after release", *[f"{n}@{n - 1}" for n in range(1, 21)]],
        "B": ["-1@0", "released A"],
    }


def test_a_call_slower_than_its_timeout_fails_and_its_batch_is_sent_again(
    application: Application,
) -> None:
    """``e2e.fns/slow``'s endpoint gives a call 2 s (its ``timeouts: {call: 2s}`` wins over the
    ``call: 2m`` beside it); its first attempt takes 3 s. That attempt fails the call (not
    retried within it: the budget is spent) and the runtime sends the batch again (Apache: the
    job restarts and replays it; statefun-local: after a pause). The late attempt's effects
    are never seen; the second attempt's are, once, and the message after it waits its turn."""
    application.send("slow", [("S", command(payload="s1", slow=1)),
                              ("S", command(payload="s2", slow=0))])  # fmt: skip
    seen = by_key(application.read("slowed", 2, settle=2))
    assert seen == {"S": ["s1:2 done=1", "s2:1 done=2"]}


#: The seed of the session's random programs (the same on every runtime): random unless
#: E2E_PROGRAMS_SEED gives it; a failure names it, to run them again.
PROGRAMS_SEED = int(os.environ.get("E2E_PROGRAMS_SEED") or random.SystemRandom().randrange(10**9))
PROGRAMS_COUNT = int(os.environ.get("E2E_PROGRAMS", "60"))


def test_random_programs_end_as_the_runtimes_guarantees_say(application: Application) -> None:
    """The randomized differential scenario: ``PROGRAMS_COUNT`` random programs
    (programs.py), each sent at an id of its own, all at once, and run by the interpreter
    functions: state written and deleted, messages to new addresses, to the same ones again,
    to itself, to the other function type at the same id and back to the caller, bursts,
    delayed messages and their tokens, failed attempts, final failures, egress records keyed
    in every way. The generator writes only programs whose records the runtime's guarantees
    fix, so every runtime emits exactly the records ``programs.expected`` computes."""
    replay = f"E2E_PROGRAMS_SEED={PROGRAMS_SEED} E2E_PROGRAMS={PROGRAMS_COUNT}"
    print(f"random programs: {replay}")
    roots = programs.generate(PROGRAMS_SEED, PROGRAMS_COUNT)
    send_programs(application, roots)
    check_programs(application, programs.expected(roots), replay)


def send_programs(application: Application, roots: list[programs.Root]) -> None:
    for topic in programs.INGRESS_TOPICS:
        application.send(topic, [(key, json.dumps(value).encode())
                                 for to, key, value in roots if to == topic])  # fmt: skip


def check_programs(
    application: Application, outcome: programs.Outcome, replay: str, timeout: float = 90
) -> None:
    """The records of ``outcome`` on the egress topic (each one's value names its address, its
    caller, its states and its place among its address' records) and no other, an address'
    records in one partition in that order; and its dead letters."""
    expected = Counter((key or None, value) for key, value in outcome.records)
    records = application.read(
        programs.EGRESS_TOPIC, sum(expected.values()), timeout=timeout, settle=2
    )
    seen = Counter((record.key, record.text) for record in records)
    missing = sorted((expected - seen).elements(), key=str)
    extra = sorted((seen - expected).elements(), key=str)
    assert not missing and not extra, (
        f"{replay}: {len(missing)} records missing, {len(extra)} unexpected (key, value);\n"
        "missing:\n"
        + "\n".join(repr(record)[:300] for record in missing[:20])
        + "\nunexpected:\n"
        + "\n".join(repr(record)[:300] for record in extra[:20])
    )
    places: dict[tuple[str, int], list[int]] = {}
    for record in records:
        value = json.loads(record.value)
        places.setdefault((value["at"], record.partition), []).append(value["n"])
    disordered = {where: n for where, n in places.items() if n != sorted(n)}
    assert not disordered, f"{replay}: records of an address out of order: {disordered}"
    dead = []
    for record in application.read(programs.DEAD_LETTER_TOPIC, len(outcome.dead_letters), settle=1):
        letter = DeadLetterRecord.from_json(record.value)
        at = (letter.function_type, letter.function_id)
        assert record.key == "/".join(at)
        caller = None if letter.caller_type is None else (letter.caller_type, letter.caller_id)
        value = json.loads(letter.message_value or b"null")
        dead.append(programs.dead_letter(at, caller, value, letter.error_message))
    assert Counter(dead) == Counter(outcome.dead_letters), f"{replay}: dead letters differ"
