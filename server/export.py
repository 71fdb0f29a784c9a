"""Exporting members: every member of a saved segment or of a snapshot, as
NDJSON or CSV, streamed.

``GET /v1/segments/{id}/members.<format>`` (and ``/v1/snapshots/...``) and
``segmentql export`` share this module: they pick the members
(:func:`of_segment`, :func:`of_snapshot`), the fields (:func:`parse_fields`)
and the format (:data:`FORMATS`), then write the text :func:`chunks` yields.

No export is ever held whole, whatever the segment's size: member ids are
read MEMBER_BATCH at a time, in id order, their contacts by key a batch at a
time with only the asked fields, and the text leaves in pieces of about
CHUNK_CHARS. An HTTP response waits for its client to read each piece, so a
slow reader holds up only its own export.

Where the ids come from:

- a saved segment: its stored members (``server/live.py`` keeps them
  current). A segment never evaluated in full (saved by an earlier version)
  has none stored: its rule is evaluated as of now instead. Either way the
  ids are read a batch per round trip as the export goes, so an export that
  runs while writes change the segment shows each batch as it was when read.
- a snapshot: its stored ids. Members deleted since the snapshot was taken
  have no contact left to export and are skipped, so an export may hold
  fewer rows than the snapshot's ``size``.
"""

import csv
import datetime as dt
import io
import json
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import TextIO

from segmentql.plugins.registry import ConditionRegistry

from . import instants, membership, segments, snapshots
from .compiler import CompiledRule, compile_rule_for
from .database import MEMBER_BATCH, Database, Workspace
from .errors import BadArgument

# The contact fields an export may name, as ``fields`` spells them (each is
# also the stored path); custom fields are ``custom.<key>``.
CONTACT_FIELDS = ("id", "email", "country", "timezone", "tags", "leadScore", "createdAt", "updatedAt")
DEFAULT_CONTACT_FIELDS = CONTACT_FIELDS[:6]  # then every declared custom field
CUSTOM = "custom."
# CSV cells hold one value: a list's items (tags, a MULTI_SELECT) are joined
# with this. NDJSON keeps lists as lists.
LIST_SEPARATOR = "|"
# Text handed to the writer at a time: large enough that a piece is one
# write, not one per row; small enough that the first arrives at once.
CHUNK_CHARS = 64 * 1024


@dataclass(frozen=True)
class Members:
    """The members one export reads: ``name`` names the source in file names
    (``segment-<id>``), ``total`` is how many it holds (None: not known before
    they are read), ``id_batches`` their ids in id order, a batch at a time."""

    name: str
    total: int | None
    id_batches: AsyncGenerator[list[str], None]


async def of_segment(db: Database, registry: ConditionRegistry, workspace: Workspace, segment_id: str) -> Members:
    """A saved segment's members (NotFound for an id not in the workspace)."""
    segment = await segments.get_segment(db, workspace.id, segment_id)
    size = membership.stored_size(segment)
    if size is not None:
        return Members(f"segment-{segment_id}", size, db.member_id_batches(workspace.id, segment_id))
    compiled = compile_rule_for(registry, workspace, segment["rule"], None)
    return Members(f"segment-{segment_id}", None, _batched(_rule_member_ids(db, compiled)))


async def of_snapshot(db: Database, workspace_id: str, snapshot_id: str) -> Members:
    """A snapshot's members (NotFound for an id not in the workspace)."""
    snapshot = await snapshots.get_snapshot(db, workspace_id, snapshot_id)
    return Members(f"snapshot-{snapshot_id}", snapshot["size"], _batched(_snapshot_ids(db, workspace_id, snapshot_id)))


# Each reader closes what it reads, down to the database cursor, when the
# export ends early (a client gone, a failure).

async def _rule_member_ids(db: Database, compiled: CompiledRule) -> AsyncGenerator[str, None]:
    async with aclosing(segments.stream(db, compiled, compiled.ids_pipeline())) as members:
        async for member in members:
            yield member["id"]


async def _snapshot_ids(db: Database, workspace_id: str, snapshot_id: str) -> AsyncGenerator[str, None]:
    async with aclosing(db.snapshot_chunks(workspace_id, snapshot_id)) as chunks:
        async for ids in chunks:
            for contact_id in ids:
                yield contact_id


async def _batched(ids: AsyncGenerator[str, None]) -> AsyncGenerator[list[str], None]:
    """``ids`` in lists of MEMBER_BATCH (the last may be shorter)."""
    batch: list[str] = []
    async with aclosing(ids):
        async for contact_id in ids:
            batch.append(contact_id)
            if len(batch) == MEMBER_BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


