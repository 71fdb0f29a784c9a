"""Runs the embedded database of one data dir for exactly as long as some process uses it.

``EmbeddedServer`` starts this module, in a session of its own, as
``python -m segmentql.server.embedded_watchdog DATA_DIR PORT COMMAND...``, and
it starts the database (COMMAND) as its only child. Its users are the processes
that get killed: ``docker stop`` and Kubernetes send SIGTERM, after which
uvicorn re-raises the signal before any ``finally`` runs, and a test run may be
SIGKILLed. So no user has to end well for the database to stop:

- the database gets a parent-death signal (Linux ``PR_SET_PDEATHSIG``): it
  cannot outlive the watchdog, even a SIGKILLed one. The watchdog forks it from
  its only thread, the thread whose death the signal follows;
- every user holds a shared flock on ``users.lock`` while it uses the server,
  and the kernel drops a process's flocks however it ends. Once the watchdog
  can lock ``users.lock`` exclusively nobody uses the server any more, and it
  stops the database, holding ``start.lock`` so that nobody joins meanwhile;
- SIGTERM or SIGINT to the watchdog stops the database too: that is how the
  last user to leave in order (``EmbeddedServer.stop``) stops it and waits;
- the database exiting on its own ends the watchdog as well.

Stopping is SIGTERM (the database shuts down in order), then SIGKILL after
``STOP_TIMEOUT_S``; then ``server.json`` is removed. For as long as it runs the
watchdog holds an exclusive flock on ``watchdog.lock``, which holds its pid:
whoever needs the database stopped signals that pid and waits for the lock.

Stdlib only, so that it starts quickly.
"""

import ctypes
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

INFO = "server.json"
USERS_LOCK = "users.lock"
START_LOCK = "start.lock"
WATCHDOG_LOCK = "watchdog.lock"
POLL_S = 0.25
STOP_TIMEOUT_S = 20.0
PR_SET_PDEATHSIG = 1


def try_lock(fd: int, mode: int) -> bool:
    """Take a flock without waiting; False when another process holds a conflicting one."""
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def open_lock(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def _die_with(parent: int):
    """A ``preexec_fn``: the child gets SIGTERM when ``parent`` dies (Linux), and does not start
    at all if ``parent`` died before the signal was set up."""
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)
    return preexec


def _stop(db: subprocess.Popen) -> None:
    if db.poll() is None:
        db.terminate()
        try:
            db.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            db.kill()
            db.wait()


def run(data_dir: Path, port: int, command: list[str]) -> int:
    own = open_lock(data_dir / WATCHDOG_LOCK)
    if not try_lock(own, fcntl.LOCK_EX):
        print(f"segmentql: another embedded database still runs on {data_dir}", file=sys.stderr, flush=True)
        return 1
    os.ftruncate(own, 0)
    os.write(own, str(os.getpid()).encode())
    users, start = open_lock(data_dir / USERS_LOCK), open_lock(data_dir / START_LOCK)
    requested: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: requested.append(signum))

    linux = sys.platform.startswith("linux")
    # The database inherits the lock's open file, so the lock is held until it
    # has exited too: a watchdog killed outright leaves nobody able to start a
    # second database on these files while the first is still shutting down.
    db = subprocess.Popen(command, stdin=subprocess.DEVNULL, pass_fds=(own,),
                          preexec_fn=_die_with(os.getpid()) if linux else None)
    info = data_dir / INFO
    try:
        partial = info.with_suffix(".tmp")
        partial.write_text(json.dumps({"pid": db.pid, "port": port, "watchdog": os.getpid()}))
        partial.replace(info)  # whole or absent for the users reading it
        while not requested and db.poll() is None:
            time.sleep(POLL_S)
            # start.lock first, as everywhere: a user joins under it, and may be doing so right now.
            if try_lock(start, fcntl.LOCK_EX):
                if try_lock(users, fcntl.LOCK_EX):
                    print("segmentql: no process uses the embedded database any more; stopping it",
                          file=sys.stderr, flush=True)
                    break  # still holding start.lock: nobody joins a server that is stopping
                fcntl.flock(start, fcntl.LOCK_UN)
    finally:
        _stop(db)
        info.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]))
