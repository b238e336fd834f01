"""statefun-local: a durable, single-process Stateful Functions runtime for development.

It reads the same ``module.yaml`` as Apache Flink StateFun, keeps mailboxes, state, timers and
the egress log in one SQLite file, and calls remote functions over HTTP. The runtime's rules
are the core's engine (:mod:`statefun_core.engine`); this package drives it.
"""

from .module import Egress, Endpoint, Ingress, Module, ModuleError, load_module, parse_module
from .runtime import Failure, LocalRuntime, UnknownFunctionError, UnknownIngressError
from .server import make_app, make_apps
from .stuck import DeadLetterPolicy
from .values import make_value

__version__ = "0.1.0"

__all__ = [
    "DeadLetterPolicy",
    "Egress",
    "Endpoint",
    "Failure",
    "Ingress",
    "LocalRuntime",
    "Module",
    "ModuleError",
    "UnknownFunctionError",
    "UnknownIngressError",
    "load_module",
    "make_app",
    "make_apps",
    "make_value",
    "parse_module",
]
