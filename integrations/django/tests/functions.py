"""For configuration by dotted path (``STATEFUN = {"FUNCTIONS": "tests.functions.functions"}``)."""

from decimal import Decimal

from statefun_core import StatefulFunctions, ValueSpec
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
