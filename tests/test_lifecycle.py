"""The embedded database stops with its last user, however that user ends.

``serve``, ``demo``, ``import`` and a pytest run each get SIGTERM (``docker
stop``, Kubernetes), SIGINT (Ctrl-C) or SIGKILL while they use the embedded
server of a data dir of their own; within seconds neither ``secantusd-py`` nor
its watchdog runs any more. Users of one data dir share one server, and killing
one of them leaves the server to the others."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from segmentql.server.embedded import EmbeddedServer, ping

from .conftest import REPO, SHARED, free_port, segmentql

ENV = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "SEGMENTQL_DATA_DIR")}
GONE_WITHIN_S = 15
_started: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test():
    yield
    for proc in _started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _started.clear()


def database_processes(root: Path) -> dict[int, str]:
    """The running ``secantusd-py`` and watchdog processes whose command line names a path under root."""
    found, under = {}, f"{root}{os.sep}"
    for entry in Path("/proc").iterdir():
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # not a process, or one that just ended
            continue
        if (entry.name.isdigit() and any("secantusd-py" in a or "embedded_watchdog" in a for a in args)
                and any(a.startswith(under) for a in args)):
            found[int(entry.name)] = " ".join(args)
    return found


def wait_until_gone(root: Path) -> None:
    deadline = time.monotonic() + GONE_WITHIN_S
    while (left := database_processes(root)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"still running after {GONE_WITHIN_S} s: {left}"


def assert_all_gone(root: Path) -> None:
    wait_until_gone(root)
    assert not list(root.rglob("server.json"))


def database_pid(data: Path) -> int:
    return json.loads((data / "server.json").read_text())["pid"]


def start(args: list[str], **kw) -> subprocess.Popen:
    _started.append(proc := subprocess.Popen(args, stdin=subprocess.DEVNULL, **kw))
    return proc


def cli(*args: str, env=None, **kw) -> subprocess.Popen:
    return start([sys.executable, "-m", "segmentql.cli", *args], env=env or ENV, **kw)


def start_service(*args: str, log: Path, port: int | None = None) -> subprocess.Popen:
    """``serve`` or ``demo`` with these arguments, once it answers on its port; its stderr goes to log."""
    port = port or free_port()
    with log.open("w") as stderr:
        proc = cli(*args, "--port", str(port), stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited with status {proc.returncode} before serving: {log.read_text()[-2000:]}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"did not serve within 120 s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Big enough that importing it (in batches of 50) takes several seconds."""
    out = tmp_path_factory.mktemp("lifecycle-data")
    subprocess.run([sys.executable, str(SHARED / "datagen.py"), str(out), "--contacts", "600", "--campaigns", "12",
                    "--seed", "5"], check=True, capture_output=True)
    return out


def serve(data: Path, port: int | None = None) -> subprocess.Popen:
    return start_service("serve", "--data-dir", str(data), log=data.parent / "serve.log", port=port)


