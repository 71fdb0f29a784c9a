"""``country``: the contact's country is (not) one of a list of ISO codes."""

from .. import Condition, Observation, hookimpl
from ..api import CompileContext, Node, Query, Register
from .common import SetCondition, set_observation, set_query, validate_set


def compile_country(node: Node, _ctx: CompileContext) -> Query:
    return set_query("country", node, (code.upper() for code in node.get("in") or node["notIn"]))


def observe_country(node: Node, _ctx: CompileContext) -> list[Observation]:
    return set_observation("country", "country", node)


SEGMENTQL_API_VERSION = "1.0"  # the plugin API this module is written for


@hookimpl
def segmentql_register_conditions(register: Register) -> None:
    register(Condition(
        field="country", input_type=SetCondition, validate=validate_set, compile=compile_country,
        observe=observe_country,
        description="The contact's country (ISO 3166-1 alpha-2 code, compared upper-case), "
                    "e.g. `{in: [\"US\", \"CA\"]}`."))
