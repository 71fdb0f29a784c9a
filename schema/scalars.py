"""The custom scalars of the API, each with the specification it follows
(``@specifiedBy``), so typed clients and code generators know what a value is.

Strawberry's own ``DateTime`` prints Python's ``isoformat`` (``+00:00``,
microseconds only when there are some), which made one instant print in
several ways: every ``DateTime`` is serialized here by
``instants.rfc3339`` instead, the text JSON payloads use too. Parsing stays
strawberry's (any ISO 8601 instant is accepted as input).
"""

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import NewType

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON
from strawberry.schema.types.scalar import DEFAULT_SCALAR_REGISTRY
from strawberry.types.scalar import ScalarDefinition

from segmentql.server.instants import rfc3339

RFC3339 = "https://datatracker.ietf.org/doc/html/rfc3339"
RFC8259 = "https://www.rfc-editor.org/rfc/rfc8259"


def _seed(value) -> str:
    # A GraphQLError (not ValueError) so that a bad literal is the user's
    # BAD_USER_INPUT, as strawberry's own scalars report theirs.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise GraphQLError(f"SplitSeed must be a string or an integer, got {value!r}")
    return str(value)


SplitSeed = NewType("SplitSeed", str)

SCALARS: Mapping[object, ScalarDefinition] = {
    dt.datetime: dataclasses.replace(
        DEFAULT_SCALAR_REGISTRY[dt.datetime], serialize=rfc3339, specified_by_url=RFC3339,
        description="An instant. Returned as RFC 3339 in UTC with milliseconds (`2026-11-28T12:00:00.000Z`); "
                    "accepted as any ISO 8601 date-time (without an offset: UTC)."),
    dt.date: dataclasses.replace(
        DEFAULT_SCALAR_REGISTRY[dt.date], specified_by_url=f"{RFC3339}#section-5.6",
        description="A calendar day, RFC 3339 `full-date` (`2026-11-28`)."),
    JSON: dataclasses.replace(
        DEFAULT_SCALAR_REGISTRY[JSON], specified_by_url=RFC8259,
        description="Any JSON value (RFC 8259). Stored instants in it (custom fields, observed values) are "
                    "texts in the form `DateTime` returns; a rule comes back as it was sent."),
    # No published specification: its description is its definition.
    SplitSeed: strawberry.scalar(
        name="SplitSeed", serialize=str, parse_value=_seed,
        description="Any string or integer; the same seed gives the same split, another seed an independent one."),
}
