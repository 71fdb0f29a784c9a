"""The version of the plugin API, and whether a plugin's declared need fits it.

``API_VERSION`` is ``"MAJOR.MINOR"`` and counts what ``segmentql.plugins``
offers, not segmentql's releases: MINOR grows when something is added (a
plugin written for 1.0 keeps working on 1.3), MAJOR when something a plugin
may use changes or goes away (a plugin written for 1.x is refused by 2.0
rather than failing on its first request).

A plugin declares the version it was written against with a module (or
plugin object) attribute::

    SEGMENTQL_API_VERSION = "1.0"

meaning "API 1.0 or a later 1.x". A plugin that does not declare one is
loaded on trust; one that declares a version this segmentql cannot give is
refused at start-up, with both versions in the message.
"""

import re

API_VERSION = "1.0"
# The attribute a plugin declares its need with.
DECLARATION = "SEGMENTQL_API_VERSION"
_VERSION = re.compile(r"(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})")


def _parsed(version: str) -> tuple[int, int]:
    major, minor = version.split(".")
    return int(major), int(minor)


def api_mismatch(needed: object) -> str | None:
    """None when a plugin declaring ``needed`` runs on :data:`API_VERSION`;
    otherwise what is wrong, as the end of a sentence naming the plugin."""
    if not isinstance(needed, str) or not _VERSION.fullmatch(needed):
        return f"declares {DECLARATION} = {needed!r}, which is not a MAJOR.MINOR version such as \"1.0\""
    (major, minor), (ours, our_minor) = _parsed(needed), _parsed(API_VERSION)
    if major == ours and minor <= our_minor:
        return None
    wanted = f"needs plugin API {needed} (or a later {major}.x); this segmentql provides {API_VERSION}"
    if (major, minor) > (ours, our_minor):
        return f"{wanted}: upgrade segmentql or install an older release of the plugin"
    return f"{wanted}: install a release of the plugin written for API {ours}.x"
