"""``campaign``: what a contact did with one campaign it received.

Each contact's rollup keeps one summary per campaign (``stats.campaigns``),
with the campaign's name and sentAt and the ``latest`` flag, so every
selector is a key of one ``$elemMatch``. Only "clicked a url containing S"
needs ``$expr`` (a literal substring test, never a pattern), and it runs only
on contacts whose summary already passed the ``$elemMatch``.
"""

import strawberry

from .. import Condition, Observation, RuleError, hookimpl, literal, needs, require_exactly_one, require_some
from ..api import CompileContext, Node, Query, Register, ValidationContext
from .common import MAX_DAYS, IntComparison, require_days

SELECTORS = ("campaignId", "campaignName", "latest")
PARTS = ("opened", "clicked", "clickedUrlContains", "notClickedUrlContains", "daysSinceSent")


@strawberry.input(description="What a contact did with one campaign it received (has a SENT event for). "
                              "Select the campaign with exactly one of `campaignId`, `campaignName`, "
                              "`latest`; every other part given must hold, counting only that campaign's events.")
class CampaignCondition:
    campaign_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="Select the campaign by its id.")
    campaign_name: str | None = strawberry.field(
        default=strawberry.UNSET, description="Select the campaign by its exact name (names are unique).")
    latest: bool | None = strawberry.field(
        default=strawberry.UNSET,
        description="`true`: the newest campaign (by sentAt; ties: greatest id) the contact received.")
    opened: bool | None = strawberry.field(
        default=strawberry.UNSET, description="true: opened it at least once; false: never opened it.")
    clicked: bool | None = strawberry.field(
        default=strawberry.UNSET, description="true: clicked at least one link; false: clicked none.")
    clicked_url_contains: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="Clicked a link whose url contains this text (case-insensitive; literal text, not a pattern).")
    not_clicked_url_contains: str | None = strawberry.field(
        default=strawberry.UNSET, description="Clicked no link whose url contains this text (case-insensitive).")
    days_since_sent: IntComparison | None = strawberry.field(
        default=strawberry.UNSET,
        description=f"Compares the number of UTC days from the campaign's sentAt day to today with a value "
                    f"from {-MAX_DAYS} to {MAX_DAYS}.")


def validate_campaign(node: Node, _ctx: ValidationContext) -> None:
    require_exactly_one(node, SELECTORS)
    if node.get("latest") is False:
        raise RuleError("`latest` can only be true; select another campaign with `campaignId` or `campaignName`")
    require_some(node, PARTS)
    for name in ("clickedUrlContains", "notClickedUrlContains"):
        if node.get(name) == "":
            raise RuleError(f"`{name}` must not be empty")
    if node.get("daysSinceSent") is not None:
        require_days(node["daysSinceSent"]["value"], "`daysSinceSent.value`", -MAX_DAYS)


def _sent_at_bounds(comparison: str, value: int, ctx: CompileContext) -> Query:
    """daysSinceSent = D - day(sentAt), compared with value, as bounds on sentAt."""
    day = ctx.today - value  # the sentAt day at which daysSinceSent == value
    start, end = ctx.day_start(day), ctx.day_start(day + 1)
    bounds: dict[str, Query] = {
        "EQ": {"$gte": start, "$lt": end},
        "NE": {"$not": {"$gte": start, "$lt": end}},
        "GT": {"$lt": start},
        "GTE": {"$lt": end},
        "LT": {"$gte": end},
        "LTE": {"$gte": start},
    }
    return bounds[comparison]


def _selector(node: Node) -> tuple[str, str | bool]:
    if node.get("campaignId") is not None:
        return "id", node["campaignId"]
    if node.get("campaignName") is not None:
        return "name", node["campaignName"]
    return "latest", True


def _clicked_url_containing(text: str) -> Query:
    """$expr on one summary ``$$c``: a clicked url contains ``text`` (urls are stored lower-cased)."""
    return {"$anyElementTrue": [{"$map": {
        "input": "$$c.urls", "as": "u",
        "in": {"$gte": [{"$indexOfCP": ["$$u", literal(text.lower())]}, 0]}}}]}


