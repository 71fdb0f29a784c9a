"""Webhooks in GraphQL: their types, and the root fields that manage them
(``WebhookQueries`` and ``WebhookMutations``, which the root types of
``build`` extend). The services are ``segmentql.server.webhooks``; deliveries
are made by ``segmentql.server.delivery``."""

import datetime as dt
import enum
from typing import Annotated

import strawberry
from strawberry.types import Info

from segmentql.server import webhooks
from segmentql.server.cursors import change_cursor
from segmentql.server.webhooks import KEEP, MAX_DELIVERIES_PAGE, WebhookChange

from .arguments import Id, described, in_range
from .context import request_context
from .pages import After
from .types import PageInfo

WebhookStatus = strawberry.enum(  # type: ignore[call-overload]  # an Enum made by the functional API
    enum.Enum("WebhookStatus", {s.name: strawberry.enum_value(s.name, description=s.value)
                                for s in webhooks.WebhookStatus}),
    description="Whether a webhook delivers.")


@strawberry.enum(description="Where a delivery is.")
class DeliveryState(enum.Enum):
    PENDING = strawberry.enum_value("PENDING", description="Not delivered yet: being sent, or waiting for a retry.")
    SUCCEEDED = strawberry.enum_value("SUCCEEDED", description="The receiver answered 2xx.")
    FAILED = strawberry.enum_value("FAILED", description="Refused for the whole retry window; the webhook stopped.")
    CANCELED = strawberry.enum_value("CANCELED", description="Replaced by a redelivery before it succeeded.")


@strawberry.type(description="One POST of a delivery.")
class WebhookAttempt:
    at: dt.datetime = strawberry.field(description="When it ended.")
    status_code: int | None = strawberry.field(description="The receiver's HTTP status; null when none came.")
    error: str | None = strawberry.field(description=(
        "Why it failed: a timeout, a connection error, a refused address, or the start of the answer's body."))
    duration_ms: int = strawberry.field(description="How long it took, in milliseconds.")


@strawberry.type(description="A batch of changes POSTed to a webhook, with every attempt.")
class WebhookDelivery:
    doc: strawberry.Private[dict]

    @strawberry.field(description="Its id: the `deliveryId` of the payload and the `Segmentql-Delivery` header.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.doc["id"])

    @strawberry.field(description="Where it is.")
    def state(self) -> DeliveryState:
        return DeliveryState[self.doc["state"]]

    @strawberry.field(description="How many changes it carries (at most 100).")
    def change_count(self) -> int:
        return self.doc["changeCount"]

    @strawberry.field(description="The cursor of its first change.")
    def first_cursor(self) -> str:
        return self.doc["firstCursor"]

    @strawberry.field(description="The cursor of its last change.")
    def last_cursor(self) -> str:
        return self.doc["lastCursor"]

    @strawberry.field(description="When it was made (before its first attempt).")
    def created_at(self) -> dt.datetime:
        return self.doc["createdAt"]

    @strawberry.field(description="When it succeeded, failed or was cancelled; null while pending.")
    def finished_at(self) -> dt.datetime | None:
        return self.doc.get("finishedAt")

    @strawberry.field(description="When it is tried next; null once finished.")
    def next_attempt_at(self) -> dt.datetime | None:
        return self.doc.get("nextAttemptAt")

    @strawberry.field(description="How many times it was sent.")
    def attempt_count(self) -> int:
        return self.doc.get("attemptCount", 0)

    @strawberry.field(description="Its attempts, oldest first (the newest 25).")
    def attempts(self) -> list[WebhookAttempt]:
        return [WebhookAttempt(at=a["at"], status_code=a["statusCode"], error=a["error"], duration_ms=a["durationMs"])
                for a in self.doc.get("attempts", [])]


@strawberry.type(description="A delivery with its cursor.")
class WebhookDeliveryEdge:
    cursor: str = strawberry.field(description="Resume after it with `after`.")
    node: WebhookDelivery = strawberry.field(description="The delivery.")


@strawberry.type(description="A page of a webhook's deliveries, newest first (Relay connection).")
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge] = strawberry.field(description="The deliveries of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page is.")

    @classmethod
    def of(cls, docs: list[dict], has_next: bool, after: str | None) -> "WebhookDeliveryConnection":
        edges = [WebhookDeliveryEdge(cursor=webhooks.delivery_cursor(d), node=WebhookDelivery(doc=d)) for d in docs]
        return cls(edges=edges, page_info=PageInfo.of(edges, has_next, after))


