"""Output types of the API (everything a query can return)."""

import datetime as dt
import enum
from collections.abc import Sequence
from typing import Protocol

import strawberry
from strawberry.scalars import JSON

from segmentql.plugins.api import Device, Weekday
from segmentql.server.instants import rfc3339
from segmentql.server.segments import NodeMembership


@strawberry.enum(description="The type of a custom field; values are coerced to it on import.")
class CustomFieldType(enum.Enum):
    NUMBER = strawberry.enum_value("NUMBER", description="a number (integer or decimal)")
    TEXT = strawberry.enum_value("TEXT", description="a string")
    BOOLEAN = strawberry.enum_value("BOOLEAN", description="true or false")
    DATE = strawberry.enum_value("DATE", description="YYYY-MM-DD or an ISO-8601 datetime, stored as UTC")
    MULTI_SELECT = strawberry.enum_value("MULTI_SELECT", description="a list of strings (options)")


@strawberry.enum(description="The kind of an email event.")
class EventType(enum.Enum):
    SENT = strawberry.enum_value("SENT", description="a campaign was sent to the contact")
    OPEN = strawberry.enum_value("OPEN", description="the contact opened an email")
    CLICK = strawberry.enum_value("CLICK", description="the contact clicked a link")
    CONVERSION = strawberry.enum_value("CONVERSION", description="the contact converted (bought, signed up)")


def json_value(value):
    """A stored value as JSON: datetimes as the ``DateTime`` scalar prints them, inside lists and objects too."""
    if isinstance(value, dt.datetime):
        return rfc3339(value)
    if isinstance(value, list):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    return value


@strawberry.enum(description="How `explainSegment` writes a pipeline.")
class ExplainFormat(enum.Enum):
    EXTENDED_JSON = strawberry.enum_value("EXTENDED_JSON", description=(
        "`{collection, pipeline}`, the pipeline in MongoDB relaxed Extended JSON (for programs and drivers)."))
    MONGOSH = strawberry.enum_value("MONGOSH", description=(
        "A string of mongosh code that runs the pipeline as it is: "
        "`db.getCollection(\"contacts\").aggregate([...])` with `ISODate(...)`, `NumberLong(...)` and the like."))


@strawberry.type(description="Opens on each kind of device.")
class DeviceCounts:
    mobile: int = strawberry.field(description="Opens on phones.")
    desktop: int = strawberry.field(description="Opens on desktop computers.")
    tablet: int = strawberry.field(description="Opens on tablets.")


@strawberry.type(description="What a contact did with one campaign.")
class CampaignEngagement:
    campaign_id: strawberry.ID = strawberry.field(description="The campaign's id.")
    name: str | None = strawberry.field(description="The campaign's name.")
    sent_at: dt.datetime | None = strawberry.field(description="When the campaign was sent (the campaign's sentAt).")
    received: bool = strawberry.field(description="The contact has a SENT event for it.")
    opens: int = strawberry.field(description="OPEN events for this campaign.")
    clicks: int = strawberry.field(description="CLICK events for this campaign.")
    clicked_urls: list[str] = strawberry.field(description="Distinct clicked urls, lower-cased, in the order of their "
                                                       "first click; at most 100 (see `clickedUrlsDropped`).")
    clicked_urls_dropped: int = strawberry.field(
        description="Distinct clicked urls not kept in `clickedUrls` (its size bounds): "
                    "url conditions cannot see them.")
    latest: bool = strawberry.field(description="This is the newest campaign the contact received.")


