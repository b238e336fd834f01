"""pydantic v2 models as StateFun types: JSON on the wire.

Installed, every ``BaseModel`` subclass is a type: ``ValueSpec("order", type=Order)``,
``message_builder(..., value=Order(...))`` and ``message.as_type(Order)`` just work.
"""

from __future__ import annotations

from statefun_core.errors import IntegrationNotAvailableError

try:
    import pydantic
except ImportError as _error:  # pragma: no cover - pydantic is a dependency
    raise IntegrationNotAvailableError(
        "statefun_pydantic needs pydantic 2: pip install statefun-pydantic"
    ) from _error

if not pydantic.VERSION.startswith("2."):  # pragma: no cover
    raise IntegrationNotAvailableError(
        f"statefun_pydantic needs pydantic 2, found {pydantic.VERSION}: "
        "pip install 'pydantic>=2,<3'"
    )

from .types import TYPENAME_ATTRIBUTE, ModelValidationError, default_typename, pydantic_type

__version__ = "0.1.0"

__all__ = ["TYPENAME_ATTRIBUTE", "ModelValidationError", "default_typename", "pydantic_type"]
