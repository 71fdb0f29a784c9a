"""Input types shared by several built-in conditions."""

from collections.abc import Iterable

import strawberry

from ..api import Comparison, Node, Observation, Query, RuleError, ValidationContext, given, listing, needs


@strawberry.input(description="Membership of a single value in a list. Give exactly one of `in` and `notIn`.")
class SetCondition:
    in_: list[str] | None = strawberry.field(
        name="in", default=strawberry.UNSET, description="Matches when the contact's value is one of these.")
    not_in: list[str] | None = strawberry.field(
        default=strawberry.UNSET,
        description="Matches when the contact's value is none of these (a contact without a value matches).")


@strawberry.input(description="A whole number compared with a value, e.g. `{comparison: GTE, value: 3}`.")
class IntComparison:
    comparison: Comparison = strawberry.field(description="How the number is compared with `value`.")
    value: int = strawberry.field(description="The number to compare with.")


def validate_set(node: Node, _ctx: ValidationContext) -> None:
    present = given(node, ("in", "notIn"))
    if len(present) != 1:
        raise RuleError("give exactly one of `in` and `notIn`")


# Day counts of rules, at most 100 years either way: with ``asOf`` inside
# 1900-9000 (server/instants.py), every day a rule names is a date Python can
# hold (years 1-9999), so no rule's date arithmetic overflows.
MAX_DAYS = 36_500


def require_days(value: int | None, what: str, low: int) -> None:
    """A day count ``what`` ("`withinDays`"), unless None, is from ``low`` (1 or -MAX_DAYS) to MAX_DAYS."""
    if value is not None and not low <= value <= MAX_DAYS:
        raise RuleError(f"{what} must be at least {low} and at most {MAX_DAYS} days (100 years), got {value}")


def within(low: float | None, high: float | None) -> str:
    """``needed`` for inclusive bounds, either of which may be None: ">= 80 and <= 100"."""
    return " and ".join(needs(op, bound) for op, bound in (("GTE", low), ("LTE", high)) if bound is not None)


def set_observation(label: str, path: str, node: Node) -> list[Observation]:
    """The value at ``path`` and the list the node (given as written) needs it in or out of."""
    if node.get("in") is not None:
        return [Observation(label, f"${path}", f"one of {listing(node['in'])}")]
    return [Observation(label, f"${path}", f"none of {listing(node['notIn'])}")]


def set_query(path: str, node: Node, values: Iterable[str]) -> Query:
    """``{path: {$in: values}}`` or ``{path: {$nin: values}}`` ($nin also matches a missing value)."""
    return {path: {"$in" if node.get("in") is not None else "$nin": list(values)}}
