"""The official SDK's import name, served by statefun_core (see the statefun-compat README)."""

from statefun_core import *  # noqa: F403
from statefun_core import __all__, __version__  # noqa: F401
