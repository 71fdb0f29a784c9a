"""Ingestion: validating, coercing and storing contacts, campaigns and events,
and keeping the per-contact rollups in step.

The GraphQL mutations and ``segmentql import`` both call these functions, so a
value means the same whichever way it arrives. Items are dicts in the import
format (the ``ContactInput`` / ``CampaignInput`` / ``EventInput`` shapes); a
key that is absent leaves the stored value as it is, a ``None`` unsets it.
Every function returns an :class:`IngestResult`: one bad item is reported and
skipped, the rest of the batch is kept.
"""

import datetime as dt
import logging
import zoneinfo
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from . import fieldtypes
from .database import Database, now
from .rollups import compute_stats, day_number, empty_stats

log = logging.getLogger("segmentql")
EVENT_TYPES = ("SENT", "OPEN", "CLICK", "CONVERSION")
DEVICES = ("MOBILE", "DESKTOP", "TABLET")
ROLLUP_CHUNK = 500
# More ids than this in one call are likely a bulk load (an import, a sync from
# an ESP) with consecutive ids: read them as index ranges (Database._find_in).
BULK_READ = 100
MAX_ID_LENGTH = 256


@dataclass
class ItemError:
    index: int
    id: str | None
    message: str


@dataclass
class IngestResult:
    accepted: int = 0
    unchanged: int = 0
    errors: list[ItemError] = field(default_factory=list)

    def add(self, other: "IngestResult", offset: int = 0) -> None:
        self.accepted += other.accepted
        self.unchanged += other.unchanged
        self.errors.extend(ItemError(e.index + offset, e.id, e.message) for e in other.errors)


class ItemInvalid(ValueError):
    """One item of a batch is unusable; the message says why."""


@cache
def country_codes() -> frozenset[str]:
    text = resources.files("tzdata").joinpath("zoneinfo", "iso3166.tab").read_text()
    return frozenset(line.split("\t")[0] for line in text.splitlines() if line and not line.startswith("#"))


