"""The fast tier: pure functions of the compiler, validation, rollups, field
types, splits and change paths, checked without a database, HTTP or a child
process, so the whole tier runs in seconds.

pytest still loads ``tests/conftest.py`` (its fixtures start nothing until a
test asks for them; its command listener and session-end check see no
commands here). So that no test of this tier starts the embedded database by
asking for one of them, the fixtures that would are replaced here by ones that
refuse, and a test that opens a connection or starts a process fails.
"""

import socket
import subprocess
import threading

import pytest

from segmentql.plugins.registry import ConditionRegistry, load_registry

NOT_HERE = "tests/unit is the fast tier (no database, HTTP or child process): move this test to tests/"


@pytest.fixture(scope="session")
def embedded_uri():
    pytest.fail(NOT_HERE)


@pytest.fixture(scope="session")
def seed_dir():
    pytest.fail(NOT_HERE)


@pytest.fixture(scope="session")
def segmentql_database_uri():
    """The plugin test kit's database (``segmentql`` fixture)."""
    pytest.fail(NOT_HERE)


@pytest.fixture(autouse=True)
def _no_connections_or_processes(monkeypatch):
    """The test's thread may not connect or start a process. Other threads may:
    in a run of the whole suite, the integration tests' database client lives
    on beside this tier."""
    test_thread = threading.current_thread()

    def guarded(real):
        def call(*args, **kwargs):
            if threading.current_thread() is test_thread:
                raise AssertionError(NOT_HERE)
            return real(*args, **kwargs)
        return call

    for owner, name in ((socket.socket, "connect"), (socket.socket, "connect_ex"), (subprocess.Popen, "__init__")):
        monkeypatch.setattr(owner, name, guarded(getattr(owner, name)))


@pytest.fixture(scope="session")
def registry() -> ConditionRegistry:
    """The built-in conditions only: the tier never depends on what else is installed."""
    return load_registry(load_entry_points=False)
