from __future__ import annotations

from statefun_core.testing.packaging import check_import_guard


def test_importing_without_pydantic_names_the_package_to_install() -> None:
    check_import_guard("statefun_pydantic", missing="pydantic", distribution="statefun-pydantic")
