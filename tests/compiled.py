"""Whether the core under test is the mypyc-compiled build, for the few tests of what
compiled code cannot do the same (it has no Python frames)."""

import pytest

import statefun_core.handler

COMPILED = not statefun_core.handler.__file__.endswith(".py")


def skip_if_compiled(why: str) -> pytest.MarkDecorator:
    """Skips a test when the core is compiled, saying ``why`` it cannot pass there."""
    return pytest.mark.skipif(COMPILED, reason=f"the core is compiled by mypyc: {why}")
