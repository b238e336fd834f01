"""Request by request, our handler against the official SDK (``apache-flink-statefun`` 3.3.0).

The official SDK pins an old protobuf, so it runs in a virtualenv of its own (``sdk.py`` makes
it on first use; ``STATEFUN_OFFICIAL_PYTHON`` names another): official_driver.py answers every
request there, in one process, and each of our answers (``handle_sync`` and ``handle_async``)
must be the same bytes, or differ as docs/migration.md says.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

import statefun_core
from statefun_core import FunctionFailedError, RequestReplyHandler, make_plugin_manager
from statefun_core.errors import UnknownTypeError
from statefun_core.testing import wire

from . import scenarios
from .sdk import run_official

HERE = Path(__file__).parent

COMPLETE = {"seen": 3}
REQUESTS = {
    "a batch": wire.to_function(scenarios.COUNTER, "a", [5], state=COMPLETE),
    "no invocations, complete state": wire.to_function(scenarios.COUNTER, "a", state=COMPLETE),
    "no invocations, missing state": wire.to_function(scenarios.COUNTER, "a"),
    "empty id, missing state": wire.to_function(scenarios.COUNTER, "", [5]),
    "empty id, complete state": wire.to_function(scenarios.COUNTER, "", [5], state=COMPLETE),
    **{
        action: wire.to_function(scenarios.DELAYER, "a", [action])
        for action in (
            "no token",
            "empty token",
            "token, then cancel",
            "negative duration",
            "cancel an empty token",
        )
    },
}


@pytest.fixture(scope="module")
def official() -> dict[str, Any]:
    """The official SDK's answers, from its own virtualenv."""
    request = json.dumps({"requests": {name: body.hex() for name, body in REQUESTS.items()}})
    outcomes: dict[str, Any] = json.loads(
        run_official([str(HERE / "official_driver.py")], stdin=request)
    )
    return outcomes


def official_reply(official: dict[str, Any], name: str) -> bytes:
    outcome = official["replies"][name]
    assert outcome[0] == "reply", outcome
    return bytes.fromhex(outcome[1])


@pytest.fixture(params=["handle_sync", "handle_async"])
def answer(request: pytest.FixtureRequest) -> Any:
    """Our handler's answer to a named request: the reply's bytes, or the error raised."""
    handler = RequestReplyHandler(
        scenarios.bind(statefun_core), plugins=make_plugin_manager(load_entrypoints=False)
    )

    def answer(name: str) -> Any:
        try:
            if request.param == "handle_sync":
                return handler.handle_sync(REQUESTS[name])
            return asyncio.run(handler.handle_async(REQUESTS[name]))
        except FunctionFailedError as error:
            return error

    return answer


@pytest.mark.parametrize(
    "name",
    [
        "a batch",
        "no invocations, complete state",
        "no invocations, missing state",
        "empty id, missing state",
        "no token",
        "empty token",
        "token, then cancel",
    ],
)
def test_the_same_bytes_as_the_official_sdk(official, answer, name):
    assert answer(name) == official_reply(official, name)


def test_the_replies_compared_are_what_each_case_is_about(official):
    """The cases above hold what they are named for, so the comparison is not vacuous."""
    assert official_reply(official, "no invocations, complete state") == b""  # no effects
    for name in ("no invocations, missing state", "empty id, missing state"):
        assert [spec.name for spec in wire.missing_states(official_reply(official, name))] == [
            "seen"
        ]
    (message,) = wire.from_function(
        official_reply(official, "a batch")
    ).invocation_result.outgoing_messages
    assert (message.target.namespace, message.target.type) == ("a.b/c", "d")
    (record,) = wire.from_function(
        official_reply(official, "a batch")
    ).invocation_result.outgoing_egresses
    assert (record.egress_namespace, record.egress_type) == ("x.y/z", "w")
    (delayed,) = wire.delayed(official_reply(official, "empty token"))
    assert delayed.cancellation_token == "" and not delayed.is_cancellation_request


def test_an_empty_id_runs_the_function_where_the_official_sdk_fails(official, answer):
    """migration.md: a batch for the id "" (a Kafka record with an empty key) is run; the
    official SDK refuses it (its Message wants a target id) and the runtime retries it for
    ever. Our reply is the official one for any other id."""
    assert official["replies"]["empty id, complete state"] == [
        "error",
        "ValueError",
        "target_id can not be missing",
    ]
    other_id = wire.to_function(scenarios.COUNTER, "a", [5], state=COMPLETE)
    assert REQUESTS["empty id, complete state"] != other_id
    assert answer("empty id, complete state") == official_reply(official, "a batch")


@pytest.mark.parametrize(
    ("name", "refused_by_the_runtime"),
    [
        ("negative duration", lambda d: not d.is_cancellation_request and d.delay_in_ms == -5),
        ("cancel an empty token", lambda d: d.is_cancellation_request and not d.cancellation_token),
    ],
)
def test_what_the_runtime_refuses_fails_at_the_call(official, answer, name, refused_by_the_runtime):
    """migration.md: the official SDK writes a negative delay and a cancellation without a
    token into its reply, which the runtime refuses (it fails the job, and retries the batch
    after each restart); we fail the batch at the call, with a ValueError that says why."""
    (delayed,) = wire.delayed(official_reply(official, name))
    assert refused_by_the_runtime(delayed)

    failure = answer(name)
    assert isinstance(failure, FunctionFailedError)
    assert isinstance(failure.__cause__, ValueError)


def test_simple_type_fails_as_the_official_sdk_fails(official):
    assert scenarios.simple_type_outcomes(statefun_core) == official["simple_type"]
    assert official["simple_type"]["typename only"] == ["ValueError", "serialize_fn is missing"]


def test_a_state_of_a_class_no_plugin_resolves_fails_before_any_request(official, monkeypatch):
    """migration.md: the official SDK refuses a class for ValueSpec's type at once; ours takes
    it for a type plugin to resolve, and fails when the handler is built when none does, with
    a TypeError too (UnknownTypeError), naming the function, the state and the class."""
    monkeypatch.setenv("STATEFUN_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert official["value_spec"] == ["ValueSpec", "TypeError", "type is not a StateFun type."]

    where, error, text = scenarios.value_spec_of_a_plain_class(statefun_core)
    assert (where, error) == ("handler", UnknownTypeError.__name__)
    assert issubclass(UnknownTypeError, TypeError)
    assert "function 'com.example/plain', state 'x'" in text and "Unresolved" in text


def test_the_official_sdk_is_the_one_compared_with():
    """Its version, and its ``import statefun`` finds its files (statefun-compat installs the
    same package name, and a ``PYTHONPATH`` could put it first)."""
    stdout = run_official(
        [
            "-c",
            "import importlib.metadata as m, pathlib, statefun\n"
            "official = m.distribution('apache-flink-statefun')\n"
            "print(official.version)\n"
            "here = pathlib.Path(statefun.__file__)\n"
            "print(here == official.locate_file('statefun/__init__.py'))",
        ]
    )
    assert stdout.split() == ["3.3.0", "True"]
