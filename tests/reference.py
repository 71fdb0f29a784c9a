"""A straightforward reference evaluator of SPEC section 5, written from the
specification alone: it reads the raw data set (fields, contacts, campaigns,
events in the import format) and decides membership contact by contact in
plain Python. It shares no code with the service (no rollups, no compiler),
so the differential tests compare two independent readings of the spec.
"""

import calendar
import datetime as dt
import json
from collections import Counter
from datetime import UTC
from pathlib import Path
from zoneinfo import ZoneInfo

WEEKDAYS = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
METRIC_TYPES = {"OPENS": "OPEN", "CLICKS": "CLICK", "CONVERSIONS": "CONVERSION"}
ACTIVITY_TYPES = {"OPENED": {"OPEN"}, "CLICKED": {"CLICK"}, "CONVERTED": {"CONVERSION"},
                  "ANY": {"OPEN", "CLICK", "CONVERSION"}}
TIERS = {"HOT": (80, 100), "WARM": (50, 79), "COLD": (0, 49)}
ABBREVIATIONS = {"PST": -8, "MST": -7, "CST": -6, "EST": -5, "AKST": -9, "HST": -10}


def parse_time(text: str) -> dt.datetime:
    if len(text) == 10:
        return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _zone_tab() -> list[tuple[str, str]]:
    import tzdata  # the IANA data the spec refers to, read independently of the service
    text = (Path(tzdata.__file__).parent / "zoneinfo" / "zone.tab").read_text()
    return [(line.split("\t")[0], line.split("\t")[2]) for line in text.splitlines()
            if line and not line.startswith("#")]


def abbreviation_zones(abbr: str) -> set[str]:
    year = dt.datetime.now(dt.UTC).year
    return {zone for code, zone in _zone_tab() if code in ("US", "CA", "MX")
            and dt.datetime(year, 1, 1, 12, tzinfo=ZoneInfo(zone)).utcoffset()
            == dt.timedelta(hours=ABBREVIATIONS[abbr])}


