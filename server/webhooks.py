"""Webhooks: URLs a workspace's segment changes are POSTed to, signed.

A webhook names its URL, the saved segments it follows (or all of them) and
a signing secret, shown once when it is made or rotated (receivers verify
``Segmentql-Signature`` with it: ``server/delivery.py``). It delivers the
changes logged after it was made; ``redeliver`` sends them again from any
cursor. Its state (where it is in the log, whether it is active) lives on
its document, so any service process can deliver it: see
``server/delivery.py`` for the state machine.

Every value is checked here, at the edge: the URL (``webhook_targets``), the
segments (each must exist in the workspace), the description's length, and
a workspace's number of webhooks is bounded (each costs every write a
little, and the dispatcher's time).
"""

import datetime as dt
import enum
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from .cursors import change_position, decode_cursor, encode_cursor
from .database import EPOCH, Database, now
from .errors import BadArgument, Conflict, LimitExceeded, NotFound
from .segments import saved_segment_ids
from .webhook_targets import checked_url

MAX_WEBHOOKS = 25
MAX_DELIVERIES_PAGE = 100
MAX_DESCRIPTION = 500
# After a rotation the previous secret signs too (a second ``v1=``), this
# long: receivers switch to the new secret without missing a delivery.
ROTATION_GRACE = dt.timedelta(hours=24)
DELIVERY = "delivery"


