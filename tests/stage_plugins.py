"""Test plugins contributing stages, shared by tests/test_plugin_stages.py
and tests/unit/test_compiler.py: two conditions that both add a field named
``total`` (so a tree holding both shows namespaces keep them apart), and
plugins whose stages segmentql must refuse."""

import strawberry

from segmentql.plugins import Collection, Condition, Index, hookimpl

ORDERS = "test_orders"


@strawberry.input(description="What the contact spent, from the test orders collection.")
class SpentInput:
    at_least: float = strawberry.field(description="The least total amount.")


@strawberry.input(description="The length of the contact's email address.")
class EmailLengthInput:
    over: int = strawberry.field(description="More characters than this.")


@strawberry.input(description="Test input.")
class StageInput:
    on: bool | None = strawberry.UNSET


def spent_stages(node, ctx) -> list[dict]:
    return [{"$lookup": {"from": ORDERS, "localField": "id", "foreignField": "contact_id", "as": "orders"}},
            {"$set": {"total": {"$sum": {"$map": {"input": f"${ctx.stage_field('orders')}", "in": "$$this.amount"}}}}}]


class Spending:
    """``spent: {atLeast}``: the sum of the contact's orders' ``amount``."""

    @hookimpl
    def segmentql_register_collections(self, register):
        register(Collection(ORDERS, indexes=(Index((("contact_id", 1),)),)))

    @hookimpl
    def segmentql_register_conditions(self, register):
        register(Condition(field="spent", input_type=SpentInput, description="Total spent on test orders.",
                           validate=lambda node, ctx: None,
                           compile=lambda node, ctx: {ctx.stage_field("total"): {"$gte": node["atLeast"]}},
                           stages=spent_stages))


class EmailLength:
    """``emailLength: {over}``, through a field it also calls ``total``."""

    @hookimpl
    def segmentql_register_conditions(self, register):
        register(Condition(field="emailLength", input_type=EmailLengthInput, description="The email's length.",
                           validate=lambda node, ctx: None,
                           compile=lambda node, ctx: {ctx.stage_field("total"): {"$gt": node["over"]}},
                           stages=lambda node, ctx: [{"$addFields": {"total": {"$strLenCP": "$email"}}}]))


def staging(field: str, stages: list[dict], query: dict | None = None):
    """A plugin whose condition ``field`` contributes ``stages`` and ``query`` (default: everyone)."""
    class Plugin:
        @hookimpl
        def segmentql_register_conditions(self, register):
            register(Condition(field=field, input_type=StageInput, description="Emits fixed stages.",
                               validate=lambda node, ctx: None, compile=lambda node, ctx: dict(query or {}),
                               stages=lambda node, ctx: stages))
    return Plugin()


LOOKUP = {"from": ORDERS, "localField": "id", "foreignField": "contact_id", "as": "o"}
# field -> (plugin, stages, what the refusal names)
REFUSED = {
    "grouping": ("grouping", [{"$group": {"_id": "$country"}}], "returned a $group stage"),
    "merging": ("merging", [{"$merge": {"into": "contacts"}}], "returned a stage with $merge"),
    "undeclared": ("undeclared", [{"$lookup": {**LOOKUP, "from": "contacts"}}],
                   "$lookup on the collection 'contacts', which plugin 'undeclared' does not declare"),
    "borrowed": ("borrowed", [{"$lookup": LOOKUP}],
                 f"$lookup on the collection '{ORDERS}', which plugin 'borrowed' does not declare"),
    "piped": ("piped", [{"$lookup": {**LOOKUP, "pipeline": [{"$match": {}}]}}],
              "returned a $lookup stage that is not {from, localField, foreignField, as}"),
    "dotted": ("dotted", [{"$set": {"stats.opens": 1}}], "adding the field 'stats.opens'"),
    "scripted": ("scripted", [{"$addFields": {"x": {"$function": {"body": "1", "args": [], "lang": "js"}}}}],
                 "returned a stage with $function, which no condition may use"),
}


def refusing_plugins() -> list[tuple[str, object]]:
    return [(plugin, staging(field, stages)) for field, (plugin, stages, _) in REFUSED.items()]
