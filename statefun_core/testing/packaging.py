"""Checks for a package that builds on statefun_core (an integration, a plugin).

::

    from statefun_core.testing.packaging import check_import_guard

    def test_import_without_aiohttp_says_what_to_install():
        check_import_guard("statefun_aiohttp", missing="aiohttp", distribution="statefun-aiohttp")
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["check_framework_imported_on_use", "check_import_guard", "install_distribution"]

_SCRIPT = """
import sys
sys.modules[{missing!r}] = None  # as if it were not installed
from statefun_core.errors import IntegrationNotAvailableError
try:
    import {package}
except IntegrationNotAvailableError as error:
    print(error)
else:
    raise SystemExit("{package} imported without {missing}")
"""


def check_import_guard(package: str, *, missing: str, distribution: str) -> None:
    """Importing ``package`` in a fresh interpreter where ``missing`` cannot be imported raises
    ``IntegrationNotAvailableError``, and its message says ``pip install <distribution>``."""
    script = _SCRIPT.format(package=package, missing=missing)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr or done.stdout
    assert f"pip install {distribution}" in done.stdout, done.stdout


_LAZY_SCRIPT = """
import sys
from statefun_core import make_plugin_manager
plugin = make_plugin_manager().get_plugin({name!r})  # its entry point, as every handler loads it
assert plugin is not None, "no entry point named {name}"
assert {framework!r} not in sys.modules, "loading the entry point imported {framework}"
import {package}
assert {framework!r} not in sys.modules, "importing {package} imported {framework}"
getattr({package}, {export!r})
assert {framework!r} in sys.modules, "{package}.{export} did not import {framework}"
"""


def check_framework_imported_on_use(
    package: str, *, entry_point: str, framework: str, export: str
) -> None:
    """In a fresh interpreter, neither the plugin host loading the ``entry_point`` nor
    ``import package`` imports ``framework``; reading ``package.<export>`` does."""
    script = _LAZY_SCRIPT.format(
        package=package, name=entry_point, framework=framework, export=export
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr or done.stdout


def install_distribution(
    site: Path, name: str, entry_points: Mapping[str, str], modules: Mapping[str, str]
) -> None:
    """Install a distribution into ``site`` (a folder on ``sys.path``) as an installer would
    leave it: a ``.dist-info`` with its ``statefun`` entry points (name → ``module[:attr]``)
    and its modules (module name → source). ``importlib.metadata`` finds it like any other."""
    dist_info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = [f"{entry} = {target}" for entry, target in entry_points.items()]
    (dist_info / "entry_points.txt").write_text("[statefun]\n" + "\n".join(lines) + "\n")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)
