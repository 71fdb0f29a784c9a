"""``segmentql import`` and friends as a user runs them: real processes, real
database, idempotent re-runs, a killed import completed by running it again,
and one clear line for bad input."""

import os
import signal
import subprocess
import sys
import time

import pytest

from segmentql.server.rollups import compute_stats

from .conftest import SHARED, free_port, segmentql, unique


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("small")
    subprocess.run([sys.executable, str(SHARED / "datagen.py"), str(out), "--contacts", "150", "--campaigns", "12",
                    "--seed", "11"], check=True, capture_output=True)
    return out


def create_workspace(env) -> tuple[str, str]:
    name = unique("cli")
    done = segmentql("workspace", "create", name, env=env)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().splitlines()[-1]
    assert key.startswith("sq_") and " " not in key
    return name, key


def snapshot(http, key) -> dict:
    """Every contact with its rollups and the raw event count, by contact id."""
    db = http.app.state.segmentql.db
    workspace = http.portal.call(db.workspace_for_key, key)
    ids = http.portal.call(db.all_contact_ids, workspace.id)
    contacts = http.portal.call(db.contacts_by_id, workspace.id, ids, {"_id": 0, "workspace_id": 0,
                                                                          "createdAt": 0, "updatedAt": 0})
    events = http.portal.call(db.events_of_contacts, workspace.id, ids)
    return {cid: (contacts[cid], len(events[cid])) for cid in ids}


def test_import_twice_changes_nothing(http, cli_env, small_dir):
    name, key = create_workspace(cli_env)
    first = segmentql("import", "--workspace", name, str(small_dir), env=cli_env)
    assert first.returncode == 0, first.stderr
    assert "events: " in first.stderr and "0 refused" in first.stderr
    before = snapshot(http, key)
    second = segmentql("import", "--workspace", name, str(small_dir), env=cli_env)
    assert second.returncode == 0, second.stderr
    assert "contacts: 0 stored, 150 unchanged" in second.stderr
    assert "events: 0 stored" in second.stderr
    assert snapshot(http, key) == before
    assert len(before) == 150


def test_killed_import_completed_by_rerun_equals_clean_import(http, cli_env, small_dir):
    clean_name, clean_key = create_workspace(cli_env)
    assert segmentql("import", "--workspace", clean_name, str(small_dir), env=cli_env).returncode == 0
    name, key = create_workspace(cli_env)
    env = {**cli_env, "SEGMENTQL_INGEST_BATCH": "100"}
    for delay in (1.5, 3.0):
        proc = subprocess.Popen([sys.executable, "-m", "segmentql.cli", "import", "--workspace", name,
                                 str(small_dir)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    rerun = segmentql("import", "--workspace", name, str(small_dir), env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert snapshot(http, key) == snapshot(http, clean_key)


def test_malformed_line_is_refused_before_anything_is_written(http, cli_env, small_dir, tmp_path):
    name, key = create_workspace(cli_env)
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in ("fields.json", "campaigns.ndjson", "events.ndjson"):
        (bad / f).write_text((small_dir / f).read_text())
    lines = (small_dir / "contacts.ndjson").read_text().splitlines()
    lines[6] = lines[6][:40]
    (bad / "contacts.ndjson").write_text("\n".join(lines) + "\n")
    done = segmentql("import", "--workspace", name, str(bad), env=cli_env)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert "contacts.ndjson:7" in done.stderr and "not valid JSON" in done.stderr
    assert snapshot(http, key) == {}


def test_bad_values_are_reported_by_file_and_line_and_the_rest_kept(http, cli_env, tmp_path):
    name, key = create_workspace(cli_env)
    (tmp_path / "fields.json").write_text('[{"key": "ltv", "type": "NUMBER"}]')
    (tmp_path / "contacts.ndjson").write_text(
        '{"id": "a", "email": "a@example.com", "customFields": {"ltv": 5}}\n'
        '{"id": "b", "email": "b@example.com", "customFields": {"ltv": "five"}}\n')
    (tmp_path / "events.ndjson").write_text(
        '{"id": "e1", "contactId": "a", "type": "OPEN", "at": "2026-01-01T00:00:00Z"}\n'
        '{"id": "e2", "contactId": "zz", "type": "OPEN", "at": "2026-01-01T00:00:00Z"}\n')
    done = segmentql("import", "--workspace", name, str(tmp_path), env=cli_env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "contacts.ndjson:2: contact 'b': custom field 'ltv'" in done.stderr
    assert "events.ndjson:2: event 'e2': unknown contact 'zz'" in done.stderr
    assert set(snapshot(http, key)) == {"a"}


@pytest.mark.parametrize("args, message", [
    (("import", "--workspace", "no-such-workspace", "."), "no workspace named 'no-such-workspace'"),
    (("import", "--workspace", "x", "/does/not/exist"), None),
])
def test_command_errors_are_one_line(cli_env, args, message):
    done = segmentql(*args, env=cli_env)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    if message:
        assert message in done.stderr


def test_rollups_equal_a_recomputation_from_raw_events(seed):
    ids = seed.call(seed.db.all_contact_ids, seed.workspace_id)
    contacts = seed.call(seed.db.contacts_by_id, seed.workspace_id, ids, {"_id": 0, "stats": 1, "timezone": 1})
    events = seed.call(seed.db.events_of_contacts, seed.workspace_id, ids)
    campaign_ids = {e["campaign_id"] for evs in events.values() for e in evs if "campaign_id" in e}
    campaigns = seed.call(seed.db.campaigns_by, seed.workspace_id, "id", campaign_ids)
    assert len(ids) == 2000
    for cid in ids:
        assert contacts[cid]["stats"] == compute_stats(events[cid], contacts[cid].get("timezone"), campaigns), cid


def test_rebuild_rollups_command(http, cli_env, small_dir):
    name, key = create_workspace(cli_env)
    assert segmentql("import", "--workspace", name, str(small_dir), env=cli_env).returncode == 0
    before = snapshot(http, key)
    done = segmentql("rebuild-rollups", "--workspace", name, env=cli_env)
    assert done.returncode == 0 and "rebuilt the rollups of 150 contacts" in done.stderr
    assert snapshot(http, key) == before


def test_embedded_database_is_shared_with_a_running_serve(tmp_path):
    """workspace and import work on the data dir of a running serve, through its server."""
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
    data = tmp_path / "data"
    port = str(free_port())
    serve = subprocess.Popen([sys.executable, "-m", "segmentql.cli", "serve", "--data-dir", str(data),
                              "--port", port], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        import httpx
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        done = segmentql("workspace", "create", "shared", "--data-dir", str(data), env=env)
        assert done.returncode == 0, done.stderr
        key = done.stdout.strip().splitlines()[-1]
        response = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": "{ contact(id: \"x\") { id } }"},
                              headers={"Authorization": f"Bearer {key}"})
        assert response.json() == {"data": {"contact": None}}
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=30)
    # serve was the last user: the embedded server is gone and the data stays.
    assert not (data / "server.json").exists()
    again = segmentql("workspace", "key", "shared", "--data-dir", str(data), env=env)
    assert again.returncode == 0 and again.stdout.strip().startswith("sq_")
