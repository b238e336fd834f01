"""check_import_guard fails for a package that imports without what it needs."""

from __future__ import annotations

import pytest

from statefun_core.testing.packaging import check_import_guard


def test_a_package_without_a_guard_fails_the_check() -> None:
    with pytest.raises(AssertionError, match="imported without"):
        check_import_guard("json", missing="decimal", distribution="statefun-json")


def test_a_package_that_fails_otherwise_fails_the_check() -> None:
    with pytest.raises(AssertionError, match="ModuleNotFoundError"):
        check_import_guard("no_such_package", missing="json", distribution="statefun-none")
