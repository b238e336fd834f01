"""The ``statefun`` entry point of statefun-django: names the integration to the plugin host.

It implements no hook; registered under the name ``django``, it lets tools list the installed
integrations (``make_plugin_manager().list_name_plugin()``). Everything happens in the view.
"""

FRAMEWORK = "django"
DISTRIBUTION = "statefun-django"
