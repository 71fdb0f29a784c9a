"""Database access: the one module that owns every collection, index and query
shape. Everything above it speaks in workspaces, contacts, events and
pipelines; nothing above it names a collection.

Every document carries ``workspace_id`` and every query and pipeline starts by
matching it, so a key can only ever reach its own workspace (and the field is
the natural shard-key prefix on a sharded cluster).
"""

import datetime as dt
import hashlib
import secrets
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from .rollups import ROLLUP_LAYOUT

UTC = dt.timezone.utc
DUPLICATE_KEY = 11000

# (collection, keys, options). The compiler relies on the contacts indexes:
# docs/performance.md lists which condition uses which.
INDEXES: dict[str, list[IndexModel]] = {
    "workspaces": [IndexModel([("name", ASCENDING)], unique=True), IndexModel([("keys", ASCENDING)])],
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
}

CONTACTS = "contacts"
# Contact fields with an index led by workspace_id, in the order the compiler
# prefers them for the leading $match (most selective kinds of rule first).
INDEXED_CONTACT_FIELDS = ("leadScore", "stats.clicks", "stats.lastActivityAt", "stats.campaigns.id",
                          "stats.campaigns.name", "stats.topOpenHour", "tags", "country")
# Custom fields declared ``indexed`` are indexed too (see custom_field_paths),
# one index per key across all workspaces, while the collection has fewer than
# this many indexes (MongoDB allows 64); past it, rules on new keys scan.
MAX_CONTACT_INDEXES = 60
# The embedded server answers a large ``$in`` on a secondary index slowly
# (500 values took 9 s where 50 queries of 10 took 1.5 s), so many-valued
# lookups are split into queries of this many values.
IN_CHUNK = 10
# A snapshot's member ids are stored in documents of this many ids, far below
# the 16 MB document limit whatever the segment's size.
SNAPSHOT_CHUNK = 5000


def custom_field_paths(key: str, field_type: str) -> tuple[str, ...]:
    """The indexed contact paths of a declared custom field: its value, and
    for a DATE its month-day (what anniversary rules look up)."""
    return (f"custom.{key}",) + ((f"dateParts.{key}.md",) if field_type == "DATE" else ())


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