@strawberry.type(description="Engagement statistics of a contact, kept up to date from its events.")
class EngagementStats:
    events: int = strawberry.field(description="Stored events of every type.")
    sends: int = strawberry.field(description="SENT events.")
    opens: int = strawberry.field(description="OPEN events.")
    clicks: int = strawberry.field(description="CLICK events.")
    conversions: int = strawberry.field(description="CONVERSION events.")
    opens_by_device: DeviceCounts = strawberry.field(description="OPEN events by device.")
    last_open_at: dt.datetime | None = strawberry.field(description="Time of the latest OPEN.")
    last_click_at: dt.datetime | None = strawberry.field(description="Time of the latest CLICK.")
    last_conversion_at: dt.datetime | None = strawberry.field(description="Time of the latest CONVERSION.")
    last_activity_at: dt.datetime | None = strawberry.field(description="Latest OPEN, CLICK or CONVERSION.")
    last_open_device: Device | None = strawberry.field(description="Device of the latest OPEN, if it had one.")
    top_open_hour: int | None = strawberry.field(
        description="Most common open hour (0-23) in the contact's time zone; ties: the earliest.")
    top_open_weekday: Weekday | None = strawberry.field(description="Most common open weekday; ties: the earliest.")
    open_hours: list[int] = strawberry.field(description="Opens per hour 0-23 in the contact's time zone.")
    open_weekdays: list[int] = strawberry.field(description="Opens per ISO weekday, Monday first.")
    campaigns: list[CampaignEngagement] = strawberry.field(description="Per-campaign engagement.")

    @classmethod
    def from_doc(cls, stats: dict) -> "EngagementStats":
        weekday = stats.get("topOpenWeekday")
        device = stats.get("lastOpenDevice")
        by_device = stats.get("opensByDevice") or {}
        return cls(
            events=stats.get("events", 0), sends=stats.get("sends", 0), opens=stats.get("opens", 0),
            clicks=stats.get("clicks", 0), conversions=stats.get("conversions", 0),
            opens_by_device=DeviceCounts(mobile=by_device.get("MOBILE", 0), desktop=by_device.get("DESKTOP", 0),
                                         tablet=by_device.get("TABLET", 0)),
            last_open_at=stats.get("lastOpenAt"), last_click_at=stats.get("lastClickAt"),
            last_conversion_at=stats.get("lastConversionAt"), last_activity_at=stats.get("lastActivityAt"),
            last_open_device=Device[device] if device else None,
            top_open_hour=stats.get("topOpenHour"),
            top_open_weekday=list(Weekday)[weekday - 1] if weekday else None,
            open_hours=stats.get("openHours") or [0] * 24, open_weekdays=stats.get("openWeekdays") or [0] * 7,
            campaigns=[CampaignEngagement(campaign_id=c["id"], name=c.get("name"), sent_at=c.get("sentAt"),
                                          received=c["received"], opens=c["opens"], clicks=c["clicks"],
                                          clicked_urls=c["urls"], clicked_urls_dropped=c.get("urlsDropped", 0),
                                          latest=c["latest"])
                       for c in stats.get("campaigns") or []])


@strawberry.type(description="A contact: what was imported for it, and its engagement.")
class Contact:
    id: strawberry.ID = strawberry.field(description="The contact's id (unique in the workspace).")
    email: str = strawberry.field(description="Email address.")
    country: str | None = strawberry.field(description="ISO 3166-1 alpha-2 country code, upper-case.")
    timezone: str | None = strawberry.field(description="IANA time zone name.")
    tags: list[str] = strawberry.field(description="Tags, in the order first given.")
    lead_score: int | None = strawberry.field(description="Lead score 0-100.")
    custom_fields: JSON = strawberry.field(description="Custom field values by key (DATE values as ISO-8601 UTC).")
    created_at: dt.datetime | None = strawberry.field(description="When the contact was first stored.")
    updated_at: dt.datetime | None = strawberry.field(description="When its fields last changed.")
    stats: EngagementStats = strawberry.field(description="Engagement statistics from its events.")

    @classmethod
    def from_doc(cls, doc: dict) -> "Contact":
        return cls(id=doc["id"], email=doc["email"], country=doc.get("country"), timezone=doc.get("timezone"),
                   tags=doc.get("tags") or [], lead_score=doc.get("leadScore"),
                   custom_fields=JSON({k: json_value(v) for k, v in (doc.get("custom") or {}).items()}),
                   created_at=doc.get("createdAt"), updated_at=doc.get("updatedAt"),
                   stats=EngagementStats.from_doc(doc.get("stats") or {}))


class Edge(Protocol):
    cursor: str


@strawberry.type(description=(
    "Relay page information. Pages go forward (`first` and `after`); a segment's `changes` also go backward "
    "(`last` and `before`)."))
class PageInfo:
    has_next_page: bool = strawberry.field(description=(
        "More items follow this page. On a page going backward: true when `before` was given (not looked up "
        "further, as the Relay cursor connections specification allows)."))
    has_previous_page: bool = strawberry.field(description=(
        "Items precede this page. On a page going forward: true when `after` was given (not looked up "
        "further, as the Relay cursor connections specification allows)."))
    start_cursor: str | None = strawberry.field(description=(
        "The first item's cursor (on a segment's `changes`, pass it as `before` to get the previous page); null "
        "for an empty page."))
    end_cursor: str | None = strawberry.field(description="Pass as `after` to get the next page; null for an "
                                                          "empty page.")

    @classmethod
    def of(cls, edges: Sequence[Edge], has_next: bool, after: str | None) -> "PageInfo":
        """Where a page of ``edges`` is, when it was asked for ``after`` a cursor (None or empty: from the start)."""
        return cls.between(edges, has_previous=bool(after), has_next=has_next)

    @classmethod
    def between(cls, edges: Sequence[Edge], has_previous: bool, has_next: bool) -> "PageInfo":
        """Where a page of ``edges`` is, whichever way it was asked for."""
        return cls(has_next_page=has_next, has_previous_page=has_previous,
                   start_cursor=edges[0].cursor if edges else None, end_cursor=edges[-1].cursor if edges else None)


@strawberry.type(description="One contact id in a page, with its cursor.")
class ContactIdEdge:
    cursor: str = strawberry.field(description="Opaque position of this id.")
    node: strawberry.ID = strawberry.field(description="The contact id.")


