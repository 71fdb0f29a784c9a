"""The plugin API: the contribution a condition plugin registers and the types
of its functions, the contexts they are called with, the shared GraphQL enums,
and small query helpers.

The contact document that conditions query (one per contact), every path with
its type and meaning, is described in :mod:`segmentql.plugins.contact`.

Values from a rule must reach the database only as data: in query documents
they are operands of query operators, and inside ``$expr`` they are wrapped
with :func:`literal`. Plugins never build regular expressions or JavaScript
from user input; the compiler refuses ``$where``, ``$function``,
``$accumulator``, ``$out`` and ``$merge`` from any plugin.
"""

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import strawberry

from .contact import EPOCH, UTC, day_number, day_start

# A condition's node: its value in a rule, in the GraphQL JSON shape (see
# :class:`Condition`). Its shape is the plugin's own input type, checked by the
# plugin's ``validate`` at run time, so a static type can only say "JSON object".
Node = Mapping[str, Any]
# A MongoDB query document, or any other document the driver sends (a pipeline
# stage, an aggregation expression): operators and paths are keys, values are
# whatever BSON holds.
Query = dict[str, Any]


class RuleError(ValueError):
    """Raised by ``Condition.validate`` (or ``compile``) when a node is not well
    formed. The message is the reason, for a marketer: the service prefixes
    the node's path and answers with ``extensions.code = "INVALID_RULE"``."""


@dataclass(frozen=True)
class Condition:
    """One ``RuleInput`` field contributed by a plugin.

    field        the ``RuleInput`` field name (a GraphQL name, camelCase)
    input_type   the strawberry ``@strawberry.input`` class of its value
    description  what it selects, shown in GraphiQL and ``conditionTypes``
    validate     ``validate(node, ctx: ValidationContext) -> None``; raise
                 :class:`RuleError` when the node is not well formed
    compile      ``compile(node, ctx: CompileContext) -> dict``: a MongoDB
                 query document matching exactly the contacts the node selects
    observe      optional ``observe(node, ctx: CompileContext) -> list[Observation]``:
                 the contact values the node looks at, for ``explainMembership``
                 ("opens on the last 30 days = 2, needed >= 3"). Without it a
                 node is explained by matched true/false only.
    stages       optional ``stages(node, ctx: CompileContext) -> list[dict]``:
                 aggregation stages run on the contacts before the ``$match``,
                 adding fields that ``compile`` (and ``observe``) then read
                 through ``ctx.stage_field(name)``. Only ``$lookup`` (``from``
                 a collection the plugin declares, ``localField``,
                 ``foreignField``, ``as``), ``$addFields`` and ``$set``; the
                 fields they add are plain names, which segmentql moves to the
                 node's own namespace (see docs/plugins.md, "Stages").

    ``node`` is the condition's value as a dict in the GraphQL JSON shape:
    camelCase keys, enum values as their names, ``DateTime`` and ``Date`` as ISO-8601
    strings, defaults of the input type filled in, other fields that were
    not given left out. A saved segment stores its rule as the client sent it (so
    ``Segment.rule`` gives it back unchanged) and coerces it to this shape
    each time it is evaluated.
    """

    field: str
    input_type: type
    description: str
    validate: Callable[[Node, "ValidationContext"], None]
    compile: Callable[[Node, "CompileContext"], Query]
    observe: Callable[[Node, "CompileContext"], list["Observation"]] | None = None
    stages: Callable[[Node, "CompileContext"], list[Query]] | None = None


# What the hook receives: it calls this once per Condition it contributes.
Register = Callable[[Condition], None]


@dataclass(frozen=True)
class Observation:
    """One value a condition decides on, as ``explainMembership`` shows it.

    label     what the value is, for a marketer: "opens on the last 30 days"
    value     an aggregation expression over the contact document giving the
              value (``"$leadScore"``, or one built from the same rollup fields
              ``compile`` queries); user values inside it wrapped in
              :func:`literal`
    needed    what the node needs of it, in words: ">= 3", "one of US, CA"

    Whether the node matches is never decided from observations: it comes
    from the node's compiled query, so an explanation cannot disagree with
    membership. Observations only show the facts behind that answer.
    """

    label: str
    value: Any
    needed: str


