"""What a webhook receiver got (``tests/webhook_receiver.py``'s log), checked
the way a receiver would: each signature verified with the secret (README,
"Webhooks"), changes deduplicated by their cursor."""

import hashlib
import hmac
import json
import subprocess
import sys
import time
from pathlib import Path

RECEIVER = Path(__file__).with_name("webhook_receiver.py")


def received(log: Path) -> list[dict]:
    """Every POST the receiver logged: {headers, body (parsed), raw, status}."""
    if not log.exists():
        return []
    records = []
    for line in log.read_text().splitlines():
        record = json.loads(line)
        records.append({**record, "raw": record["body"], "body": json.loads(record["body"])})
    return records


def signature_valid(record: dict, secret: str, tolerance: float = 300) -> bool:
    """Whether one of the ``v1`` signatures of a logged POST is the secret's
    HMAC-SHA256 of ``"<t>.<body>"``, with ``t`` within ``tolerance`` seconds."""
    header = {k.lower(): v for k, v in record["headers"].items()}["segmentql-signature"]
    parts = [p.split("=", 1) for p in header.split(",")]
    timestamp = next(v for k, v in parts if k == "t")
    expected = hmac.new(secret.encode(), f"{timestamp}.{record['raw']}".encode(), hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(timestamp)) <= tolerance
    return fresh and any(hmac.compare_digest(expected, v) for k, v in parts if k == "v1")


def delivered_changes(log: Path, status_ok: bool = True) -> list[dict]:
    """The changes of every POST answered 2xx (or of all, ``status_ok=False``),
    in arrival order, deduplicated by cursor."""
    seen, changes = set(), []
    for record in received(log):
        if status_ok and not 200 <= record["status"] < 300:
            continue
        for change in record["body"]["changes"]:
            if change["cursor"] not in seen:
                seen.add(change["cursor"])
                changes.append(change)
    return changes


def start_receiver(port: int, log: Path, *options: str) -> subprocess.Popen:
    """The receiver on ``port``, once it listens."""
    proc = subprocess.Popen([sys.executable, str(RECEIVER), str(port), str(log), *options],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def wait_for(predicate, timeout: float = 30, every: float = 0.1):
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(every)
