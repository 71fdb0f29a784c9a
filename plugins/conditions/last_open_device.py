"""``lastOpenDevice``: the device of the contact's latest open."""

import strawberry

from .. import Condition, Device, Observation, hookimpl, listing
from ..api import CompileContext, Node, Query, Register, ValidationContext


@strawberry.input(description="The device of the contact's latest OPEN is one of these.")
class DeviceCondition:
    in_: list[Device] = strawberry.field(name="in", description="Devices that match.")


def validate_device(_node: Node, _ctx: ValidationContext) -> None:
    """Nothing beyond the schema: the list is required and non-empty lists are checked by the core."""


def compile_device(node: Node, _ctx: CompileContext) -> Query:
    return {"stats.lastOpenDevice": {"$in": list(node["in"])}}


def observe_device(node: Node, _ctx: CompileContext) -> list[Observation]:
    return [Observation("device of the latest open", "$stats.lastOpenDevice", f"one of {listing(node['in'])}")]


SEGMENTQL_API_VERSION = "1.0"  # the plugin API this module is written for


@hookimpl
def segmentql_register_conditions(register: Register) -> None:
    register(Condition(
        field="lastOpenDevice", input_type=DeviceCondition, validate=validate_device, compile=compile_device,
        observe=observe_device,
        description="The device of the latest open (ties at the same instant: the greatest event id). "
                    "An open without a device, or no open at all, matches nothing."))
