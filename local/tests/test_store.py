"""SqliteStore keeps the Store contract the engine relies on, on a real SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
from statefun_local.store import SqliteStore

from statefun_core.engine import Store
from statefun_core.engine.conformance import STORE_CHECKS


@pytest.mark.parametrize("check", STORE_CHECKS.values(), ids=list(STORE_CHECKS))
def test_sqlite_store_keeps_the_store_contract(
    check: Callable[[Store], None], tmp_path: Path
) -> None:
    store = SqliteStore.open(tmp_path / "db.sqlite")
    try:
        check(store)
    finally:
        store.close()
