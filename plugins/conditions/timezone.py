"""``timezone``: the contact's IANA time zone is (not) one of a list, where the
US abbreviations PST MST CST EST AKST HST stand for every US, CA and MX zone
of ``zone.tab`` whose standard (January) UTC offset is -8 ... -10."""

import datetime as dt
from collections.abc import Iterable
from functools import cache
from importlib import resources
from zoneinfo import ZoneInfo

from .. import Condition, Observation, hookimpl
from ..api import CompileContext, Node, Query, Register
from .common import SetCondition, set_observation, set_query, validate_set

ABBREVIATION_OFFSETS = {"PST": -8, "MST": -7, "CST": -6, "EST": -5, "AKST": -9, "HST": -10}
NORTH_AMERICA = {"US", "CA", "MX"}


@cache
def zones_by_abbreviation() -> dict[str, tuple[str, ...]]:
    """Abbreviation -> zones, from the zone.tab shipped with tzdata. The offset
    is taken on 1 January (standard time in the northern hemisphere)."""
    table = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text()
    year = dt.datetime.now(dt.UTC).year
    found: dict[str, list[str]] = {abbr: [] for abbr in ABBREVIATION_OFFSETS}
    for line in table.splitlines():
        if not line or line.startswith("#"):
            continue
        code, _coords, zone = line.split("\t")[:3]
        if code not in NORTH_AMERICA:
            continue
        standard = dt.datetime(year, 1, 1, 12, tzinfo=ZoneInfo(zone)).utcoffset()
        assert standard is not None  # a ZoneInfo knows the offset of every instant
        hours = standard.total_seconds() / 3600
        for abbr, offset in ABBREVIATION_OFFSETS.items():
            if hours == offset:
                found[abbr].append(zone)
    return {abbr: tuple(sorted(zones)) for abbr, zones in found.items()}


def expand(values: Iterable[str]) -> list[str]:
    zones = zones_by_abbreviation()
    out: dict[str, None] = {}
    for value in values:
        out.update(dict.fromkeys(zones.get(value, (value,))))
    return list(out)


def compile_timezone(node: Node, _ctx: CompileContext) -> Query:
    return set_query("timezone", node, expand(node.get("in") or node["notIn"]))


def observe_timezone(node: Node, _ctx: CompileContext) -> list[Observation]:
    return set_observation("time zone", "timezone", node)


SEGMENTQL_API_VERSION = "1.0"  # the plugin API this module is written for


@hookimpl
def segmentql_register_conditions(register: Register) -> None:
    register(Condition(
        field="timezone", input_type=SetCondition, validate=validate_set, compile=compile_timezone,
        observe=observe_timezone,
        description="The contact's time zone: IANA names (`America/Chicago`) or the abbreviations "
                    "PST, MST, CST, EST, AKST, HST, each meaning every US, Canadian and Mexican zone "
                    "with that standard UTC offset (so MST includes America/Phoenix)."))