# -- fields ---------------------------------------------------------------------

def _custom_fields(workspace: Workspace) -> list[str]:
    return [CUSTOM + key for key in sorted(workspace.custom_fields)]


def parse_fields(text: str | None, workspace: Workspace) -> tuple[str, ...]:
    """The fields ``text`` names (comma-separated, in the order given), or the
    default ones when it is None; BadArgument naming the first field that is
    not allowed (and listing those that are)."""
    if text is None:
        return (*DEFAULT_CONTACT_FIELDS, *_custom_fields(workspace))
    allowed = [*CONTACT_FIELDS, *_custom_fields(workspace)]
    names = [name.strip() for name in text.split(",")]
    listed = ", ".join(allowed)
    for position, name in enumerate(names):
        if not name:
            raise BadArgument(f"`fields` has an empty field name; name fields separated by commas, from: {listed}")
        if names.index(name) != position:
            raise BadArgument(f"`fields` names {_shown(name)} twice")
        if name not in allowed:
            if name.startswith(CUSTOM):
                raise BadArgument(f"`fields`: custom field {_shown(name[len(CUSTOM):])} is not declared in this "
                                  f"workspace; allowed: {listed}")
            raise BadArgument(f"`fields`: unknown field {_shown(name)}; allowed: {listed}")
    return tuple(names)


def _shown(name: str) -> str:
    return repr(name if len(name) <= 60 else name[:57] + "...")


# -- formats ----------------------------------------------------------------------

RowWriter = Callable[[Mapping], None]


@dataclass(frozen=True)
class Format:
    """An export format: its media type, and ``start(out, fields)``, which
    writes its header (if any) to ``out`` and returns the function writing one
    contact's row."""

    media_type: str
    start: Callable[[TextIO, Sequence[str]], RowWriter]


def _value(contact: Mapping, field: str):
    if field.startswith(CUSTOM):
        return (contact.get("custom") or {}).get(field[len(CUSTOM):])
    if field == "tags":
        return contact.get("tags") or []  # as GraphQL's Contact.tags: a contact without tags has none
    return contact.get(field)


def _json_default(value) -> str:
    """What JSON has no type for: instants as ISO 8601 UTC (``Z``); anything
    else a stored document may hold (written by hand) as its text."""
    return instants.rfc3339(value) if isinstance(value, dt.datetime) else str(value)


def _ndjson(out: TextIO, fields: Sequence[str]) -> RowWriter:
    contact_fields = [f for f in fields if not f.startswith(CUSTOM)]
    custom_fields = [f for f in fields if f.startswith(CUSTOM)]

    def row(contact: Mapping) -> None:
        record = {f: _value(contact, f) for f in contact_fields}
        if custom_fields:
            record["custom"] = {f[len(CUSTOM):]: _value(contact, f) for f in custom_fields}
        out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=_json_default))
        out.write("\n")
    return row


def _cell(value) -> str:
    """One CSV cell: empty for null, lists joined with LIST_SEPARATOR,
    booleans as in JSON, instants as ISO 8601 UTC."""
    if value is None:
        return ""
    if isinstance(value, list):
        return LIST_SEPARATOR.join(_cell(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return instants.rfc3339(value)
    return str(value)


def _csv(out: TextIO, fields: Sequence[str]) -> RowWriter:
    writer = csv.writer(out)  # RFC 4180: quoted as needed, CRLF line ends
    writer.writerow(fields)
    return lambda contact: writer.writerow([_cell(_value(contact, f)) for f in fields])


FORMATS: dict[str, Format] = {
    "ndjson": Format("application/x-ndjson", _ndjson),
    "csv": Format("text/csv; charset=utf-8", _csv),
}


# -- the export ---------------------------------------------------------------------

async def chunks(db: Database, workspace_id: str, members: Members, fields: Sequence[str], fmt: Format
                 ) -> AsyncGenerator[tuple[str, int], None]:
    """The export's text in pieces of about CHUNK_CHARS (the last may be
    shorter, or empty), each with how many contacts it completes, counting
    those of the pieces before."""
    projection = dict.fromkeys(fields, 1)
    out = io.StringIO()
    write = fmt.start(out, fields)
    written = 0
    async with aclosing(members.id_batches) as id_batches, \
            aclosing(membership.contacts_of(db, workspace_id, id_batches, projection)) as contacts:
        async for contact in contacts:
            write(contact)
            written += 1
            if out.tell() >= CHUNK_CHARS:
                yield out.getvalue(), written
                out.seek(0)
                out.truncate()
    yield out.getvalue(), written
