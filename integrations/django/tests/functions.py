"""For configuration by dotted path (``STATEFUN = {"FUNCTIONS": "tests.functions.functions"}``)."""

from statefun_core.testing.endpoint import make_functions

functions = make_functions()

#: Binds the greeter again: served together with ``functions``, a conflict (statefun.E004).
duplicate = make_functions()

#: Not a StatefulFunctions (statefun.E003).
not_functions = {"com.example.fns/greeter": None}