@strawberry.type(description="Where a saved segment's changes are POSTed, signed (README, \"Webhooks\").")
class Webhook:
    doc: strawberry.Private[dict]

    @strawberry.field(description="Its id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.doc["id"])

    @strawberry.field(description="The URL changes are POSTed to.")
    def url(self) -> str:
        return self.doc["url"]

    @strawberry.field(description="The segments it follows; null: every segment of the workspace.")
    def segment_ids(self) -> list[strawberry.ID] | None:
        ids = self.doc["segmentIds"]
        return None if ids is None else [strawberry.ID(i) for i in ids]

    @strawberry.field(description="What it is for.")
    def description(self) -> str | None:
        return self.doc.get("description")

    @strawberry.field(description="Whether it delivers.")
    def status(self) -> WebhookStatus:  # type: ignore[valid-type]
        return WebhookStatus[self.doc["status"]]

    @strawberry.field(description=(
        "The log position delivered up to, as a change cursor: the changes after it are on their way. It "
        "starts where the log stood when the webhook was made, and passes changes of segments it does not "
        "follow; null while the workspace's log is empty."))
    def delivered_through(self) -> str | None:
        return change_cursor(self.doc["position"]) if self.doc["position"] else None

    @strawberry.field(description="When it was made.")
    def created_at(self) -> dt.datetime:
        return self.doc["createdAt"]

    @strawberry.field(description="When it was last changed.")
    def updated_at(self) -> dt.datetime:
        return self.doc["updatedAt"]

    @strawberry.field(description="Its deliveries, newest first, with every attempt: kept 30 days after they end.")
    async def deliveries(self, info: Info,
                         first: Annotated[int, described(f"Page size, 0-{MAX_DELIVERIES_PAGE}.")] = 20,
                         after: After = None) -> WebhookDeliveryConnection:
        ctx = request_context(info)
        docs, more = await webhooks.deliveries(ctx.db, ctx.workspace_id, self.doc["id"],
                                               in_range("first", first, 0, MAX_DELIVERIES_PAGE), after)
        return WebhookDeliveryConnection.of(docs, more, after)


@strawberry.type(description="A webhook with its signing secret, shown this once: store it to verify signatures.")
class WebhookWithSecret:
    webhook: Webhook = strawberry.field(description="The webhook.")
    secret: str = strawberry.field(description=(
        "The key of the HMAC-SHA256 in `Segmentql-Signature` (README, \"Webhooks\"). Not shown again: "
        "`rotateWebhookSecret` makes a new one."))


Url = Annotated[str, described("An http(s) URL; private and loopback addresses are refused.")]
SegmentIds = Annotated[list[strawberry.ID] | None, described(
    "The segments to deliver the changes of (at most 100); null: every segment of the workspace.")]


@strawberry.type
class WebhookQueries:
    @strawberry.field(description="The workspace's webhooks, oldest first.")
    async def webhooks(self, info: Info) -> list[Webhook]:
        ctx = request_context(info)
        return [Webhook(doc=d) for d in await ctx.db.webhooks_of(ctx.workspace_id)]


@strawberry.type
class WebhookMutations:
    @strawberry.mutation(description=(
        "POST the changes of saved segments to a URL, signed, as they are logged (from now on: "
        "`redeliverWebhook` sends earlier ones). The secret is shown once."))
    async def create_webhook(self, info: Info, url: Url, segment_ids: SegmentIds = None,
                             description: Annotated[str | None, described("What it is for (500 characters).")]
                             = None) -> WebhookWithSecret:
        ctx = request_context(info)
        doc, secret = await webhooks.create_webhook(ctx.db, ctx.settings.webhook_allow_private, ctx.workspace_id,
                                                    url, segment_ids, description)
        return WebhookWithSecret(webhook=Webhook(doc=doc), secret=secret)

    @strawberry.mutation(description=(
        "Change a webhook: the arguments given replace its settings. `enabled: false` stops deliveries (changes "
        "wait in the log); `enabled: true` resumes where they stopped."))
    async def update_webhook(self, info: Info, id: Id,
                             url: Annotated[str | None, described("A new URL.")] = strawberry.UNSET,
                             segment_ids: SegmentIds = strawberry.UNSET,
                             description: Annotated[str | None, described("A new description (null: none).")]
                             = strawberry.UNSET,
                             enabled: Annotated[bool | None, described("Deliver or not.")] = strawberry.UNSET
                             ) -> Webhook:
        ctx = request_context(info)
        change = WebhookChange(url=KEEP if url is strawberry.UNSET or url is None else url,
                               segment_ids=KEEP if segment_ids is strawberry.UNSET else segment_ids,
                               description=KEEP if description is strawberry.UNSET else description,
                               enabled=KEEP if enabled is strawberry.UNSET or enabled is None else enabled)
        return Webhook(doc=await webhooks.update_webhook(ctx.db, ctx.settings.webhook_allow_private,
                                                         ctx.workspace_id, str(id), change))

    @strawberry.mutation(description="Delete a webhook and its deliveries; false when there was none with that id.")
    async def delete_webhook(self, info: Info, id: Id) -> bool:
        ctx = request_context(info)
        return await webhooks.delete_webhook(ctx.db, ctx.workspace_id, str(id))

    @strawberry.mutation(description=(
        "A new signing secret, shown once. For 24 hours deliveries are signed with the previous secret too "
        "(a second `v1=`), so receivers can switch without missing one."))
    async def rotate_webhook_secret(self, info: Info, id: Id) -> WebhookWithSecret:
        ctx = request_context(info)
        doc, secret = await webhooks.rotate_secret(ctx.db, ctx.workspace_id, str(id))
        return WebhookWithSecret(webhook=Webhook(doc=doc), secret=secret)

    @strawberry.mutation(description=(
        "Deliver again, from the change at `fromCursor` (included; a cursor of a delivered change or of "
        "`Segment.changes`), or without it from where deliveries stopped (a failed delivery is sent again). "
        "The webhook is active again; pending deliveries are cancelled."))
    async def redeliver_webhook(self, info: Info, id: Id,
                                from_cursor: Annotated[str | None, described("The first change to send.")] = None
                                ) -> Webhook:
        ctx = request_context(info)
        return Webhook(doc=await webhooks.redeliver(ctx.db, ctx.workspace_id, str(id), from_cursor))
