"""API keys: who may do what in a workspace.

A workspace has any number of keys (at most MAX_KEYS valid at once), each
with a name, a scope and an optional expiry. The secret (``sq_...``) is
shown once, when the key is made; only its SHA-256 is stored, with its first
characters (``prefix``) to recognise it in lists. A request's key is looked
up on every request (``access_for``), so a revoked or expired key is refused
from the next request on: nothing caches a key.

Scopes are ordered, each allowing what the one before allows:

- READ: queries and subscriptions;
- WRITE: also every mutation of data, segments and snapshots;
- ADMIN: also the workspace's keys and webhooks.

Which field needs which scope is ``schema/scopes.py``'s table. Every value is
checked here, at the edge: the name's length, the expiry (in the future),
and the number of valid keys.
"""

import asyncio
import datetime as dt
import enum
import logging
from dataclasses import dataclass

from pymongo.errors import PyMongoError

from . import fieldtypes
from .database import Database, Workspace, now
from .errors import BadArgument, LimitExceeded

log = logging.getLogger("segmentql")

MAX_KEYS = 100
MAX_NAME = 100
# ``lastUsedAt`` is written at most this often per key: a key used by every
# request of a busy front end costs one write a minute, not one per request.
USE_NOTED_EVERY = dt.timedelta(seconds=60)


class Scope(enum.IntEnum):
    """What a key may do; a scope allows everything the lower ones do."""

    READ = 1
    WRITE = 2
    ADMIN = 3


@dataclass(frozen=True)
class Access:
    """A request's valid key: its workspace, its id and its scope."""

    workspace: Workspace
    key_id: str
    scope: Scope


# Writes of ``lastUsedAt`` under way: the event loop keeps only weak
# references to tasks, so they are held here until they end.
_noting: set[asyncio.Task] = set()


async def access_for(db: Database, secret: str) -> Access | None:
    """The access a key's secret gives, or None when the key is unknown,
    revoked or expired. Notes the key's use (``lastUsedAt``) in the
    background: the request neither waits for that write nor fails with it."""
    at = now()
    found = await db.api_key_for(secret, at)
    if found is None:
        return None
    key, workspace = found
    if key["lastUsedAt"] is None or key["lastUsedAt"] < at - USE_NOTED_EVERY:
        task = asyncio.create_task(_note_use(db, workspace.id, key["id"], at))
        _noting.add(task)
        task.add_done_callback(_noting.discard)
    return Access(workspace=workspace, key_id=key["id"], scope=Scope[key["scope"]])


async def _note_use(db: Database, workspace_id: str, key_id: str, at: dt.datetime) -> None:
    try:
        await db.note_api_key_used(workspace_id, key_id, at, USE_NOTED_EVERY)
    except PyMongoError as exc:  # only a date is lost; the next use tries again
        log.info("could not note the use of API key %s: %s", key_id, type(exc).__name__)


async def create_key(db: Database, workspace_id: str, name: str, scope: Scope,
                     expires_at: dt.datetime | None) -> tuple[dict, str]:
    """A new key and its secret (shown this once)."""
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise BadArgument(f"a key's `name` must be 1 to {MAX_NAME} characters")
    at = now()
    if expires_at is not None:
        try:  # stored as BSON keeps it: UTC, to the millisecond
            expires_at = fieldtypes.parse_datetime(expires_at)
        except ValueError as exc:
            raise BadArgument(f"`expiresAt`: {exc}") from None
        if expires_at <= at:
            raise BadArgument("`expiresAt` must be in the future")
    too_many = LimitExceeded(f"a workspace has at most {MAX_KEYS} valid API keys; revoke one first")
    if await db.count_valid_api_keys(workspace_id, at) >= MAX_KEYS:
        raise too_many
    doc, secret = await db.insert_api_key(workspace_id, name, scope.name, expires_at)
    if await db.count_valid_api_keys(workspace_id, at) > MAX_KEYS:  # made at once with others: never past the limit
        await db.revoke_api_key(workspace_id, doc["id"], at)
        raise too_many
    return doc, secret


async def list_keys(db: Database, workspace_id: str) -> list[dict]:
    """The workspace's keys that are not revoked, oldest first; expired ones
    stay listed (with their past ``expiresAt``) until revoked."""
    return await db.api_keys_of(workspace_id)


async def revoke_key(db: Database, workspace_id: str, key_id: str) -> bool:
    """Revoke a key (the key making the request too): it is refused from the
    next request on. False when the workspace has no such key, or it was
    revoked already."""
    return await db.revoke_api_key(workspace_id, key_id, now())
