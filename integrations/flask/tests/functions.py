"""For configuration by dotted path (``STATEFUN_FUNCTIONS = "tests.functions:functions"``)."""

from statefun_core.testing.endpoint import make_functions

functions = make_functions()
