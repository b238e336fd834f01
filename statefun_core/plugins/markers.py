from __future__ import annotations

import pluggy

PROJECT = "statefun"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
