"""Ingestion: validating, coercing and storing contacts, campaigns and events,
and keeping the per-contact rollups in step.

The GraphQL mutations and ``segmentql import`` both call these functions, so a
value means the same whichever way it arrives. Items are dicts in the import
format (the ``ContactInput`` / ``CampaignInput`` / ``EventInput`` shapes); a
key that is absent leaves the stored value as it is, a ``None`` unsets it.
Every function returns an :class:`IngestResult`: one bad item is reported and
skipped, the rest of the batch is kept. Strings must be valid Unicode (JSON
can spell lone surrogates, which no database can store) and instants must lie
in :mod:`.instants`' range, item by item.

Rollups are refreshed per contact: a contact whose stored data cannot be
rolled up (see :class:`.rollups.UnusableData`) is logged, reported on the
items that touched it, and skipped; the others are refreshed. A write that
died half-way is completed by its retry: upserts refresh what the stored
state needs (a rollup computed in another time zone than the contact's, or
recipients' summaries older than their campaign), not only what they change.
"""

import asyncio
import datetime as dt
import logging
import shlex
import zoneinfo
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import bson

from segmentql.plugins.contact import DEVICES, day_number
from segmentql.plugins.storage import RegisteredRollup

from . import fieldtypes, paths
from .database import ContactWrite, Database, now
from .errors import Conflict
from .rollups import (
    PluginValues,
    UnusableData,
    compute_plugin_rollups,
    compute_stats,
    empty_stats,
    plugin_document,
    public_events,
)

log = logging.getLogger("segmentql")
EVENT_TYPES = ("SENT", "OPEN", "CLICK", "CONVERSION")
ROLLUP_CHUNK = 500
MAX_ID_LENGTH = 256
# A contact's own fields (all but its rollups) may take this much BSON: with
# the rollups' bounds (server/rollups.py) a contact stays under 16 MB.
MAX_CONTACT_BYTES = 4 * 2**20
# contact id -> why its rollups cannot be computed
RollupFailures = dict[str, str]


@dataclass
class ItemError:
    index: int
    id: str | None
    message: str


@dataclass
class IngestResult:
    """How a batch went. ``touched``: the contacts whose stored fields or
    rollups it wrote, whose segment memberships may have changed."""

    accepted: int = 0
    unchanged: int = 0
    errors: list[ItemError] = field(default_factory=list)
    touched: list[str] = field(default_factory=list)

    def add(self, other: "IngestResult", offset: int = 0) -> None:
        self.accepted += other.accepted
        self.unchanged += other.unchanged
        self.errors.extend(ItemError(e.index + offset, e.id, e.message) for e in other.errors)

    def unrolled(self, outcomes: list["_Outcome"], failures: RollupFailures, message: Callable[[str, str], str]
                 ) -> None:
        """Report the items stored (or unchanged) whose contact's rollups could
        not be refreshed as errors: their effect is not complete.
        ``message(item id, reason)`` says so."""
        for outcome in outcomes:
            if outcome.contact_id in failures:
                if outcome.accepted:
                    self.accepted -= 1
                else:
                    self.unchanged -= 1
                self.errors.append(ItemError(outcome.index, outcome.item_id,
                                             message(outcome.item_id, failures[outcome.contact_id])))
        self.errors.sort(key=lambda e: e.index)


@dataclass(frozen=True)
class _Outcome:
    """An item that was stored (``accepted``) or found unchanged, and the
    contact whose rollups it needs."""
    index: int
    item_id: str
    contact_id: str
    accepted: bool


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


def is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: JSON's "\udcff" decodes to one
        return False
    return True


