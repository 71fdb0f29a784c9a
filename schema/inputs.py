"""Input types of the data mutations (the import format of SPEC section 4)."""

import datetime as dt

import strawberry
from strawberry.scalars import JSON

from segmentql.plugins.api import Device

from .types import EventType


@strawberry.input(description="A contact to create or update (by `id`). A field left out keeps its stored "
                              "value; `null` unsets it.")
class ContactInput:
    id: strawberry.ID = strawberry.field(description="The contact's id in your system.")
    email: str = strawberry.field(description="Email address.")
    country: str | None = strawberry.field(default=strawberry.UNSET,
                                           description="ISO 3166-1 alpha-2 code (any case).")
    timezone: str | None = strawberry.field(default=strawberry.UNSET, description="IANA time zone name.")
    tags: list[str] | None = strawberry.field(default=strawberry.UNSET, description="All of the contact's tags.")
    lead_score: int | None = strawberry.field(default=strawberry.UNSET, description="Lead score 0-100.")
    custom_fields: JSON | None = strawberry.field(
        default=strawberry.UNSET,
        description="Values of declared custom fields by key; a key set to null unsets that field.")


@strawberry.input(description="A campaign to create or update (by `id`). Names are unique in a workspace.")
class CampaignInput:
    id: strawberry.ID = strawberry.field(description="The campaign's id in your system.")
    name: str = strawberry.field(description="The campaign's name.")
    sent_at: dt.datetime = strawberry.field(description="When it was sent.")


@strawberry.input(description="An email event. Recording the same event id again changes nothing.")
class EventInput:
    id: strawberry.ID = strawberry.field(description="The event's unique id.")
    contact_id: strawberry.ID = strawberry.field(description="The contact it happened to (must exist).")
    type: EventType = strawberry.field(description="What happened.")
    at: dt.datetime = strawberry.field(description="When it happened.")
    campaign_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="The campaign it belongs to (must exist).")
    device: Device | None = strawberry.field(default=strawberry.UNSET, description="Device of an OPEN.")
    url: str | None = strawberry.field(default=strawberry.UNSET, description="The clicked url of a CLICK.")