class Dataset:
    def __init__(self, fields: dict, contacts: list[dict], campaigns: list[dict], events: list[dict]):
        self.fields = fields
        self.contacts = {c["id"]: c for c in contacts}
        self.campaigns = {c["id"]: {**c, "sentAt": parse_time(c["sentAt"])} for c in campaigns}
        self.campaign_by_name = {c["name"]: c for c in self.campaigns.values()}
        self.events: dict[str, list[dict]] = {cid: [] for cid in self.contacts}
        seen = set()
        for ev in events:
            if ev["id"] in seen or ev["contactId"] not in self.contacts:
                continue
            seen.add(ev["id"])
            self.events[ev["contactId"]].append({**ev, "at": parse_time(ev["at"])})
        self.zones = {abbr: abbreviation_zones(abbr) for abbr in ABBREVIATIONS}

    @classmethod
    def load(cls, directory: Path) -> "Dataset":
        def ndjson(name):
            return [json.loads(line) for line in (directory / name).read_text().splitlines() if line.strip()]
        fields = {f["key"]: f["type"] for f in json.loads((directory / "fields.json").read_text())}
        return cls(fields, ndjson("contacts.ndjson"), ndjson("campaigns.ndjson"), ndjson("events.ndjson"))

    def custom(self, contact: dict, key: str):
        """The stored value of a custom field as the spec defines it, or None."""
        value = (contact.get("customFields") or {}).get(key)
        if value is None:
            return None
        kind = self.fields[key]
        if kind == "DATE":
            return parse_time(value)
        if kind == "MULTI_SELECT":
            return set(value)
        if kind == "NUMBER":
            return float(value)
        return value

    def members(self, rule: dict, as_of: dt.datetime) -> set[str]:
        today = as_of.astimezone(UTC).date()
        return {cid for cid, c in self.contacts.items() if self.matches(rule, c, today)}

    # -- evaluation ------------------------------------------------------------------

    def matches(self, rule: dict, c: dict, today: dt.date) -> bool:
        (kind, node), = rule.items()
        if kind == "all":
            return all(self.matches(r, c, today) for r in node)
        if kind == "any":
            return any(self.matches(r, c, today) for r in node)
        if kind == "not":
            return not self.matches(node, c, today)
        return getattr(self, f"_{kind}")(node, c, today)

    def _country(self, node, c, _today):
        value = (c.get("country") or "").upper() or None
        if "in" in node:
            return value in {v.upper() for v in node["in"]}
        return value not in {v.upper() for v in node["notIn"]}

    def _timezone(self, node, c, _today):
        names = node.get("in", node.get("notIn"))
        zones = set()
        for name in names:
            zones |= self.zones.get(name, {name})
        inside = c.get("timezone") in zones
        return inside if "in" in node else not inside

    def _tags(self, node, c, _today):
        tags = set(c.get("tags") or [])
        ok = True
        if "includesAny" in node:
            ok &= bool(tags & set(node["includesAny"]))
        if "includesAll" in node:
            ok &= set(node["includesAll"]) <= tags
        if "excludes" in node:
            ok &= not (tags & set(node["excludes"]))
        return ok

    @staticmethod
    def _compare(left, comparison, right) -> bool:
        return {"EQ": left == right, "NE": left != right, "GT": left > right, "GTE": left >= right,
                "LT": left < right, "LTE": left <= right}[comparison]

    def _engagement(self, node, c, today):
        return self._compare(self.engagement_count(node, c, today), node["comparison"], node["value"])

    def engagement_count(self, node, c, today) -> int:
        """The number an engagement node compares: its events, on its device, in its window."""
        kind = METRIC_TYPES[node["metric"]]
        count = 0
        for ev in self.events[c["id"]]:
            if ev["type"] != kind:
                continue
            if node.get("device") and ev.get("device") != node["device"]:
                continue
            if node.get("withinDays"):
                day = ev["at"].date()
                if not today - dt.timedelta(days=node["withinDays"] - 1) <= day <= today:
                    continue
            count += 1
        return count

    def _recency(self, node, c, today):
        kinds = ACTIVITY_TYPES[node["activity"]]
        times = [ev["at"] for ev in self.events[c["id"]] if ev["type"] in kinds]
        if not times:
            return node.get("moreThanDaysAgo") is not None and node.get("includeNever", True)
        day = max(times).date()
        if node.get("withinDays") is not None:
            return today - dt.timedelta(days=node["withinDays"] - 1) <= day <= today
        return day <= today - dt.timedelta(days=node["moreThanDaysAgo"])

    def _lastOpenDevice(self, node, c, _today):
        opens = [ev for ev in self.events[c["id"]] if ev["type"] == "OPEN"]
        if not opens:
            return False
        last = max(opens, key=lambda ev: (ev["at"], ev["id"]))
        return last.get("device") in node["in"]

    def _openHabits(self, node, c, _today):
        opens = [ev for ev in self.events[c["id"]] if ev["type"] == "OPEN"]
        if not opens:
            return False
        zone = ZoneInfo(c["timezone"]) if c.get("timezone") else UTC
        local = [ev["at"].astimezone(zone) for ev in opens]
        ok = True
        if node.get("hourFrom") is not None or node.get("hourTo") is not None:
            hours = Counter(t.hour for t in local)
            top = min(hours, key=lambda h: (-hours[h], h))
            start, end = node.get("hourFrom", 0), node.get("hourTo", 24)
            ok &= (start <= top < end) if start <= end else (top >= start or top < end)
        if node.get("weekdays"):
            days = Counter(t.isoweekday() for t in local)
            top = min(days, key=lambda d: (-days[d], d))
            ok &= WEEKDAYS[top - 1] in node["weekdays"]
        return ok

    def _campaign(self, node, c, today):
        events = self.events[c["id"]]
        received = {ev["campaignId"] for ev in events if ev["type"] == "SENT" and ev.get("campaignId")}
        if node.get("campaignId") is not None:
            campaign = self.campaigns.get(node["campaignId"])
        elif node.get("campaignName") is not None:
            campaign = self.campaign_by_name.get(node["campaignName"])
        else:
            got = [self.campaigns[i] for i in received]
            campaign = max(got, key=lambda x: (x["sentAt"], x["id"])) if got else None
        if campaign is None or campaign["id"] not in received:
            return False
        mine = [ev for ev in events if ev.get("campaignId") == campaign["id"]]
        opens = sum(ev["type"] == "OPEN" for ev in mine)
        clicks = [ev for ev in mine if ev["type"] == "CLICK"]
        if node.get("opened") is not None and (opens > 0) != node["opened"]:
            return False
        if node.get("clicked") is not None and bool(clicks) != node["clicked"]:
            return False

        def clicked_containing(text):
            return any(text.lower() in (ev.get("url") or "").lower() for ev in clicks if ev.get("url"))

        if node.get("clickedUrlContains") is not None and not clicked_containing(node["clickedUrlContains"]):
            return False
        if node.get("notClickedUrlContains") is not None and clicked_containing(node["notClickedUrlContains"]):
            return False
        if node.get("daysSinceSent") is not None:
            days = (today - campaign["sentAt"].date()).days
            if not self._compare(days, node["daysSinceSent"]["comparison"], node["daysSinceSent"]["value"]):
                return False
        return True

    def _leadScore(self, node, c, _today):
        score = c.get("leadScore")
        if score is None:
            return False
        low, high = TIERS[node["tier"]] if node.get("tier") else (node.get("min"), node.get("max"))
        return (low is None or score >= low) and (high is None or score <= high)

    def _numericRange(self, node, c, _today):
        value = self.custom(c, node["field"])
        if value is None:
            return False
        if node.get("comparison") is not None:
            return self._compare(value, node["comparison"], node["value"])
        return ((node.get("min") is None or value >= node["min"])
                and (node.get("max") is None or value <= node["max"]))

    def _operand(self, key, raw):
        kind = self.fields[key]
        if kind == "DATE":
            return parse_time(raw).date()
        if kind == "MULTI_SELECT":
            return set(raw)
        if kind == "NUMBER":
            return float(raw)
        return raw

    def _customField(self, node, c, _today):
        key = node["field"]
        value = self.custom(c, key)
        if isinstance(value, dt.datetime):
            value = value.date()
        if "exists" in node:
            return (key in (c.get("customFields") or {}) and c["customFields"][key] is not None) == node["exists"]
        if "equals" in node:
            return value is not None and value == self._operand(key, node["equals"])
        if "notEquals" in node:
            return value is None or value != self._operand(key, node["notEquals"])
        if "containsAny" in node:
            return value is not None and bool(value & set(node["containsAny"]))
        if "containsAll" in node:
            return value is not None and set(node["containsAll"]) <= value
        return value is None or not (value & set(node["containsNone"]))

    def _dateRange(self, node, c, today):
        value = self.custom(c, node["field"])
        if value is None:
            return False
        day = value.date()
        if node.get("fromDays") is not None and day < today + dt.timedelta(days=node["fromDays"]):
            return False
        if node.get("toDays") is not None and day > today + dt.timedelta(days=node["toDays"]):
            return False
        if node.get("after") is not None and not value > parse_time(node["after"]):
            return False
        return node.get("before") is None or value < parse_time(node["before"])

    def _dateAnniversary(self, node, c, today):
        value = self.custom(c, node["field"])
        if value is None:
            return False
        date = value.date()

        def anniversary(year):
            day = date.day
            if date.month == 2 and day == 29 and not calendar.isleap(year):
                day = 28
            return dt.date(year, date.month, day)

        window = node["window"]
        if window == "TODAY":
            return date.year < today.year and anniversary(today.year) == today
        if window == "THIS_MONTH":
            return date.year < today.year and anniversary(today.year).month == today.month
        if window == "THIS_WEEK":
            first = today - dt.timedelta(days=today.isoweekday() - 1)
            last = first + dt.timedelta(days=6)
        else:
            first, last = today, today + dt.timedelta(days=node["days"])
        return any(first <= anniversary(y) <= last for y in range(max(date.year + 1, first.year), last.year + 1))
