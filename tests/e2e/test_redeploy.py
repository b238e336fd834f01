"""A state added to a function between two runs of the runtime: the function server is
redeployed with one more ``ValueSpec`` and the runtime restarted from its retained checkpoint
(statefun-local from its database). The old state carries on; the new one starts empty."""

from __future__ import annotations

from . import kit
from .test_scenarios import by_key, string


def test_a_state_added_between_two_runs(own_application: kit.Application) -> None:
    redeployed = own_application
    redeployed.send("evolving", [("V", string("x")), ("V", string("x"))])
    first_run = ["kept=1 added=None", "kept=2 added=None"]
    assert by_key(redeployed.read("evolved", 2)) == {"V": first_run}
    # read_committed: the checkpoint that holds both messages' state is complete
    redeployed.stop()  # the runtime, then the function server
    redeployed.start_functions(E2E_EVOLVED="1")
    redeployed.start_runtime()
    redeployed.send("evolving", [("V", string("x")), ("W", string("x"))])
    assert by_key(redeployed.read("evolved", 4, settle=3)) == {
        "V": [*first_run, "kept=3 added=1"],
        "W": ["kept=1 added=1"],
    }
