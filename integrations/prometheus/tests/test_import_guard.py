from __future__ import annotations

from statefun_core.testing.packaging import check_import_guard


def test_importing_without_prometheus_client_names_the_package_to_install() -> None:
    check_import_guard(
        "statefun_prometheus", missing="prometheus_client", distribution="statefun-prometheus"
    )