def _check_unicode(item: dict) -> None:
    """ItemInvalid naming the first string of ``item`` (keys included, at any
    depth) that is not valid Unicode: the database could not store it, and a
    reply echoing it could not be encoded."""
    pending: list[tuple[str, object]] = [("", item)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, str) and not is_unicode(value):
            raise ItemInvalid(f"{where or 'a value'} is not valid Unicode text (it holds a lone surrogate)")
        if isinstance(value, dict):
            for key, child in value.items():
                if isinstance(key, str) and not is_unicode(key):
                    raise ItemInvalid(f"a key of {where or 'the item'} is not valid Unicode text "
                                      "(it holds a lone surrogate)")
                pending.append((f"{where}.{key}" if where else str(key), child))
        elif isinstance(value, list):
            pending.extend((f"{where}[{i}]", child) for i, child in enumerate(value))


def _item_id(item) -> str | None:
    """The item's id for its error, when it has a usable one."""
    value = item.get("id") if isinstance(item, dict) else None
    return value if isinstance(value, str) and is_unicode(value) else None


def _checked_item(item, what: str) -> dict:
    if not isinstance(item, dict):
        raise ItemInvalid(f"a {what} must be an object")
    _check_unicode(item)
    return item


# -- custom fields ----------------------------------------------------------

async def define_custom_field(db: Database, workspace_id: str, key: str, field_type: str,
                              indexed: bool = False) -> bool:
    """Declare a custom field; True when it is new, False when it already exists
    with that type. Changing the type of a declared field is refused: stored
    values were coerced to the old type.

    ``indexed`` asks for an index on the field (declaring it again with
    ``indexed`` adds one later). Indexes are opt-in because every index costs
    on every contact write, rollup updates included, whether or not the
    field changed: index the fields segments filter on, not all of them."""
    if not isinstance(key, str) or not fieldtypes.FIELD_KEY.fullmatch(key):
        raise Conflict(f"custom field key {key!r} must match ^[a-z][a-z0-9_]{{0,63}}$")
    if field_type not in fieldtypes.FIELD_TYPES:
        raise Conflict(f"custom field type {field_type!r} is not one of {', '.join(fieldtypes.FIELD_TYPES)}")
    existing = (await db.custom_fields(workspace_id)).get(key)
    if existing not in (None, field_type):
        raise Conflict(
            f"custom field {key!r} is already declared as {existing}; it cannot become {field_type}")
    if indexed:  # refused before anything is written when the index budget is spent
        await db.ensure_custom_field_indexes(workspace_id, key, field_type, check_only=True)
    created = await db.insert_custom_field(workspace_id, key, field_type, indexed=False)
    if not created and (await db.custom_fields(workspace_id))[key] != field_type:  # declared meanwhile
        raise Conflict(f"custom field {key!r} is already declared with another type")
    if indexed:  # marked once the index exists: only then may rules lead with it
        await db.ensure_custom_field_indexes(workspace_id, key, field_type)
        await db.mark_custom_field_indexed(workspace_id, key)
    return created


# -- contacts ---------------------------------------------------------------

# A contact created by a change starts with these fields; a change then sets
# or unsets only the paths its input gives.
CONTACT_DEFAULTS: Mapping[str, object] = {"country": None, "timezone": None, "tags": [], "leadScore": None,
                                          "custom": {}, "dateParts": {}}
CONTACT_FIELDS = ("email", *CONTACT_DEFAULTS)
_UNKNOWN_ZONE = object()  # the zone of rollups that predate ``stats.timezone``


