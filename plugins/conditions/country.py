"""``country``: the contact's country is (not) one of a list of ISO codes."""

from .. import Condition, hookimpl
from .common import SetCondition, set_observation, set_query, validate_set


def compile_country(node, _ctx) -> dict:
    return set_query("country", node, (code.upper() for code in node.get("in") or node.get("notIn")))


def observe_country(node, _ctx) -> list:
    return set_observation("country", "country", node)


@hookimpl
def segmentql_register_conditions(register):
    register(Condition(
        field="country", input_type=SetCondition, validate=validate_set, compile=compile_country,
        observe=observe_country,
        description="The contact's country (ISO 3166-1 alpha-2 code, compared upper-case), "
                    "e.g. `{in: [\"US\", \"CA\"]}`."))
