"""The ``statefun`` entry point of statefun-tornado: names the integration to the plugin host.

It implements no hook; registered under the name ``tornado``, it lets tools list the installed
integrations (``make_plugin_manager().list_name_plugin()``). Everything happens in the handler.
"""

FRAMEWORK = "tornado"
DISTRIBUTION = "statefun-tornado"
