"""Live segments across processes: a writer killed mid-write, writers racing
through two services, an import killed and run again, and the refresh a
service runs at start-up when memberships date from an earlier day. Each ends
with every stored membership equal to an evaluation and to its replayed log."""

import contextlib
import datetime as dt
import signal
import subprocess
import sys
import threading
import time

import httpx

from .conftest import running_service, segmentql, serving
from .live_check import assert_consistent, change_log
from .test_import_cli import small_dir  # noqa: F401 - a fixture
from .test_live import CONTACTS, EVENTS, HOT, RECENT, STATE, ago, contact, create


def wait_for(condition, timeout=60.0, step=0.02):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(step)


def post(base: str, key: str, query: str, **variables) -> dict:
    response = httpx.post(base + "/graphql", json={"query": query, "variables": variables},
                          headers={"Authorization": f"Bearer {key}"}, timeout=120)
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]


def test_a_writer_killed_mid_write_is_completed_by_the_next_service(cli_workspace, cli_env):
    _, gql = cli_workspace
    sid = create(gql, HOT)
    env = {**cli_env, "SEGMENTQL_WRITE_LEASE_SECONDS": "2"}
    journal = gql.db.db.membership_journal
    with serving(env) as (base, service):
        def write() -> None:
            with contextlib.suppress(httpx.HTTPError):  # the service dies before it answers
                httpx.post(base + "/graphql", headers={"Authorization": f"Bearer {gql.key}"}, timeout=120,
                           json={"query": CONTACTS, "variables": {"c": [contact(f"c{i:05}", 90) for i in range(3000)]}})
        writer = threading.Thread(target=write)
        writer.start()
        wait_for(lambda: gql.call(journal.count_documents, {"workspace_id": gql.workspace_id}) > 0)
        service.send_signal(signal.SIGKILL)
        writer.join()
    assert gql.call(journal.count_documents, {"workspace_id": gql.workspace_id}) == 1  # left open by the dead writer
    with running_service(env):  # its start completes what the journal names, once the dead writer's lease lapses
        wait_for(lambda: gql.call(journal.count_documents, {"workspace_id": gql.workspace_id}) == 0, step=0.2)
    members = assert_consistent(gql, sid)
    stored = gql.call(gql.db.all_contact_ids, gql.workspace_id)
    assert members == sorted(stored)


def test_writes_racing_through_two_services_are_logged_one_by_one(cli_workspace, cli_env):
    """Four clients flip their own contact in and out six times each, alternating
    between two services, all at once: every flip is logged, in order."""
    _, gql = cli_workspace
    sid = create(gql, HOT)
    with running_service(cli_env) as first, running_service(cli_env) as second:
        def client(n: int) -> None:
            for round_ in range(6):
                score = 90 if round_ % 2 == 0 else 10
                post((first, second)[round_ % 2], gql.key, CONTACTS, c=[contact(f"t{n}", score)])
        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    changes = change_log(gql, sid)
    for n in range(4):
        assert [c["change"] for c in changes if c["contactId"] == f"t{n}"] == ["ENTERED", "LEFT"] * 3
    assert assert_consistent(gql, sid) == []


def test_an_import_killed_and_run_again_logs_every_change_once(cli_workspace, cli_env, small_dir):  # noqa: F811
    name, gql = cli_workspace
    gql.define_fields({"customer_ltv": "NUMBER"})
    segments = [create(gql, HOT, "hot"), create(gql, {"recency": {"activity": "ANY", "withinDays": 3650}}, "any")]
    env = {**cli_env, "SEGMENTQL_INGEST_BATCH": "100"}
    proc = subprocess.Popen([sys.executable, "-m", "segmentql.cli", "import", "--workspace", name, str(small_dir)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rerun = segmentql("import", "--workspace", name, str(small_dir), env=env)
    assert rerun.returncode == 0, rerun.stderr
    for sid in segments:
        assert assert_consistent(gql, sid)
        assert {c["cause"] for c in change_log(gql, sid)} <= {"CONTACT", "EVENT"}


def test_a_service_refreshes_memberships_of_an_earlier_day_when_it_starts(cli_workspace, cli_env):
    name, gql = cli_workspace
    gql.graphql(CONTACTS, c=[contact("a")])
    gql.graphql(EVENTS, e=[{"id": "e1", "contactId": "a", "type": "OPEN", "at": ago(3)}])
    sid = create(gql, RECENT)
    assert segmentql("refresh-segments", "--workspace", name, "--as-of", ago(20), env=cli_env).returncode == 0
    assert gql.graphql(STATE, id=sid)["segment"]["count"] == 0
    today = dt.datetime.now(dt.UTC).date()
    with running_service(cli_env):
        wait_for(lambda: dt.datetime.fromisoformat(
            gql.graphql(STATE, id=sid)["segment"]["membership"]["asOf"]).date() == today, step=0.2)
    assert gql.graphql(STATE, id=sid)["segment"]["count"] == 1
    change = change_log(gql, sid)[-1]
    assert (change["contactId"], change["change"], change["cause"]) == ("a", "ENTERED", "TIME")
    assert_consistent(gql, sid)
