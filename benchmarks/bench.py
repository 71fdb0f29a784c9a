"""segmentql benchmark: ratios measured side by side in one run, on the
embedded database, with data from ../shared/datagen.py (or the vendored copy).

    python benchmarks/bench.py --contacts 10000 [--contacts 5000 --contacts 20000] [--repeat 5]

For each size it prints:
  import ratio      `segmentql import` time / raw insert_many of the same documents
                    into the same server (collections with the same indexes)
  scan ratio        each seed segment's segmentPreview{count} over HTTP / one bare
                    full scan of contacts with a trivial per-document $expr, the two
                    timed alternately in the same rounds
  GraphQL overhead  HTTP time minus direct driver time of the pipeline explainSegment
                    returns, timed in pairs (median of all the differences; segments
                    faster than FAST_S get OVERHEAD_PAIRS more pairs, where the
                    difference stands out of the noise), also per segment
  concurrency       8 previews at once vs one after another, through the service and
                    straight through the driver: equal speedups mean the service adds
                    no serialisation of its own
  index use         explain executionStats of selective segments
  ingest stall      a small preview's latency while a 10,000-event recordEvents is ingested, over its idle latency
  insight           cost of breakdown, explainMembership, snapshots and their diff,
                    an A/B split, analytics and sizeHistory, each with its ratio to
                    the same segment's count
  isolation         another workspace's small count, idle and while clients of the bench
                    workspace send the worst requests of issue 14 (refused by the cost
                    budget) and the heaviest it allows: its median and max latency
  live              live segments, on two fresh workspaces importing the same data, one
                    with LIVE_SEGMENTS saved segments (the seed rules, a ~half-size
                    leadScore segment, NOTs of seed rules), one with none:
                    - ingest: the same recordEvents batches (LIVE_BATCH_EVENTS events of
                      LIVE_BATCH_CONTACTS contacts, dated within the last 30 days) sent to
                      both, alternately; ratio = events/s with segments / without (>= 0.5)
                    - count: each saved segment's stored `count` vs segmentPreview{count}
                      of its rule, alternately; ratio of the two (<= 0.05)
                    - export: the half-size segment as /v1/segments/{id}/members.ndjson vs
                      paging its members {id email} through GraphQL, 1000 at a time;
                      ratio = GraphQL time / export time (>= 10)
                    - refresh: the day-boundary refresh of every saved segment
                      (LiveSegments.refresh as of a later day, in this process, no HTTP;
                      also `segmentql refresh-segments --as-of` with its process start)
                      vs the sum of their segmentPreview{count} as of the same instant
                      (<= 1.5)
  delivery          changes delivered, on two fresh workspaces importing the same data with
                    the live part's saved segments, one with a webhook (to a receiver on
                    loopback answering 204) and a subscriber (segmentChanges over
                    WebSocket, every segment) attached, one with neither:
                    - ingest: DELIVERY_EVENTS events per round (DELIVERY_BATCHES
                      recordEvents) to both, alternately; ratio = events/s with / without
                      (>= 0.8)
                    - latency: from the POST of an upsertContacts making a new contact
                      enter a segment to the subscriber receiving the change (median,
                      target < 1 s)
  stages            a plugin condition contributing stages (the purchases example's `purchased`:
                    a `$lookup` on its own collection, then a `$set`), with PURCHASE_SHARE of
                    the contacts having STAGE_PURCHASES purchases each:
                    - alone: `purchased {sku}` vs a scan reading every contact (`timezone`), each
                      counted alternately; ratio = stage count / scan count
                    - narrowed: `leadScore HOT AND purchased` vs `leadScore HOT` alone
                      (the stage runs only on what the indexed clause finds); ratio
Machine noise affects both sides of each ratio alike; medians of --repeat rounds.
"""

import argparse
import asyncio
import datetime as dt
import functools
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bson import json_util
from pymongo import AsyncMongoClient, MongoClient

REPO = Path(__file__).resolve().parents[1]
SEEDS = json.loads((REPO / "schema" / "seed-segments.json").read_text())["segments"]
AS_OF = "2026-11-28T12:00:00Z"
DATABASE = "segmentql_bench"
COUNT = "query($r: RuleInput!, $a: DateTime) { segmentPreview(rule: $r, asOf: $a) { count } }"
EXPLAIN = "query($r: RuleInput!, $a: DateTime) { explainSegment(rule: $r, asOf: $a) }"
TRIVIAL_SCAN = [{"$match": {"$expr": {"$eq": [1, 1]}}}, {"$count": "n"}]
FAST_S = 0.5
OVERHEAD_PAIRS = 20
SELECTIVE = {"hot_leads": {"leadScore": {"tier": "HOT"}},
             "campaign_clickers": next(s["rule"] for s in SEEDS if s["name"] == "pricing_not_demo")}