def _contact_change(item: dict, fields: Mapping[str, str]) -> paths.Change:
    """The paths ``item`` sets (or, for a custom value of null, unsets), checked
    and coerced (raises ItemInvalid). Only given keys appear: an absent key
    leaves the stored value as it is."""
    change: paths.Change = {}
    email = item.get("email")
    if not isinstance(email, str) or "@" not in email or len(email) > 320 or any(ch.isspace() for ch in email):
        raise ItemInvalid(f"email {email!r} is not an email address")
    change["email"] = email
    if "country" in item:
        country = item["country"]
        if country is not None:
            if not isinstance(country, str) or country.upper() not in country_codes():
                raise ItemInvalid(f"country {country!r} is not an ISO 3166-1 alpha-2 code")
            country = country.upper()
        change["country"] = country
    if "timezone" in item:
        tz = item["timezone"]
        if tz is not None and (not isinstance(tz, str) or tz not in timezone_names()):
            raise ItemInvalid(f"timezone {tz!r} is not an IANA time zone name")
        change["timezone"] = tz
    if "tags" in item:
        tags = item["tags"]
        if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
            raise ItemInvalid("tags must be a list of strings")
        change["tags"] = list(dict.fromkeys(tags or []))
    if "leadScore" in item:
        score = item["leadScore"]
        if score is not None and (isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 100):
            raise ItemInvalid(f"leadScore {score!r} must be a whole number from 0 to 100, or null")
        change["leadScore"] = score
    if "customFields" in item:
        change.update(_custom_change(item["customFields"], fields))
    return change


def _custom_change(given, fields: Mapping[str, str]) -> paths.Change:
    """``customFields: null`` clears every custom value; an object sets (or,
    with null, unsets) the keys it names: ``custom.<key>``, and for a DATE its
    ``dateParts.<key>`` (what anniversary rules read)."""
    if given is None:
        return {"custom": {}, "dateParts": {}}
    if not isinstance(given, dict):
        raise ItemInvalid("customFields must be an object of field key to value")
    change: paths.Change = {}
    for key, value in given.items():
        if key not in fields:
            raise ItemInvalid(f"custom field {key!r} is not declared in this workspace")
        if value is None:
            change[f"custom.{key}"] = paths.UNSET
            if fields[key] == "DATE":
                change[f"dateParts.{key}"] = paths.UNSET
            continue
        try:
            change[f"custom.{key}"] = stored = fieldtypes.coerce(fields[key], value)
        except ValueError as exc:
            raise ItemInvalid(f"custom field {key!r}: {exc}") from None
        if fields[key] == "DATE":
            change[f"dateParts.{key}"] = fieldtypes.date_parts(stored)
    return change


async def upsert_contacts(db: Database, workspace_id: str, items: list,
                          held: dict[str, paths.Change] | None = None) -> IngestResult:
    """Validate and store contacts. Each item writes only the paths it gives
    (see :mod:`.paths`); an item that would change nothing is ``unchanged``.
    A new contact is created with rollups from the events already stored for
    it (there are none, unless an import that was killed stored them first:
    see ``held``). A stored contact whose rollups were computed in another
    time zone than its own (its zone changed, and the refresh did not happen)
    gets them refreshed, whether or not this call changes it.

    With ``held`` (bulk import), new contacts are not written but their
    changes kept there, for :func:`create_contacts` to write once, with their
    rollups, after their events are stored: one write per contact instead of
    an insert and a rollup update."""
    result = IngestResult()
    fields = await db.custom_fields(workspace_id)
    ids = {i for i in (_item_id(item) for item in items) if i}
    stored = await db.contacts_by_id(workspace_id, ids, {**dict.fromkeys(CONTACT_FIELDS, 1), "stats.events": 1,
                                                         "stats.timezone": 1})
    # What each contact looks like so far in this batch (the stored document,
    # or a new one), to tell which items change anything.
    state = {cid: {k: doc.get(k) for k in CONTACT_FIELDS} for cid, doc in stored.items()}
    changes: dict[str, paths.Change] = {}
    if held:
        for cid in ids & held.keys():
            if cid in stored:
                # Created meanwhile by another writer: the held change joins this
                # batch's write to it, before this batch's (later) items for it.
                changes[cid] = held.pop(cid)
                state[cid] = paths.apply(state[cid], changes[cid])
            else:
                changes[cid] = held[cid]
                state[cid] = paths.apply(CONTACT_DEFAULTS, changes[cid])
    outcomes: list[_Outcome] = []
    for index, item in enumerate(items):
        try:
            cid = _identifier(_checked_item(item, "contact"), "id", "contact")
            change = _contact_change(item, fields)
            current = state.get(cid)
            new = paths.apply(current if current is not None else CONTACT_DEFAULTS, change)
            if new != current and len(bson.encode(new)) > MAX_CONTACT_BYTES:
                raise ItemInvalid(f"its fields would take more than {MAX_CONTACT_BYTES // 2**20} MiB")
        except ItemInvalid as exc:
            result.errors.append(ItemError(index, _item_id(item), f"contact {_item_id(item)!r}: {exc}"))
            continue
        outcomes.append(_Outcome(index, cid, cid, accepted=new != current))
        if new == current:
            result.unchanged += 1
            continue
        result.accepted += 1
        state[cid] = new
        changes[cid] = paths.merge(changes.get(cid, {}), change)
    stamp = now()
    await db.write_contacts(workspace_id, [
        ContactWrite(cid, {**change, "updatedAt": stamp})
        for cid, change in changes.items() if cid in stored])
    created = {cid: change for cid, change in changes.items() if cid not in stored}
    failures: RollupFailures = {}
    if held is None:
        failures.update(await create_contacts(db, workspace_id, created))
    else:
        held.update(created)
    # Computed in another zone than the contact's: changed now, or by a
    # request that died before its refresh.
    moved = [cid for cid, doc in stored.items() if (doc.get("stats") or {}).get("events")
             and state[cid]["timezone"] != doc["stats"].get("timezone", _UNKNOWN_ZONE)]
    failures.update(await refresh_rollups(db, workspace_id, moved))
    result.touched = [cid for cid in dict.fromkeys([*changes, *moved]) if held is None or cid not in held]
    result.unrolled(outcomes, failures, lambda cid, reason: (
        f"contact {cid!r}: stored, but its engagement rollups cannot be computed: {reason}"))
    return result


