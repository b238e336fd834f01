"""The instance the ``prometheus`` entry point registers: metrics on the default registry.

Imported only when the plugin manager loads the entry point, so ``import statefun_prometheus``
alone registers nothing.
"""

from .plugin import PrometheusPlugin

plugin: PrometheusPlugin = PrometheusPlugin()