class WebhookStatus(enum.Enum):
    """Whether a webhook delivers."""

    ACTIVE = "delivering the changes of its segments as they are logged"
    DISABLED = "turned off with `updateWebhook(enabled: false)`; changes wait in the log"
    FAILED = ("a delivery kept failing for the whole retry window; nothing more is sent until "
              "`redeliverWebhook` (or `updateWebhook(enabled: true)`) resumes it")


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class Keep(enum.Enum):
    """A field of :class:`WebhookChange` left as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True)
class WebhookChange:
    """What ``update_webhook`` changes: the fields given (None for
    ``segment_ids``: follow every segment)."""

    url: str | Keep = KEEP
    segment_ids: Sequence[str] | Keep | None = KEEP
    description: str | Keep | None = KEEP  # None: no description
    enabled: bool | Keep = KEEP


async def create_webhook(db: Database, allow_private: bool, workspace_id: str, url: str,
                         segment_ids: Sequence[str] | None, description: str | None) -> tuple[dict, str]:
    """A new webhook and its signing secret. It delivers changes logged from now on."""
    doc: dict[str, object] = {"workspace_id": workspace_id, "id": str(uuid.uuid4()),
                              "url": checked_url(url, allow_private),
           "segmentIds": await _segments(db, workspace_id, segment_ids), "description": _described(description)}
    too_many = LimitExceeded(f"a workspace has at most {MAX_WEBHOOKS} webhooks; delete one first")
    if await db.count_webhooks(workspace_id) >= MAX_WEBHOOKS:
        raise too_many
    secret, stamp = new_secret(), now()
    doc.update({"secret": secret, "createdAt": stamp, "updatedAt": stamp, "status": WebhookStatus.ACTIVE.name,
                # Due at once: a change settled while it was being made (its
                # write found no idle webhook to mark due) is not left waiting.
                "generation": 0, "position": await db.settled_seq(workspace_id), "dueAt": stamp,
                "claimUntil": EPOCH})
    await db.insert_webhook(doc)
    if await db.count_webhooks(workspace_id) > MAX_WEBHOOKS:  # made at once with others: never more than the limit
        await db.delete_webhook(workspace_id, str(doc["id"]))
        raise too_many
    return doc, secret


async def get_webhook(db: Database, workspace_id: str, webhook_id: str) -> dict:
    doc = await db.webhook(workspace_id, webhook_id)
    if doc is None:
        raise NotFound(f"no webhook with id {webhook_id!r} in this workspace")
    return doc


async def update_webhook(db: Database, allow_private: bool, workspace_id: str, webhook_id: str,
                         change: WebhookChange) -> dict:
    """Change a webhook's URL, segments, description, or turn it off or on.
    Turning it on resumes where it stopped (a failed delivery is sent again)."""
    values: dict = {}
    if change.url is not KEEP:
        values["url"] = checked_url(change.url, allow_private)
    if change.segment_ids is not KEEP:
        values["segmentIds"] = await _segments(db, workspace_id, change.segment_ids)
    if change.description is not KEEP:
        values["description"] = _described(change.description)
    current = await get_webhook(db, workspace_id, webhook_id)
    if change.enabled is False:
        values["status"] = WebhookStatus.DISABLED.name
    if change.enabled is True and current["status"] != WebhookStatus.ACTIVE.name:
        return await _resume(db, workspace_id, webhook_id, current["position"], values)
    return await _updated(db, workspace_id, webhook_id, {"$set": {**values, "updatedAt": now()}})


async def rotate_secret(db: Database, workspace_id: str, webhook_id: str) -> tuple[dict, str]:
    """A new signing secret; the previous one still signs for ROTATION_GRACE."""
    current = await get_webhook(db, workspace_id, webhook_id)
    secret, stamp = new_secret(), now()
    doc = await db.update_webhook(workspace_id, webhook_id, {"$set": {
        "secret": secret, "previousSecret": current["secret"], "previousSecretUntil": stamp + ROTATION_GRACE,
        "updatedAt": stamp}}, expected={"secret": current["secret"]})
    if doc is None:  # rotated (or deleted) meanwhile: the secret read is no longer the one to keep
        await get_webhook(db, workspace_id, webhook_id)
        raise Conflict("the webhook's secret was rotated by another request at the same time; rotate it again")
    return doc, secret


async def redeliver(db: Database, workspace_id: str, webhook_id: str, from_cursor: str | None) -> dict:
    """Deliver again from the change at ``from_cursor`` (included), or, without
    one, from where deliveries stopped (a failed delivery's changes first);
    the webhook is active again."""
    current = await get_webhook(db, workspace_id, webhook_id)
    position = current["position"]
    if from_cursor is not None:
        position = change_position(from_cursor, "fromCursor") - 1
        if not 0 <= position < await db.settled_seq(workspace_id):
            raise BadArgument("`fromCursor` is not a change of this workspace's log")
    return await _resume(db, workspace_id, webhook_id, position, {})


async def _resume(db: Database, workspace_id: str, webhook_id: str, position: int, values: dict) -> dict:
    """Deliver from log ``position`` on, as a new generation: a dispatcher
    busy with an earlier one changes nothing more of the webhook, and its
    deliveries still pending are cancelled (after the generation moved, so
    none made meanwhile is left pending). The claim stays: the new
    generation is delivered once the dispatcher holding it lets it go."""
    doc = await _updated(db, workspace_id, webhook_id, {
        "$set": {**values, "status": WebhookStatus.ACTIVE.name, "position": position, "dueAt": now(),
                 "updatedAt": now()},
        "$inc": {"generation": 1}})
    await db.close_deliveries(workspace_id, webhook_id, doc["generation"], "CANCELED")
    return doc


async def delete_webhook(db: Database, workspace_id: str, webhook_id: str) -> bool:
    return await db.delete_webhook(workspace_id, webhook_id)


async def deliveries(db: Database, workspace_id: str, webhook_id: str, first: int, after: str | None
                     ) -> tuple[list[dict], bool]:
    """A page of the webhook's deliveries, newest first, and whether more follow."""
    before = None
    if after:
        created, _, delivery_id = decode_cursor(DELIVERY, after).partition("|")
        try:
            before = (dt.datetime.fromisoformat(created), delivery_id)
        except ValueError:
            raise BadArgument(f"`after` is not a {DELIVERY} cursor returned by this API") from None
    found = await db.deliveries_page(workspace_id, webhook_id, before, first + 1)
    return found[:first], len(found) > first


def delivery_cursor(doc: dict) -> str:
    return encode_cursor(DELIVERY, f"{doc['createdAt'].isoformat()}|{doc['id']}")


async def _updated(db: Database, workspace_id: str, webhook_id: str, update: dict) -> dict:
    doc = await db.update_webhook(workspace_id, webhook_id, update)
    if doc is None:
        raise NotFound(f"no webhook with id {webhook_id!r} in this workspace")
    return doc


async def _segments(db: Database, workspace_id: str, segment_ids: Sequence[str] | None) -> list[str] | None:
    """The segments a webhook follows (None: all), each saved in the workspace."""
    return None if segment_ids is None else await saved_segment_ids(db, workspace_id, segment_ids)


def _described(description: str | None) -> str | None:
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise BadArgument(f"`description` has at most {MAX_DESCRIPTION} characters, got {len(description)}")
    return description
