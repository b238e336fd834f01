"""The Cloud Run functions example of docs/servers.md, as the file the Functions Framework
loads: ``functions-framework --target statefun --source tests/apps/cloud_function.py``."""

from tests.apps.served import load

statefun = load("cloud_functions").statefun