async def create_contacts(db: Database, workspace_id: str, contacts: dict[str, paths.Change],
                          on_progress: Callable[[int, int], None] | None = None) -> RollupFailures:
    """Insert new contacts (id -> change) with rollups computed from the events
    stored for them, in id order and chunks. One that another writer created
    meanwhile gets the change alone (its own fields kept), and its rollups
    refreshed. A contact whose stored events cannot be rolled up is created
    with empty rollups; returns those."""
    failures: RollupFailures = {}
    ids = sorted(contacts)
    for start in range(0, len(ids), ROLLUP_CHUNK):
        chunk = ids[start:start + ROLLUP_CHUNK]
        timezones = {cid: paths.apply(CONTACT_DEFAULTS, contacts[cid])["timezone"] for cid in chunk}
        stats, values, failed = await _rollups(db, workspace_id, timezones)
        failures.update(failed)
        stamp = now()
        taken = await db.write_contacts(workspace_id, [
            ContactWrite(cid, {**contacts[cid], "updatedAt": stamp},
                         {**CONTACT_DEFAULTS, "createdAt": stamp, "stats": stats.get(cid) or empty_stats(),
                          **({"plugins": plugin_document(values[cid])} if values.get(cid) else {})})
            for cid in chunk], new_ids=set(chunk))
        failures.update(await refresh_rollups(db, workspace_id, sorted(taken)))
        if on_progress is not None:
            on_progress(start + len(chunk), len(ids))
    return failures


