"""The embedded database: SecantusDB run as a child process on a data dir.

Several segmentql processes may want the same data dir at once (a running
``serve`` and an ``import`` in another terminal). WiredTiger allows one server
per directory, so they share it: the first one starts it and later ones connect
to the port recorded in ``server.json``. Each user holds a *shared* lock on
``users.lock`` while it uses the server. Joining, and stopping, happen under
``start.lock`` so two processes never race to start a second server on the
same storage.

The server runs under a watchdog process (``embedded_watchdog``), not under
the user that started it: it stops the server once no process holds
``users.lock`` any more, so the server stops with its last user however that
user ends, SIGKILL included. The last user to leave in order stops it at once
and waits, so a ``serve`` that exits leaves nothing running.
"""

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from .embedded_watchdog import INFO, START_LOCK, STOP_TIMEOUT_S, USERS_LOCK, WATCHDOG_LOCK, open_lock, try_lock

START_TIMEOUT_S = 60.0


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
    timeout_ms = int(timeout_s * 1000)
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=timeout_ms,
                                                      connectTimeoutMS=timeout_ms)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


@contextlib.contextmanager
def _file_lock(path: Path, mode: int) -> Iterator[None]:
    """``path`` locked with ``mode`` for the block; closing the file releases it."""
    fd = open_lock(path)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


class EmbeddedServer:
    """A handle on the shared embedded server of one data dir.

    ``start()`` returns the URI to connect to (starting the server when nobody
    runs it yet); ``stop()`` releases this process's use of it and stops the
    server when this was the last user.
    """

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir).resolve()
        self._users_fd: int | None = None
        self._watchdog: subprocess.Popen | None = None
        self.uri: str | None = None

    @property
    def _info_path(self) -> Path:
        return self.data_dir / INFO

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
        with _file_lock(self.data_dir / START_LOCK, fcntl.LOCK_EX):
            # A user before the server exists: a watchdog never sees "no users" before its first one.
            users_fd = open_lock(self.data_dir / USERS_LOCK)
            fcntl.flock(users_fd, fcntl.LOCK_SH)
            try:
                info = self._read_info()
                if info and self._answers(info["port"]):
                    self.uri = uri_for_port(info["port"])
                else:
                    self._stop_server()
                    self.uri = self._launch()
            except BaseException:
                os.close(users_fd)
                raise
            self._users_fd = users_fd
        return self.uri

    def _launch(self) -> str:
        port = _free_port()
        cmd = [_secantusd(), "--host", "127.0.0.1", "--port", str(port),
               "--storage-path", str(self.data_dir / "db"), "--log-level", "WARNING"]
        # A session of its own: Ctrl-C in the terminal reaches segmentql, whose
        # last user then stops the server in order, instead of killing it mid-write.
        with open(self.data_dir / "secantusd.log", "ab") as log:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-m", "segmentql.server.embedded_watchdog", str(self.data_dir), str(port), *cmd],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        uri = uri_for_port(port)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._watchdog.poll() is not None:
                tail = (self.data_dir / "secantusd.log").read_text(errors="replace").strip().splitlines()[-1:]
                raise EmbeddedServerError(f"the embedded database exited at start-up: {' '.join(tail) or 'no output'}")
            info = self._read_info()
            if info and info["watchdog"] == self._watchdog.pid and ping(uri, 0.5):
                return uri
            time.sleep(0.1)
        self._stop_server()
        raise EmbeddedServerError(f"the embedded database did not answer ping within {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        if self._users_fd is None:
            return
        with _file_lock(self.data_dir / START_LOCK, fcntl.LOCK_EX):
            fcntl.flock(self._users_fd, fcntl.LOCK_UN)
            last_user = try_lock(self._users_fd, fcntl.LOCK_EX)
            os.close(self._users_fd)
            self._users_fd = None
            if last_user:
                self._stop_server()
        if self._watchdog is not None and last_user:
            self._watchdog.wait()
        # Otherwise another process still uses the server we started; it ends without us.
        self._watchdog = None

    def _answers(self, port: int) -> bool:
        """Whether the recorded server answers. While its watchdog runs it may be busy, or still
        starting under a launcher that was killed: it gets as long as a starting one."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while self._watchdog_runs() and time.monotonic() < deadline:
            if ping(uri_for_port(port), 1.0):
                return True
        return False

    def _watchdog_runs(self) -> bool:
        """Whether a watchdog holds ``watchdog.lock``: unlike a pid, a lock is not held by a zombie
        nor by a process that reuses the pid."""
        fd = open_lock(self.data_dir / WATCHDOG_LOCK)
        try:
            return not try_lock(fd, fcntl.LOCK_SH)
        finally:
            os.close(fd)

    def _stop_server(self) -> None:
        """Have the watchdog of this data dir, if one runs, stop the server; wait until it is gone.

        Called under start.lock, by the last user and before a launch (a
        server that does not answer is replaced, not joined by a second one).
        """
        fd = open_lock(self.data_dir / WATCHDOG_LOCK)
        try:
            sig, signalled = signal.SIGTERM, None
            deadline = time.monotonic() + STOP_TIMEOUT_S + 5  # the watchdog's own SIGKILL comes first
            while not try_lock(fd, fcntl.LOCK_SH):
                if time.monotonic() > deadline:
                    if sig == signal.SIGKILL:
                        raise EmbeddedServerError(f"the embedded database of {self.data_dir} did not stop")
                    sig, deadline = signal.SIGKILL, time.monotonic() + 5  # the database gets its parent-death signal
                pid = os.pread(fd, 20, 0).decode()  # empty for the moment a new watchdog takes to write it
                if pid and (pid, sig) != signalled:
                    signalled = (pid, sig)
                    with contextlib.suppress(ProcessLookupError):  # it has just ended
                        os.kill(int(pid), sig)
                time.sleep(0.05)
        finally:
            os.close(fd)
        self._info_path.unlink(missing_ok=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
