"""The database restarted under a running service: requests fail cleanly
during the outage and succeed afterwards, without restarting the service."""

import subprocess
import time

from starlette.testclient import TestClient

from segmentql.app import create_app
from segmentql.server.embedded import _secantusd, ping, uri_for_port

from .conftest import free_port


def _start(port: int, storage) -> subprocess.Popen:
    proc = subprocess.Popen([_secantusd(), "--host", "127.0.0.1", "--port", str(port), "--storage-path", str(storage)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not ping(uri_for_port(port), 0.5):
        assert time.monotonic() < deadline, "database did not start"
        time.sleep(0.1)
    return proc


def test_database_restart_under_a_running_service(tmp_path, settings, registry):
    port = free_port()
    database = _start(port, tmp_path / "db")
    try:
        with TestClient(create_app(settings, uri_for_port(port), registry)) as http:
            db = http.app.state.segmentql.db
            _doc, key = http.portal.call(db.create_workspace, "outage")
            headers = {"Authorization": f"Bearer {key}"}
            query = {"query": '{ segmentPreview(rule: {leadScore: {min: 0}}) { count } }'}
            answer = http.post("/graphql", json=query, headers=headers).json()
            assert answer == {"data": {"segmentPreview": {"count": 0}}}

            database.terminate()
            database.wait(timeout=30)
            response = http.post("/graphql", json=query, headers=headers)
            assert response.status_code == 503
            assert response.json()["errors"][0]["extensions"]["code"] == "DATABASE_UNAVAILABLE"
            assert "Traceback" not in response.text

            database = _start(port, tmp_path / "db")
            deadline = time.monotonic() + 60
            while True:
                response = http.post("/graphql", json=query, headers=headers)
                if response.status_code == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert response.json() == {"data": {"segmentPreview": {"count": 0}}}
    finally:
        database.terminate()
        database.wait(timeout=30)
