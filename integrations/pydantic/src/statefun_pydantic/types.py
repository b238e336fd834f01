"""The StateFun ``Type`` of a pydantic model: its JSON, under a typename."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, TypeVar

from pydantic import BaseModel, ValidationError

from statefun_core.types import Type, TypeSerializer

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

__all__ = ["TYPENAME_ATTRIBUTE", "ModelValidationError", "default_typename", "pydantic_type"]

_M = TypeVar("_M", bound=BaseModel)

#: A model's own class attribute that names its typename: ``__statefun_typename__ = "a/B"``.
TYPENAME_ATTRIBUTE = "__statefun_typename__"


class ModelValidationError(ValueError):
    """Bytes received under a model's typename are not a valid instance of that model.

    The pydantic ``ValidationError`` is chained as ``__cause__`` and kept as ``errors``.
    """

    model: type[BaseModel]
    typename: str
    errors: list[ErrorDetails]

    def __init__(self, model: type[BaseModel], typename: str, error: ValidationError) -> None:
        super().__init__(
            f"a {typename!r} value is not a valid {model.__module__}.{model.__qualname__}: "
            f"{error.error_count()} validation error(s): {_summary(error)}"
        )
        self.model = model
        self.typename = typename
        self.errors = error.errors()


def _summary(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in error.errors()
    )


def default_typename(model: type[BaseModel]) -> str:
    """``__statefun_typename__`` set on the model class itself, else
    ``<module>/<qualified class name>`` (``shop.models/Order``)."""
    own = model.__dict__.get(TYPENAME_ATTRIBUTE)
    if own is not None:
        if not isinstance(own, str):
            raise TypeError(f"{model.__qualname__}.{TYPENAME_ATTRIBUTE} must be a str")
        return own
    return f"{model.__module__}/{model.__qualname__}"


class _ModelSerializer(TypeSerializer[_M]):
    __slots__ = ("model", "typename")

    def __init__(self, model: type[_M], typename: str) -> None:
        self.model = model
        self.typename = typename

    def serialize(self, value: Any) -> bytes:
        if not isinstance(value, self.model):
            raise TypeError(
                f"{self.typename!r} holds {self.model.__qualname__} instances, "
                f"not {type(value).__qualname__}"
            )
        text = value.model_dump_json(by_alias=True)
        try:  # what is stored or sent must read back in the next batch
            self.model.model_validate_json(text)
        except ValidationError as error:
            raise ValueError(
                f"a {self.typename!r} value would be written as JSON its model does not read "
                f"back ({_summary(error)}); pydantic writes an inf or nan float as null "
                "unless the config of the model holding it sets ser_json_inf_nan='constants'"
            ) from error
        return text.encode("utf-8")

    def deserialize(self, byte: bytes) -> _M:
        try:
            return self.model.model_validate_json(byte)
        except ValidationError as error:
            raise ModelValidationError(self.model, self.typename, error) from error


class PydanticType(Type[_M]):
    """The type of one pydantic model; make it with :func:`pydantic_type`."""

    __slots__ = ("_serializer", "model")

    model: type[_M]

    def __init__(self, model: type[_M], typename: str) -> None:
        super().__init__(typename)
        self.model = model
        self._serializer = _ModelSerializer(model, typename)

    def serializer(self) -> TypeSerializer[_M]:
        return self._serializer


def pydantic_type(model: type[_M], typename: Optional[str] = None) -> Type[_M]:
    """The StateFun type of ``model``: its JSON (by alias) under ``typename``, by default
    :func:`default_typename`. The same arguments give the same ``Type`` object."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{model!r} is not a pydantic BaseModel subclass")
    key = (model, typename or default_typename(model))
    found = _types.get(key)
    if found is None:  # setdefault: threads asking at once all get the first one kept
        found = _types.setdefault(key, PydanticType(*key))
    return found  # the Type of model: _types holds each model's own


_types: dict[tuple[type[BaseModel], str], Type[Any]] = {}
