"""Database access: the one module that owns every collection, index and query
shape. Everything above it speaks in workspaces, contacts, events and
pipelines; nothing above it names a collection.

Every document carries ``workspace_id`` and every query and pipeline starts by
matching it, so a key can only ever reach its own workspace (and the field is
the natural shard-key prefix on a sharded cluster).
"""

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import secrets
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import bson
from bson import ObjectId
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel, UpdateOne
from pymongo.errors import BulkWriteError, CollectionInvalid, DuplicateKeyError, OperationFailure

from segmentql.plugins.contact import UTC
from segmentql.plugins.registry import PluginError
from segmentql.plugins.storage import NO_STORAGE, Index, RegisteredIndex, Storage

from . import deadline, metrics, paths
from .errors import Conflict, LimitExceeded, NotFound
from .rollups import ROLLUP_LAYOUT

log = logging.getLogger("segmentql")
DUPLICATE_KEY = 11000

# Finished webhook deliveries are kept this long (30 days), then dropped by
# MongoDB (a TTL index).
DELIVERIES_KEPT_SECONDS = 30 * 86_400

# (collection, keys, options). The compiler relies on the contacts indexes:
# docs/performance.md lists which condition uses which.
INDEXES: dict[str, list[IndexModel]] = {
    "workspaces": [IndexModel([("name", ASCENDING)], unique=True)],
    # API keys (server/apikeys.py): a request's key is found by its hash.
    "api_keys": [IndexModel([("hash", ASCENDING)], unique=True),
                 IndexModel([("workspace_id", ASCENDING), ("createdAt", ASCENDING)])],
    "contacts": [
        IndexModel([("workspace_id", ASCENDING), ("id", ASCENDING)]),
        IndexModel([("workspace_id", ASCENDING), ("leadScore", ASCENDING)]),
        IndexModel([("workspace_id", ASCENDING), ("stats.clicks", ASCENDING)]),
        IndexModel([("workspace_id", ASCENDING), ("stats.topOpenHour", ASCENDING)]),
        IndexModel([("workspace_id", ASCENDING), ("country", ASCENDING)]),
        IndexModel([("workspace_id", ASCENDING), ("tags", ASCENDING)]),
        IndexModel([("workspace_id", ASCENDING), ("stats.lastActivityAt", ASCENDING)]),
        IndexModel([("workspace_id", ASCENDING), ("stats.campaigns.id", ASCENDING)]),
        IndexModel([("workspace_id", ASCENDING), ("stats.campaigns.name", ASCENDING)]),
    ],
    "campaigns": [
        IndexModel([("workspace_id", ASCENDING), ("id", ASCENDING)], unique=True),
        IndexModel([("workspace_id", ASCENDING), ("name", ASCENDING)], unique=True),
    ],
    "events": [
        IndexModel([("workspace_id", ASCENDING), ("contact_id", ASCENDING)]),
    ],
    "segments": [
        IndexModel([("workspace_id", ASCENDING), ("id", ASCENDING)], unique=True),
        IndexModel([("workspace_id", ASCENDING), ("createdAt", DESCENDING)]),
    ],
    "snapshots": [
        IndexModel([("workspace_id", ASCENDING), ("id", ASCENDING)], unique=True),
        IndexModel([("workspace_id", ASCENDING), ("segment_id", ASCENDING), ("takenAt", DESCENDING)]),
    ],
    "snapshot_members": [
        IndexModel([("workspace_id", ASCENDING), ("snapshot_id", ASCENDING), ("chunk", ASCENDING)], unique=True),
    ],
    "segment_sizes": [
        IndexModel([("workspace_id", ASCENDING), ("segment_id", ASCENDING), ("at", DESCENDING)]),
    ],
    "segment_revisions": [IndexModel([("workspace_id", 1), ("segment_id", 1), ("savedAt", 1)], unique=True)],
    # Live membership (server/live.py): who is in each saved segment, the log
    # of every change, the writes still to evaluate, and each workspace's
    # write lease.
    "segment_members": [
        IndexModel([("workspace_id", ASCENDING), ("segment_id", ASCENDING), ("contact_id", ASCENDING)], unique=True),
        IndexModel([("workspace_id", ASCENDING), ("contact_id", ASCENDING)]),
    ],
    "segment_changes": [
        IndexModel([("workspace_id", ASCENDING), ("seq", ASCENDING)], unique=True),
        IndexModel([("workspace_id", ASCENDING), ("segment_id", ASCENDING), ("seq", ASCENDING)]),
    ],
    "membership_journal": [IndexModel([("workspace_id", ASCENDING), ("at", ASCENDING)])],
    # Webhooks and their deliveries (server/webhooks.py, server/delivery.py).
    # Dispatchers of every workspace look for the webhooks due (``dueAt``).
    "webhooks": [
        IndexModel([("workspace_id", ASCENDING), ("id", ASCENDING)], unique=True),
        IndexModel([("dueAt", ASCENDING)]),
    ],
    "webhook_deliveries": [
        IndexModel([("workspace_id", ASCENDING), ("webhook_id", ASCENDING), ("createdAt", DESCENDING)]),
        IndexModel([("workspace_id", ASCENDING), ("webhook_id", ASCENDING), ("state", ASCENDING),
                    ("generation", ASCENDING)]),
        IndexModel([("finishedAt", ASCENDING)], expireAfterSeconds=DELIVERIES_KEPT_SECONDS),
    ],
}
# Member ids read, and changes written, per round trip.
MEMBER_BATCH = 1000
# Every collection of segmentql's own: a plugin may declare none of these.
CORE_COLLECTIONS = frozenset(INDEXES) | {"write_leases"}

# Contact fields with an index led by workspace_id, in the order the compiler
# prefers them for the leading $match (most selective kinds of rule first).
INDEXED_CONTACT_FIELDS = ("leadScore", "stats.clicks", "stats.lastActivityAt", "stats.campaigns.id",
                          "stats.campaigns.name", "stats.topOpenHour", "tags", "country")
# Custom fields declared ``indexed`` get indexes of their own workspace
# (partial), within these budgets: MongoDB allows 64 indexes per collection.
MAX_INDEXED_PATHS_PER_WORKSPACE = 8
MAX_CONTACT_INDEXES = 64
# Plugins' contact-field indexes (segmentql_register_indexes), all plugins
# together: they come out of the same 64, and custom fields keep the rest.
MAX_PLUGIN_CONTACT_INDEXES = 16
PLUGIN_INDEX_PREFIX = "plugin:"
INDEX_CONFLICTS = (85, 86)  # IndexOptionsConflict, IndexKeySpecsConflict
NAMESPACE_EXISTS = 48
# The shard keys README recommends: a tenant's contacts spread over every
# shard (hashed ``_id``), yet each command names its workspace and document
# keys, so it goes only where they live. Events are kept with their contact
# (the rollup refresh reads a contact's events together).
SHARD_KEYS: dict[str, dict[str, int | str]] = {
    "contacts": {"workspace_id": ASCENDING, "_id": "hashed"},
    "events": {"workspace_id": ASCENDING, "contact_id": "hashed"},
}
CANNOT_CREATE_INDEX = 67
# Values one ``$in`` names at most. A real MongoDB answers thousands in one
# round trip. The embedded server's ``$in`` grows quadratically (1,000 keys
# took 0.83 s where 100 queries of 10 took 0.11 s; the events of 500 contacts
# 6.3 s against 0.76 s), so there lookups are split into queries of 10.
IN_VALUES, EMBEDDED_IN_VALUES = 5000, 10
# More ids than this are likely a bulk load (an import, a rebuild, a sync from
# an ESP) with consecutive ids: they are read as one index range first.
DENSE_READ = 100
DECODE_BATCH = 2000
# A snapshot's member ids are stored in documents of this many ids, far below
# the 16 MB document limit whatever the segment's size.
SNAPSHOT_CHUNK = 5000


def custom_field_paths(key: str, field_type: str) -> tuple[str, ...]:
    """The indexed contact paths of a declared custom field: its value, and
    for a DATE its month-day (what anniversary rules look up)."""
    return (f"custom.{key}",) + ((f"dateParts.{key}.md",) if field_type == "DATE" else ())


async def _decoded_batches(cursor, codec_options: CodecOptions) -> AsyncGenerator[list[dict], None]:
    """A cursor of raw BSON documents as batches of dicts, decoded in a worker
    thread: the events of hundreds of contacts take a noticeable time to
    decode, which would hold up every other request on the event loop."""
    while batch := await cursor.to_list(DECODE_BATCH):
        yield await asyncio.to_thread(_decoded, batch, codec_options)


def _decoded(batch: list[RawBSONDocument], codec_options: CodecOptions) -> list[dict]:
    return [bson.decode(d.raw, codec_options) for d in batch]


def custom_index_name(workspace_id: str, path: str) -> str:
    """Name of a workspace's own index on a custom-field path."""
    return f"custom:{workspace_id}:{path}"


def plugin_index_name(registered: RegisteredIndex) -> str:
    """Name of a plugins' contact index: its keys alone (plugins asking for the
    same keys share it, whichever of them are enabled), marked so it is never
    taken for a custom field's (those are per workspace) nor dropped as one."""
    return PLUGIN_INDEX_PREFIX + "_".join(f"{path}_{d}" for path, d in registered.index.keys)