def create_workspace(data: Path, name: str = "w") -> str:
    done = segmentql("workspace", "create", name, "--data-dir", str(data), env=ENV)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def start_import(data: Path, dataset: Path, name: str = "w") -> subprocess.Popen:
    """An import that has started writing (its first progress line is out)."""
    proc = cli("import", "--workspace", name, "--data-dir", str(data), str(dataset),
               env={**ENV, "SEGMENTQL_INGEST_BATCH": "50"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
               text=True)
    assert proc.stderr.readline(), "the import ended before it wrote anything"
    return proc


# -- one user of a data dir, ended by a signal ---------------------------------------------

def a_serve(tmp_path: Path, _dataset: Path) -> subprocess.Popen:
    return serve(tmp_path / "data")


def a_demo(tmp_path: Path, _dataset: Path) -> subprocess.Popen:
    return start_service("demo", "--contacts", "50", "--data-dir", str(tmp_path / "data"), log=tmp_path / "demo.log")


def an_import(tmp_path: Path, dataset: Path) -> subprocess.Popen:
    create_workspace(tmp_path / "data")
    return start_import(tmp_path / "data", dataset)


def a_pytest_run(tmp_path: Path, _dataset: Path) -> subprocess.Popen:
    """A test session of this suite (its ``embedded_uri`` fixture) in the middle of a test."""
    (tmp_path / "test_holding.py").write_text(
        "import time\n\n"
        "def test_holding(embedded_uri):\n"
        "    print('using', embedded_uri, flush=True)\n"
        "    time.sleep(300)\n")
    proc = start([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-s", "-q",
                  "--basetemp", str(tmp_path / "base"), str(tmp_path / "test_holding.py")],
                 cwd=REPO, env=ENV, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("using mongodb://"):
            return proc
    pytest.fail(f"the test run ended (status {proc.wait()}) before using the database")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
@pytest.mark.parametrize("start_user", [a_serve, a_demo, an_import, a_pytest_run], ids=lambda f: f.__name__)
def test_the_database_does_not_outlive_its_only_user(start_user, sig, tmp_path, dataset):
    user = start_user(tmp_path, dataset)
    assert len(database_processes(tmp_path)) == 2  # secantusd-py and its watchdog
    user.send_signal(sig)
    user.wait(timeout=60)
    if start_user in (a_serve, a_demo) and sig != signal.SIGKILL:
        # serve leaves in order: the database is stopped before the process exits.
        assert user.returncode == 128 + sig
        assert database_processes(tmp_path) == {}
    assert_all_gone(tmp_path)


# -- several users of one data dir ---------------------------------------------------------

def test_killing_serve_leaves_the_server_to_a_running_import(tmp_path, dataset):
    data = tmp_path / "data"
    service = serve(data)
    shared = database_pid(data)
    create_workspace(data)
    importing = start_import(data, dataset)
    assert len(database_processes(tmp_path)) == 2  # one server for both
    service.send_signal(signal.SIGKILL)
    service.wait(timeout=60)
    time.sleep(1.5)  # several times the watchdog's poll interval
    assert importing.poll() is None, "the import should still be running"
    assert database_pid(data) == shared and shared in database_processes(tmp_path)
    _out, err = importing.communicate(timeout=300)
    assert importing.returncode == 0, err
    assert "contacts: 600 stored" in err
    assert_all_gone(tmp_path)  # the import was the last user


def test_killing_an_import_leaves_serve_its_server(tmp_path, dataset):
    data = tmp_path / "data"
    port = free_port()
    service = serve(data, port)
    shared = database_pid(data)
    key = create_workspace(data)
    importing = start_import(data, dataset)
    assert len(database_processes(tmp_path)) == 2  # one server for both
    importing.send_signal(signal.SIGKILL)
    importing.wait(timeout=60)
    time.sleep(1.5)
    assert database_pid(data) == shared and shared in database_processes(tmp_path)
    response = httpx.post(f"http://127.0.0.1:{port}/graphql", headers={"Authorization": f"Bearer {key}"},
                          json={"query": '{ contact(id: "x") { id } }'}, timeout=30)
    assert response.json() == {"data": {"contact": None}}
    service.send_signal(signal.SIGTERM)
    assert service.wait(timeout=60) == 128 + signal.SIGTERM
    assert database_processes(tmp_path) == {}
    assert not (data / "server.json").exists()


def test_the_database_dies_with_its_watchdog_and_the_next_user_starts_another(tmp_path):
    data = tmp_path / "data"
    first = EmbeddedServer(data)
    first.start()
    os.kill(json.loads((data / "server.json").read_text())["watchdog"], signal.SIGKILL)
    wait_until_gone(tmp_path)  # the database got its parent-death signal
    second = EmbeddedServer(data)
    assert ping(second.start())  # not the stale server.json's
    first.stop()
    assert ping(second.uri)
    second.stop()
    assert_all_gone(tmp_path)
