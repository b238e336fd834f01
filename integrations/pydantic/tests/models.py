from __future__ import annotations

from typing import ClassVar, Optional

from pydantic import BaseModel, ConfigDict, Field


class Item(BaseModel):
    sku: str
    quantity: int = Field(ge=1)


class Order(BaseModel):
    __statefun_typename__: ClassVar[str] = "shop/Order"

    id: str
    items: list[Item] = []
    note: str = Field(default="", alias="customerNote")


class Receipt(BaseModel):
    order_id: str
    total_items: int


class Reading(BaseModel):
    sensor: str
    value: float
    previous: Optional[float] = None


class ExactReading(Reading):
    model_config = ConfigDict(ser_json_inf_nan="constants")
