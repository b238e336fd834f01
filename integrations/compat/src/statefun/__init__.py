"""The official SDK's import name, served by statefun_core (see the statefun-compat README).

No ``__all__`` of its own: a star import of this module gives every name it star-imports from
statefun_core, and type checkers see them (they cannot read an ``__all__`` copied from there).
"""

import importlib.metadata as _metadata
import warnings as _warnings

from statefun_core import *  # noqa: F403
from statefun_core import __version__ as __version__

try:  # both distributions install the package ``statefun``: the last one installed wins
    _metadata.distribution("apache-flink-statefun")
except _metadata.PackageNotFoundError:
    pass
else:
    _warnings.warn(
        "apache-flink-statefun is installed beside statefun-compat; both install the package "
        "'statefun', and uninstalling apache-flink-statefun deletes this one's files: "
        "pip uninstall apache-flink-statefun, then pip install --force-reinstall statefun-compat",
        stacklevel=2,
    )
