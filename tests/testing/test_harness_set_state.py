"""A test starts from a given state (``Harness.set_state``); the function still discovers
its specs as usual, and the runtime's rules (expiration, types) apply to that state."""

from __future__ import annotations

from datetime import timedelta

import pytest

from statefun_core import (
    Context,
    IntType,
    Message,
    StatefulFunctions,
    StringType,
    ValueSpec,
    make_plugin_manager,
    message_builder,
)
from statefun_core.testing import Harness, HarnessFactory

from .test_harness import Point, PointTypes


def counters() -> StatefulFunctions:
    """``ex/counter`` counts its messages and greets ``ex/inbox`` with the count."""
    functions = StatefulFunctions()

    @functions.bind(
        "ex/counter",
        specs=[
            ValueSpec("n", IntType),
            ValueSpec("name", StringType, expire_after_write=timedelta(seconds=10)),
        ],
    )
    def counter(context: Context, message: Message) -> None:
        context.storage.n = (context.storage.n or 0) + 1
        text = f"{context.storage.name or 'nobody'} #{context.storage.n}"
        context.send(message_builder("ex/inbox", context.address.id, str_value=text))

    return functions


def test_a_function_starts_from_the_state_set_and_discovers_its_specs_as_usual(
    statefun_harness: HarnessFactory,
) -> None:
    harness = statefun_harness(counters())
    assert harness.set_state("ex/counter", "a", n=41, name="ann") is harness
    harness.assert_state("ex/counter", "a", n=41, name="ann")  # before any request

    harness.send("ex/counter", "a", str_value="go").run()

    harness.assert_captured("ex/inbox", "a", str_value="ann #42")
    harness.assert_state("ex/counter", "a", n=42, name="ann")
    assert [batch.discovery_round for batch in harness.batches] == [0, 1]
    harness.assert_state("ex/counter", "b", n=None)  # other addresses untouched


def test_state_set_after_a_run_is_what_the_next_request_carries(
    statefun_harness: HarnessFactory,
) -> None:
    harness = statefun_harness(counters())
    harness.send("ex/counter", "a", str_value="go").run()
    harness.set_state("ex/counter", "a", n=9).send("ex/counter", "a", str_value="go").run()
    harness.assert_captured("ex/inbox", "a", str_value="nobody #10")
    assert [batch.discovery_round for batch in harness.batches] == [0, 1, 0]


def test_none_deletes_a_state(statefun_harness: HarnessFactory) -> None:
    harness = statefun_harness(counters())
    harness.set_state("ex/counter", "a", n=5, name="ann")
    harness.set_state("ex/counter", "a", name=None)
    assert harness.state("ex/counter", "a") == {"n": 5}
    harness.send("ex/counter", "a", str_value="go").run()
    harness.assert_captured("ex/inbox", "a", str_value="nobody #6")


def test_an_expiration_counts_from_the_state_set(statefun_harness: HarnessFactory) -> None:
    harness = statefun_harness(counters(), start_ms=5_000)
    harness.set_state("ex/counter", "a", name="ann")
    harness.advance(timedelta(seconds=9))
    harness.assert_state("ex/counter", "a", name="ann")
    harness.advance(timedelta(seconds=1))
    harness.assert_state("ex/counter", "a", name=None)
    harness.send("ex/counter", "a", str_value="go").run()
    harness.assert_captured("ex/inbox", "a", str_value="nobody #1")


def test_a_state_the_function_does_not_declare_is_refused_and_nothing_is_stored(
    statefun_harness: HarnessFactory,
) -> None:
    harness = statefun_harness(counters())
    with pytest.raises(ValueError, match=r"^ex/counter declares no state 'count'; its states: n"):
        harness.set_state("ex/counter", "a", n=1, count=2)
    assert harness.state("ex/counter", "a") == {}


def test_a_value_its_type_cannot_encode_is_refused_and_nothing_is_stored(
    statefun_harness: HarnessFactory,
) -> None:
    harness = statefun_harness(counters())
    refused = r"^state 'n' is of type .+/int: 'many' has type str; IntType takes"
    with pytest.raises(TypeError, match=refused):
        harness.set_state("ex/counter", "a", name="ann", n="many")
    assert harness.state("ex/counter", "a") == {}
    # an error with fields of its own, raised as it is (as the function's assignment does)
    with pytest.raises(UnicodeEncodeError, match="surrogates not allowed"):
        harness.set_state("ex/counter", "a", n=1, name="\ud800")
    assert harness.state("ex/counter", "a") == {}


def test_a_class_a_type_plugin_knows() -> None:
    functions = StatefulFunctions()

    @functions.bind("example/shapes", specs=[ValueSpec("last", Point)])
    def shapes(context: Context, message: Message) -> None:
        last = context.storage.last
        context.storage.last = Point(last.x + 1, last.y)

    harness = Harness(
        functions, plugins=make_plugin_manager([PointTypes()], load_entrypoints=False)
    )
    harness.set_state("example/shapes", "s", last=Point(1, 2))
    harness.send("example/shapes", "s", str_value="move").run()
    harness.assert_state("example/shapes", "s", last=Point(2, 2))


def test_a_state_registered_as_another_type_is_refused(statefun_harness: HarnessFactory) -> None:
    """After a redeploy that changes the type, the runtime still has the old spec: a value
    of the new type would be sent as the old one."""
    harness = statefun_harness(counters())
    harness.send("ex/counter", "a", str_value="go").run()
    retyped = StatefulFunctions()
    retyped.bind("ex/counter", specs=[ValueSpec("n", StringType)])(lambda context, message: None)
    harness.redeploy(retyped)
    with pytest.raises(TypeError, match=r"'n' of ex/counter is registered as .+/int; the dep"):
        harness.set_state("ex/counter", "a", n="many")
    harness.restart().set_state("ex/counter", "a", n="many")
    assert harness.state("ex/counter", "a") == {"n": "many"}


def test_state_set_before_a_restart_is_kept_and_expires_by_the_declared_spec(
    statefun_harness: HarnessFactory,
) -> None:
    harness = statefun_harness(counters())
    harness.send("ex/counter", "a", str_value="go").run()
    harness.set_state("ex/counter", "a", name="ann").restart()
    harness.assert_state("ex/counter", "a", n=1, name="ann")
    harness.advance(timedelta(seconds=10))
    assert harness.state("ex/counter", "a") == {"n": 1}
    harness.send("ex/counter", "a", str_value="go").run()
    harness.assert_captured("ex/inbox", "a", str_value="nobody #2")
