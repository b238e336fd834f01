"""A state added to a function and taken away again by redeploying its server, while the
runtime runs and across a restart of the runtime from its retained checkpoint (statefun-local
from its database): the function's other state carries on, a new state starts empty, and the
runtime keeps a state the function no longer declares, to give it back when it does again."""

from __future__ import annotations

from . import kit
from .test_scenarios import by_key, string


def test_a_state_added_and_removed_by_redeploys(own_application: kit.Application) -> None:
    app = own_application
    seen = {"V": ["kept=1 added=None", "kept=2 added=None"]}

    def send(*ids: str, then: dict[str, list[str]]) -> None:
        for id, texts in then.items():
            seen[id] = [*seen.get(id, []), *texts]
        app.send("evolving", [(id, string("x")) for id in ids])
        assert by_key(app.read("evolved", sum(map(len, seen.values())), settle=3)) == seen

    app.send("evolving", [("V", string("x")), ("V", string("x"))])
    assert by_key(app.read("evolved", 2)) == seen
    app.redeploy_functions(E2E_EVOLVED="1")  # the runtime runs on: a discovery round
    send("V", then={"V": ["kept=3 added=1"]})
    # read_committed: the checkpoint that holds the last message's state is complete
    app.stop()  # the runtime, then the function server
    app.start_functions(E2E_EVOLVED="1")
    app.start_runtime()
    send("V", "W", then={"V": ["kept=4 added=2"], "W": ["kept=1 added=1"]})
    app.redeploy_functions()  # without the state: the runtime still sends it, unread
    send("V", then={"V": ["kept=5 added=None"]})
    app.redeploy_functions(E2E_EVOLVED="1")
    send("V", then={"V": ["kept=6 added=3"]})