def cli(*args, env):
    return subprocess.run([sys.executable, "-m", "segmentql.cli", *args], env=env, check=True,
                          capture_output=True, text=True)


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_insert_seconds(uri: str, data: Path) -> float:
    """insert_many of the same documents (contacts, campaigns, events) into a
    scratch database whose collections have segmentql's indexes (the data set
    declares no custom field `indexed`, so those are all)."""
    from segmentql.server.database import INDEXES

    client = MongoClient(uri)
    db = client["segmentql_bench_raw"]
    client.drop_database(db.name)
    for name, models in INDEXES.items():
        db[name].create_indexes(models)
    docs = {name: [json.loads(line) for line in (data / f"{name}.ndjson").read_text().splitlines()]
            for name in ("contacts", "campaigns", "events")}
    start = time.perf_counter()
    for name, items in docs.items():
        for i in range(0, len(items), 2000):
            db[name].insert_many([{**d, "workspace_id": "w"} for d in items[i:i + 2000]], ordered=False)
    elapsed = time.perf_counter() - start
    client.drop_database(db.name)
    client.close()
    return elapsed


class Service:
    """The running service: GraphQL over HTTP, and the explained pipelines through the driver."""

    def __init__(self, url: str, key: str, uri: str):
        self.url, self.key = url, key
        self.http = httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=600)
        self.mongo = MongoClient(uri)
        self.contacts = self.mongo[DATABASE]["contacts"]

    def graphql(self, query: str, **variables) -> dict:
        body = self.http.post(self.url, json={"query": query, "variables": variables}).json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]

    def pipeline(self, rule) -> list:
        explained = self.graphql(EXPLAIN, r=rule, a=AS_OF)["explainSegment"]
        return json_util.loads(json.dumps(explained["pipeline"]))

    def close(self):
        self.http.close()
        self.mongo.close()


def http_count(service: Service, rule: dict) -> float:
    """Seconds of one segmentPreview count over HTTP."""
    return seconds(lambda: service.graphql(COUNT, r=rule, a=AS_OF))


def driver_run(service: Service, pipeline: list) -> float:
    """Seconds of one run of a pipeline through the driver, without the service."""
    return seconds(lambda: list(service.contacts.aggregate(pipeline)))


def measure_scans(service: Service, repeat: int) -> dict:
    """Per seed segment, `repeat` rounds of: trivial scan, HTTP count, driver run
    of its pipeline. The GraphQL overhead is the difference of an HTTP count and
    a driver run taken one right after the other (in alternating order); a
    segment that runs in under FAST_S gets OVERHEAD_PAIRS more such pairs, as
    there the difference is not lost in the noise of two long runs."""
    def scan():
        return seconds(lambda: list(service.contacts.aggregate(TRIVIAL_SCAN)))

    segments, pairs_all = [], []
    for seg in SEEDS:
        pipeline = service.pipeline(seg["rule"])
        service.graphql(COUNT, r=seg["rule"], a=AS_OF)  # warm
        http = functools.partial(http_count, service, seg["rule"])
        driver = functools.partial(driver_run, service, pipeline)
        rounds = [(scan(), http(), driver()) for _ in range(repeat)]
        scan_s, http_s, driver_s = (statistics.median(r[i] for r in rounds) for i in range(3))
        pairs = [h - d for _, h, d in rounds]
        if driver_s < FAST_S:
            for i in range(OVERHEAD_PAIRS):
                if i % 2:
                    d = driver()
                    pairs.append(http() - d)
                else:
                    pairs.append(http() - driver())
        pairs_all += pairs
        segments.append({"name": seg["name"], "http_ms": round(http_s * 1000, 1),
                         "driver_ms": round(driver_s * 1000, 1), "trivial_scan_ms": round(scan_s * 1000, 1),
                         "scan_ratio": round(http_s / scan_s, 2),
                         "graphql_overhead_ms": round(statistics.median(pairs) * 1000, 1),
                         "overhead_pairs": len(pairs)})
    ratios = [s["scan_ratio"] for s in segments]
    fast = [s["graphql_overhead_ms"] for s in segments if s["driver_ms"] < FAST_S * 1000]
    return {"segments": segments, "worst_ratio": max(ratios), "median_ratio": round(statistics.median(ratios), 2),
            "median_graphql_overhead_ms": round(statistics.median(pairs_all) * 1000, 1),
            "median_graphql_overhead_ms_per_segment": round(statistics.median(
                s["graphql_overhead_ms"] for s in segments), 1),
            "median_graphql_overhead_ms_fast_segments": round(statistics.median(fast), 1) if fast else None}


