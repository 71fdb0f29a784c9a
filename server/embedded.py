"""The embedded database: SecantusDB run as a child process on a data dir.

Several segmentql processes may want the same data dir at once (a running
``serve`` and an ``import`` in another terminal). WiredTiger allows one server
per directory, so they share it: the first one starts ``secantusd-py`` and
records its port in ``server.json``; later ones connect to that port. Each user
holds a *shared* lock on ``users.lock`` while it uses the server, and whoever
leaves last (it can take that lock exclusively) stops the server. Starting and
stopping happen under ``start.lock`` so two processes never race to start a
second server on the same storage.
"""

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be started; the message says why."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _secantusd() -> str:
    beside = Path(sys.executable).with_name("secantusd-py")
    if beside.exists():
        return str(beside)
    found = shutil.which("secantusd-py")
    if not found:
        raise EmbeddedServerError("secantusd-py was not found; install segmentql with pip (it depends on SecantusDB)")
    return found


def uri_for_port(port: int) -> str:
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"


def ping(uri: str, timeout_s: float = 1.0) -> bool:
    client = MongoClient(uri, serverSelectionTimeoutMS=int(timeout_s * 1000), connectTimeoutMS=int(timeout_s * 1000))
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _FileLock:
    def __init__(self, path: Path, mode: int):
        self.path, self.mode, self.fd = path, mode, None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, self.mode)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


class EmbeddedServer:
    """A handle on the shared embedded server of one data dir.

    ``start()`` returns the URI to connect to (starting the server when nobody
    runs it yet); ``stop()`` releases this process's use of it and stops the
    server when this was the last user.
    """

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir).resolve()
        self._users_fd: int | None = None
        self._child: subprocess.Popen | None = None
        self.uri: str | None = None

    @property
    def _info_path(self) -> Path:
        return self.data_dir / "server.json"

    def _read_info(self) -> dict | None:
        try:
            return json.loads(self._info_path.read_text())
        except (OSError, ValueError):
            return None

    def start(self) -> str:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EmbeddedServerError(f"cannot create data dir {self.data_dir}: {exc.strerror}") from None
        with _FileLock(self.data_dir / "start.lock", fcntl.LOCK_EX):
            info = self._read_info()
            if info and _alive(info["pid"]) and ping(uri_for_port(info["port"])):
                self.uri = uri_for_port(info["port"])
            else:
                self.uri = self._launch()
            self._users_fd = os.open(self.data_dir / "users.lock", os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._users_fd, fcntl.LOCK_SH)
        return self.uri

    def _launch(self) -> str:
        port = _free_port()
        log = open(self.data_dir / "secantusd.log", "ab")
        cmd = [_secantusd(), "--host", "127.0.0.1", "--port", str(port),
               "--storage-path", str(self.data_dir / "db"), "--log-level", "WARNING"]
        # A session of its own: Ctrl-C in the terminal reaches segmentql, which
        # then stops the server in order, instead of killing it mid-write.
        self._child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        log.close()
        uri = uri_for_port(port)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._child.poll() is not None:
                tail = (self.data_dir / "secantusd.log").read_text(errors="replace").strip().splitlines()[-1:]
                raise EmbeddedServerError(f"the embedded database exited at start-up: {' '.join(tail) or 'no output'}")
            if ping(uri, 0.5):
                self._info_path.write_text(json.dumps({"pid": self._child.pid, "port": port}))
                return uri
            time.sleep(0.1)
        self._child.kill()
        raise EmbeddedServerError(f"the embedded database did not answer ping within {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        if self._users_fd is None:
            return
        with _FileLock(self.data_dir / "start.lock", fcntl.LOCK_EX):
            fcntl.flock(self._users_fd, fcntl.LOCK_UN)
            try:
                fcntl.flock(self._users_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                last_user = True
            except BlockingIOError:
                last_user = False
            if last_user:
                self._stop_server()
            os.close(self._users_fd)
            self._users_fd = None
        if self._child is not None and not last_user:
            # Another process still uses the server we started; it will stop it.
            self._child = None

    def _stop_server(self) -> None:
        info = self._read_info()
        if not info:
            return
        pid = info["pid"]
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while time.monotonic() < deadline:
                if self._child is not None and self._child.pid == pid:
                    if self._child.poll() is not None:
                        break
                elif not _alive(pid):
                    break
                time.sleep(0.05)
            else:
                os.kill(pid, signal.SIGKILL)
        if self._child is not None:
            self._child.wait()
        self._info_path.unlink(missing_ok=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
