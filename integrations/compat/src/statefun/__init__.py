"""The official SDK's import name, served by statefun_core (see the statefun-compat README).

No ``__all__`` of its own: a star import of this module gives every name it star-imports from
statefun_core, and type checkers see them (they cannot read an ``__all__`` copied from there).
"""

from statefun_core import *  # noqa: F403
from statefun_core import __version__ as __version__