def measure_concurrency(service: Service, uri: str, repeat: int) -> dict:
    rules = [s["rule"] for s in SEEDS[:8]]
    pipelines = [service.pipeline(r) for r in rules]

    async def via_http(together: bool):
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {service.key}"}, timeout=600) as client:
            calls = [lambda r=r: client.post(service.url, json={"query": COUNT, "variables": {"r": r, "a": AS_OF}})
                     for r in rules]
            await run(calls, together)

    async def via_driver(together: bool):
        client = AsyncMongoClient(uri)
        coll = client[DATABASE]["contacts"]

        async def one(p):
            return await (await coll.aggregate(p)).to_list()
        await run([lambda p=p: one(p) for p in pipelines], together)
        await client.close()

    async def run(calls, together):
        if together:
            await asyncio.gather(*(c() for c in calls))
        else:
            for c in calls:
                await c()

    def timed(way, together: bool) -> float:
        return seconds(lambda: asyncio.run(way(together)))

    times = {f"{name}_{mode}_s": statistics.median(
        timed(way, mode == "concurrent") for _ in range(max(1, repeat // 2)))
        for name, way in (("http", via_http), ("driver", via_driver)) for mode in ("sequential", "concurrent")}
    http_speedup = times["http_sequential_s"] / times["http_concurrent_s"]
    driver_speedup = times["driver_sequential_s"] / times["driver_concurrent_s"]
    return {**{k: round(v, 2) for k, v in times.items()}, "http_speedup": round(http_speedup, 2),
            "driver_speedup": round(driver_speedup, 2),
            "service_vs_driver_speedup": round(http_speedup / driver_speedup, 2)}


def measure_index_use(service: Service) -> dict:
    found = {}
    for name, rule in SELECTIVE.items():
        stats = service.mongo[DATABASE].command("explain", {"aggregate": "contacts", "pipeline": service.pipeline(rule),
                                                            "cursor": {}}, verbosity="executionStats")
        execution = stats.get("executionStats") or (stats.get("stages") or [{}])[0].get("$cursor", {}).get(
            "executionStats", {})
        found[name] = {k: execution.get(k) for k in ("nReturned", "totalKeysExamined", "totalDocsExamined")}
    return found


RECORD = "mutation($e: [EventInput!]!) { recordEvents(events: $e) { accepted } }"
INGEST_EVENTS = 10_000


def measure_ingest_stall(service: Service, repeat: int) -> dict:
    """A small preview's latency idle, and again and again while one
    recordEvents of INGEST_EVENTS events (new ids, spread over the workspace's
    contacts, so thousands of rollups are recomputed) is being ingested by the
    same service: CPU-heavy ingest work must not hold up other requests."""
    import threading

    rule = SELECTIVE["hot_leads"]
    preview = lambda: seconds(lambda: service.graphql(COUNT, r=rule, a=AS_OF))  # noqa: E731
    idle = [preview() for _ in range(max(10, 3 * repeat))]
    ids = sorted(d["id"] for d in service.contacts.find({}, {"id": 1}).limit(INGEST_EVENTS // 2))
    during: list[float] = []
    rounds = []
    for n in range(max(1, repeat // 2)):
        events = [{"id": f"stall{n}-{i}", "contactId": ids[i % len(ids)], "type": "OPEN",
                   "at": f"2026-11-{1 + i % 27:02}T{i % 24:02}:00:00Z"} for i in range(INGEST_EVENTS)]
        done = threading.Event()

        def ingest(events: list[dict], done: threading.Event) -> None:
            rounds.append(seconds(lambda: service.graphql(RECORD, e=events)))
            done.set()
        worker = threading.Thread(target=ingest, args=(events, done))
        worker.start()
        time.sleep(0.2)  # the request is being read and parsed; then its rollups are computed
        while not done.is_set():
            during.append(preview())
        worker.join()
    idle_ms, during_ms = statistics.median(idle) * 1000, statistics.median(during) * 1000
    return {"events": INGEST_EVENTS, "ingest_s": [round(r, 2) for r in rounds], "idle_preview_ms": round(idle_ms, 1),
            "during_ingest_preview_ms": round(during_ms, 1), "during_ingest_max_ms": round(max(during) * 1000, 1),
            "previews_during": len(during), "ratio": round(during_ms / idle_ms, 2)}


SPLIT = '[{name: "A", weight: 1}, {name: "B", weight: 1}]'


def measure_insight(service: Service, repeat: int) -> dict:
    """Each insight operation on the engaged_or_high_value seed segment, with its ratio to that segment's count."""
    rule = SEEDS[0]["rule"]
    sid = service.graphql('mutation($r: RuleInput!) { createSegment(name: "bench", rule: $r) { id } }',
                          r=rule)["createSegment"]["id"]
    member = service.graphql("query($r: RuleInput!, $a: DateTime) { segmentPreview(rule: $r, asOf: $a) "
                             "{ contacts(first: 1) { edges { node { id } } } } }", r=rule,
                             a=AS_OF)["segmentPreview"]["contacts"]["edges"][0]["node"]["id"]
    snapshot = "mutation($id: ID!, $l: String!) { snapshotSegment(id: $id, label: $l) { id size } }"
    first, second = (service.graphql(snapshot, id=sid, l=f"diff {i}")["snapshotSegment"]["id"] for i in range(2))

    def on_segment(fields: str):
        return lambda: service.graphql(f"query($id: ID!, $a: DateTime) {{ segment(id: $id) {{ {fields} }} }}",
                                       id=sid, a=AS_OF)

    ops = {
        "breakdown": lambda: service.graphql("query($r: RuleInput!, $a: DateTime) { segmentPreview(rule: $r, "
                                             "asOf: $a) { breakdown { count } } }", r=rule, a=AS_OF),
        "explain_membership": lambda: service.graphql(
            "query($c: ID!, $r: RuleInput!, $a: DateTime) { explainMembership(contactId: $c, rule: $r, asOf: $a) "
            "{ member nodes { matched values { value } } } }", c=member, r=rule, a=AS_OF),
        "snapshot_segment": lambda: service.graphql(snapshot, id=sid, l="bench"),
        "snapshot_diff": lambda: service.graphql(
            "query($a: ID!, $b: ID!) { snapshotDiff(a: $a, b: $b) { stayedCount entered { totalCount } } }",
            a=first, b=second),
        "size_history": lambda: service.graphql("query($id: ID!) { segment(id: $id) { sizeHistory { size } } }",
                                                id=sid),
        "split_2_variants": on_segment(f"split(seed: 1, asOf: $a, variants: {SPLIT}) {{ variants {{ count }} }}"),
        "split_page_of_100": on_segment(f"split(seed: 1, asOf: $a, variants: {SPLIT}) "
                                        "{ variants { contacts(first: 100) { edges { node { id } } } } }"),
        "analytics_30d": on_segment("analytics(withinDays: 30, asOf: $a) { openRate clickRate }"),
    }
    count_s = statistics.median(seconds(lambda: service.graphql(COUNT, r=rule, a=AS_OF)) for _ in range(repeat))
    report = {"segment": SEEDS[0]["name"], "count_ms": round(count_s * 1000, 1)}
    for name, op in ops.items():
        op_s = statistics.median(seconds(op) for _ in range(repeat))
        report[name] = {"ms": round(op_s * 1000, 1), "vs_count": round(op_s / count_s, 2)}
    return report


ISOLATION_ATTACKERS = 2
VICTIM_CONTACTS = 50
VICTIM_COUNT = "query($r: RuleInput!) { segmentPreview(rule: $r) { count } }"


def measure_isolation(service: Service, env: dict, repeat: int) -> dict:
    """A small count of another workspace (VICTIM_CONTACTS contacts), every 0.1 s, idle and
    while ISOLATION_ATTACKERS clients of the bench workspace send, again and again, the
    requests of tests/worst_requests.py: issue 14's worst (refused by the cost budget), a
    fragment bomb, and the heaviest requests of the same shapes the budget lets through.
    The attack lasts 5 s per --repeat; the counts go on until the last attack ends."""
    import collections
    import threading

    sys.path.insert(0, str(REPO))
    from tests.worst_requests import ATTACKS, EVERYONE

    victim_key = cli("workspace", "create", "isolation-victim", env=env).stdout.strip().splitlines()[-1]
    victim = httpx.Client(headers={"Authorization": f"Bearer {victim_key}"}, timeout=600)
    victim.post(service.url, json={"query": "mutation($c: [ContactInput!]!) { upsertContacts(contacts: $c) { "
                                            "accepted } }", "variables": {"c": [
                    {"id": f"v{i}", "email": f"v{i}@example.com", "leadScore": 90} for i in range(VICTIM_CONTACTS)]}})
    everyone = service.graphql('mutation($r: RuleInput!) { createSegment(name: "isolation", rule: $r) { id } }',
                               r=EVERYONE)["createSegment"]["id"]

    def count() -> float:
        start = time.perf_counter()
        body = victim.post(service.url, json={"query": VICTIM_COUNT,
                                              "variables": {"r": {"leadScore": {"tier": "HOT"}}}}).json()
        assert body == {"data": {"segmentPreview": {"count": VICTIM_CONTACTS}}}, body
        return time.perf_counter() - start

    idle = [count() for _ in range(max(10, 3 * repeat))]
    stop, outcomes, attack_s = threading.Event(), collections.Counter(), []

    def attack(offset: int) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {service.key}"}, timeout=600) as client:
            for i in range(offset, 10 ** 6):
                if stop.is_set():
                    return
                start = time.perf_counter()
                body = client.post(service.url, json={"query": ATTACKS[i % len(ATTACKS)],
                                                      "variables": {"r": EVERYONE, "id": everyone}}).json()
                attack_s.append(time.perf_counter() - start)
                outcomes["answered" if body.get("data") else body["errors"][0]["extensions"]["code"]] += 1

    attackers = [threading.Thread(target=attack, args=(n * len(ATTACKS) // ISOLATION_ATTACKERS,))
                 for n in range(ISOLATION_ATTACKERS)]
    for attacker in attackers:
        attacker.start()
    ends = time.perf_counter() + 5 * repeat
    during = []
    while any(a.is_alive() for a in attackers):
        during.append(count())
        time.sleep(0.1)
        if time.perf_counter() > ends:
            stop.set()
    for attacker in attackers:
        attacker.join()
    victim.close()

    def ms(values: list[float]) -> dict:
        return {"median": round(statistics.median(values) * 1000, 1), "max": round(max(values) * 1000, 1)}
    return {"victim_idle_ms": ms(idle), "victim_during_ms": ms(during), "victim_counts_during": len(during),
            "attack_s": round(sum(attack_s), 1), "attacks": dict(outcomes)}


LIVE_SEGMENTS = 20
# About half the data set's contacts (leadScore is Beta(2, 3) * 101, 10% unset).
HALF_RULE = {"leadScore": {"max": 42}}
LIVE_BATCH_EVENTS, LIVE_BATCH_CONTACTS = 2000, 1000
SAVED_COUNT = "query($id: ID!) { segment(id: $id) { count } }"
NOW_COUNT = "query($r: RuleInput!, $a: DateTime) { segmentPreview(rule: $r, asOf: $a) { count } }"
MEMBER_PAGE = """query($id: ID!, $after: String) { segment(id: $id) { contacts(first: 1000, after: $after) {
  edges { node { id email } } pageInfo { hasNextPage endCursor } } } }"""


def live_rules() -> list[tuple[str, dict]]:
    """LIVE_SEGMENTS rules: the seed rules, HALF_RULE, then NOTs of seed rules."""
    rules = [(s["name"], s["rule"]) for s in SEEDS] + [("half", HALF_RULE)]
    return rules + [(f"not_{s['name']}", {"not": s["rule"]}) for s in SEEDS[:LIVE_SEGMENTS - len(rules)]]


def live_events(round_: int, contact_ids: list[str]) -> list[dict]:
    """Round ``round_``'s batch: new event ids, LIVE_BATCH_CONTACTS contacts
    (a different slice each round), dated within the last 30 days."""
    rng = random.Random(round_)
    start = round_ * LIVE_BATCH_CONTACTS % len(contact_ids)
    targets = (contact_ids * 2)[start:start + LIVE_BATCH_CONTACTS]
    stamp = dt.datetime.now(dt.UTC)
    events = []
    for i in range(LIVE_BATCH_EVENTS):
        kind = rng.choice(["OPEN", "OPEN", "OPEN", "CLICK"])
        event = {"id": f"live{round_}-{i}", "contactId": targets[i % len(targets)], "type": kind,
                 "at": (stamp - dt.timedelta(minutes=rng.randrange(30 * 24 * 60))).isoformat()}
        if kind == "OPEN":
            event["device"] = rng.choice(["MOBILE", "DESKTOP"])
        events.append(event)
    return events


def imported_workspaces(clients: dict[str, Service], sides: tuple[str, ...], name: str, service: Service, uri: str,
                        env: dict, data: Path) -> None:
    """A fresh workspace per side (``name`` formatted with it), each importing ``data``, its client in ``clients``
    (filled as they are made, so the caller closes those made before a failure)."""
    for side in sides:
        key = cli("workspace", "create", name.format(side), env=env).stdout.strip().splitlines()[-1]
        cli("import", "--quiet", "--workspace", name.format(side), str(data), env=env)
        clients[side] = Service(service.url, key, uri)


def measure_live(service: Service, uri: str, env: dict, data: Path, repeat: int) -> dict:
    """See the module docstring (``live``)."""
    clients: dict[str, Service] = {}
    try:
        imported_workspaces(clients, ("plain", "saved"), f"live-{{}}-{data.name}", service, uri, env, data)
        saved, rules = clients["saved"], live_rules()
        create = "mutation($n: String!, $r: RuleInput!) { createSegment(name: $n, rule: $r) { id count } }"
        created = {name: saved.graphql(create, n=name, r=rule)["createSegment"] for name, rule in rules}
        ids = {name: c["id"] for name, c in created.items()}
        contact_ids = [json.loads(line)["id"] for line in (data / "contacts.ndjson").read_text().splitlines()]
        return {"segments": len(rules), "sizes": {name: c["count"] for name, c in created.items()},
                "ingest": measure_live_ingest(clients, contact_ids, repeat),
                "count": measure_live_counts(saved, rules, ids, repeat),
                "export": measure_live_export(saved, ids["half"], repeat),
                "refresh": measure_live_refresh(saved, f"live-saved-{data.name}", rules, uri, env, repeat)}
    finally:
        for client in clients.values():
            client.close()


def measure_live_ingest(clients: dict[str, Service], contact_ids: list[str], repeat: int) -> dict:
    """The same recordEvents batch to the workspace without segments and to the one with them, in alternate order."""
    batches: dict[str, list[float]] = {"plain": [], "saved": []}
    for n in range(repeat):
        events = live_events(n, contact_ids)
        for side in (("plain", "saved") if n % 2 == 0 else ("saved", "plain")):
            batches[side].append(seconds(functools.partial(clients[side].graphql, RECORD, e=events)))
    plain_s, saved_s = statistics.median(batches["plain"]), statistics.median(batches["saved"])
    return {"events": LIVE_BATCH_EVENTS, "contacts": LIVE_BATCH_CONTACTS,
            "without_segments_events_per_s": round(LIVE_BATCH_EVENTS / plain_s),
            "with_segments_events_per_s": round(LIVE_BATCH_EVENTS / saved_s), "ratio": round(plain_s / saved_s, 2)}


def measure_live_counts(saved: Service, rules: list[tuple[str, dict]], ids: dict[str, str], repeat: int) -> dict:
    """Each saved segment's stored count and its rule's segmentPreview count, alternately (ms per segment)."""
    counts = {}
    for name, rule in rules:
        stored = functools.partial(saved.graphql, SAVED_COUNT, id=ids[name])
        preview = functools.partial(saved.graphql, NOW_COUNT, r=rule, a=None)
        rounds = [(seconds(stored), seconds(preview)) for _ in range(repeat)]
        counts[name] = (statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds))
    ratios = sorted(stored / preview for stored, preview in counts.values())
    return {"stored_ms_median": round(statistics.median(s for s, _ in counts.values()) * 1000, 1),
            "preview_ms_median": round(statistics.median(p for _, p in counts.values()) * 1000, 1),
            "ratio_of_totals": round(sum(s for s, _ in counts.values()) / sum(p for _, p in counts.values()), 3),
            "ratio_median": round(statistics.median(ratios), 3), "ratio_worst": round(ratios[-1], 3),
            "per_segment_ms": {name: [round(s * 1000, 1), round(p * 1000, 1)] for name, (s, p) in counts.items()}}


def measure_live_refresh(saved: Service, name: str, rules: list[tuple[str, dict]], uri: str, env: dict,
                         repeat: int) -> dict:
    """Each round, as of a later day (00:05 UTC, tomorrow first): the refresh of
    every saved segment in this process (no HTTP, no process start), and the sum
    of their previews as of the same instant; then `segmentql refresh-segments`
    as of the day after (with its process start)."""
    from segmentql.plugins.registry import load_registry
    from segmentql.server.database import Database
    from segmentql.server.live import LiveSegments

    registry = load_registry()
    workspace_id = saved.mongo[DATABASE]["workspaces"].find_one({"name": name})["_id"]
    tomorrow = dt.datetime.combine(dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1), dt.time(0, 5), dt.UTC)

    async def refresh(as_of: dt.datetime) -> float:
        db = Database(uri, DATABASE, 600_000)
        try:
            start = time.perf_counter()
            await LiveSegments(db, registry).refresh(workspace_id, as_of)
            return time.perf_counter() - start
        finally:
            await db.close()

    rounds = []
    for n in range(repeat):
        as_of = tomorrow + dt.timedelta(days=2 * n)
        previews = sum(seconds(functools.partial(saved.graphql, NOW_COUNT, r=rule, a=as_of.isoformat()))
                       for _, rule in rules)
        by_cli = functools.partial(cli, "refresh-segments", "--workspace", name, "--as-of",
                                   (as_of + dt.timedelta(days=1)).isoformat(), env=env)
        rounds.append((asyncio.run(refresh(as_of)), previews, seconds(by_cli)))
    refresh_s, previews_s, cli_s = (statistics.median(r[i] for r in rounds) for i in range(3))
    return {"refresh_s": round(refresh_s, 2), "sum_of_previews_s": round(previews_s, 2),
            "cli_refresh_s": round(cli_s, 2), "ratio": round(refresh_s / previews_s, 2)}


def measure_live_export(saved: Service, segment_id: str, repeat: int) -> dict:
    """The segment's members as NDJSON (default fields, and id,email only) vs paged through GraphQL."""
    base = saved.url.removesuffix("/graphql")

    def export(fields: str | None) -> list[str]:
        ids = []
        with saved.http.stream("GET", f"{base}/v1/segments/{segment_id}/members.ndjson",
                               params={"fields": fields} if fields else None) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line:
                    ids.append(json.loads(line)["id"])
        return ids

    def paged() -> list[str]:
        ids, after = [], None
        while True:
            page = saved.graphql(MEMBER_PAGE, id=segment_id, after=after)["segment"]["contacts"]
            ids += [e["node"]["id"] for e in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                return ids
            after = page["pageInfo"]["endCursor"]

    members = paged()
    assert export(None) == members == export("id,email"), "the export and the GraphQL pages differ"
    rounds = [(seconds(lambda: export(None)), seconds(lambda: export("id,email")), seconds(paged))
              for _ in range(repeat)]
    export_s, narrow_s, graphql_s = (statistics.median(r[i] for r in rounds) for i in range(3))
    return {"members": len(members), "ndjson_ms": round(export_s * 1000, 1),
            "ndjson_id_email_ms": round(narrow_s * 1000, 1), "graphql_pages_ms": round(graphql_s * 1000, 1),
            "ratio": round(graphql_s / export_s, 1), "ratio_id_email": round(graphql_s / narrow_s, 1)}


DELIVERY_EVENTS, DELIVERY_BATCHES = 10_000, 5
DELIVERY_LATENCY_TRIALS = 15
SUBSCRIBE = "subscription { segmentChanges { cursor segmentId contactId change } }"
UPSERT = "mutation($c: [ContactInput!]!) { upsertContacts(contacts: $c) { accepted } }"


class Subscriber:
    """A graphql-transport-ws client in its own thread, noting when each (contact, change) first arrives."""

    def __init__(self, url: str, key: str):
        import threading

        self.arrived: dict[tuple[str, str], float] = {}
        self.events = 0
        self._ready, self._stop = threading.Event(), None
        self._thread = threading.Thread(target=asyncio.run, args=(self._run(url, key),), daemon=True)
        self._thread.start()
        assert self._ready.wait(30), "the subscription did not start"

    async def _run(self, url: str, key: str) -> None:
        import websockets

        self._stop = asyncio.Event()
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"], max_size=None) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}))
            self._ready.set()
            while not self._stop.is_set():
                try:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                except TimeoutError:
                    continue
                event = message["payload"]["data"]["segmentChanges"]
                self.events += 1
                self.arrived.setdefault((event["contactId"], event["change"]), time.monotonic())

    def close(self) -> None:
        self._stop.set()  # type: ignore[union-attr]  # set by _run before _ready
        self._thread.join(10)


def measure_delivery(service: Service, uri: str, env: dict, data: Path, repeat: int) -> dict:
    """See the module docstring (``delivery``)."""
    clients: dict[str, Service] = {}
    receiver = subscriber = None
    rules = live_rules()
    create = "mutation($n: String!, $r: RuleInput!) { createSegment(name: $n, rule: $r) { id } }"
    try:
        imported_workspaces(clients, ("plain", "attached"), f"delivery-{{}}-{data.name}", service, uri, env, data)
        for client in clients.values():
            for rule_name, rule in rules:
                client.graphql(create, n=rule_name, r=rule)
        attached = clients["attached"]
        port, log = free_port(), data.parent / f"webhook-{data.name}.jsonl"
        receiver = subprocess.Popen([sys.executable, str(REPO / "tests" / "webhook_receiver.py"), str(port), str(log)],
                                    stdout=subprocess.PIPE, text=True)
        assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
        attached.graphql("mutation($u: String!) { createWebhook(url: $u) { secret } }", u=f"http://127.0.0.1:{port}/")
        subscriber = Subscriber(service.url.replace("http://", "ws://"), attached.key)
        contact_ids = [json.loads(line)["id"] for line in (data / "contacts.ndjson").read_text().splitlines()]
        ingest = measure_delivery_ingest(clients, contact_ids, repeat)
        latency = measure_delivery_latency(attached, subscriber)
        delivered = len(log.read_text().splitlines()) if log.exists() else 0
        return {"ingest": ingest, "latency": latency, "subscriber_events": subscriber.events,
                "webhook_posts": delivered}
    finally:
        if subscriber is not None:
            subscriber.close()
        if receiver is not None:
            receiver.kill()
        for client in clients.values():
            client.close()


def measure_delivery_ingest(clients: dict[str, Service], contact_ids: list[str], repeat: int) -> dict:
    """DELIVERY_EVENTS events per round, in DELIVERY_BATCHES recordEvents, to the
    workspace with a webhook and a subscriber and to the one without, alternately."""
    per_batch = DELIVERY_EVENTS // DELIVERY_BATCHES
    rounds: dict[str, list[float]] = {"plain": [], "attached": []}
    for n in range(repeat):
        batches = [[{**e, "id": f"d{n}-{b}-{i}"} for i, e in enumerate(live_events(1000 + n * DELIVERY_BATCHES + b,
                                                                                   contact_ids)[:per_batch])]
                   for b in range(DELIVERY_BATCHES)]
        for side in (("plain", "attached") if n % 2 == 0 else ("attached", "plain")):
            rounds[side].append(seconds(lambda side=side, batches=batches: [
                clients[side].graphql(RECORD, e=batch) for batch in batches]))
    plain_s, attached_s = statistics.median(rounds["plain"]), statistics.median(rounds["attached"])
    return {"events": DELIVERY_EVENTS, "without_events_per_s": round(DELIVERY_EVENTS / plain_s),
            "with_webhook_and_subscriber_events_per_s": round(DELIVERY_EVENTS / attached_s),
            "ratio": round(plain_s / attached_s, 2)}


def measure_delivery_latency(attached: Service, subscriber: Subscriber) -> dict:
    """From the POST of an upsertContacts that makes a new contact enter the
    half-size segment to the subscriber seeing it (ms)."""
    latencies = []
    for trial in range(DELIVERY_LATENCY_TRIALS):
        contact = f"latency-{trial}-{random.randrange(10**9)}"
        started = time.monotonic()
        attached.graphql(UPSERT, c=[{"id": contact, "email": f"{contact}@example.com", "leadScore": 1}])
        deadline = started + 30
        while (contact, "ENTERED") not in subscriber.arrived:
            assert time.monotonic() < deadline, "the change never reached the subscriber"
            time.sleep(0.001)
        latencies.append(subscriber.arrived[contact, "ENTERED"] - started)
    return {"trials": DELIVERY_LATENCY_TRIALS, "median_ms": round(statistics.median(latencies) * 1000, 1),
            "max_ms": round(max(latencies) * 1000, 1)}


PURCHASE_SHARE, STAGE_PURCHASES = 0.1, 3
SCAN = {"timezone": {"in": ["Pacific/Pitcairn"]}}  # an unindexed field: reads every contact


def measure_stages(service: Service, name: str, repeat: int) -> dict:
    """The cost of a condition made of stages, next to plain conditions on the
    same contacts (the purchases example plugin must be installed)."""
    workspace_id = service.mongo[DATABASE]["workspaces"].find_one({"name": name})["_id"]
    ids = sorted(d["id"] for d in service.contacts.find({"workspace_id": workspace_id}, {"id": 1}))
    buyers = random.Random(7).sample(ids, int(len(ids) * PURCHASE_SHARE))
    service.mongo[DATABASE]["purchases"].insert_many([
        {"workspace_id": workspace_id, "contact_id": contact, "sku": ("A", "B", "C")[(i + n) % 3],
         "amount": 10.0 * (1 + n), "at": dt.datetime(2026, 11, 1 + n, tzinfo=dt.UTC)}
        for i, contact in enumerate(buyers) for n in range(STAGE_PURCHASES)])
    purchased = {"purchased": {"sku": "A"}}
    narrowed = {"all": [SELECTIVE["hot_leads"], purchased]}

    def ratio(rule: dict, base: dict) -> dict:
        pairs = [(http_count(service, rule), http_count(service, base)) for _ in range(repeat)]
        with_, without = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
        return {"stage_ms": round(with_ * 1000, 1), "base_ms": round(without * 1000, 1),
                "ratio": round(with_ / without, 2)}
    return {"buyers": len(buyers), "alone_vs_scan": ratio(purchased, SCAN),
            "narrowed_vs_indexed_clause": ratio(narrowed, SELECTIVE["hot_leads"])}


def run_size(contacts: int, repeat: int, workdir: Path, parts: list[str]) -> dict:
    data = workdir / f"data-{contacts}"
    subprocess.run([sys.executable, "-m", "segmentql.server.datagen", str(data), "--contacts", str(contacts),
                    "--seed", "7"], check=True, capture_output=True)
    from segmentql.server.embedded import EmbeddedServer

    server = EmbeddedServer(workdir / f"db-{contacts}")
    uri = server.start()
    env = {**os.environ, "MONGODB_URI": uri, "SEGMENTQL_DATABASE": DATABASE, "SEGMENTQL_MAX_BODY_BYTES": "8000000",
           "SEGMENTQL_WEBHOOK_ALLOW_PRIVATE": "1"}  # the delivery part's receiver listens on loopback
    report: dict = {"contacts": contacts}
    serve = service = None
    try:
        key = cli("workspace", "create", f"bench{contacts}", env=env).stdout.strip().splitlines()[-1]
        import_s = seconds(lambda: cli("import", "--quiet", "--workspace", f"bench{contacts}", str(data), env=env))
        raw_s = raw_insert_seconds(uri, data)
        report["import"] = {"segmentql_s": round(import_s, 2), "raw_insert_many_s": round(raw_s, 2),
                            "ratio": round(import_s / raw_s, 2)}

        port = free_port()
        serve = subprocess.Popen([sys.executable, "-m", "segmentql.cli", "serve", "--port", str(port)],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz")
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        service = Service(f"http://127.0.0.1:{port}/graphql", key, uri)
        measures = {"scan": lambda: measure_scans(service, repeat),
                    "concurrency": lambda: measure_concurrency(service, uri, repeat),
                    "index_use": lambda: measure_index_use(service),
                    "insight": lambda: measure_insight(service, repeat),
                    "ingest_stall": lambda: measure_ingest_stall(service, repeat),
                    "isolation": lambda: measure_isolation(service, env, repeat),
                    "live": lambda: measure_live(service, uri, env, data, repeat),
                    "delivery": lambda: measure_delivery(service, uri, env, data, repeat),
                    "stages": lambda: measure_stages(service, f"bench{contacts}", repeat)}
        for part in parts or measures:
            report[part] = measures[part]()
    finally:
        if service is not None:
            service.close()
        if serve is not None:
            serve.terminate()
            serve.wait(timeout=30)
        server.stop()
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, action="append", help="data set size (repeatable)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--parts", default="", help="comma-separated parts after the import (default all): "
                                                    "scan,concurrency,index_use,insight,ingest_stall,isolation,live,"
                                                    "delivery,stages")
    args = parser.parse_args()
    sizes = args.contacts or [10000]
    workdir = Path(tempfile.mkdtemp(prefix="segmentql-bench-"))
    reports = []
    try:
        for n in sizes:
            reports.append(run_size(n, args.repeat, workdir, [p for p in args.parts.split(",") if p]))
            print(json.dumps(reports[-1], indent=1), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if len(reports) > 1 and not args.parts:
        base = reports[0]

        def median_preview(report):
            return statistics.median(s["http_ms"] for s in report["scan"]["segments"])

        def median_scan(report):
            return statistics.median(s["trivial_scan_ms"] for s in report["scan"]["segments"])
        print("scaling (time growth / size growth, <= 1 is linear or better):")
        for r in reports[1:]:
            growth = r["contacts"] / base["contacts"]
            print(f"  {base['contacts']} -> {r['contacts']}: "
                  f"import {r['import']['segmentql_s'] / base['import']['segmentql_s'] / growth:.2f}, "
                  f"median preview {median_preview(r) / median_preview(base) / growth:.2f}, "
                  f"trivial scan {median_scan(r) / median_scan(base) / growth:.2f}")


if __name__ == "__main__":
    main()
