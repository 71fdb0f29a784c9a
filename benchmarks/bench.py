"""segmentql benchmark: ratios measured side by side in one run, on the
embedded database, with data from ../shared/datagen.py (or the vendored copy).

    python benchmarks/bench.py --contacts 10000 [--contacts 5000 --contacts 20000] [--repeat 5]

For each size it prints:
  import ratio      `segmentql import` time / raw insert_many of the same documents
                    into the same server (collections with the same indexes)
  scan ratio        each seed segment's segmentPreview{count} over HTTP / one bare
                    full scan of contacts with a trivial per-document $expr
  GraphQL overhead  HTTP time minus direct driver time of the explained pipeline
  concurrency       8 concurrent previews vs the same 8 one after another
  index use         explain executionStats of a selective segment (HOT lead score)
Machine noise affects both sides of each ratio alike; medians of --repeat runs.
"""

import argparse
import asyncio
import json
import os
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
from pymongo import MongoClient

REPO = Path(__file__).resolve().parents[1]
SEEDS = json.loads((REPO / "schema" / "seed-segments.json").read_text())["segments"]
AS_OF = "2026-11-28T12:00:00Z"
COUNT = "query($r: RuleInput!, $a: DateTime) { segmentPreview(rule: $r, asOf: $a) { count } }"
EXPLAIN = "query($r: RuleInput!, $a: DateTime) { explainSegment(rule: $r, asOf: $a) }"
TRIVIAL_SCAN = [{"$match": {"$expr": {"$eq": [1, 1]}}}, {"$count": "n"}]


def cli(*args, env):
    return subprocess.run([sys.executable, "-m", "segmentql.server.cli", *args], env=env, check=True,
                          capture_output=True, text=True)


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_insert_seconds(uri: str, data: Path) -> float:
    """insert_many of the same documents (contacts, campaigns, events) into a
    scratch database whose collections have segmentql's indexes."""
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


def run_size(contacts: int, repeat: int, workdir: Path) -> dict:
    data = workdir / f"data-{contacts}"
    subprocess.run([sys.executable, "-m", "segmentql.server.datagen", str(data), "--contacts", str(contacts),
                    "--seed", "7"], check=True, capture_output=True)
    from segmentql.server.embedded import EmbeddedServer

    server = EmbeddedServer(workdir / f"db-{contacts}")
    uri = server.start()
    env = {**os.environ, "MONGODB_URI": uri, "SEGMENTQL_DATABASE": "segmentql_bench"}
    report: dict = {"contacts": contacts}
    serve = None
    try:
        key = cli("workspace", "create", f"bench{contacts}", env=env).stdout.strip().splitlines()[-1]
        start = time.perf_counter()
        cli("import", "--quiet", "--workspace", f"bench{contacts}", str(data), env=env)
        import_s = time.perf_counter() - start
        raw_s = raw_insert_seconds(uri, data)
        report["import"] = {"segmentql_s": round(import_s, 2), "raw_insert_many_s": round(raw_s, 2),
                            "ratio": round(import_s / raw_s, 2)}

        port = free_port()
        serve = subprocess.Popen([sys.executable, "-m", "segmentql.server.cli", "serve", "--port", str(port)],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/graphql"
        http = httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=600)
        for _ in range(100):
            try:
                http.get(f"http://127.0.0.1:{port}/healthz")
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        mongo = MongoClient(uri)
        contacts_coll = mongo["segmentql_bench"]["contacts"]
        scan_s = timed(lambda: list(contacts_coll.aggregate(TRIVIAL_SCAN)), repeat)
        segments = []
        for seg in SEEDS:
            body = {"query": COUNT, "variables": {"r": seg["rule"], "a": AS_OF}}
            http.post(url, json=body)  # warm
            http_s = timed(lambda: http.post(url, json=body).raise_for_status(), repeat)
            explained = http.post(url, json={"query": EXPLAIN, "variables": {"r": seg["rule"], "a": AS_OF}}
                                  ).json()["data"]["explainSegment"]
            pipeline = json_util.loads(json.dumps(explained["pipeline"]))
            direct_s = timed(lambda: list(contacts_coll.aggregate(pipeline)), repeat)
            segments.append({"name": seg["name"], "http_ms": round(http_s * 1000, 1),
                             "driver_ms": round(direct_s * 1000, 1), "scan_ratio": round(http_s / scan_s, 2),
                             "graphql_overhead_ms": round((http_s - direct_s) * 1000, 1)})
        ratios = [s["scan_ratio"] for s in segments]
        overheads = [s["graphql_overhead_ms"] for s in segments]
        report["scan"] = {"trivial_expr_scan_ms": round(scan_s * 1000, 1), "segments": segments,
                          "worst_ratio": max(ratios), "median_ratio": round(statistics.median(ratios), 2),
                          "median_graphql_overhead_ms": round(statistics.median(overheads), 1)}

        bodies = [{"query": COUNT, "variables": {"r": s["rule"], "a": AS_OF}} for s in SEEDS[:8]]

        async def concurrent():
            async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=600) as client:
                await asyncio.gather(*(client.post(url, json=b) for b in bodies))

        sequential_s = timed(lambda: [http.post(url, json=b) for b in bodies], max(1, repeat // 2))
        concurrent_s = timed(lambda: asyncio.run(concurrent()), max(1, repeat // 2))
        report["concurrency"] = {"sequential_8_s": round(sequential_s, 2), "concurrent_8_s": round(concurrent_s, 2),
                                 "speedup": round(sequential_s / concurrent_s, 2)}

        hot = {"leadScore": {"tier": "HOT"}}
        explained = http.post(url, json={"query": EXPLAIN, "variables": {"r": hot, "a": AS_OF}}).json()
        pipeline = json_util.loads(json.dumps(explained["data"]["explainSegment"]["pipeline"]))
        stats = mongo["segmentql_bench"].command("explain", {"aggregate": "contacts", "pipeline": pipeline,
                                                             "cursor": {}}, verbosity="executionStats")
        execution = stats.get("executionStats") or (stats.get("stages") or [{}])[0].get("$cursor", {}).get(
            "executionStats", {})
        report["index_use_hot_leads"] = {k: execution.get(k) for k in
                                         ("nReturned", "totalKeysExamined", "totalDocsExamined")}
        mongo.close()
    finally:
        if serve is not None:
            serve.terminate()
            serve.wait(timeout=30)
        server.stop()
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, action="append", help="data set size (repeatable)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = args.contacts or [10000]
    workdir = Path(tempfile.mkdtemp(prefix="segmentql-bench-"))
    try:
        reports = [run_size(n, args.repeat, workdir) for n in sizes]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for report in reports:
        print(json.dumps(report, indent=1))
    if len(reports) > 1:
        base = reports[0]
        print("scaling (time growth / size growth, <= 1 is linear or better):")
        for r in reports[1:]:
            growth = r["contacts"] / base["contacts"]
            print(f"  {base['contacts']} -> {r['contacts']}: import {r['import']['segmentql_s'] / base['import']['segmentql_s'] / growth:.2f}, "
                  f"median preview {statistics.median(s['http_ms'] for s in r['scan']['segments']) / statistics.median(s['http_ms'] for s in base['scan']['segments']) / growth:.2f}")


if __name__ == "__main__":
    main()