@cache
def timezone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _identifier(item: dict, key: str, what: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ItemInvalid(f"{what} {key} must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise ItemInvalid(f"{what} {key} is longer than {MAX_ID_LENGTH} characters")
    return value


def _item_id(item) -> str | None:
    value = item.get("id") if isinstance(item, dict) else None
    return value if isinstance(value, str) else None


# -- custom fields ----------------------------------------------------------

class FieldDefinitionError(ValueError):
    pass


async def define_custom_field(db: Database, workspace_id: str, key: str, field_type: str,
                              indexed: bool = False) -> bool:
    """Declare a custom field; True when it is new, False when it already exists
    with that type. Changing the type of a declared field is refused: stored
    values were coerced to the old type.

    ``indexed`` asks for an index on the field (declaring it again with
    ``indexed`` adds one later). Indexes are opt-in because every index costs
    on every contact write, rollup updates included, whether or not the
    field changed: index the fields segments filter on, not all of them."""
    if not fieldtypes.FIELD_KEY.match(key or ""):
        raise FieldDefinitionError(f"custom field key {key!r} must match ^[a-z][a-z0-9_]{{0,63}}$")
    if field_type not in fieldtypes.FIELD_TYPES:
        raise FieldDefinitionError(f"custom field type {field_type!r} is not one of {', '.join(fieldtypes.FIELD_TYPES)}")
    created = await db.insert_custom_field(workspace_id, key, field_type, indexed)
    if not created:
        existing = (await db.custom_fields(workspace_id))[key]
        if existing != field_type:
            raise FieldDefinitionError(
                f"custom field {key!r} is already declared as {existing}; it cannot become {field_type}")
    if indexed:
        await db.mark_custom_field_indexed(workspace_id, key)
        await db.ensure_custom_field_indexes(key, field_type)
    return created


# -- contacts ---------------------------------------------------------------

def _contact_changes(item: dict, current: dict, fields: dict[str, str]) -> dict:
    """The stored fields after applying ``item`` to ``current`` (raises ItemInvalid)."""
    new = dict(current)
    email = item.get("email")
    if not isinstance(email, str) or "@" not in email or len(email) > 320 or any(ch.isspace() for ch in email):
        raise ItemInvalid(f"email {email!r} is not an email address")
    new["email"] = email
    if "country" in item:
        country = item["country"]
        if country is not None:
            if not isinstance(country, str) or country.upper() not in country_codes():
                raise ItemInvalid(f"country {country!r} is not an ISO 3166-1 alpha-2 code")
            country = country.upper()
        new["country"] = country
    if "timezone" in item:
        tz = item["timezone"]
        if tz is not None and (not isinstance(tz, str) or tz not in timezone_names()):
            raise ItemInvalid(f"timezone {tz!r} is not an IANA time zone name")
        new["timezone"] = tz
    if "tags" in item:
        tags = item["tags"]
        if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
            raise ItemInvalid("tags must be a list of strings")
        new["tags"] = list(dict.fromkeys(tags or []))
    if "leadScore" in item:
        score = item["leadScore"]
        if score is not None and (isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 100):
            raise ItemInvalid(f"leadScore {score!r} must be a whole number from 0 to 100, or null")
        new["leadScore"] = score
    if "customFields" in item:
        given = item["customFields"]
        if given is None:
            custom = {}
        elif not isinstance(given, dict):
            raise ItemInvalid("customFields must be an object of field key to value")
        else:
            custom = dict(current.get("custom") or {})
            for key, value in given.items():
                if key not in fields:
                    raise ItemInvalid(f"custom field {key!r} is not declared in this workspace")
                if value is None:
                    custom.pop(key, None)
                    continue
                try:
                    custom[key] = fieldtypes.coerce(fields[key], value)
                except ValueError as exc:
                    raise ItemInvalid(f"custom field {key!r}: {exc}") from None
        new["custom"] = custom
        new["dateParts"] = {k: fieldtypes.date_parts(v) for k, v in custom.items() if fields[k] == "DATE"}
    for key, default in (("country", None), ("timezone", None), ("tags", []), ("leadScore", None),
                         ("custom", {}), ("dateParts", {})):
        new.setdefault(key, default)
    return new


CONTACT_FIELDS = ("email", "country", "timezone", "tags", "leadScore", "custom", "dateParts")


async def upsert_contacts(db: Database, workspace_id: str, items: list,
                          held: dict[str, dict] | None = None) -> IngestResult:
    """Validate and store contacts. A new contact is created with rollups from
    the events already stored for it (there are none, unless an import that was
    killed stored them first: see ``held``).

    With ``held`` (bulk import), new contacts are not written but kept there,
    id -> fields, for :func:`create_contacts` to write once, with their
    rollups, after their events are stored: one write per contact instead of an
    insert and a rollup update."""
    result = IngestResult()
    fields = await db.custom_fields(workspace_id)
    ids = {i for i in (_item_id(item) for item in items) if i}
    stored = await db.contacts_by_id(workspace_id, ids, {**dict.fromkeys(CONTACT_FIELDS, 1), "stats.events": 1},
                                     dense=len(ids) > BULK_READ)
    state = {cid: {k: doc.get(k) for k in CONTACT_FIELDS} for cid, doc in stored.items()}
    state.update({cid: held[cid] for cid in ids if held and cid in held})
    changed: dict[str, dict] = {}
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise ItemInvalid("a contact must be an object")
            cid = _identifier(item, "id", "contact")
            current = state.get(cid, {})
            new = _contact_changes(item, current, fields)
        except ItemInvalid as exc:
            result.errors.append(ItemError(index, _item_id(item), f"contact {_item_id(item)!r}: {exc}"))
            continue
        if new == current:
            result.unchanged += 1
            continue
        result.accepted += 1
        state[cid] = new
        changed[cid] = new
    created = {cid: doc for cid, doc in changed.items() if cid not in stored}
    stamp = now()
    await db.write_contacts(workspace_id, [(cid, {**doc, "updatedAt": stamp}, {"createdAt": stamp, "stats": empty_stats()})
                                           for cid, doc in changed.items() if cid in stored])
    if held is None:
        await create_contacts(db, workspace_id, created)
    else:
        held.update(created)
    moved = [cid for cid, doc in changed.items()
             if cid in stored and stored[cid].get("timezone") != doc["timezone"]
             and (stored[cid].get("stats") or {}).get("events")]
    await refresh_rollups(db, workspace_id, moved)
    return result


async def create_contacts(db: Database, workspace_id: str, contacts: dict[str, dict],
                          on_progress: Callable[[int, int], None] | None = None) -> None:
    """Insert new contacts (id -> fields) with rollups computed from the events
    stored for them, in id order and chunks. One that another writer created
    meanwhile is updated instead, and its rollups refreshed."""
    ids = sorted(contacts)
    for start in range(0, len(ids), ROLLUP_CHUNK):
        chunk = ids[start:start + ROLLUP_CHUNK]
        stats = await _rollups(db, workspace_id, {cid: contacts[cid].get("timezone") for cid in chunk},
                               dense=len(chunk) > BULK_READ)
        stamp = now()
        taken = await db.write_contacts(workspace_id, [
            (cid, {**contacts[cid], "updatedAt": stamp}, {"createdAt": stamp, "stats": stats[cid]}) for cid in chunk],
            new_ids=set(chunk))
        await refresh_rollups(db, workspace_id, sorted(taken))
        if on_progress is not None:
            on_progress(start + len(chunk), len(ids))


async def delete_contacts(db: Database, workspace_id: str, ids: list[str]) -> IngestResult:
    unique = list(dict.fromkeys(ids))
    deleted = await db.delete_contacts(workspace_id, unique)
    return IngestResult(accepted=deleted, unchanged=len(unique) - deleted)


# -- campaigns --------------------------------------------------------------

def _timestamp(item: dict, key: str, what: str) -> dt.datetime:
    value = item.get(key)
    if value is None:
        raise ItemInvalid(f"{what} {key} is required")
    try:
        return fieldtypes.parse_datetime(value)
    except ValueError as exc:
        raise ItemInvalid(f"{key}: {exc}") from None


async def upsert_campaigns(db: Database, workspace_id: str, items: list) -> IngestResult:
    result = IngestResult()
    by_id = await db.campaigns_by(workspace_id, "id", {i for i in map(_item_id, items) if i})
    names = {item.get("name") for item in items if isinstance(item, dict) and isinstance(item.get("name"), str)}
    owner_of_name = {name: c["id"] for name, c in (await db.campaigns_by(workspace_id, "name", names)).items()}
    to_write: dict[str, dict] = {}
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise ItemInvalid("a campaign must be an object")
            cid = _identifier(item, "id", "campaign")
            name = _identifier(item, "name", "campaign")
            sent_at = _timestamp(item, "sentAt", "campaign")
            owner = owner_of_name.get(name)
            if owner is not None and owner != cid:
                raise ItemInvalid(f"name {name!r} is already used by campaign {owner!r}")
        except ItemInvalid as exc:
            result.errors.append(ItemError(index, _item_id(item), f"campaign {_item_id(item)!r}: {exc}"))
            continue
        current = to_write.get(cid) or by_id.get(cid)
        if current and current["name"] == name and current["sentAt"] == sent_at:
            result.unchanged += 1
            continue
        if current:
            owner_of_name.pop(current["name"], None)
        owner_of_name[name] = cid
        result.accepted += 1
        to_write[cid] = {"id": cid, "name": name, "sentAt": sent_at, "updatedAt": now()}
    # Renames free their old name before it is reused: write in the order given.
    await db.write_campaigns(workspace_id, list(to_write.values()))
    for cid in to_write:
        if cid in by_id:  # name or sentAt changed: recipients' summaries hold both
            await refresh_rollups(db, workspace_id, await db.contact_ids_with_campaign(workspace_id, cid))
    return result


# -- events -----------------------------------------------------------------

def _event_doc(workspace_id: str, item: dict) -> dict:
    eid = _identifier(item, "id", "event")
    contact_id = _identifier(item, "contactId", "event")
    kind = item.get("type")
    if kind not in EVENT_TYPES:
        raise ItemInvalid(f"type {kind!r} is not one of {', '.join(EVENT_TYPES)}")
    doc = {"workspace_id": workspace_id, "id": eid, "contact_id": contact_id, "type": kind,
           "at": _timestamp(item, "at", "event")}
    campaign_id = item.get("campaignId")
    if campaign_id is not None:
        doc["campaign_id"] = _identifier(item, "campaignId", "event")
    device = item.get("device")
    if device is not None:
        if device not in DEVICES:
            raise ItemInvalid(f"device {device!r} is not one of {', '.join(DEVICES)}")
        doc["device"] = device
    url = item.get("url")
    if url is not None:
        if not isinstance(url, str) or len(url) > 4096:
            raise ItemInvalid("url must be a string of at most 4096 characters")
        doc["url"] = url
    return doc


async def record_events(db: Database, workspace_id: str, items: list) -> IngestResult:
    result, contact_ids = await store_events(db, workspace_id, items)
    # Replayed events still refresh their contacts: a batch that stored its
    # events but died before its rollups were written is completed by a retry.
    await refresh_rollups(db, workspace_id, contact_ids)
    return result


async def store_events(db: Database, workspace_id: str, items: list,
                       held: Collection[str] = ()) -> tuple[IngestResult, list[str]]:
    """Store raw events without touching rollups; returns the result and the
    contacts whose rollups are now due (those of every valid event, stored now
    or before). Bulk import refreshes them once at the end instead of per batch,
    and passes the ids of the contacts it holds back to create then (see
    :func:`upsert_contacts`): their events are accepted."""
    result = IngestResult()
    parsed: list[tuple[int, dict]] = []
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise ItemInvalid("an event must be an object")
            parsed.append((index, _event_doc(workspace_id, item)))
        except ItemInvalid as exc:
            result.errors.append(ItemError(index, _item_id(item), f"event {_item_id(item)!r}: {exc}"))
    stored = await db.contacts_by_id(workspace_id, {d["contact_id"] for _, d in parsed if d["contact_id"] not in held},
                                     {"id": 1})
    campaigns = await db.campaigns_by(workspace_id, "id", {d["campaign_id"] for _, d in parsed if "campaign_id" in d})
    valid: list[dict] = []
    seen: set[str] = set()
    for index, doc in parsed:
        if doc["contact_id"] not in stored and doc["contact_id"] not in held:
            problem = f"unknown contact {doc['contact_id']!r}"
        elif "campaign_id" in doc and doc["campaign_id"] not in campaigns:
            problem = f"unknown campaign {doc['campaign_id']!r}"
        else:
            if doc["id"] in seen:
                result.unchanged += 1
            else:
                seen.add(doc["id"])
                valid.append(doc)
            continue
        result.errors.append(ItemError(index, doc["id"], f"event {doc['id']!r}: {problem}"))
    if valid:
        await db.note_event_day(workspace_id, max(day_number(d["at"]) for d in valid))
    duplicates = await db.insert_events(valid)
    result.accepted += len(valid) - len(duplicates)
    result.unchanged += len(duplicates)
    return result, list(dict.fromkeys(d["contact_id"] for d in valid))


# -- rollups ----------------------------------------------------------------

async def _rollups(db: Database, workspace_id: str, timezones: dict[str, str | None], dense: bool) -> dict[str, dict]:
    """Rollups (``stats``) of these contacts (id -> timezone) from their stored events."""
    events = await db.events_of_contacts(workspace_id, list(timezones), dense=dense)
    campaign_ids = {e["campaign_id"] for evs in events.values() for e in evs if "campaign_id" in e}
    campaigns = await db.campaigns_by(workspace_id, "id", campaign_ids)
    stats = {cid: compute_stats(events[cid], tz, campaigns) for cid, tz in timezones.items()}
    engaged_days = [s["lastEngagedDay"] for s in stats.values() if s["lastEngagedDay"] is not None]
    if engaged_days:  # also records the marker for data stored before it existed
        await db.note_event_day(workspace_id, max(engaged_days))
    return stats


async def refresh_rollups(db: Database, workspace_id: str, contact_ids: list[str], bulk: bool = False,
                          on_progress: Callable[[int, int], None] | None = None) -> int:
    """Recompute ``stats`` of these contacts from their raw events; returns how
    many. ``bulk`` (import, rebuild): the ids are many and most of the
    workspace's, so they are read in id order by index ranges. ``on_progress``
    is called with (done, total) after each chunk."""
    if bulk:
        contact_ids = sorted(contact_ids)
    for start in range(0, len(contact_ids), ROLLUP_CHUNK):
        chunk = contact_ids[start:start + ROLLUP_CHUNK]
        contacts = await db.contacts_by_id(workspace_id, chunk, {"_id": 0, "id": 1, "timezone": 1}, dense=bulk)
        timezones = {cid: contact.get("timezone") for cid, contact in contacts.items()}
        stats = await _rollups(db, workspace_id, timezones, dense=bulk)
        await db.write_stats(workspace_id, [(cid, tz, stats[cid]) for cid, tz in timezones.items()])
        if on_progress is not None:
            on_progress(start + len(chunk), len(contact_ids))
    return len(contact_ids)


async def rebuild_all_rollups(db: Database, workspace_id: str) -> int:
    rebuilt = await refresh_rollups(db, workspace_id, await db.all_contact_ids(workspace_id), bulk=True)
    await db.note_rollup_layout(workspace_id)
    return rebuilt


async def upgrade_rollups(db: Database) -> list[tuple[str, int]]:
    """Rebuild the rollups of every workspace whose rollups have an older
    layout than this version computes (conditions would read fields they lack);
    returns (workspace name, contacts rebuilt). Run before serving."""
    upgraded = []
    for workspace in await db.workspaces_with_old_rollups():
        log.warning("rebuilding the rollups of workspace %r: they predate this version's layout", workspace["name"])
        upgraded.append((workspace["name"], await rebuild_all_rollups(db, workspace["_id"])))
    return upgraded
