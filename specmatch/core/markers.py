"""The two pluggy markers. Imports nothing from specmatch, so any module can use them without cycles."""

import pluggy

PROJECT_NAME = "specmatch"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