@strawberry.type(description="A page of contact ids in id order, with how many there are in all (Relay connection; "
                             "`ids` holds the same ids as `edges`).")
class ContactIdConnection:
    total_count: int = strawberry.field(description="How many ids there are in all pages.")
    ids: list[strawberry.ID] = strawberry.field(description="The ids of this page.")
    edges: list[ContactIdEdge] = strawberry.field(description="The ids of this page, with their cursors.")
    page_info: PageInfo = strawberry.field(description="Where this page is (`endCursor` is the last id's cursor).")


@strawberry.type(description="One contact in a page, with its cursor.")
class ContactEdge:
    cursor: str = strawberry.field(description="Opaque position of this contact.")
    node: Contact = strawberry.field(description="The contact.")


@strawberry.type(description="A page of contacts, ordered by contact id (Relay connection).")
class ContactConnection:
    edges: list[ContactEdge] = strawberry.field(description="The contacts of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page is.")


@strawberry.type(description="A problem with one item of a batch; the rest of the batch was kept.")
class ItemError:
    index: int = strawberry.field(description="Position of the item in the list sent (from 0).")
    id: str | None = strawberry.field(description="The item's id, when it had one.")
    message: str = strawberry.field(description="What is wrong, naming the item and field.")


@strawberry.type(description="Outcome of a batch mutation.")
class BatchResult:
    accepted: int = strawberry.field(description="Items stored or changed.")
    unchanged: int = strawberry.field(description="Items that were already stored as given (or absent, for deletes).")
    errors: list[ItemError] = strawberry.field(description="Items refused, with reasons.")

    @classmethod
    def from_result(cls, result) -> "BatchResult":
        return cls(accepted=result.accepted, unchanged=result.unchanged,
                   errors=[ItemError(index=e.index, id=e.id, message=e.message) for e in result.errors])


@strawberry.type(description="A declared custom field.")
class CustomField:
    key: str = strawberry.field(description="The field's key.")
    type: CustomFieldType = strawberry.field(description="The field's type.")
    created: bool = strawberry.field(description="True when this call declared it; false when it already existed.")


@strawberry.type(description="A rule condition available in `RuleInput`, and the plugin that provides it.")
class ConditionType:
    field: str = strawberry.field(description="The `RuleInput` field name.")
    input_type: str = strawberry.field(description="The GraphQL input type of its value.")
    plugin: str = strawberry.field(description="The plugin that registered it.")
    distribution: str | None = strawberry.field(description="The installed package providing the plugin.")
    version: str | None = strawberry.field(description="That package's version.")
    description: str = strawberry.field(description="What the condition selects.")


@strawberry.type(description="A node of a rule tree.")
class RuleNode:
    path: str = strawberry.field(description="The node's path in the rule, e.g. `any[1].all[0].engagement`.")
    kind: str = strawberry.field(description="`all`, `any`, `not` or the condition's RuleInput field.")


@strawberry.type(description="How many contacts one node of a rule matches on its own.")
class NodeCount(RuleNode):
    count: int = strawberry.field(description="Contacts matching this node (regardless of the rest of the rule).")


@strawberry.type(description="A value of the contact that a condition decides on.")
class ObservedValue:
    label: str = strawberry.field(description="What the value is, e.g. `opens on the last 30 days`.")
    value: JSON | None = strawberry.field(description="The contact's value (null when it has none; "
                                                      "datetimes as ISO-8601 UTC).")
    needed: str = strawberry.field(description="What the condition needs of it, e.g. `>= 3`.")


@strawberry.type(description="Whether one contact matches one node of a rule, and the values that decided it.")
class NodeMatch(RuleNode):
    matched: bool = strawberry.field(description="The contact matches this node (decided by the node's compiled "
                                                 "query, the same that decides membership).")
    values: list[ObservedValue] = strawberry.field(
        description="The contact's values this condition looks at, with what it needs of each (empty for "
                    "`all`/`any`/`not` and for plugin conditions that observe nothing).")


@strawberry.type(description="Why a contact is or is not in a segment: the rule tree, node by node.")
class MembershipExplanation:
    contact_id: strawberry.ID = strawberry.field(description="The contact explained.")
    member: bool = strawberry.field(description="The contact is in the segment (the root node matches).")
    nodes: list[NodeMatch] = strawberry.field(description="Every node of the rule, root first (pre-order).")

    @classmethod
    def of(cls, contact_id: str, matches: list[NodeMembership]) -> "MembershipExplanation":
        """From ``segments.membership``: one answer per node, root first."""
        return cls(contact_id=strawberry.ID(contact_id), member=matches[0].matched, nodes=[
            NodeMatch(path=m.node.path, kind=m.node.kind, matched=m.matched,
                      values=[ObservedValue(label=o.label, value=json_value(v), needed=o.needed) for o, v in m.values])
            for m in matches])
