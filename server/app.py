"""The ASGI factory for process managers: ``segmentql.server.app:create_app``.

``uvicorn --factory segmentql.server.app:create_app --workers 4`` (and
``segmentql serve --workers N``, which runs exactly that) calls
:func:`create_app` once in every worker process, so the app is built there
from the environment: the settings of README's table, ``MONGODB_URI`` first.

The app itself is the top layer (``segmentql.app``), which this layer may not
import. The import string is the operators' interface, though, and it names
this module: so this one function imports the top layer when it is called,
and pyproject.toml's import contract lets exactly this import through
(``ignore_imports``). Nothing else in ``segmentql.server`` may.
"""

import sys
from typing import TYPE_CHECKING

from uvicorn.config import STARTUP_FAILURE

from segmentql.plugins.registry import PluginError

from .settings import Settings, SettingsError

if TYPE_CHECKING:
    from starlette.applications import Starlette


def create_app() -> "Starlette":
    """The app, from the settings in the environment.

    ``MONGODB_URI`` is required: workers are separate processes a process
    manager starts, stops and restarts, while the embedded database is a child
    that ``segmentql serve`` starts for its one process and stops when it ends.
    A bad setting or plugin ends the worker with one line, not a traceback,
    and uvicorn's STARTUP_FAILURE status: its supervisor then stops instead of
    starting the worker again and again (every start would fail alike).
    """
    from segmentql.app import create_app as app_of  # the top layer: see the module's docstring

    try:
        settings = Settings.from_env()
        if not settings.mongodb_uri:
            raise SettingsError("MONGODB_URI must be set for the ASGI factory (segmentql.server.app:create_app); "
                                "without it, run `segmentql serve` (one process with the embedded database)")
        return app_of(settings, settings.mongodb_uri)  # which configures the logs first
    except (SettingsError, PluginError) as exc:
        print(f"segmentql: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(STARTUP_FAILURE) from None
