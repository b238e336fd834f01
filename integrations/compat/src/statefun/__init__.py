"""The official SDK's import name, served by statefun_core (see the statefun-compat README).

No ``__all__`` of its own: a star import of this module gives every name it star-imports from
statefun_core, and type checkers see them (they cannot read an ``__all__`` copied from there).
"""

import importlib as _importlib
import importlib.metadata as _metadata
import typing as _typing
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

#: The official SDK's modules, which its ``import statefun`` imports: here on first use
_MODULES = frozenset(
    {
        "context",
        "core",
        "egress_io",
        "kafka_egress_pb2",
        "kinesis_egress_pb2",
        "messages",
        "request_reply_pb2",
        "request_reply_v3",
        "statefun_builder",
        "storage",
        "types_pb2",
        "utils",
        "wrapper_types",
    }
)

if not _typing.TYPE_CHECKING:  # a type checker would take any attribute of the package for a module

    def __getattr__(name):
        if name in _MODULES:
            return _importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__():
        return sorted(globals().keys() | _MODULES)