@dataclass(frozen=True)
class ValidationContext:
    """What a validator may consult: the workspace's declared custom fields."""

    custom_fields: Mapping[str, str]
    coerce: Callable[[str, Any], Any]

    def custom_field(self, key: Any, allowed: Iterable[str] | None = None) -> str:
        """The declared type of custom field ``key``; RuleError when it is not
        declared or its type is not one of ``allowed``."""
        if not isinstance(key, str) or key not in self.custom_fields:
            raise RuleError(f"custom field {key!r} is not declared in this workspace")
        declared = self.custom_fields[key]
        allowed = tuple(allowed or ())
        if allowed and declared not in allowed:
            raise RuleError(f"custom field {key!r} is {declared}; this condition needs {' or '.join(allowed)}")
        return declared

    def coerce_value(self, key: str, value: Any, what: str = "value") -> Any:
        """``value`` coerced to the declared type of ``key`` as import does."""
        try:
            return self.coerce(self.custom_fields[key], value)
        except ValueError as exc:
            raise RuleError(f"{what} does not fit custom field {key!r}: {exc}") from None


@dataclass(frozen=True)
class CompileContext:
    """What a compiler may consult: the moment rules are evaluated at, the
    workspace's declared custom fields, and the day of its newest event.

    ``today`` is ``D`` of the specification: the UTC calendar day of ``as_of``,
    as a day number (days since 1970-01-01).

    ``stage_namespace`` is where the fields of the node being compiled live
    (segmentql sets it per node; read it through :meth:`stage_field`).
    """

    as_of: dt.datetime
    custom_fields: Mapping[str, str]
    coerce: Callable[[str, Any], Any]
    newest_event_day: int | None = None
    stage_namespace: str | None = None

    @property
    def events_after_today(self) -> bool:
        """Whether the workspace may hold events dated after today (an ``asOf``
        in the past). When it does not, "on the last N days" is "since day
        D-N+1", and conditions can skip the work of excluding later events.
        Unknown (``newest_event_day`` None) counts as "may"."""
        return self.newest_event_day is None or self.newest_event_day > self.today

    @property
    def today(self) -> int:
        return day_number(self.as_of)

    @property
    def today_date(self) -> dt.date:
        return self.as_of.astimezone(UTC).date()

    day_start = staticmethod(day_start)  # midnight UTC at the start of day number ``day``

    @staticmethod
    def date_of(day: int) -> dt.date:
        return EPOCH + dt.timedelta(days=day)

    def stage_field(self, name: str) -> str:
        """The document path of field ``name`` that this node's stages add
        (``as`` of a ``$lookup``, a key of ``$addFields``): use it in the
        query ``compile`` returns, in observations and in later stages of the
        node, with a ``$`` in front inside expressions. Each node has its own
        namespace, so two conditions (or one condition twice) in a tree never
        read each other's fields."""
        if self.stage_namespace is None:
            raise RuntimeError("stage_field is for a node being compiled: segmentql sets its namespace")
        return f"{self.stage_namespace}.{name}"

    def custom_path(self, key: str) -> str:
        """The document path of a declared custom field. Refuses anything
        undeclared, so no rule can address another part of the document."""
        if key not in self.custom_fields:
            raise RuleError(f"custom field {key!r} is not declared in this workspace")
        return f"custom.{key}"


# -- shared enums ------------------------------------------------------------

@strawberry.enum(description="How a number from the data is compared with the value in the rule.")
class Comparison(Enum):
    EQ = strawberry.enum_value("EQ", description="equal to")
    NE = strawberry.enum_value("NE", description="not equal to")
    GT = strawberry.enum_value("GT", description="greater than")
    GTE = strawberry.enum_value("GTE", description="greater than or equal to")
    LT = strawberry.enum_value("LT", description="less than")
    LTE = strawberry.enum_value("LTE", description="less than or equal to")


@strawberry.enum(description="A kind of engagement event that can be counted.")
class Metric(Enum):
    OPENS = strawberry.enum_value("OPENS", description="OPEN events (email opens)")
    CLICKS = strawberry.enum_value("CLICKS", description="CLICK events (link clicks)")
    CONVERSIONS = strawberry.enum_value("CONVERSIONS", description="CONVERSION events (purchases, sign-ups)")


