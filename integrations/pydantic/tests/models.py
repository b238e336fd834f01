from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field


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
