"""``purchased``: the contact bought something (a SKU, for at least an
amount, within the last N days), from the plugin's own ``purchases``
collection, joined to each contact by a ``$lookup`` stage.

A purchase is ``{workspace_id, contact_id, sku, amount, at}``; the
``segmentql-purchases import`` command (:mod:`.cli`) stores them.
"""

import strawberry

from segmentql.plugins import Collection, Condition, Index, Observation, RuleError, hookimpl, literal, require_positive

SEGMENTQL_API_VERSION = "1.0"
COLLECTION = "purchases"


@strawberry.input(description="The contact made at least one purchase matching every given field.")
class PurchasedCondition:
    sku: str | None = strawberry.field(default=strawberry.UNSET, description="Of this SKU (exactly).")
    min_amount: float | None = strawberry.field(default=strawberry.UNSET,
                                                description="For at least this amount.")
    within_days: int | None = strawberry.field(
        default=strawberry.UNSET,
        description="On the last N UTC days up to the day of `asOf` (1: that day only); "
                    "leave out for any day up to it.")


def validate(node, ctx) -> None:
    require_positive(node, "withinDays")
    if node.get("minAmount") is not None and node["minAmount"] < 0:
        raise RuleError(f"`minAmount` must not be negative, got {node['minAmount']}")
    if node.get("sku") is not None and not node["sku"].strip():
        raise RuleError("`sku` must not be blank")


def _matches(node, ctx) -> dict:
    """Whether one purchase ``$$p`` counts: on a day up to ``asOf``'s, and every given test."""
    tests = [{"$lt": ["$$p.at", ctx.day_start(ctx.today + 1)]}]
    if node.get("withinDays") is not None:
        tests.append({"$gte": ["$$p.at", ctx.day_start(ctx.today - node["withinDays"] + 1)]})
    if node.get("sku") is not None:
        tests.append({"$eq": ["$$p.sku", literal(node["sku"])]})
    if node.get("minAmount") is not None:
        tests.append({"$gte": ["$$p.amount", literal(node["minAmount"])]})
    return {"$and": tests}


def stages(node, ctx) -> list[dict]:
    """The contact's purchases (this workspace's only: segmentql scopes the
    ``$lookup``), then how many of them match."""
    purchases = f"${ctx.stage_field('purchases')}"
    return [{"$lookup": {"from": COLLECTION, "localField": "id", "foreignField": "contact_id", "as": "purchases"}},
            {"$set": {"matching": {"$size": {"$filter": {"input": purchases, "as": "p",
                                                          "cond": _matches(node, ctx)}}}}}]


def compile(node, ctx) -> dict:
    return {ctx.stage_field("matching"): {"$gt": 0}}


def observe(node, ctx) -> list[Observation]:
    return [Observation("matching purchases", f"${ctx.stage_field('matching')}", ">= 1")]


@hookimpl
def segmentql_register_collections(register):
    register(Collection(COLLECTION, indexes=(Index((("contact_id", 1), ("at", -1))),),
                        description="One document per purchase: contact_id, sku, amount, at."))


@hookimpl
def segmentql_register_conditions(register):
    register(Condition(field="purchased", input_type=PurchasedCondition, validate=validate, compile=compile,
                       observe=observe, stages=stages,
                       description="The contact made a purchase (of a SKU, for an amount, on the last N days)."))