def now() -> dt.datetime:
    current = dt.datetime.now(UTC)
    return current.replace(microsecond=current.microsecond // 1000 * 1000)


class WorkspaceExists(ValueError):
    pass


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
    def indexed_custom_fields(self) -> dict[str, str]:
        """key -> type of the custom fields declared ``indexed``."""
        return {key: spec["type"] for key, spec in self.fields.items() if spec.get("indexed")}


class Database:
    """Typed access to segmentql's collections in one MongoDB database."""

    def __init__(self, uri: str, name: str, max_time_ms: int):
        self.client = AsyncMongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=5000,
                                       appname="segmentql")
        self.db = self.client[name]
        self.max_time_ms = max_time_ms

    async def close(self) -> None:
        await self.client.close()

    async def ping(self) -> None:
        await self.client.admin.command("ping")

    async def ensure_indexes(self) -> None:
        await self._move_field_declarations()
        for collection, models in INDEXES.items():
            await self.db[collection].create_indexes(models)
        declared = {(key, spec["type"]) async for doc in self.db.workspaces.find({}, {"fields": 1})
                    for key, spec in (doc.get("fields") or {}).items() if spec.get("indexed")}
        for key, field_type in sorted(declared):
            await self.ensure_custom_field_indexes(key, field_type)

    async def _move_field_declarations(self) -> None:
        """Custom field declarations were documents of a ``fields`` collection
        before they moved into their workspace's document; move any left there
        (each is written before the collection is dropped, so a start-up that
        dies half-way loses nothing and the next one finishes)."""
        async for decl in self.db.fields.find({}):
            await self.insert_custom_field(decl["workspace_id"], decl["key"], decl["type"],
                                           bool(decl.get("indexed")), decl.get("createdAt"))
        await self.db.drop_collection("fields")

    async def ensure_custom_field_indexes(self, key: str, field_type: str) -> None:
        """Index a declared custom field's paths (idempotent), unless the
        contacts collection is at MAX_CONTACT_INDEXES already."""
        existing = {tuple(spec["key"]) async for spec in await self.db.contacts.list_indexes()}
        for path in custom_field_paths(key, field_type):
            if ("workspace_id", path) not in existing and len(existing) < MAX_CONTACT_INDEXES:
                await self.db.contacts.create_indexes([IndexModel([("workspace_id", ASCENDING), (path, ASCENDING)])])
                existing.add(("workspace_id", path))

    # -- workspaces -------------------------------------------------------

    async def create_workspace(self, name: str) -> tuple[dict, str]:
        key = new_key()
        doc = {"_id": str(ObjectId()), "name": name, "keys": [hash_key(key)], "createdAt": now(),
               "rollupLayout": ROLLUP_LAYOUT}
        try:
            await self.db.workspaces.insert_one(doc)
        except DuplicateKeyError:
            raise WorkspaceExists(f"workspace {name!r} already exists") from None
        return doc, key

    async def add_workspace_key(self, name: str) -> str | None:
        key = new_key()
        result = await self.db.workspaces.update_one({"name": name}, {"$push": {"keys": hash_key(key)}})
        return key if result.matched_count else None

    async def workspace_by_name(self, name: str) -> dict | None:
        return await self.db.workspaces.find_one({"name": name})

    async def set_demo_dataset(self, workspace_id: str, name: str) -> None:
        """Remember which generated data set ``segmentql demo`` imported, so a restart skips it."""
        await self.db.workspaces.update_one({"_id": workspace_id}, {"$set": {"demoDataset": name}})

    async def workspaces_with_old_rollups(self) -> list[dict]:
        """Workspaces whose contacts' rollups may predate the current layout
        (those made before the layout was recorded have none)."""
        return await self.db.workspaces.find({"rollupLayout": {"$ne": ROLLUP_LAYOUT}}, {"name": 1}).to_list()

    async def note_rollup_layout(self, workspace_id: str) -> None:
        """Every contact of the workspace has rollups of the current layout."""
        await self.db.workspaces.update_one({"_id": workspace_id}, {"$set": {"rollupLayout": ROLLUP_LAYOUT}})

    async def note_event_day(self, workspace_id: str, day: int) -> None:
        """Remember the newest UTC day that any stored event of the workspace falls on."""
        await self.db.workspaces.update_one({"_id": workspace_id}, {"$max": {"newestEventDay": day}})

    async def workspace_for_key(self, key: str) -> Workspace | None:
        doc = await self.db.workspaces.find_one({"keys": hash_key(key)}, {"keys": 0})
        return None if doc is None else Workspace.from_document(doc)

    async def workspace(self, workspace_id: str) -> Workspace:
        doc = await self.db.workspaces.find_one({"_id": workspace_id}, {"keys": 0})
        if doc is None:
            raise LookupError(f"no workspace with id {workspace_id!r}")
        return Workspace.from_document(doc)

    # -- custom fields ----------------------------------------------------

    async def custom_fields(self, workspace_id: str) -> dict[str, str]:
        return (await self.workspace(workspace_id)).custom_fields

    async def insert_custom_field(self, workspace_id: str, key: str, field_type: str, indexed: bool,
                                  created_at: dt.datetime | None = None) -> bool:
        """False when the key is already declared (with whatever type). Keys
        match ^[a-z][a-z0-9_]{0,63}$, so they are safe as field names."""
        result = await self.db.workspaces.update_one(
            {"_id": workspace_id, f"fields.{key}": {"$exists": False}},
            {"$set": {f"fields.{key}": {"type": field_type, "indexed": indexed, "createdAt": created_at or now()}}})
        return result.modified_count == 1

    async def mark_custom_field_indexed(self, workspace_id: str, key: str) -> None:
        await self.db.workspaces.update_one({"_id": workspace_id}, {"$set": {f"fields.{key}.indexed": True}})

    # -- contacts ---------------------------------------------------------

    async def _find_in(self, collection: str, workspace_id: str, field: str, values: Iterable[str],
                       projection: Mapping, dense: bool) -> list[dict]:
        """Documents of the workspace whose ``field`` (indexed after
        ``workspace_id``) is one of ``values``.

        The embedded server answers a large ``$in`` slowly and many small ones
        cost a round trip each. With ``dense`` (values likely consecutive among
        the stored ones, as in an import or a rebuild) one index range read
        from the least to the greatest value is tried first. It gives up once
        it has met more than twice as many distinct values as were asked for,
        and then reads in ``$in`` chunks, so a wrong guess costs at most twice
        the useful reading."""
        wanted = sorted(set(values))
        coll = self.db[collection]
        if dense and len(wanted) > IN_CHUNK:
            asked, met, found = set(wanted), set(), []
            cursor = coll.find({"workspace_id": workspace_id, field: {"$gte": wanted[0], "$lte": wanted[-1]}},
                               projection)
            async for doc in cursor:
                met.add(doc[field])
                if len(met) > 2 * len(wanted):
                    await cursor.close()
                    break
                if doc[field] in asked:
                    found.append(doc)
            else:
                return found
        found = []
        for start in range(0, len(wanted), IN_CHUNK):
            cursor = coll.find({"workspace_id": workspace_id, field: {"$in": wanted[start:start + IN_CHUNK]}},
                               projection)
            found += [doc async for doc in cursor]
        return found

    async def contacts_by_id(self, workspace_id: str, ids: Iterable[str], projection: Mapping | None = None,
                             dense: bool = False) -> dict[str, dict]:
        """Contacts by id; ``dense``: the ids are likely consecutive (see :meth:`_find_in`)."""
        projection = {**(projection or {}), "_id": 0}
        if any(v == 1 for v in projection.values()):
            projection["id"] = 1  # an inclusion projection still needs the key of the result
        if dense:
            return {c["id"]: c for c in await self._find_in("contacts", workspace_id, "id", ids, projection, True)}
        keys = [doc_key(workspace_id, i) for i in ids]
        found = {}
        for start in range(0, len(keys), IN_CHUNK):  # primary-key reads, for ids spread anywhere
            cursor = self.db.contacts.find({"_id": {"$in": keys[start:start + IN_CHUNK]}}, projection)
            found.update({c["id"]: c async for c in cursor})
        return found

    async def contact(self, workspace_id: str, contact_id: str) -> dict | None:
        return await self.db.contacts.find_one({"_id": doc_key(workspace_id, contact_id)}, {"_id": 0})

    async def write_contacts(self, workspace_id: str, changes: Sequence[tuple[str, dict, dict]],
                             new_ids: set[str] = frozenset()) -> set[str]:
        """Upsert contacts: each change is (id, fields to set, fields set only when
        the contact is new). Contacts in ``new_ids`` were absent when the batch
        was read and are inserted, which the embedded server does several times
        faster than upserts; one created meanwhile by another writer is upserted.
        Returns the ids of those (of ``new_ids``) that existed after all."""
        if not changes:
            return set()

        def upsert(cid, fields, on_insert):
            return UpdateOne({"_id": doc_key(workspace_id, cid)},
                             {"$set": fields, "$setOnInsert": {"workspace_id": workspace_id, "id": cid, **on_insert}},
                             upsert=True)

        fresh = [c for c in changes if c[0] in new_ids]
        retry = [upsert(*c) for c in changes if c[0] not in new_ids]
        taken: set[int] = set()
        if fresh:
            try:
                await self.db.contacts.insert_many(
                    [{"_id": doc_key(workspace_id, cid), "workspace_id": workspace_id, "id": cid, **on_insert,
                      **fields} for cid, fields, on_insert in fresh], ordered=False)
            except BulkWriteError as exc:
                taken = {e["index"] for e in exc.details["writeErrors"] if e["code"] == DUPLICATE_KEY}
                if len(taken) != len(exc.details["writeErrors"]):
                    raise
                retry += [upsert(*fresh[i]) for i in sorted(taken)]
        if retry:
            await self.db.contacts.bulk_write(retry, ordered=False)
        return {fresh[i][0] for i in taken}

    async def delete_contacts(self, workspace_id: str, ids: Sequence[str]) -> int:
        deleted = 0
        for start in range(0, len(ids), IN_CHUNK):
            chunk = list(ids[start:start + IN_CHUNK])
            # Events first: a delete interrupted in between leaves a contact
            # without events rather than events without a contact.
            await self.db.events.delete_many({"workspace_id": workspace_id, "contact_id": {"$in": chunk}})
            result = await self.db.contacts.delete_many({"_id": {"$in": [doc_key(workspace_id, c) for c in chunk]}})
            deleted += result.deleted_count
        return deleted

    async def contact_ids_with_campaign(self, workspace_id: str, campaign_id: str) -> list[str]:
        cursor = self.db.contacts.find({"workspace_id": workspace_id, "stats.campaigns.id": campaign_id}, {"id": 1})
        return [c["id"] async for c in cursor]

    async def all_contact_ids(self, workspace_id: str) -> list[str]:
        return [c["id"] async for c in self.db.contacts.find({"workspace_id": workspace_id}, {"id": 1})]

    async def write_stats(self, workspace_id: str, updates: Sequence[tuple[str, str | None, dict]]) -> None:
        """Store recomputed rollups. Each update is (contact id, the timezone the
        rollup was computed in, stats). A write only lands when the contact still
        has that timezone and no more events than the rollup counted: events are
        only ever added, so a rollup computed from fewer events is stale and must
        not overwrite a newer one written by a concurrent batch."""
        if not updates:
            return
        # The guard lives in an update pipeline rather than in the filter so
        # that the filter stays a bare ``_id`` equality, which the embedded
        # server serves as a primary-key lookup.
        await self.db.contacts.bulk_write([
            UpdateOne({"_id": doc_key(workspace_id, cid)}, [{"$set": {"stats": {"$cond": [
                {"$and": [{"$eq": [{"$ifNull": ["$timezone", None]}, {"$literal": tz}]},
                          {"$lte": ["$stats.events", {"$literal": stats["events"]}]}]},
                {"$literal": stats}, "$stats"]}}}])
            for cid, tz, stats in updates], ordered=False)

    # -- campaigns --------------------------------------------------------

    async def campaigns_by(self, workspace_id: str, key: str, values: Iterable[str]) -> dict[str, dict]:
        cursor = self.db.campaigns.find({"workspace_id": workspace_id, key: {"$in": list(values)}}, {"_id": 0})
        return {c[key]: c async for c in cursor}

    async def write_campaigns(self, workspace_id: str, docs: Sequence[dict]) -> None:
        if docs:
            await self.db.campaigns.bulk_write([
                UpdateOne({"workspace_id": workspace_id, "id": d["id"]},
                          {"$set": d, "$setOnInsert": {"createdAt": now()}}, upsert=True)
                for d in docs], ordered=True)

    # -- events -----------------------------------------------------------

    async def insert_events(self, docs: Sequence[dict]) -> set[int]:
        """Insert raw events; returns the positions of those already stored
        (same workspace and id), which are left as they were."""
        if not docs:
            return set()
        try:
            await self.db.events.insert_many(
                [{"_id": doc_key(d["workspace_id"], d["id"]), **d} for d in docs], ordered=False)
        except BulkWriteError as exc:
            duplicates = {e["index"] for e in exc.details["writeErrors"] if e["code"] == DUPLICATE_KEY}
            if len(duplicates) != len(exc.details["writeErrors"]):
                raise
            return duplicates
        return set()

    async def events_of_contacts(self, workspace_id: str, contact_ids: Sequence[str], dense: bool = False
                                 ) -> dict[str, list[dict]]:
        """Every raw event of these contacts; ``dense``: see :meth:`_find_in`."""
        grouped: dict[str, list[dict]] = {cid: [] for cid in contact_ids}
        for ev in await self._find_in("events", workspace_id, "contact_id", contact_ids,
                                      {"_id": 0, "workspace_id": 0}, dense):
            grouped[ev["contact_id"]].append(ev)
        return grouped

    # -- segments ---------------------------------------------------------

    async def insert_segment(self, doc: dict) -> None:
        await self.db.segments.insert_one(dict(doc))

    async def segment(self, workspace_id: str, segment_id: str) -> dict | None:
        return await self.db.segments.find_one({"workspace_id": workspace_id, "id": segment_id}, {"_id": 0})

    async def update_segment(self, workspace_id: str, segment_id: str, changes: dict, previous: dict | None
                             ) -> dict | None:
        update: dict = {"$set": changes}
        if previous is not None:
            update["$push"] = {"revisions": previous}
        return await self.db.segments.find_one_and_update(
            {"workspace_id": workspace_id, "id": segment_id}, update, projection={"_id": 0},
            return_document=True)

    async def delete_segment(self, workspace_id: str, segment_id: str) -> bool:
        """The segment and everything recorded about it (snapshots, sizes)."""
        result = await self.db.segments.delete_one({"workspace_id": workspace_id, "id": segment_id})
        snapshots = [s["id"] async for s in self.db.snapshots.find(
            {"workspace_id": workspace_id, "segment_id": segment_id}, {"id": 1})]
        for snapshot_id in snapshots:
            await self.delete_snapshot(workspace_id, snapshot_id)
        await self.db.segment_sizes.delete_many({"workspace_id": workspace_id, "segment_id": segment_id})
        return result.deleted_count == 1

    async def segments_page(self, workspace_id: str, after: tuple | None, limit: int) -> list[dict]:
        """Newest first; ``after`` is the (createdAt, id) of the last segment seen."""
        query: dict = {"workspace_id": workspace_id}
        if after is not None:
            created, sid = after
            query["$or"] = [{"createdAt": {"$lt": created}}, {"createdAt": created, "id": {"$lt": sid}}]
        cursor = self.db.segments.find(query, {"_id": 0}).sort([("createdAt", -1), ("id", -1)]).limit(limit)
        return [s async for s in cursor]

    # -- snapshots and sizes ----------------------------------------------

    async def insert_snapshot(self, doc: dict, member_ids: Sequence[str]) -> None:
        """Members first, then the snapshot document: a snapshot is listed only
        once all its members are stored."""
        ws, sid = doc["workspace_id"], doc["id"]
        chunks = [{"workspace_id": ws, "snapshot_id": sid, "chunk": n, "ids": list(member_ids[i:i + SNAPSHOT_CHUNK])}
                  for n, i in enumerate(range(0, len(member_ids), SNAPSHOT_CHUNK))]
        if chunks:
            await self.db.snapshot_members.insert_many(chunks)
        await self.db.snapshots.insert_one(dict(doc))

    async def snapshot(self, workspace_id: str, snapshot_id: str) -> dict | None:
        return await self.db.snapshots.find_one({"workspace_id": workspace_id, "id": snapshot_id}, {"_id": 0})

    async def snapshots_of(self, workspace_id: str, segment_id: str) -> list[dict]:
        """Newest first."""
        cursor = self.db.snapshots.find({"workspace_id": workspace_id, "segment_id": segment_id}, {"_id": 0})
        return [s async for s in cursor.sort([("takenAt", -1), ("id", -1)])]

    async def snapshot_member_ids(self, workspace_id: str, snapshot_id: str) -> list[str]:
        """Every member id, in contact id order."""
        cursor = self.db.snapshot_members.find({"workspace_id": workspace_id, "snapshot_id": snapshot_id},
                                               {"_id": 0, "ids": 1}).sort("chunk", 1)
        return [cid async for chunk in cursor for cid in chunk["ids"]]

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
        return [s async for s in self.db.segments.find(query, {"_id": 0})]

    # -- segment evaluation ----------------------------------------------

    async def aggregate_contacts(self, pipeline: list[dict]) -> list[dict]:
        cursor = await self.db.contacts.aggregate(pipeline, maxTimeMS=self.max_time_ms)
        return [doc async for doc in cursor]

    async def stream_contacts(self, pipeline: list[dict]) -> AsyncIterator[dict]:
        """The pipeline's documents one by one, for readers that may stop early."""
        cursor = await self.db.contacts.aggregate(pipeline, maxTimeMS=self.max_time_ms, batchSize=500)
        try:
            async for doc in cursor:
                yield doc
        finally:
            await cursor.close()