def _plugins_of(indexes: Iterable[RegisteredIndex]) -> str:
    return ", ".join(sorted({repr(p) for r in indexes for p in r.plugins}))


def _index_model(index: Index, **options) -> IndexModel:
    return IndexModel(list(index.keys), unique=index.unique, **options)


def check_plugin_storage(storage: Storage) -> None:
    """PluginError naming the plugin when what plugins declare cannot be
    created: a collection named like one of segmentql's own (the plugins
    layer cannot know their names), or contact indexes past the plugins'
    share of the budget."""
    for name, registered in storage.collections.items():
        if name in CORE_COLLECTIONS:
            raise PluginError(f"plugin {registered.plugin!r} registers the collection {name!r}, which is one of "
                              "segmentql's own; choose another name")
    if len(storage.contact_indexes) > MAX_PLUGIN_CONTACT_INDEXES:
        over = storage.contact_indexes[MAX_PLUGIN_CONTACT_INDEXES]
        raise PluginError(f"plugin {over.plugins[0]!r} asks for a contact index past the "
                          f"{MAX_PLUGIN_CONTACT_INDEXES} that plugins may have together ({over.index.keys!r}); disable "
                          "a plugin or ask for fewer")


def doc_key(workspace_id: str, item_id: str) -> str:
    """``_id`` of a contact or event: the workspace and the item's own id. The
    primary key then enforces "one per id in a workspace" (events are idempotent
    by it) and serves point reads and writes without a secondary index."""
    return f"{workspace_id}:{item_id}"


