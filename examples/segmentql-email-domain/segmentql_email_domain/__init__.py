"""``emailDomain``: the part of the contact's email address after the last "@",
compared case-insensitively with a list of domains."""

import strawberry

from segmentql.plugins import Condition, Observation, RuleError, hookimpl, listing, literal, require_exactly_one


@strawberry.input(description="The domain of the contact's email address (case-insensitive). "
                              "Give exactly one of `in` and `notIn`.")
class EmailDomainCondition:
    in_: list[str] | None = strawberry.field(
        name="in", default=strawberry.UNSET, description="The email's domain is one of these, e.g. example.com.")
    not_in: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="The email's domain is none of these.")


def validate(node, ctx) -> None:
    operator = require_exactly_one(node, ("in", "notIn"))
    for domain in node[operator]:
        if "@" in domain or not domain.strip():
            raise RuleError(f"{domain!r} is not a domain; give the part after the @")


# The email's domain, lower-cased: one expression both decides and explains.
DOMAIN = {"$toLower": {"$arrayElemAt": [{"$split": ["$email", "@"]}, -1]}}


def _domains(node) -> list[str]:
    return [d.strip().lower() for d in node.get("in") or node["notIn"]]


def compile(node, ctx) -> dict:
    test = {"$in": [DOMAIN, literal(_domains(node))]}
    return {"$expr": test if node.get("in") is not None else {"$not": [test]}}


def observe(node, ctx) -> list[Observation]:
    """What ``explainMembership`` shows for this node: the contact's domain."""
    needed = f"{'one' if node.get('in') is not None else 'none'} of {listing(_domains(node))}"
    return [Observation("email domain", DOMAIN, needed)]


SEGMENTQL_API_VERSION = "1.0"  # the plugin API this module is written for


@hookimpl
def segmentql_register_conditions(register):
    register(Condition(field="emailDomain", input_type=EmailDomainCondition, validate=validate, compile=compile,
                       observe=observe, description="The domain of the contact's email address."))