def compile_campaign(node: Node, ctx: CompileContext) -> Query:
    key, value = _selector(node)
    summary: Query = {key: value, "received": True}
    if node.get("opened") is not None:
        summary["opens"] = {"$gt": 0} if node["opened"] else 0
    if node.get("clicked") is not None:
        summary["clicks"] = {"$gt": 0} if node["clicked"] else 0
    elif node.get("clickedUrlContains") is not None:
        # Implied (a clicked url comes from a click), and it leaves the
        # per-document url test below to the few contacts who clicked.
        summary["clicks"] = {"$gt": 0}
    if node.get("daysSinceSent") is not None:
        summary["sentAt"] = _sent_at_bounds(node["daysSinceSent"]["comparison"], node["daysSinceSent"]["value"], ctx)
    query: Query = {"stats.campaigns": {"$elemMatch": summary}}
    if key != "latest":
        # Implied by the $elemMatch, and a plain predicate on an indexed field:
        # the compiler can lead with it, so only the campaign's contacts are read.
        query = {f"stats.campaigns.{key}": value, **query}
    url_tests = []
    if node.get("clickedUrlContains") is not None:
        url_tests.append(_clicked_url_containing(node["clickedUrlContains"]))
    if node.get("notClickedUrlContains") is not None:
        url_tests.append({"$not": [_clicked_url_containing(node["notClickedUrlContains"])]})
    if not url_tests:
        return query
    # The selector picks at most one summary, so testing the urls of the
    # selected one after the $elemMatch is the same as testing them inside it.
    selected = {"$filter": {"input": "$stats.campaigns", "as": "c", "cond": {"$eq": [f"$$c.{key}", literal(value)]}}}
    return {"$and": [query, {"$expr": {"$anyElementTrue": [{"$map": {
        "input": selected, "as": "c", "in": {"$and": url_tests}}}]}}]}


SUMMARY_FIELDS = ("id", "name", "sentAt", "received", "opens", "clicks", "urls")


def observe_campaign(node: Node, ctx: CompileContext) -> list[Observation]:
    """The selected campaign's summary (null when the contact has none) and what the node needs of it."""
    key, value = _selector(node)
    selected = {"$filter": {"input": {"$ifNull": ["$stats.campaigns", []]}, "as": "c",
                            "cond": {"$eq": [f"$$c.{key}", literal(value)]}}}
    summary = {"$arrayElemAt": [{"$map": {"input": selected, "as": "c",
                                          "in": {f: f"$$c.{f}" for f in SUMMARY_FIELDS}}}, 0]}
    needed = ["received"]
    for name, yes, no in (("opened", "opens > 0", "opens = 0"), ("clicked", "clicks > 0", "clicks = 0")):
        if node.get(name) is not None:
            needed.append(yes if node[name] else no)
    if node.get("clickedUrlContains") is not None:
        needed.append(f"a clicked url contains {node['clickedUrlContains']!r}")
    if node.get("notClickedUrlContains") is not None:
        needed.append(f"no clicked url contains {node['notClickedUrlContains']!r}")
    if node.get("daysSinceSent") is not None:
        since = node["daysSinceSent"]
        needed.append(f"days since sent {needs(since['comparison'], since['value'])} "
                      f"(today is {ctx.today_date.isoformat()})")
    label = {"id": f"campaign {value}", "name": f"campaign named {value!r}", "latest": "latest campaign received"}[key]
    return [Observation(label, summary, ", ".join(needed))]


SEGMENTQL_API_VERSION = "1.0"  # the plugin API this module is written for


@hookimpl
def segmentql_register_conditions(register: Register) -> None:
    register(Condition(
        field="campaign", input_type=CampaignCondition, validate=validate_campaign, compile=compile_campaign,
        observe=observe_campaign,
        description="Opens, clicks, clicked links and age of one campaign the contact received."))
