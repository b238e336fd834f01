"""For configuration by dotted path (``STATEFUN = {"FUNCTIONS": "tests.functions.functions"}``)."""

import os
import time
from decimal import Decimal

from statefun_core import Message, StatefulFunctions, ValueSpec
from statefun_core.testing.endpoint import PingEndpoints, make_functions

functions = make_functions()

#: Binds the greeter again: served together with ``functions``, a conflict (statefun.E004).
duplicate = make_functions()

#: Not a StatefulFunctions (statefun.E003).
not_functions = {"com.example.fns/greeter": None}


def _account(context: object, message: object) -> None:
    pass


#: A state of a class only a type plugin knows (examples/plugin's Decimal; statefun.E006 when
#: that plugin is disabled).
decimal_functions = StatefulFunctions()
decimal_functions.register("bank/account", _account, [ValueSpec("balance", type=Decimal)])


#: A plugin with endpoints of two methods at one path (``GET``/``POST /ping``), for an entry
#: point a test installs.
ping = PingEndpoints()


def _slow(context: object, message: Message) -> None:
    """Adds its argument to the file ``STATEFUN_TEST_RAN`` names, then waits until the file
    ``STATEFUN_TEST_RELEASE`` names exists: a test in another process sees it run and lets
    it end."""
    with open(os.environ["STATEFUN_TEST_RAN"], "a") as ran:
        ran.write(f"{message.as_string()}\n")
    while not os.path.exists(os.environ["STATEFUN_TEST_RELEASE"]):
        time.sleep(0.01)


#: ``example/slow``, blocking (run in a thread), for a request cancelled while it runs.
slow = StatefulFunctions()
slow.register("example/slow", _slow, blocking=True)