async def delete_contacts(db: Database, workspace_id: str, ids: list[str]) -> IngestResult:
    result = IngestResult()
    unique: dict[str, None] = {}
    for index, cid in enumerate(ids):
        if is_unicode(cid):
            unique.setdefault(cid)
        else:  # no contact can have it: it could not have been stored
            result.errors.append(ItemError(index, None, "id is not valid Unicode text (it holds a lone surrogate)"))
    deleted = await db.delete_contacts(workspace_id, list(unique))
    result.accepted, result.unchanged = deleted, len(unique) - deleted
    result.touched = list(unique)
    return result


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
    """Validate and store campaigns. Recipients' rollups hold each campaign's
    name and sentAt; the campaign document records which ones they hold
    (``inRollups``), so a change whose refresh did not happen (the request
    died) is completed by any later upsert of the campaign, changed or not."""
    result = IngestResult()
    by_id = await db.campaigns_by(workspace_id, "id", {i for i in map(_item_id, items) if i})
    names = {item["name"] for item in items if isinstance(item, dict) and isinstance(item.get("name"), str)
             and is_unicode(item["name"])}
    owner_of_name = {name: c["id"] for name, c in (await db.campaigns_by(workspace_id, "name", names)).items()}
    to_write: dict[str, dict] = {}
    final: dict[str, dict] = {}  # campaign id -> the {name, sentAt} it has after this call
    for index, item in enumerate(items):
        try:
            cid = _identifier(_checked_item(item, "campaign"), "id", "campaign")
            name = _identifier(item, "name", "campaign")
            sent_at = _timestamp(item, "sentAt", "campaign")
            owner = owner_of_name.get(name)
            if owner is not None and owner != cid:
                raise ItemInvalid(f"name {name!r} is already used by campaign {owner!r}")
        except ItemInvalid as exc:
            result.errors.append(ItemError(index, _item_id(item), f"campaign {_item_id(item)!r}: {exc}"))
            continue
        final[cid] = {"name": name, "sentAt": sent_at}
        current = to_write.get(cid) or by_id.get(cid)
        if current and current["name"] == name and current["sentAt"] == sent_at:
            result.unchanged += 1
            continue
        if current:
            owner_of_name.pop(current["name"], None)
        owner_of_name[name] = cid
        result.accepted += 1
        to_write[cid] = {"id": cid, "name": name, "sentAt": sent_at, "updatedAt": now()}
        if cid not in by_id:  # no contact can have events of it yet
            to_write[cid]["inRollups"] = final[cid]
    # Renames free their old name before it is reused: write in the order given.
    await db.write_campaigns(workspace_id, list(to_write.values()))
    for cid, values in final.items():
        if cid in by_id and by_id[cid].get("inRollups") != values:
            recipients = await db.contact_ids_with_campaign(workspace_id, cid)
            await refresh_rollups(db, workspace_id, recipients)
            await db.note_campaign_in_rollups(workspace_id, cid, values)
            result.touched.extend(recipients)
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
    result, stored = await _store_events(db, workspace_id, items)
    # Replayed events still refresh their contacts: a batch that stored its
    # events but died before its rollups were written is completed by a retry.
    result.touched = list(dict.fromkeys(o.contact_id for o in stored))
    failures = await refresh_rollups(db, workspace_id, result.touched)
    result.unrolled(stored, failures, lambda eid, reason: (
        f"event {eid!r}: stored, but its contact's engagement rollups cannot be computed: {reason}"))
    return result


async def store_events(db: Database, workspace_id: str, items: list,
                       held: Collection[str] = ()) -> tuple[IngestResult, list[str]]:
    """Store raw events without touching rollups; returns the result and the
    contacts whose rollups are now due (those of every valid event, stored now
    or before). Bulk import refreshes them once at the end instead of per batch,
    and passes the ids of the contacts it holds back to create then (see
    :func:`upsert_contacts`): their events are accepted."""
    result, stored = await _store_events(db, workspace_id, items, held)
    return result, list(dict.fromkeys(o.contact_id for o in stored))


