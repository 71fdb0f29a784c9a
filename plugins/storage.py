"""Storage a plugin declares: collections of its own, indexes on contact
fields, and per-contact rollups kept from the contact's events.

A condition decides membership from the contact document alone (one
``$match`` of one pipeline), so data the contact lacks has to be either joined
from a collection the plugin declares (a stage, see ``Condition.stages``) or
kept on the contact by a :class:`Rollup`. The three hooks of
:mod:`.hookspecs` contribute these records; the registry checks each one as it
is made (:func:`collect_storage`) and the service creates what they describe
at start-up, before serving.

Every document of a plugin's collection carries ``workspace_id``, like every
document segmentql stores, and every index a plugin declares is led by it
(segmentql adds it): a workspace reads only its own documents, and reads them
by index.
"""

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

WORKSPACE_KEY = "workspace_id"
COLLECTION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
ROLLUP_NAME = re.compile(r"^[a-z][A-Za-z0-9_]{0,47}$")
# A plugin's rollups live under ``plugins.<plugin name>``: the name must be a
# plain field name (no ``.`` or ``$``) for that path to mean one field.
PLUGIN_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DIRECTIONS = (1, -1)
# MongoDB's limit on the keys of one index (workspace_id, which segmentql
# adds, is one of them), and how many indexes one plugin collection may have
# (MongoDB allows 64; every index slows every write to the collection).
MAX_INDEX_KEYS = 32
MAX_COLLECTION_INDEXES = 16
# Contact paths a plugin may index: its own rollups, and custom fields.
CUSTOM_PREFIX = "custom."
# The public shape of an event as a rollup's ``compute`` receives it.
EVENT_FIELDS = ("id", "type", "at", "campaignId", "url", "device")


@dataclass(frozen=True)
class Index:
    """An index: ``keys`` are (field path, 1 or -1) pairs, in order.

    segmentql puts ``workspace_id`` first (a plugin may write it first
    itself; anywhere else it is refused). ``unique`` holds within one
    workspace, since ``workspace_id`` is part of the key; contact-field
    indexes cannot be unique (a contact write must never fail on a plugin's
    index)."""

    keys: tuple[tuple[str, int], ...]
    unique: bool = False