@strawberry.enum(description="The activity whose most recent occurrence a recency rule looks at.")
class Activity(Enum):
    OPENED = strawberry.enum_value("OPENED", description="the latest OPEN event")
    CLICKED = strawberry.enum_value("CLICKED", description="the latest CLICK event")
    CONVERTED = strawberry.enum_value("CONVERTED", description="the latest CONVERSION event")
    ANY = strawberry.enum_value("ANY", description="the latest OPEN, CLICK or CONVERSION event")


@strawberry.enum(description="The kind of device an email was opened on.")
class Device(Enum):
    MOBILE = strawberry.enum_value("MOBILE", description="a phone")
    DESKTOP = strawberry.enum_value("DESKTOP", description="a desktop or laptop computer")
    TABLET = strawberry.enum_value("TABLET", description="a tablet")


@strawberry.enum(description="A day of the week (ISO order, Monday first).")
class Weekday(Enum):
    MONDAY = strawberry.enum_value("MONDAY", description="Monday (ISO day 1)")
    TUESDAY = strawberry.enum_value("TUESDAY", description="Tuesday (ISO day 2)")
    WEDNESDAY = strawberry.enum_value("WEDNESDAY", description="Wednesday (ISO day 3)")
    THURSDAY = strawberry.enum_value("THURSDAY", description="Thursday (ISO day 4)")
    FRIDAY = strawberry.enum_value("FRIDAY", description="Friday (ISO day 5)")
    SATURDAY = strawberry.enum_value("SATURDAY", description="Saturday (ISO day 6)")
    SUNDAY = strawberry.enum_value("SUNDAY", description="Sunday (ISO day 7)")


WEEKDAY_NUMBERS = {name: number for number, name in enumerate(Weekday.__members__, 1)}


# -- helpers -----------------------------------------------------------------

COMPARISON_OPERATORS = {"EQ": "$eq", "NE": "$ne", "GT": "$gt", "GTE": "$gte", "LT": "$lt", "LTE": "$lte"}


COMPARISON_SYMBOLS = {"EQ": "=", "NE": "!=", "GT": ">", "GTE": ">=", "LT": "<", "LTE": "<="}


def needs(comparison: str, value: Any) -> str:
    """An :class:`Observation`'s ``needed`` for a comparison: ``needs("GTE", 3) == ">= 3"``
    (a whole float is shown as an integer: GraphQL Float 1000 arrives as 1000.0)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{COMPARISON_SYMBOLS[comparison]} {value}"


def listing(values: Iterable[Any]) -> str:
    """Values for an :class:`Observation`'s ``needed``: ``listing(["US", "CA"]) == "US, CA"``."""
    return ", ".join(str(v) for v in values)


def literal(value: Any) -> dict[str, Any]:
    """A value inside ``$expr``, taken as data even when it looks like a field
    path (``"$email"``) or an operator (``{"$gt": 1}``)."""
    return {"$literal": value}


def compare(path: str, comparison: str, value: Any) -> Query:
    """``{path: {$op: value}}`` for a ``Comparison`` name. NE also matches a
    missing field, as MongoDB's $ne does; add ``$exists`` where it must not."""
    return {path: {COMPARISON_OPERATORS[comparison]: value}}


def given(node: Node, names: Iterable[str]) -> list[str]:
    """The names among ``names`` that the node sets."""
    return [n for n in names if node.get(n) is not None]


def require_exactly_one(node: Node, names: Iterable[str]) -> str:
    names = list(names)
    present = given(node, names)
    if len(present) != 1:
        options = ", ".join(f"`{n}`" for n in names)
        if present:
            raise RuleError(f"give exactly one of {options}, not {' and '.join(f'`{p}`' for p in present)}")
        raise RuleError(f"give exactly one of {options}")
    return present[0]


def require_some(node: Node, names: Iterable[str]) -> list[str]:
    names = list(names)
    present = given(node, names)
    if not present:
        raise RuleError(f"give at least one of {', '.join(f'`{n}`' for n in names)}")
    return present


def require_positive(node: Node, name: str) -> None:
    value = node.get(name)
    if value is not None and value < 1:
        raise RuleError(f"`{name}` must be at least 1, got {value}")


ALWAYS: Query = {}
NEVER: Query = {"_id": {"$exists": False}}  # every stored document has an _id