async def _store_events(db: Database, workspace_id: str, items: list,
                        held: Collection[str] = ()) -> tuple[IngestResult, list[_Outcome]]:
    """:func:`store_events`, with the outcome of every valid event."""
    result = IngestResult()
    parsed: list[tuple[int, dict]] = []
    for index, item in enumerate(items):
        try:
            parsed.append((index, _event_doc(workspace_id, _checked_item(item, "event"))))
        except ItemInvalid as exc:
            result.errors.append(ItemError(index, _item_id(item), f"event {_item_id(item)!r}: {exc}"))
    stored = await db.contacts_by_id(workspace_id, {d["contact_id"] for _, d in parsed if d["contact_id"] not in held},
                                     {"id": 1})
    campaigns = await db.campaigns_by(workspace_id, "id", {d["campaign_id"] for _, d in parsed if "campaign_id" in d})
    valid: list[tuple[int, dict]] = []
    repeated: list[tuple[int, dict]] = []  # an id given again in this batch
    seen: set[str] = set()
    for index, doc in parsed:
        if doc["contact_id"] not in stored and doc["contact_id"] not in held:
            problem = f"unknown contact {doc['contact_id']!r}"
        elif "campaign_id" in doc and doc["campaign_id"] not in campaigns:
            problem = f"unknown campaign {doc['campaign_id']!r}"
        else:
            (repeated if doc["id"] in seen else valid).append((index, doc))
            seen.add(doc["id"])
            continue
        result.errors.append(ItemError(index, doc["id"], f"event {doc['id']!r}: {problem}"))
    if valid:
        await db.note_event_day(workspace_id, max(day_number(d["at"]) for _, d in valid))
    duplicates = await db.insert_events([d for _, d in valid])
    result.accepted += len(valid) - len(duplicates)
    result.unchanged += len(duplicates) + len(repeated)
    outcomes = [_Outcome(index, d["id"], d["contact_id"], accepted=position not in duplicates)
                for position, (index, d) in enumerate(valid)]
    outcomes += [_Outcome(index, d["id"], d["contact_id"], accepted=False) for index, d in repeated]
    return result, outcomes


# -- rollups ----------------------------------------------------------------

def _compute_all(workspace_id: str, events: Mapping[str, list[dict]], timezones: Mapping[str, str | None],
                 campaigns: Mapping[str, Mapping], plugin_rollups: Sequence[RegisteredRollup]
                 ) -> tuple[dict[str, dict], dict[str, PluginValues], RollupFailures]:
    """Rollups of each contact (``stats``, and the values of plugins'
    rollups), or why its stored data cannot be rolled up: one poisoned
    document must not stop the refresh of the others, nor one plugin's bug
    the refresh of anything but its own value (logged, naming the plugin)."""
    stats: dict[str, dict] = {}
    values: dict[str, PluginValues] = {}
    failures: RollupFailures = {}
    plugin_failures: dict[RegisteredRollup, dict[str, str]] = {}
    for cid, tz in timezones.items():
        try:
            stats[cid] = compute_stats(events[cid], tz, campaigns)
        except UnusableData as exc:
            failures[cid] = str(exc)
            continue
        except Exception as exc:  # noqa: BLE001 - a stored document can hold anything; report it, go on
            failures[cid] = f"{type(exc).__name__}: {exc}"
            continue
        if plugin_rollups:
            values[cid], failed = compute_plugin_rollups(public_events(events[cid]), plugin_rollups)
            for registered, reason in failed.items():
                plugin_failures.setdefault(registered, {})[cid] = reason
    for cid, reason in failures.items():
        log.error("workspace %s: the rollups of contact %r cannot be computed, left as they were: %s",
                  workspace_id, cid, reason)
    for broken, contacts in plugin_failures.items():  # one line per rollup and batch, not per contact
        first, why = next(iter(contacts.items()))
        log.error("workspace %s: rollup %r of plugin %r failed for %d contact(s), their values left as they were "
                  "(contact %r: %s)", workspace_id, broken.rollup.name, broken.plugin, len(contacts), first, why)
    return stats, values, failures