@dataclass(frozen=True)
class Collection:
    """A collection a plugin owns, with its indexes. ``name`` matches
    ``^[a-z][a-z0-9_]{0,47}$`` and may be no collection of segmentql's own."""

    name: str
    indexes: tuple[Index, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Rollup:
    """A per-contact value kept from the contact's events.

    ``compute(events)`` receives every event of one contact, oldest first,
    each a dict of :data:`EVENT_FIELDS` (see the hook's documentation), and
    returns a dict of JSON values (datetimes allowed), or None for "no value".
    It is stored at ``plugins.<plugin name>.<name>`` of the contact."""

    name: str
    compute: Callable[[list[dict[str, Any]]], dict[str, Any] | None]
    description: str


@dataclass(frozen=True)
class RegisteredCollection:
    """A declared collection (its indexes led by ``workspace_id``) and its plugin."""

    collection: Collection
    plugin: str


@dataclass(frozen=True)
class RegisteredIndex:
    """An index on contact fields (led by ``workspace_id``) and the plugins
    that asked for it, in registration order: plugins asking for the same keys
    share one index."""

    index: Index
    plugins: tuple[str, ...]


@dataclass(frozen=True)
class RegisteredRollup:
    rollup: Rollup
    plugin: str

    @property
    def path(self) -> str:
        """Where the contact document keeps its value."""
        return f"plugins.{self.plugin}.{self.rollup.name}"


@dataclass(frozen=True)
class Storage:
    """Everything the enabled plugins declared, in registration order."""

    collections: Mapping[str, RegisteredCollection] = field(default_factory=dict)
    contact_indexes: tuple[RegisteredIndex, ...] = ()
    rollups: tuple[RegisteredRollup, ...] = ()


NO_STORAGE = Storage()


class StorageError(ValueError):
    """A plugin's declaration is unusable; the message names the plugin."""


def _path(path: object, plugin: str, what: str) -> str:
    if not isinstance(path, str) or not all(_PATH_SEGMENT.match(part) for part in path.split(".")):
        raise StorageError(f"plugin {plugin!r}: {what} has the key {path!r}, which is not a field path "
                           "(dot-separated names of letters, digits, _ and -)")
    return path


def _index(index: object, plugin: str, what: str) -> Index:
    """``index`` led by workspace_id, or StorageError naming ``plugin``."""
    if not isinstance(index, Index):
        raise StorageError(f"plugin {plugin!r}: {what} has {index!r}, which is not a segmentql.plugins.Index")
    keys = index.keys
    if not isinstance(keys, tuple | list) or not keys or not all(isinstance(k, tuple | list) and len(k) == 2
                                                                  for k in keys):
        raise StorageError(f"plugin {plugin!r}: {what} needs keys as a non-empty tuple of (path, 1 or -1) pairs")
    checked = [(_path(path, plugin, what), direction) for path, direction in keys]
    if any(d not in DIRECTIONS or isinstance(d, bool) for _, d in checked):
        raise StorageError(f"plugin {plugin!r}: {what} has a direction other than 1 or -1")
    if checked[0][0] == WORKSPACE_KEY:
        checked = checked[1:]
    if not checked or any(path == WORKSPACE_KEY for path, _ in checked):
        raise StorageError(f"plugin {plugin!r}: {what} may name {WORKSPACE_KEY!r} only first (segmentql adds it), "
                           "and needs other keys")
    if len({path for path, _ in checked}) != len(checked):
        raise StorageError(f"plugin {plugin!r}: {what} names a key twice")
    if len(checked) >= MAX_INDEX_KEYS:
        raise StorageError(f"plugin {plugin!r}: {what} has {len(checked)} keys besides {WORKSPACE_KEY!r}; an index "
                           f"has at most {MAX_INDEX_KEYS} keys, {WORKSPACE_KEY!r} included")
    return Index(((WORKSPACE_KEY, 1), *checked), bool(index.unique))


def _collection(collection: object, plugin: str) -> Collection:
    if not isinstance(collection, Collection):
        raise StorageError(f"plugin {plugin!r} registered {collection!r}, which is not a segmentql.plugins.Collection")
    name = collection.name
    if not isinstance(name, str) or not COLLECTION_NAME.match(name):
        raise StorageError(f"plugin {plugin!r} registered the collection {name!r}; a collection name matches "
                           f"{COLLECTION_NAME.pattern}")
    if not isinstance(collection.indexes, tuple | list):
        raise StorageError(f"plugin {plugin!r}: collection {name!r} needs its indexes as a tuple")
    if len(collection.indexes) > MAX_COLLECTION_INDEXES:
        raise StorageError(f"plugin {plugin!r}: collection {name!r} declares {len(collection.indexes)} indexes; "
                           f"a plugin's collection may have at most {MAX_COLLECTION_INDEXES}")
    indexes = tuple(_index(i, plugin, f"an index of collection {name!r}") for i in collection.indexes)
    return Collection(name, indexes, collection.description or "")


def _contact_index(index: object, plugin: str) -> Index:
    checked = _index(index, plugin, "a contact index")
    own = f"plugins.{plugin}."
    for path, _ in checked.keys[1:]:
        if not path.startswith((own, CUSTOM_PREFIX)):
            raise StorageError(f"plugin {plugin!r}: a contact index may name only {own}<field> or "
                               f"{CUSTOM_PREFIX}<key>, not {path!r}")
    if checked.unique:
        raise StorageError(f"plugin {plugin!r}: a contact index cannot be unique")
    return checked


def _rollup(rollup: object, plugin: str) -> Rollup:
    if not isinstance(rollup, Rollup):
        raise StorageError(f"plugin {plugin!r} registered {rollup!r}, which is not a segmentql.plugins.Rollup")
    if not isinstance(rollup.name, str) or not ROLLUP_NAME.match(rollup.name):
        raise StorageError(f"plugin {plugin!r} registered the rollup {rollup.name!r}; a rollup name matches "
                           f"{ROLLUP_NAME.pattern}")
    if not callable(rollup.compute):
        raise StorageError(f"plugin {plugin!r}: rollup {rollup.name!r} has a compute that is not callable")
    if not isinstance(rollup.description, str) or not rollup.description.strip():
        raise StorageError(f"plugin {plugin!r}: rollup {rollup.name!r} needs a description")
    return rollup


def _contact_namespace(plugin: str, what: str) -> None:
    if not PLUGIN_FIELD_NAME.match(plugin):
        raise StorageError(f"plugin {plugin!r} cannot register {what}: its name is not a field name "
                           f"({PLUGIN_FIELD_NAME.pattern}), so plugins.<its name> is not a path")


def _each(pm: pluggy.PluginManager, hook: str, what: str, register: Callable[[str], Callable[[Any], None]]) -> None:
    """Call ``hook`` of every plugin with ``register(plugin name)``; a plugin
    raising is a StorageError naming it."""
    for impl in getattr(pm.hook, hook).get_hookimpls():
        try:
            impl.function(register=register(impl.plugin_name))
        except StorageError:
            raise
        except Exception as exc:  # a failing plugin must name itself
            raise StorageError(f"plugin {impl.plugin_name!r} failed while registering {what}: "
                               f"{type(exc).__name__}: {exc}") from exc


def collect_storage(pm: pluggy.PluginManager) -> Storage:
    """What every plugin of ``pm`` declares, checked; StorageError naming the
    plugin (both, for a collection two plugins claim) when a declaration is
    unusable."""
    collections: dict[str, RegisteredCollection] = {}
    contact_indexes: list[RegisteredIndex] = []
    rollups: list[RegisteredRollup] = []

    def collection_of(plugin: str) -> Callable[[Any], None]:
        def register(collection: object) -> None:
            checked = _collection(collection, plugin)
            if checked.name in collections:
                other = collections[checked.name].plugin
                raise StorageError(f"plugins {other!r} and {plugin!r} both register the collection "
                                   f"{checked.name!r}; disable one of them")
            collections[checked.name] = RegisteredCollection(checked, plugin)
        return register

    def index_of(plugin: str) -> Callable[[Any], None]:
        def register(index: object) -> None:
            _contact_namespace(plugin, "contact indexes")
            contact_indexes.append(RegisteredIndex(_contact_index(index, plugin), (plugin,)))
        return register

    def rollup_of(plugin: str) -> Callable[[Any], None]:
        def register(rollup: object) -> None:
            _contact_namespace(plugin, "rollups")
            checked = _rollup(rollup, plugin)
            if any(r.plugin == plugin and r.rollup.name == checked.name for r in rollups):
                raise StorageError(f"plugin {plugin!r} registers the rollup {checked.name!r} twice")
            rollups.append(RegisteredRollup(checked, plugin))
        return register

    _each(pm, "segmentql_register_collections", "collections", collection_of)
    _each(pm, "segmentql_register_indexes", "indexes", index_of)
    _each(pm, "segmentql_register_rollups", "rollups", rollup_of)
    return Storage(collections, _unique(contact_indexes), tuple(rollups))


def _unique(indexes: Iterable[RegisteredIndex]) -> tuple[RegisteredIndex, ...]:
    """One of each index, with every plugin asking for it: two plugins
    indexing one custom field share the index rather than spend two (and
    disabling either leaves it to the other)."""
    seen: dict[tuple[tuple[str, int], ...], RegisteredIndex] = {}
    for registered in indexes:
        keys = tuple(registered.index.keys)
        if keys in seen:
            plugins = seen[keys].plugins
            registered = RegisteredIndex(registered.index, plugins + tuple(p for p in registered.plugins
                                                                           if p not in plugins))
        seen[keys] = registered
    return tuple(seen.values())