def hash_key(key: str) -> str:
    """API keys are random 256-bit tokens, so one round of SHA-256 is enough to
    make a leaked database useless for authentication."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "sq_" + secrets.token_urlsafe(32)


# A key's first characters, kept in clear to tell keys apart in lists ("sq_" and 5 random characters:
# too few to guess the rest from).
KEY_PREFIX_LENGTH = 8


# The namespace of the ids given to keys of earlier versions (uuid5 of their hash).
LEGACY_KEYS = uuid.UUID("5e6d0f3a-7c1b-4b8e-9a43-2f0c1d9e8b71")

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def now() -> dt.datetime:
    current = dt.datetime.now(UTC)
    return current.replace(microsecond=current.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class ContactWrite:
    """One contact's change (see :mod:`.paths`), and, for a contact it
    creates, the fields that contact starts with (defaults, rollups,
    timestamps); an update of a stored contact needs none."""

    id: str
    change: paths.Change
    on_insert: Mapping = field(default_factory=dict)


@dataclass(frozen=True)
class Workspace:
    """A workspace as its document holds it: the facts compiling a rule needs
    live there, so the read that checks an API key brings them along.

    ``fields``: the declared custom fields, key -> {"type", "indexed"};
    ``newest_event_day``: the newest UTC day any stored event falls on."""

    id: str
    name: str
    fields: Mapping[str, Mapping]
    newest_event_day: int | None

    @classmethod
    def from_document(cls, doc: Mapping) -> "Workspace":
        return cls(id=doc["_id"], name=doc["name"], fields=doc.get("fields") or {},
                   newest_event_day=doc.get("newestEventDay"))

    @property
    def custom_fields(self) -> dict[str, str]:
        """key -> type of every declared custom field."""
        return {key: spec["type"] for key, spec in self.fields.items()}

    @property
    def indexed_paths(self) -> tuple[str, ...]:
        """Contact fields with an index led by workspace_id, in the order the
        compiler's leading $match prefers them: the fixed ones, then the paths
        of the custom fields declared ``indexed``."""
        return INDEXED_CONTACT_FIELDS + tuple(path for key, spec in sorted(self.fields.items()) if spec.get("indexed")
                                              for path in custom_field_paths(key, spec["type"]))


class Database:
    """Typed access to segmentql's collections in one MongoDB database, and
    to those the enabled plugins declare (``storage``, checked here)."""

    def __init__(self, uri: str, name: str, max_time_ms: int, storage: Storage = NO_STORAGE):
        check_plugin_storage(storage)
        self.storage = storage
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            uri, tz_aware=True, serverSelectionTimeoutMS=5000, appname="segmentql")
        self.db = self.client[name]
        self.max_time_ms = max_time_ms
        self._in_limit: int | None = None
        self._raw_codec = self.db.codec_options.with_options(document_class=RawBSONDocument)

    async def close(self) -> None:
        await self.client.close()

    async def ping(self) -> None:
        await self.client.admin.command("ping")

    async def _insert_new(self, collection: str, docs: Sequence[dict], batch: int | None = None) -> set[int]:
        """Insert ``docs`` (``batch`` at a time, or all at once) where no
        document with the same unique key is stored; returns the positions of
        those already stored, which are left as they were. Any other write
        error is raised."""
        stored: set[int] = set()
        step = batch or len(docs)
        for start in range(0, len(docs), step or 1):
            try:
                await self.db[collection].insert_many(docs[start:start + step], ordered=False)
            except BulkWriteError as exc:
                errors = exc.details["writeErrors"]
                if any(e["code"] != DUPLICATE_KEY for e in errors):
                    raise
                stored.update(start + e["index"] for e in errors)
        return stored

    async def ensure_indexes(self) -> None:
        for collection, models in INDEXES.items():
            await self.db[collection].create_indexes(models)
        await self._ensure_shard_key_indexes()
        await self._drop_shared_custom_indexes()
        await self._ensure_plugin_collections()
        await self._ensure_plugin_contact_indexes()
        await self._move_legacy_keys()
        async for doc in self.db.workspaces.find({}, {"fields": 1}):
            for key, spec in sorted((doc.get("fields") or {}).items()):
                if spec.get("indexed"):
                    try:
                        await self.ensure_custom_field_indexes(doc["_id"], key, spec["type"])
                    except LimitExceeded as exc:
                        log.warning("workspace %s: custom field %r stays unindexed: %s", doc["_id"], key, exc)

    async def _ensure_shard_key_indexes(self) -> None:
        """The indexes of the recommended shard keys (README, "sharded
        cluster"), so the collections can be sharded as they are. A server
        without hashed indexes (the embedded one) cannot be sharded either."""
        for collection, keys in SHARD_KEYS.items():
            try:
                await self.db[collection].create_indexes([IndexModel(list(keys.items()))])
            except OperationFailure as exc:
                if exc.code != CANNOT_CREATE_INDEX:
                    raise
                log.debug("no shard key index on %s: %s", collection, exc)

    async def _drop_shared_custom_indexes(self) -> None:
        """Custom-field indexes used to be one per key for every workspace, so
        one workspace's values (a MULTI_SELECT's lists) changed the index
        others used; they are per workspace now (partial), and the shared
        ones of earlier versions are dropped."""
        async for spec in await self.db.contacts.list_indexes():
            if "partialFilterExpression" not in spec and not spec["name"].startswith(PLUGIN_INDEX_PREFIX) and any(
                    path.startswith(("custom.", "dateParts.")) for path in spec["key"]):
                await self.db.contacts.drop_index(spec["name"])

    async def _ensure_plugin_collections(self) -> None:
        """Create the plugins' collections and their indexes (idempotent, and
        safe when several processes start at once)."""
        for name, registered in self.storage.collections.items():
            try:
                await self.db.create_collection(name)
            except CollectionInvalid:
                pass  # exists already
            except OperationFailure as exc:
                if exc.code != NAMESPACE_EXISTS:  # created by another process meanwhile
                    raise
            if not registered.collection.indexes:
                continue
            try:
                await self.db[name].create_indexes([_index_model(i) for i in registered.collection.indexes])
            except OperationFailure as exc:
                if exc.code not in INDEX_CONFLICTS:
                    raise
                raise PluginError(f"plugin {registered.plugin!r}: an index of its collection {name!r} exists with "
                                  f"other options; drop it to have it made again: {(exc.details or {}).get('errmsg')}"
                                  ) from None

    async def _ensure_plugin_contact_indexes(self) -> None:
        """Create the plugins' contact-field indexes, counted with every other
        contacts index against MAX_CONTACT_INDEXES: plugins asking past what
        the collection has left stop start-up, named. An index is there when
        one on the same keys (for every workspace: not partial) is, whatever
        its name: another version or process may have made it."""
        if not self.storage.contact_indexes:
            return
        specs = [spec async for spec in await self.db.contacts.list_indexes()]
        present = {tuple(spec["key"].items()) for spec in specs if "partialFilterExpression" not in spec}
        missing = [r for r in self.storage.contact_indexes if tuple(r.index.keys) not in present]
        if len(specs) + len(missing) > MAX_CONTACT_INDEXES:
            raise PluginError(f"plugin(s) {_plugins_of(missing)} ask for {len(missing)} contact index(es), but the "
                              f"contacts collection has {len(specs)} of the {MAX_CONTACT_INDEXES} MongoDB allows; "
                              "disable the plugin, or drop indexed custom fields")
        try:
            if missing:
                await self.db.contacts.create_indexes(
                    [_index_model(r.index, name=plugin_index_name(r)) for r in missing])
        except OperationFailure as exc:
            if exc.code not in INDEX_CONFLICTS:
                raise
            raise PluginError(f"plugin(s) {_plugins_of(missing)}: a contact index they ask for conflicts with one the "
                              f"contacts collection has; drop that one to have it made again: "
                              f"{(exc.details or {}).get('errmsg')}") from None

    async def ensure_custom_field_indexes(self, workspace_id: str, key: str, field_type: str,
                                          check_only: bool = False) -> None:
        """Index a declared custom field's paths for one workspace (idempotent).

        Each index is partial, on the workspace's own contacts only: how one
        workspace uses a key (a list in a MULTI_SELECT makes an index multikey,
        which costs range rules their two-sided bounds) never changes the index
        another workspace's rules use. Raises :class:`LimitExceeded`,
        before creating anything, when the workspace already has
        MAX_INDEXED_PATHS_PER_WORKSPACE such indexes or the collection would
        pass MongoDB's limit; ``check_only`` checks that and creates nothing."""
        specs = [spec async for spec in await self.db.contacts.list_indexes()]
        names = {spec["name"] for spec in specs}
        own = [n for n in names if n.startswith(custom_index_name(workspace_id, ""))]
        missing = [p for p in custom_field_paths(key, field_type) if custom_index_name(workspace_id, p) not in names]
        if len(own) + len(missing) > MAX_INDEXED_PATHS_PER_WORKSPACE:
            raise LimitExceeded(
                f"a workspace may have at most {MAX_INDEXED_PATHS_PER_WORKSPACE} indexed custom field paths (a DATE "
                f"field takes two); this one has {len(own)}: declare {key!r} without `indexed`")
        if len(names) + len(missing) > MAX_CONTACT_INDEXES:
            raise LimitExceeded(f"the contacts collection has no index left for {key!r} "
                                f"(MongoDB allows {MAX_CONTACT_INDEXES}); declare it without `indexed`")
        if not check_only and missing:
            await self.db.contacts.create_indexes([
                IndexModel([("workspace_id", ASCENDING), (path, ASCENDING)], name=custom_index_name(workspace_id, path),
                           partialFilterExpression={"workspace_id": workspace_id}) for path in missing])

    # -- workspaces -------------------------------------------------------

    async def create_workspace(self, name: str) -> tuple[dict, str]:
        """A new workspace and the secret of its first key (ADMIN, named "default")."""
        workspace_id = str(ObjectId())
        doc = {"_id": workspace_id, "name": name, "createdAt": now(), "rollupLayout": ROLLUP_LAYOUT, "settledSeq": 0,
               "pluginRollups": self._plugin_rollup_paths()}
        try:
            await self.db.workspaces.insert_one(doc)
        except DuplicateKeyError:
            raise Conflict(f"workspace {name!r} already exists") from None
        _key, secret = await self.insert_api_key(workspace_id, "default", "ADMIN", None)
        return doc, secret

    async def workspace_by_name(self, name: str) -> dict | None:
        return await self.db.workspaces.find_one({"name": name})

    async def set_demo_dataset(self, workspace_id: str, name: str) -> None:
        """Remember which generated data set ``segmentql demo`` imported, so a restart skips it."""
        await self.db.workspaces.update_one({"_id": workspace_id}, {"$set": {"demoDataset": name}})

    def _plugin_rollup_paths(self) -> list[str]:
        return [r.path for r in self.storage.rollups]

    async def workspaces_with_old_rollups(self) -> list[dict]:
        """Workspaces whose contacts' rollups may predate the current layout
        (those made before the layout was recorded have none)."""
        return await self.db.workspaces.find({"rollupLayout": {"$ne": ROLLUP_LAYOUT}}, {"name": 1}).to_list()

    async def workspaces_lacking_plugin_rollups(self) -> list[tuple[str, list[str]]]:
        """(name, paths) of the workspaces whose contacts lack the values of
        enabled plugins' rollups (installed since their last rebuild)."""
        paths = self._plugin_rollup_paths()
        if not paths:
            return []
        found = self.db.workspaces.find({"$or": [{"pluginRollups": {"$ne": path}} for path in paths]},
                                        {"name": 1, "pluginRollups": 1})
        return [(doc["name"], [p for p in paths if p not in (doc.get("pluginRollups") or [])]) async for doc in found]

    async def note_rollup_layout(self, workspace_id: str) -> None:
        """Every contact of the workspace has rollups of the current layout,
        and of the enabled plugins (those of other processes' plugins stay noted)."""
        await self.db.workspaces.update_one({"_id": workspace_id}, {
            "$set": {"rollupLayout": ROLLUP_LAYOUT},
            "$addToSet": {"pluginRollups": {"$each": self._plugin_rollup_paths()}}})

    async def note_event_day(self, workspace_id: str, day: int) -> None:
        """Remember the newest UTC day that any stored event of the workspace falls on."""
        await self.db.workspaces.update_one({"_id": workspace_id}, {"$max": {"newestEventDay": day}})

    async def workspace_for_key(self, key: str) -> Workspace | None:
        """The workspace of a valid key (:meth:`api_key_for` tells the key too)."""
        found = await self.api_key_for(key, now())
        return None if found is None else found[1]

    async def workspace(self, workspace_id: str) -> Workspace:
        doc = await self.db.workspaces.find_one({"_id": workspace_id}, {"keys": 0})
        if doc is None:
            raise NotFound(f"no workspace with id {workspace_id!r}")
        return Workspace.from_document(doc)

    # -- API keys ---------------------------------------------------------
    # One document per key (server/apikeys.py): ``_id`` "<workspace>:<id>",
    # the SHA-256 ``hash`` of its secret (the secret itself is never stored),
    # ``prefix`` (its first characters, to recognise it; null for keys moved
    # from earlier versions), ``scope`` READ | WRITE | ADMIN, ``createdAt``,
    # ``lastUsedAt``, ``expiresAt`` and ``revokedAt`` (null: never / not).
    # A revoked key's document is kept, so a list of revocations survives.

    @staticmethod
    def _api_key_id(workspace_id: str, key_id: str) -> str:
        return f"{workspace_id}:{key_id}"

    async def insert_api_key(self, workspace_id: str, name: str, scope: str, expires_at: dt.datetime | None
                             ) -> tuple[dict, str]:
        """Store a new key; returns its document and its secret (shown once, stored only hashed)."""
        secret, key_id = new_key(), str(uuid.uuid4())
        doc = {"_id": self._api_key_id(workspace_id, key_id), "workspace_id": workspace_id, "id": key_id,
               "name": name, "prefix": secret[:KEY_PREFIX_LENGTH], "hash": hash_key(secret), "scope": scope,
               "createdAt": now(), "lastUsedAt": None, "expiresAt": expires_at, "revokedAt": None}
        await self.db.api_keys.insert_one(doc)
        return doc, secret

    @staticmethod
    def _valid_keys(at: dt.datetime) -> dict:
        return {"revokedAt": None, "$or": [{"expiresAt": None}, {"expiresAt": {"$gt": at}}]}

    async def api_key_for(self, secret: str, at: dt.datetime) -> tuple[dict, Workspace] | None:
        """The key with this secret, valid at ``at`` (neither revoked nor
        expired), and its workspace; None when there is none. Read from the
        database on every call: a revocation holds from the next request on."""
        key = await self.db.api_keys.find_one({"hash": hash_key(secret), **self._valid_keys(at)},
                                              {"_id": 0, "workspace_id": 1, "id": 1, "scope": 1, "lastUsedAt": 1})
        if key is None:
            return None
        doc = await self.db.workspaces.find_one({"_id": key["workspace_id"]}, {"keys": 0})
        return None if doc is None else (key, Workspace.from_document(doc))

    async def note_api_key_used(self, workspace_id: str, key_id: str, at: dt.datetime, every: dt.timedelta) -> None:
        """Set the key's ``lastUsedAt`` to ``at`` unless it was set less than
        ``every`` before: at most one write per key and period, whatever the
        number of requests or processes."""
        await self.db.api_keys.update_one(
            {"_id": self._api_key_id(workspace_id, key_id),
             "$or": [{"lastUsedAt": None}, {"lastUsedAt": {"$lt": at - every}}]}, {"$set": {"lastUsedAt": at}})

    async def api_keys_of(self, workspace_id: str) -> list[dict]:
        """The workspace's keys not revoked (expired ones included), oldest first."""
        cursor = self.db.api_keys.find({"workspace_id": workspace_id, "revokedAt": None}, {"_id": 0, "hash": 0})
        return await cursor.sort("createdAt", ASCENDING).to_list()

    async def count_valid_api_keys(self, workspace_id: str, at: dt.datetime) -> int:
        return await self.db.api_keys.count_documents({"workspace_id": workspace_id, **self._valid_keys(at)})

    async def revoke_api_key(self, workspace_id: str, key_id: str, at: dt.datetime) -> bool:
        """Revoke a key; False when the workspace has no such key not revoked yet."""
        result = await self.db.api_keys.update_one({"_id": self._api_key_id(workspace_id, key_id), "revokedAt": None},
                                                   {"$set": {"revokedAt": at}})
        return result.modified_count == 1

    async def _move_legacy_keys(self) -> None:
        """Earlier versions kept keys as hashes in their workspace's ``keys``:
        each becomes an ADMIN key named "legacy" (what it could do before),
        created when its workspace was. Its id derives from its hash, so two
        processes starting at once store the same document once (the unique
        hash), and a key revoked since stays revoked. The hashes stay in
        ``keys``: processes of the earlier version, still running during a
        rolling upgrade, go on reading them."""
        async for workspace in self.db.workspaces.find({"keys.0": {"$exists": True}}, {"keys": 1, "createdAt": 1}):
            docs = [{"_id": self._api_key_id(workspace["_id"], key_id), "workspace_id": workspace["_id"],
                     "id": key_id, "name": "legacy", "prefix": None, "hash": hashed, "scope": "ADMIN",
                     "createdAt": workspace.get("createdAt") or now(), "lastUsedAt": None, "expiresAt": None,
                     "revokedAt": None}
                    for hashed in workspace["keys"] for key_id in [str(uuid.uuid5(LEGACY_KEYS, hashed))]]
            moved = len(docs) - len(await self._insert_new("api_keys", docs))
            if moved:
                log.info("workspace %s: %d API key(s) of an earlier version kept as ADMIN keys", workspace["_id"],
                         moved)

    # -- custom fields ----------------------------------------------------

    async def custom_fields(self, workspace_id: str) -> dict[str, str]:
        return (await self.workspace(workspace_id)).custom_fields

    async def insert_custom_field(self, workspace_id: str, key: str, field_type: str, indexed: bool) -> bool:
        """False when the key is already declared (with whatever type). Keys
        match ^[a-z][a-z0-9_]{0,63}$, so they are safe as field names."""
        result = await self.db.workspaces.update_one(
            {"_id": workspace_id, f"fields.{key}": {"$exists": False}},
            {"$set": {f"fields.{key}": {"type": field_type, "indexed": indexed, "createdAt": now()}}})
        return result.modified_count == 1

    async def mark_custom_field_indexed(self, workspace_id: str, key: str) -> None:
        await self.db.workspaces.update_one({"_id": workspace_id}, {"$set": {f"fields.{key}.indexed": True}})

    # -- contacts ---------------------------------------------------------
    #
    # Every contact and event command carries ``workspace_id`` and, where it
    # names documents, their ``_id`` first: a sharded cluster routes it to the
    # shards that hold them (the shard key is ``{workspace_id: 1, _id:
    # "hashed"}``, see README), and the embedded server serves ``_id`` first as
    # a primary-key lookup (with ``workspace_id`` first it scans).

    @staticmethod
    def _by_keys(workspace_id: str, keys: list[str]) -> dict:
        return {"_id": keys[0] if len(keys) == 1 else {"$in": keys}, "workspace_id": workspace_id}

    @classmethod
    def contacts_query(cls, workspace_id: str, ids: Sequence[str]) -> dict:
        """The query for these contacts by primary key (a batch of :meth:`in_batches`): a pipeline leads with it."""
        return cls._by_keys(workspace_id, [doc_key(workspace_id, i) for i in ids])

    async def in_batches(self, values: Sequence[str]) -> list[Sequence[str]]:
        """``values`` in batches of the size one ``$in`` should name on this server."""
        step = await self._in_values()
        return [values[start:start + step] for start in range(0, len(values), step)]

    async def _in_values(self) -> int:
        """How many values one ``$in`` may name on this server (see IN_VALUES)."""
        if self._in_limit is None:
            info = await self.client.admin.command("buildInfo")
            self._in_limit = EMBEDDED_IN_VALUES if "secantusVersion" in info else IN_VALUES
        return self._in_limit

    async def _find_in(self, collection: str, workspace_id: str, field: str, values: Iterable[str],
                       projection: Mapping) -> list[dict]:
        """Documents of the workspace whose ``field`` (indexed after
        ``workspace_id``) is one of ``values``.

        Many values (an import, a rebuild) are likely consecutive among the
        stored ones: one index range read from the least to the greatest is
        tried first. It gives up once it has met more than twice as many
        distinct values as were asked for, and then reads by ``$in``, so a
        wrong guess costs at most twice the useful reading."""
        wanted = sorted(set(values))
        coll = self.db[collection].with_options(codec_options=self._raw_codec)
        if len(wanted) > DENSE_READ:
            asked, met, found = set(wanted), set(), []
            cursor = coll.find({"workspace_id": workspace_id, field: {"$gte": wanted[0], "$lte": wanted[-1]}},
                               projection)
            async for batch in _decoded_batches(cursor, self.db.codec_options):
                for doc in batch:
                    met.add(doc[field])
                    if doc[field] in asked:
                        found.append(doc)
                if len(met) > 2 * len(wanted):
                    await cursor.close()
                    break
            else:
                return found
        found, step = [], await self._in_values()
        for start in range(0, len(wanted), step):
            chunk = wanted[start:start + step]
            query = (self._by_keys(workspace_id, [doc_key(workspace_id, v) for v in chunk]) if field == "id"
                     else {"workspace_id": workspace_id, field: {"$in": chunk}})
            async for batch in _decoded_batches(coll.find(query, projection), self.db.codec_options):
                found += batch
        return found

    async def contacts_by_id(self, workspace_id: str, ids: Iterable[str], projection: Mapping | None = None
                             ) -> dict[str, dict]:
        """Contacts by id (by primary key, or one index range for many)."""
        projection = {**(projection or {}), "_id": 0}
        if any(v == 1 for v in projection.values()):
            projection["id"] = 1  # an inclusion projection still needs the key of the result
        return {c["id"]: c for c in await self._find_in("contacts", workspace_id, "id", ids, projection)}

    async def contact(self, workspace_id: str, contact_id: str) -> dict | None:
        return await self.db.contacts.find_one(self._by_keys(workspace_id, [doc_key(workspace_id, contact_id)]),
                                               {"_id": 0})

    async def write_contacts(self, workspace_id: str, writes: Sequence[ContactWrite],
                             new_ids: Collection[str] = frozenset()) -> set[str]:
        """Write contact changes: each write sets and unsets only its paths,
        so concurrent writers of other fields (or other custom keys) keep
        theirs. Contacts in ``new_ids`` were absent when the batch was read and
        are inserted whole (``on_insert`` with the change applied); one created
        meanwhile by another writer gets the change alone, its own fields
        kept. The others are updated, never created: one deleted since it was
        read stays deleted. Returns the ids of those (of ``new_ids``) that
        existed after all."""
        if not writes:
            return set()

        def update(write: ContactWrite) -> UpdateOne:
            # Not an upsert: a contact deleted since it was read stays deleted
            # (and a change alone would make a contact without its defaults).
            return UpdateOne(self._by_keys(workspace_id, [doc_key(workspace_id, write.id)]),
                             paths.update_document(write.change))

        fresh = [w for w in writes if w.id in new_ids]
        retry = [update(w) for w in writes if w.id not in new_ids]
        taken = await self._insert_new("contacts", [
            {"_id": doc_key(workspace_id, w.id), "workspace_id": workspace_id, "id": w.id,
             **paths.apply(w.on_insert, w.change)} for w in fresh])
        retry += [update(fresh[i]) for i in sorted(taken)]
        if retry:
            await self.db.contacts.bulk_write(retry, ordered=False)
        return {fresh[i].id for i in taken}

    async def delete_contacts(self, workspace_id: str, ids: Sequence[str]) -> int:
        deleted, step = 0, await self._in_values()
        for start in range(0, len(ids), step):
            chunk = list(ids[start:start + step])
            # Events first: a delete interrupted in between leaves a contact
            # without events rather than events without a contact.
            await self.db.events.delete_many({"workspace_id": workspace_id, "contact_id": {"$in": chunk}})
            result = await self.db.contacts.delete_many(
                self._by_keys(workspace_id, [doc_key(workspace_id, c) for c in chunk]))
            deleted += result.deleted_count
        return deleted

    async def contact_ids_with_campaign(self, workspace_id: str, campaign_id: str) -> list[str]:
        cursor = self.db.contacts.find({"workspace_id": workspace_id, "stats.campaigns.id": campaign_id}, {"id": 1})
        return [c["id"] async for c in cursor]

    async def all_contact_ids(self, workspace_id: str) -> list[str]:
        return [c["id"] async for c in self.db.contacts.find({"workspace_id": workspace_id}, {"id": 1})]

    async def write_stats(self, workspace_id: str,
                          updates: Sequence[tuple[str, str | None, dict, Mapping[str, object]]]) -> None:
        """Store recomputed rollups. Each update is (contact id, the timezone the
        rollup was computed in, stats, plugins' rollup values by path, None
        removing one). A write only lands when the contact still has that
        timezone and no more events than the rollup counted: events are only
        ever added, so a rollup computed from fewer events is stale and must not
        overwrite a newer one written by a concurrent batch. The plugins'
        values are under the same guard, in the same update: each path is set
        alone, never the contact read and written back."""
        if not updates:
            return
        # The guard lives in an update pipeline rather than in the filter so
        # that the filter stays a key lookup. Hundreds of rollups take tens of
        # milliseconds to encode: that is done in a worker thread too.
        codec = self.db.codec_options

        def guarded(tz: str | None, stats: dict, values: Mapping[str, object]) -> dict:
            guard = {"$and": [{"$eq": [{"$ifNull": ["$timezone", None]}, {"$literal": tz}]},
                              {"$lte": ["$stats.events", {"$literal": stats["events"]}]}]}
            return {path: {"$cond": [guard, new, "$" + path]} for path, new in {
                "stats": {"$literal": RawBSONDocument(bson.encode(stats, codec_options=codec))},
                **{path: "$$REMOVE" if value is None else {"$literal": value} for path, value in values.items()},
            }.items()}

        def operations() -> list[UpdateOne]:
            return [UpdateOne(self._by_keys(workspace_id, [doc_key(workspace_id, cid)]),
                              [{"$set": guarded(tz, stats, values)}])
                    for cid, tz, stats, values in updates]
        await self.db.contacts.bulk_write(await asyncio.to_thread(operations), ordered=False)

    # -- campaigns --------------------------------------------------------

    def _with_any_dates(self, collection: str):
        """The collection, reading dates beyond Python's years 1-9999 (written
        by another client) as ``bson.DatetimeMS`` instead of failing the whole
        read: rollups then refuse just the documents holding them."""
        return self.db[collection].with_options(
            codec_options=self.db.codec_options.with_options(datetime_conversion=DatetimeConversion.DATETIME_AUTO))

    async def campaigns_by(self, workspace_id: str, key: str, values: Iterable[str]) -> dict[str, dict]:
        cursor = self._with_any_dates("campaigns").find({"workspace_id": workspace_id, key: {"$in": list(values)}},
                                                        {"_id": 0})
        return {c[key]: c async for c in cursor}

    async def write_campaigns(self, workspace_id: str, docs: Sequence[dict]) -> None:
        if docs:
            await self.db.campaigns.bulk_write([
                UpdateOne({"workspace_id": workspace_id, "id": d["id"]},
                          {"$set": d, "$setOnInsert": {"createdAt": now()}}, upsert=True)
                for d in docs], ordered=True)

    async def note_campaign_in_rollups(self, workspace_id: str, campaign_id: str, values: Mapping) -> None:
        """The campaign's recipients' rollups hold ``values`` ({name, sentAt}),
        noted only while the campaign still has them (a later change is
        completed by its own upsert)."""
        await self.db.campaigns.update_one({"workspace_id": workspace_id, "id": campaign_id, **values},
                                           {"$set": {"inRollups": dict(values)}})

    async def note_campaigns_in_rollups(self, workspace_id: str) -> None:
        """Every campaign's recipients' rollups are about to be rebuilt from
        the campaigns as they are now."""
        await self.db.campaigns.update_many(
            {"workspace_id": workspace_id}, [{"$set": {"inRollups": {"name": "$name", "sentAt": "$sentAt"}}}])

    # -- events -----------------------------------------------------------

    async def insert_events(self, docs: Sequence[dict]) -> set[int]:
        """Insert raw events; returns the positions of those already stored
        (same workspace and id), which are left as they were."""
        return await self._insert_new("events", [{"_id": doc_key(d["workspace_id"], d["id"]), **d} for d in docs])

    async def events_of_contacts(self, workspace_id: str, contact_ids: Sequence[str]) -> dict[str, list[dict]]:
        """Every raw event of these contacts (by the ``{workspace_id, contact_id}`` index)."""
        grouped: dict[str, list[dict]] = {cid: [] for cid in contact_ids}
        for ev in await self._find_in("events", workspace_id, "contact_id", contact_ids,
                                      {"_id": 0, "workspace_id": 0}):
            grouped[ev["contact_id"]].append(ev)
        return grouped

    # -- segments ---------------------------------------------------------
    # A segment's earlier versions are documents of their own in
    # ``segment_revisions``, one per savedAt (the time the version was saved,
    # and replaced later), the newest SEGMENT_REVISIONS_KEPT of them: a segment
    # stays small however often it changes, and reading segments never reads
    # their history. Earlier versions of segmentql pushed them into the
    # segment's ``revisions`` list; they are moved out when first asked for.

    SEGMENT_REVISIONS_KEPT = 100
    WITHOUT_REVISIONS: ClassVar[Mapping[str, int]] = {"_id": 0, "revisions": 0}

    async def insert_segment(self, doc: dict) -> None:
        await self.db.segments.insert_one(dict(doc))

    async def segment(self, workspace_id: str, segment_id: str) -> dict | None:
        return await self.db.segments.find_one({"workspace_id": workspace_id, "id": segment_id},
                                               self.WITHOUT_REVISIONS)

    async def update_segment(self, workspace_id: str, segment_id: str, changes: dict, previous: dict | None
                             ) -> dict | None:
        """Apply ``changes``; ``previous`` (name, rule, savedAt), if given, is
        kept as a revision first, so a request that fails in between leaves its
        retry nothing to lose."""
        if previous is not None:
            await self._add_revisions(workspace_id, segment_id, [previous])
        updated = await self.db.segments.find_one_and_update(
            {"workspace_id": workspace_id, "id": segment_id}, {"$set": changes},
            projection=self.WITHOUT_REVISIONS, return_document=True)
        if updated is None and previous is not None:  # deleted meanwhile: so is its history
            await self.db.segment_revisions.delete_many({"workspace_id": workspace_id, "segment_id": segment_id})
        return updated

    async def segment_revisions(self, workspace_id: str, segment_id: str) -> list[dict]:
        """The segment's earlier versions (name, rule, savedAt), oldest first."""
        await self._move_embedded_revisions(workspace_id, segment_id)
        cursor = self.db.segment_revisions.find({"workspace_id": workspace_id, "segment_id": segment_id},
                                                {"_id": 0, "name": 1, "rule": 1, "savedAt": 1})
        return [r async for r in cursor.sort("savedAt", 1)]

    async def _add_revisions(self, workspace_id: str, segment_id: str, revisions: list[dict]) -> None:
        """Store revisions (one stored already, by savedAt, is kept as it is), then
        drop all but the newest SEGMENT_REVISIONS_KEPT."""
        query = {"workspace_id": workspace_id, "segment_id": segment_id}
        await self._insert_new("segment_revisions", [
            {**query, "savedAt": r["savedAt"], "name": r["name"], "rule": r["rule"]} for r in revisions])
        older = self.db.segment_revisions.find(query, {"_id": 1}).sort("savedAt", -1).skip(
            self.SEGMENT_REVISIONS_KEPT)
        dropped = [r["_id"] async for r in older]
        if dropped:
            await self.db.segment_revisions.delete_many({**query, "_id": {"$in": dropped}})

    async def _move_embedded_revisions(self, workspace_id: str, segment_id: str) -> None:
        """Move a segment's revisions of an earlier version out of its document:
        stored, then removed from it, so a move cut short is completed by the
        next (storing them again stores nothing)."""
        key = {"workspace_id": workspace_id, "id": segment_id}
        legacy = await self.db.segments.find_one({**key, "revisions": {"$exists": True}}, {"_id": 0, "revisions": 1})
        if legacy is None:
            return
        if legacy["revisions"]:
            await self._add_revisions(workspace_id, segment_id, legacy["revisions"])
        await self.db.segments.update_one(key, {"$unset": {"revisions": ""}})

    async def delete_segment(self, workspace_id: str, segment_id: str) -> bool:
        """The segment and everything recorded about it (revisions, snapshots, sizes)."""
        result = await self.db.segments.delete_one({"workspace_id": workspace_id, "id": segment_id})
        await self.db.segment_revisions.delete_many({"workspace_id": workspace_id, "segment_id": segment_id})
        snapshots = [s["id"] async for s in self.db.snapshots.find(
            {"workspace_id": workspace_id, "segment_id": segment_id}, {"id": 1})]
        for snapshot_id in snapshots:
            await self.delete_snapshot(workspace_id, snapshot_id)
        await self.db.segment_sizes.delete_many({"workspace_id": workspace_id, "segment_id": segment_id})
        await self._drop_membership(workspace_id, segment_id)
        return result.deleted_count == 1

    async def segments_page(self, workspace_id: str, after: tuple | None, limit: int) -> list[dict]:
        """Newest first; ``after`` is the (createdAt, id) of the last segment seen."""
        query: dict = {"workspace_id": workspace_id}
        if after is not None:
            created, sid = after
            query["$or"] = [{"createdAt": {"$lt": created}}, {"createdAt": created, "id": {"$lt": sid}}]
        cursor = self.db.segments.find(query, self.WITHOUT_REVISIONS).sort([("createdAt", -1), ("id", -1)])
        return [s async for s in cursor.limit(limit)]

    # -- snapshots and sizes ----------------------------------------------

    async def insert_snapshot(self, doc: dict, member_ids: AsyncIterator[str]) -> dict:
        """Store a snapshot of ``member_ids`` (in id order, as they are read):
        each chunk of SNAPSHOT_CHUNK ids is written once it fills, so memory
        holds one chunk whatever the segment's size. The snapshot document,
        with its ``size``, comes last: a snapshot is listed only once all its
        members are stored. If reading the members fails, the chunks written
        are removed. Returns the document stored."""
        ws, sid = doc["workspace_id"], doc["id"]
        size, chunk = 0, []
        try:
            async for member_id in member_ids:
                chunk.append(member_id)
                if len(chunk) == SNAPSHOT_CHUNK:
                    size, chunk = await self._add_snapshot_chunk(ws, sid, size, chunk), []
            if chunk:
                size = await self._add_snapshot_chunk(ws, sid, size, chunk)
        except Exception:
            await self.db.snapshot_members.delete_many({"workspace_id": ws, "snapshot_id": sid})
            raise
        stored = {**doc, "size": size}
        await self.db.snapshots.insert_one(dict(stored))
        return stored

    async def _add_snapshot_chunk(self, workspace_id: str, snapshot_id: str, stored: int, ids: list[str]) -> int:
        """Store the chunk of ``ids`` that follows the ``stored`` first ids; returns how many are stored now."""
        await self.db.snapshot_members.insert_one({"workspace_id": workspace_id, "snapshot_id": snapshot_id,
                                                   "chunk": stored // SNAPSHOT_CHUNK, "ids": ids})
        return stored + len(ids)

    async def snapshot(self, workspace_id: str, snapshot_id: str) -> dict | None:
        return await self.db.snapshots.find_one({"workspace_id": workspace_id, "id": snapshot_id}, {"_id": 0})

    async def snapshots_of(self, workspace_id: str, segment_id: str) -> list[dict]:
        """Newest first."""
        cursor = self.db.snapshots.find({"workspace_id": workspace_id, "segment_id": segment_id}, {"_id": 0})
        return [s async for s in cursor.sort([("takenAt", -1), ("id", -1)])]

    async def snapshot_chunks(self, workspace_id: str, snapshot_id: str, after: str | None = None
                              ) -> AsyncGenerator[list[str], None]:
        """The member ids chunk by chunk, in id order (a chunk holds a run of
        the sorted ids), one chunk read at a time. With ``after``, from the
        chunk holding the first id after it: the last chunk whose first id is
        ``after`` or before (that chunk may start with ids up to ``after``)."""
        query: dict = {"workspace_id": workspace_id, "snapshot_id": snapshot_id}
        if after is not None:
            start = await self.db.snapshot_members.find_one({**query, "ids.0": {"$lte": after}},
                                                            {"_id": 0, "chunk": 1}, sort=[("chunk", -1)])
            if start is not None:
                query["chunk"] = {"$gte": start["chunk"]}
        cursor = self.db.snapshot_members.find(query, {"_id": 0, "ids": 1}).sort("chunk", 1).batch_size(1)
        try:
            async for chunk in cursor:
                yield chunk["ids"]
        finally:
            await cursor.close()

    async def delete_snapshot(self, workspace_id: str, snapshot_id: str) -> bool:
        """The snapshot document first, so a half-deleted snapshot is never listed."""
        result = await self.db.snapshots.delete_one({"workspace_id": workspace_id, "id": snapshot_id})
        await self.db.snapshot_members.delete_many({"workspace_id": workspace_id, "snapshot_id": snapshot_id})
        return result.deleted_count == 1

    async def record_size(self, workspace_id: str, segment_id: str, at: dt.datetime, size: int, source: str) -> None:
        await self.db.segment_sizes.insert_one({"workspace_id": workspace_id, "segment_id": segment_id, "at": at,
                                                "size": size, "source": source})

    async def sizes(self, workspace_id: str, segment_id: str, since: dt.datetime | None, limit: int) -> list[dict]:
        """The newest ``limit`` recorded sizes (after ``since``), oldest first."""
        query: dict = {"workspace_id": workspace_id, "segment_id": segment_id}
        if since is not None:
            query["at"] = {"$gte": since}
        cursor = self.db.segment_sizes.find(query, {"_id": 0, "at": 1, "size": 1, "source": 1})
        newest = [s async for s in cursor.sort("at", -1).limit(limit)]
        return newest[::-1]

    async def all_segments(self, workspace_id: str | None = None) -> list[dict]:
        """Every saved segment (of one workspace, or of all)."""
        query = {} if workspace_id is None else {"workspace_id": workspace_id}
        return [s async for s in self.db.segments.find(query, self.WITHOUT_REVISIONS)]

    # -- live membership ---------------------------------------------------
    # ``segment_members`` holds one document per segment and contact that was
    # ever a member (``_id`` "<workspace>:<segment>:<contact>"): ``changes``
    # counts its entries and exits (odd: a member now). Change number k of a
    # contact in a segment is logged in ``segment_changes`` under an ``_id``
    # naming k, before its member document
    # says k: a write repeated after a crash in between logs nothing twice, and
    # :meth:`roll_forward` brings the member documents up to the log.

    @staticmethod
    def _change_key(workspace_id: str, segment_id: str, number: int, contact_id: str) -> str:
        return f"{workspace_id}:{segment_id}:{number}:{contact_id}"

    async def member_states(self, workspace_id: str, contact_ids: Sequence[str]) -> dict[tuple[str, str], int]:
        """(segment id, contact id) -> changes so far, of these contacts in every segment."""
        found: dict[tuple[str, str], int] = {}
        for doc in await self._find_in("segment_members", workspace_id, "contact_id", contact_ids,
                                       {"_id": 0, "segment_id": 1, "contact_id": 1, "changes": 1}):
            found[doc["segment_id"], doc["contact_id"]] = doc["changes"]
        return found

    async def stored_members(self, workspace_id: str, segment_id: str) -> AsyncGenerator[tuple[str, int], None]:
        """(contact id, changes) of every contact that ever was in the segment, in id order."""
        cursor = self.db.segment_members.with_options(codec_options=self._raw_codec).find(
            {"workspace_id": workspace_id, "segment_id": segment_id},
            {"_id": 0, "contact_id": 1, "changes": 1}).sort("contact_id", 1)
        try:
            async for batch in _decoded_batches(cursor, self.db.codec_options):
                for doc in batch:
                    yield doc["contact_id"], doc["changes"]
        finally:
            await cursor.close()

    async def member_id_batches(self, workspace_id: str, segment_id: str, after: str | None = None,
                                batch: int = MEMBER_BATCH) -> AsyncGenerator[list[str], None]:
        """The segment's stored members after the contact id ``after``, in id
        order, a batch per round trip of one cursor (the last batch may be
        shorter). Members are told from former ones here rather than by the
        query: the embedded server reads a ``member: true`` filter beside the
        (workspace, segment, contact) range ten times slower (1.9 s against
        0.19 s for 5,000 members of 70,000 documents), and a query per batch
        would make it scan the rest of the segment each time."""
        query: dict = {"workspace_id": workspace_id, "segment_id": segment_id}
        if after is not None:
            query["contact_id"] = {"$gt": after}
        cursor = self.db.segment_members.find(query, {"_id": 0, "contact_id": 1, "member": 1}).sort(
            "contact_id", 1).batch_size(batch)
        try:
            while docs := await cursor.to_list(batch):
                if found := [d["contact_id"] for d in docs if d["member"]]:
                    yield found
        finally:
            await cursor.close()

    async def member_ids(self, workspace_id: str, segment_id: str, after: str | None, limit: int) -> list[str]:
        """The first ``limit`` stored members after the contact id ``after``, in id order."""
        found: list[str] = []
        async with contextlib.aclosing(self.member_id_batches(workspace_id, segment_id, after, limit)) as batches:
            async for ids in batches:
                found += ids
                if len(found) >= limit:
                    break
        return found[:limit]

    async def log_changes(self, workspace_id: str, changes: Sequence[Mapping]) -> None:
        """Append membership changes ({segment_id, contact_id, number, change,
        at, cause}; ``number``: the contact's count of changes in the segment
        with this one) to the log, in order, then record them in the member
        documents and the segments' sizes. A change logged already (by a write
        cut short, and repeated) keeps its place in the log."""
        if not changes:
            return
        counter = await self.db.workspaces.find_one_and_update(
            {"_id": workspace_id}, {"$inc": {"changeSeq": len(changes)}}, {"changeSeq": 1}, return_document=True)
        if counter is None:
            raise NotFound(f"no workspace with id {workspace_id!r}")
        first = counter["changeSeq"] - len(changes) + 1
        entries = [{"_id": self._change_key(workspace_id, c["segment_id"], c["number"], c["contact_id"]),
                    "workspace_id": workspace_id, "seq": first + i, **c} for i, c in enumerate(changes)]
        # Positions of changes logged by an earlier, cut-short write:
        logged_before = await self._insert_new("segment_changes", entries, MEMBER_BATCH)
        await self._settle(workspace_id, counter["changeSeq"])
        await self._record_members(workspace_id, [(c["segment_id"], c["contact_id"], c["number"]) for c in changes])
        sizes: dict[str, int] = {}  # a repeated change was counted (or is recounted by the recovery)
        for i, c in enumerate(changes):
            if i not in logged_before:
                sizes[c["segment_id"]] = sizes.get(c["segment_id"], 0) + (1 if c["number"] % 2 else -1)
        stamp = max(c["at"] for c in changes)
        for segment_id, delta in sizes.items():
            await self.db.segments.update_one({"workspace_id": workspace_id, "id": segment_id},
                                              {"$inc": {"membership.size": delta},
                                               "$max": {"membership.updatedAt": stamp}})

    async def _record_members(self, workspace_id: str, counts: Sequence[tuple[str, str, int]]) -> None:
        """Member documents say (segment, contact, number of changes), unless they say more already.

        A first change makes the document (an insert: one that exists already
        says as much or more); later ones update it by ``_id``, which the
        embedded server serves as a key lookup (by the unique (workspace,
        segment, contact) index it scanned the segment's members each time)."""
        def key(segment_id: str, contact_id: str) -> str:
            return f"{workspace_id}:{segment_id}:{contact_id}"
        first = [{"_id": key(s, c), "workspace_id": workspace_id, "segment_id": s, "contact_id": c, "changes": 1,
                  "member": True} for s, c, number in counts if number == 1]
        later = [UpdateOne({"_id": key(s, c), "workspace_id": workspace_id, "changes": {"$lt": number}},
                           {"$set": {"changes": number, "member": number % 2 == 1}})
                 for s, c, number in counts if number > 1]
        await self._insert_new("segment_members", first, MEMBER_BATCH)
        for start in range(0, len(later), MEMBER_BATCH):
            await self.db.segment_members.bulk_write(later[start:start + MEMBER_BATCH], ordered=False)

    async def change_seq(self, workspace_id: str) -> int:
        """The position of the workspace's newest logged change (0: none)."""
        doc = await self.db.workspaces.find_one({"_id": workspace_id}, {"changeSeq": 1})
        return (doc or {}).get("changeSeq", 0)

    async def settle_log(self, workspace_id: str) -> None:
        """Everything logged so far may be read (after completing writes cut short: see :meth:`_settle`)."""
        await self._settle(workspace_id, await self.change_seq(workspace_id))

    async def _settle(self, workspace_id: str, seq: int) -> None:
        """Changes up to position ``seq`` are all stored: readers following the
        log (subscriptions, webhooks) read up to the settled position only.
        A write takes its positions before its changes are stored, so a reader
        going by the newest stored position could pass one still being stored
        and never see it. Only the workspace's writer settles (it holds the
        write lease), so the position only grows. Idle webhooks of the
        workspace are due again."""
        await self.db.workspaces.update_one({"_id": workspace_id}, {"$max": {"settledSeq": seq}})
        await self.db.webhooks.update_many({"workspace_id": workspace_id, "status": "ACTIVE", "dueAt": None},
                                           {"$set": {"dueAt": now()}})

    async def settle_logs_of_earlier_versions(self) -> None:
        """Workspaces whose log was written before logs were settled (every
        workspace is made with a settled position now): all of it may be read,
        unless a write is still at it (its writer settles it)."""
        async for doc in self.db.workspaces.find({"changeSeq": {"$exists": True}, "settledSeq": {"$exists": False}},
                                                 {"changeSeq": 1}):
            if not await self.db.membership_journal.find_one({"workspace_id": doc["_id"]}, {"_id": 1}):
                await self.db.workspaces.update_one({"_id": doc["_id"]}, {"$max": {"settledSeq": doc["changeSeq"]}})

    async def settled_seq(self, workspace_id: str) -> int:
        """The position up to which the workspace's log may be read (0: nothing logged)."""
        doc = await self.db.workspaces.find_one({"_id": workspace_id}, {"settledSeq": 1})
        return (doc or {}).get("settledSeq", 0)

    async def roll_forward(self, workspace_id: str, after_seq: int) -> set[str]:
        """Bring member documents up to the changes logged after ``after_seq``
        (by a write that died before recording them); returns their segments."""
        cursor = self.db.segment_changes.find({"workspace_id": workspace_id, "seq": {"$gt": after_seq}},
                                              {"_id": 0, "segment_id": 1, "contact_id": 1, "number": 1})
        counts = [(c["segment_id"], c["contact_id"], c["number"]) async for c in cursor.sort("seq", 1)]
        await self._record_members(workspace_id, counts)
        return {segment_id for segment_id, _, _ in counts}

    async def recount_members(self, workspace_id: str, segment_id: str) -> int:
        size = await self.db.segment_members.count_documents(
            {"workspace_id": workspace_id, "segment_id": segment_id, "member": True})
        await self.db.segments.update_one({"workspace_id": workspace_id, "id": segment_id},
                                          {"$set": {"membership.size": size}})
        return size

    async def note_membership(self, workspace_id: str, segment_id: str, as_of: dt.datetime, size: int) -> None:
        """The segment's members were all evaluated as of ``as_of``: there are ``size``."""
        await self.db.segments.update_one(
            {"workspace_id": workspace_id, "id": segment_id},
            {"$set": {"membership.asOf": as_of, "membership.size": size}, "$max": {"membership.updatedAt": now()},
             "$unset": {"membership.error": ""}})

    async def note_membership_broken(self, workspace_id: str, segment_id: str, reason: str) -> None:
        """The segment's rule no longer compiles: its stored members are not
        current (readers evaluate the rule instead) until it does again."""
        await self.db.segments.update_one({"workspace_id": workspace_id, "id": segment_id},
                                          {"$set": {"membership.error": reason[:1000]},
                                           "$unset": {"membership.asOf": ""}})

    async def changes_page(self, workspace_id: str, segment_ids: Sequence[str] | None, after_seq: int, limit: int,
                           upto_seq: int | None = None, before_seq: int | None = None, newest: bool = False
                           ) -> list[dict]:
        """Logged changes after position ``after_seq`` (and up to ``upto_seq``,
        before ``before_seq``) of these segments (or of all): the oldest
        ``limit`` of them, or with ``newest`` the newest ``limit`` (the same
        index read backwards), in log order either way."""
        positions: dict = {"$gt": after_seq}
        if upto_seq is not None:
            positions["$lte"] = upto_seq
        if before_seq is not None:
            positions["$lt"] = before_seq
        query: dict = {"workspace_id": workspace_id, "seq": positions}
        if segment_ids is not None:
            query["segment_id"] = segment_ids[0] if len(segment_ids) == 1 else {"$in": list(segment_ids)}
        cursor = self.db.segment_changes.find(query, {"_id": 0, "workspace_id": 0}).sort("seq", -1 if newest else 1)
        found = [c async for c in cursor.limit(limit)]
        return found[::-1] if newest else found

    async def _drop_membership(self, workspace_id: str, segment_id: str) -> None:
        for collection in ("segment_members", "segment_changes"):
            await self.db[collection].delete_many({"workspace_id": workspace_id, "segment_id": segment_id})

    # Writes whose membership evaluation has not finished (see server/live.py).

    async def open_journal(self, workspace_id: str, scope: Mapping) -> ObjectId:
        """Note a write about to happen (``scope``: what it touches), with the
        log position before it; closed once its changes are evaluated."""
        result = await self.db.membership_journal.insert_one(
            {"workspace_id": workspace_id, "at": now(), "afterSeq": await self.change_seq(workspace_id), **scope})
        return result.inserted_id

    async def close_journal(self, workspace_id: str, entry_id: ObjectId) -> None:
        await self.db.membership_journal.delete_one({"_id": entry_id, "workspace_id": workspace_id})

    async def open_journals(self, workspace_id: str) -> list[dict]:
        """Writes left unevaluated (their writer died, or failed), oldest first."""
        return [e async for e in self.db.membership_journal.find({"workspace_id": workspace_id}).sort("at", 1)]

    async def workspaces_with_journals(self, before: dt.datetime) -> list[str]:
        """Workspaces with writes left unevaluated since before ``before``."""
        return list(await self.db.membership_journal.distinct("workspace_id", {"at": {"$lt": before}}))

    async def workspaces_evaluated_before(self, when: dt.datetime, workspace_id: str | None = None,
                                          with_broken: bool = False) -> list[str]:
        """Workspaces (of all, or this one) with a saved segment last evaluated
        in full before ``when``, or never; segments whose rule no longer
        compiled only ``with_broken``."""
        query: dict = {"$or": [{"membership.asOf": {"$exists": False}}, {"membership.asOf": {"$lt": when}}]}
        if workspace_id is not None:
            query["workspace_id"] = workspace_id
        if not with_broken:
            query["membership.error"] = {"$exists": False}
        return list(await self.db.segments.distinct("workspace_id", query))

    # A workspace's write lease: one writer at a time, across processes.

    async def take_lease(self, workspace_id: str, owner: str, seconds: float) -> bool:
        """Take (or extend) the workspace's write lease for ``seconds``; False while another owner holds it."""
        stamp = now()
        try:
            await self.db.write_leases.update_one(
                {"_id": workspace_id, "$or": [{"until": {"$lt": stamp}}, {"owner": owner}]},
                {"$set": {"owner": owner, "until": stamp + dt.timedelta(seconds=seconds)}}, upsert=True)
        except DuplicateKeyError:
            return False
        return True

    async def release_lease(self, workspace_id: str, owner: str) -> None:
        await self.db.write_leases.delete_one({"_id": workspace_id, "owner": owner})

    # -- webhooks ----------------------------------------------------------
    # A webhook document holds its state machine (server/delivery.py):
    # ``position`` (the log position delivered up to), ``generation`` (bumped
    # by a redelivery: a dispatcher's writes for an older one change nothing),
    # ``dueAt`` (when a dispatcher should look at it; None: idle until a
    # change is logged) and its claim (``claimOwner`` until ``claimUntil``):
    # one dispatcher at a time, so deliveries keep log order.

    WEBHOOK_FIELDS: ClassVar[dict] = {"_id": 0}

    @staticmethod
    def _webhook_key(workspace_id: str, webhook_id: str) -> str:
        return f"{workspace_id}:{webhook_id}"

    async def insert_webhook(self, doc: dict) -> None:
        await self.db.webhooks.insert_one({"_id": self._webhook_key(doc["workspace_id"], doc["id"]), **doc})

    async def count_webhooks(self, workspace_id: str) -> int:
        return await self.db.webhooks.count_documents({"workspace_id": workspace_id})

    async def webhook(self, workspace_id: str, webhook_id: str) -> dict | None:
        return await self.db.webhooks.find_one({"_id": self._webhook_key(workspace_id, webhook_id)},
                                               self.WEBHOOK_FIELDS)

    async def webhooks_of(self, workspace_id: str) -> list[dict]:
        """The workspace's webhooks, oldest first."""
        cursor = self.db.webhooks.find({"workspace_id": workspace_id}, self.WEBHOOK_FIELDS).sort("createdAt", 1)
        return [w async for w in cursor]

    async def update_webhook(self, workspace_id: str, webhook_id: str, update: dict,
                             expected: Mapping | None = None) -> dict | None:
        """Apply ``update`` (an update document) if the webhook still holds
        ``expected``; the webhook after it, or None when there is none (so)."""
        return await self.db.webhooks.find_one_and_update(
            {"_id": self._webhook_key(workspace_id, webhook_id), **(expected or {})}, update, self.WEBHOOK_FIELDS,
            return_document=True)

    async def delete_webhook(self, workspace_id: str, webhook_id: str) -> bool:
        deleted = await self.db.webhooks.delete_one({"_id": self._webhook_key(workspace_id, webhook_id)})
        await self.db.webhook_deliveries.delete_many({"workspace_id": workspace_id, "webhook_id": webhook_id})
        return deleted.deleted_count == 1

    async def due_webhooks(self, at: dt.datetime, limit: int, but: Collection[str] = ()) -> list[dict]:
        """Active webhooks (of any workspace but those named) due by ``at``
        and claimed by nobody, longest waiting first."""
        query: dict = {"dueAt": {"$lte": at}, "status": "ACTIVE", "claimUntil": {"$lt": at}}
        if but:
            query["workspace_id"] = {"$nin": list(but)}
        cursor = self.db.webhooks.find(query, {"_id": 0, "workspace_id": 1, "id": 1}).sort("dueAt", 1).limit(limit)
        return [w async for w in cursor]

    async def claim_webhook(self, workspace_id: str, webhook_id: str, owner: str, until: dt.datetime,
                            at: dt.datetime) -> dict | None:
        """Claim a due, active webhook for ``owner`` (or extend its own claim)
        until ``until``; the webhook, or None when it is not due, not active or
        claimed by another."""
        return await self.db.webhooks.find_one_and_update(
            {"_id": self._webhook_key(workspace_id, webhook_id), "status": "ACTIVE",
             "$or": [{"claimOwner": owner}, {"claimUntil": {"$lt": at}, "dueAt": {"$lte": at}}]},
            {"$set": {"claimOwner": owner, "claimUntil": until}}, self.WEBHOOK_FIELDS, return_document=True)

    async def release_webhook(self, workspace_id: str, webhook_id: str, owner: str, generation: int,
                              changes: Mapping) -> None:
        """Set ``changes`` (its next ``dueAt``, a new ``position`` or
        ``status``) unless a redelivery started a new generation meanwhile,
        and give up the claim, if ``owner`` holds it."""
        key = self._webhook_key(workspace_id, webhook_id)
        await self.db.webhooks.update_one({"_id": key, "claimOwner": owner, "generation": generation},
                                          {"$set": dict(changes)})
        await self.db.webhooks.update_one({"_id": key, "claimOwner": owner},
                                          {"$set": {"claimUntil": EPOCH}, "$unset": {"claimOwner": ""}})

    async def advance_webhook(self, workspace_id: str, webhook_id: str, owner: str, generation: int,
                              position: int) -> None:
        """The claimed webhook delivered the log up to ``position``."""
        await self.db.webhooks.update_one(
            {"_id": self._webhook_key(workspace_id, webhook_id), "claimOwner": owner, "generation": generation},
            {"$max": {"position": position}})

    async def insert_delivery(self, doc: dict) -> dict:
        """Store a new delivery, or find the one stored already under its id
        (made by a dispatcher that died before sending it)."""
        key = f"{doc['workspace_id']}:{doc['id']}"
        await self._insert_new("webhook_deliveries", [{"_id": key, **doc}])
        return await self.db.webhook_deliveries.find_one({"_id": key}, self.WEBHOOK_FIELDS)  # type: ignore[return-value]

    async def pending_delivery(self, workspace_id: str, webhook_id: str, generation: int) -> dict | None:
        return await self.db.webhook_deliveries.find_one(
            {"workspace_id": workspace_id, "webhook_id": webhook_id, "generation": generation, "state": "PENDING"},
            self.WEBHOOK_FIELDS)

    async def record_attempt(self, workspace_id: str, delivery_id: str, attempt: Mapping, changes: Mapping,
                             kept: int) -> None:
        """Append an attempt to a pending delivery (keeping its newest ``kept``) and set ``changes``."""
        await self.db.webhook_deliveries.update_one(
            {"_id": f"{workspace_id}:{delivery_id}", "state": "PENDING"},
            {"$push": {"attempts": {"$each": [dict(attempt)], "$slice": -kept}}, "$inc": {"attemptCount": 1},
             "$set": dict(changes)})

    async def close_deliveries(self, workspace_id: str, webhook_id: str, before_generation: int, state: str) -> None:
        """Pending deliveries of the webhook's generations before ``before_generation`` end in ``state``."""
        await self.db.webhook_deliveries.update_many(
            {"workspace_id": workspace_id, "webhook_id": webhook_id, "state": "PENDING",
             "generation": {"$lt": before_generation}},
            {"$set": {"state": state, "finishedAt": now(), "nextAttemptAt": None}})

    async def deliveries_page(self, workspace_id: str, webhook_id: str, before: tuple[dt.datetime, str] | None,
                              limit: int) -> list[dict]:
        """A webhook's deliveries, newest first, after the (createdAt, id) ``before``."""
        query: dict = {"workspace_id": workspace_id, "webhook_id": webhook_id}
        if before is not None:
            query["$or"] = [{"createdAt": {"$lt": before[0]}}, {"createdAt": before[0], "id": {"$lt": before[1]}}]
        # Without the changes they carry (up to 100 each): a page shows their count and cursors.
        cursor = self.db.webhook_deliveries.find(query, {"_id": 0, "changes": 0}).sort(
            [("createdAt", DESCENDING), ("id", DESCENDING)]).limit(limit)
        return [d async for d in cursor]

    async def workspaces_named(self) -> list[dict]:
        """Every workspace's ``_id`` and ``name``, by name."""
        return [w async for w in self.db.workspaces.find({}, {"name": 1}).sort("name", 1)]

    # -- segment evaluation ----------------------------------------------

    @metrics.timed_pipeline("aggregate")
    async def aggregate_contacts(self, pipeline: list[dict]) -> list[dict]:
        """The pipeline's documents, read in the request's turn and within its
        deadline (:mod:`.deadline`)."""
        async with deadline.turn(self.max_time_ms) as max_time_ms:
            cursor = await self.db.contacts.aggregate(pipeline, maxTimeMS=max_time_ms)
            try:
                return await cursor.to_list()
            finally:
                await cursor.close()

    async def stream_contacts(self, pipeline: list[dict]) -> AsyncGenerator[dict, None]:
        """The pipeline's documents one by one, for readers that may stop early.
        Each batch is read in the request's turn and within its deadline
        (:mod:`.deadline`); the reader handles it outside the turn."""
        batch_size = 500
        with metrics.PIPELINE_SECONDS.labels("stream").time():
            async with deadline.turn(self.max_time_ms) as max_time_ms:
                cursor = await self.db.contacts.aggregate(pipeline, maxTimeMS=max_time_ms, batchSize=batch_size)
        try:
            while True:
                async with deadline.turn(self.max_time_ms):
                    batch = await cursor.to_list(batch_size)
                if not batch:
                    return
                for doc in batch:
                    yield doc
        finally:
            await cursor.close()
