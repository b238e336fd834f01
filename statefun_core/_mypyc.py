"""What the modules mypyc compiles need to behave as they do in Python.

The core may be installed compiled by mypyc (``handler``, ``context``, ``storage``,
``messages``, ``protowire``, ``types``, ``functions`` and ``asgi``) or as plain Python: the
same source. This module is never compiled.
"""

from __future__ import annotations

import types
from typing import Any, Callable, Optional, TypeVar

__all__ = ["caused", "compiled"]

_E = TypeVar("_E", bound=BaseException)


def compiled(function: Callable[..., Any]) -> bool:
    """Whether ``function`` (a module's own) was compiled by mypyc: it is then no Python
    function."""
    return not isinstance(function, types.FunctionType)


def caused(error: _E, cause: Optional[BaseException]) -> _E:
    """``error`` with ``cause`` as its ``__cause__``, for ``raise caused(error, cause)``:
    what ``raise error from cause`` does in Python (``None`` hides the error being handled
    from the traceback). Compiled by mypyc, ``raise ... from`` drops its ``from``."""
    error.__cause__ = cause
    return error
