"""``lastOpenDevice``: the device of the contact's latest open."""

import strawberry

from .. import Condition, Device, Observation, hookimpl, listing


@strawberry.input(description="The device of the contact's latest OPEN is one of these.")
class DeviceCondition:
    in_: list[Device] = strawberry.field(name="in", description="Devices that match.")


def validate_device(_node, _ctx) -> None:
    """Nothing beyond the schema: the list is required and non-empty lists are checked by the core."""


def compile_device(node, _ctx) -> dict:
    return {"stats.lastOpenDevice": {"$in": list(node["in"])}}


def observe_device(node, _ctx) -> list:
    return [Observation("device of the latest open", "$stats.lastOpenDevice", f"one of {listing(node['in'])}")]


@hookimpl
def segmentql_register_conditions(register):
    register(Condition(
        field="lastOpenDevice", input_type=DeviceCondition, validate=validate_device, compile=compile_device,
        observe=observe_device,
        description="The device of the latest open (ties at the same instant: the greatest event id). "
                    "An open without a device, or no open at all, matches nothing."))