async def _rollups(db: Database, workspace_id: str, timezones: dict[str, str | None]
                   ) -> tuple[dict[str, dict], dict[str, PluginValues], RollupFailures]:
    """Rollups (``stats``, and plugins' values) of these contacts (id ->
    timezone) from their stored events, and the contacts whose rollups cannot
    be computed (logged)."""
    events = await db.events_of_contacts(workspace_id, list(timezones))
    campaign_ids = {e["campaign_id"] for evs in events.values() for e in evs if isinstance(e.get("campaign_id"), str)}
    campaigns = await db.campaigns_by(workspace_id, "id", campaign_ids)
    # Hundreds of contacts with their events are tens of milliseconds of pure
    # Python: a worker thread keeps the event loop answering other requests.
    stats, values, failures = await asyncio.to_thread(_compute_all, workspace_id, events, timezones, campaigns,
                                                      db.storage.rollups)
    engaged_days = [s["lastEngagedDay"] for s in stats.values() if s["lastEngagedDay"] is not None]
    if engaged_days:  # also records the marker for data stored before it existed
        await db.note_event_day(workspace_id, max(engaged_days))
    return stats, values, failures


async def refresh_rollups(db: Database, workspace_id: str, contact_ids: list[str], bulk: bool = False,
                          on_progress: Callable[[int, int], None] | None = None) -> RollupFailures:
    """Recompute ``stats`` of these contacts from their raw events; returns
    those whose rollups cannot be computed (logged, and left as they were).
    ``bulk`` (import, rebuild): the ids are many and most of the workspace's,
    so they are taken in id order (neighbours share index pages).
    ``on_progress`` is called with (done, total) after each chunk."""
    if bulk:
        contact_ids = sorted(contact_ids)
    failures: RollupFailures = {}
    for start in range(0, len(contact_ids), ROLLUP_CHUNK):
        chunk = contact_ids[start:start + ROLLUP_CHUNK]
        contacts = await db.contacts_by_id(workspace_id, chunk, {"_id": 0, "id": 1, "timezone": 1})
        timezones = {cid: contact.get("timezone") for cid, contact in contacts.items()}
        stats, values, failed = await _rollups(db, workspace_id, timezones)
        failures.update(failed)
        await db.write_stats(workspace_id, [(cid, timezones[cid], s, values.get(cid, {})) for cid, s in stats.items()])
        if on_progress is not None:
            on_progress(start + len(chunk), len(contact_ids))
    return failures


async def rebuild_all_rollups(db: Database, workspace_id: str) -> int:
    """Recompute every contact's rollups; returns how many were rebuilt (those
    that cannot be are logged and skipped). Every campaign's recipients then
    hold its current name and sentAt, which is noted first: a campaign
    changed during the rebuild is left for its own upsert to complete."""
    await db.note_campaigns_in_rollups(workspace_id)
    contact_ids = await db.all_contact_ids(workspace_id)
    failures = await refresh_rollups(db, workspace_id, contact_ids, bulk=True)
    await db.note_rollup_layout(workspace_id)
    return len(contact_ids) - len(failures)


async def upgrade_rollups(db: Database) -> list[tuple[str, int]]:
    """Rebuild the rollups of every workspace whose rollups have an older
    layout than this version computes (conditions would read fields they
    lack); returns (workspace name, contacts rebuilt). Run before serving. A
    contact whose data cannot be rolled up is logged and skipped (it keeps its
    old rollups): it does not stop the start-up.

    A plugin installed since a workspace's last rebuild is not a reason to
    rebuild it here: that would hold up start-up (every process's) for as
    long as every contact takes, for values the plugin fills as events
    arrive anyway. Such workspaces are named in a warning instead, with the
    command that computes the plugin's values for all their contacts."""
    for name, lacking in await db.workspaces_lacking_plugin_rollups():
        log.warning("workspace %r has no values of the plugin rollup(s) %s for contacts whose events predate them; "
                    "run: segmentql rebuild-rollups --workspace %s", name, ", ".join(lacking), shlex.quote(name))
    upgraded = []
    for workspace in await db.workspaces_with_old_rollups():
        log.warning("rebuilding the rollups of workspace %r: they predate this version's layout", workspace["name"])
        upgraded.append((workspace["name"], await rebuild_all_rollups(db, workspace["_id"])))
    return upgraded
