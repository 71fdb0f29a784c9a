"""``segmentql-purchases import FILE --workspace NAME``: store purchases, one
JSON object a line (``{"id", "contactId", "sku", "amount", "at"}``, ``at`` an
ISO 8601 instant with its offset), in the workspace's ``purchases``, then
bring the workspace's saved segments up to date (``segmentql
refresh-segments``), since segmentql does not see writes to a plugin's
collection.

It finds the database and the workspace as every segmentql command does
(``segmentql.cli.workspace_database``: ``MONGODB_URI`` and
``SEGMENTQL_DATABASE``, else the embedded database of ``./segmentql-data``).
Every line is checked before anything is stored (a bad line stops it, naming
the line); the file is then read again and stored a batch at a time, so a
file of any size takes little memory. A purchase is stored under its ``id``
(within the workspace), so importing a file again, or again after the command
was killed part way, stores each purchase once.
"""

import argparse
import datetime as dt
import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from pymongo.errors import BulkWriteError

from segmentql.cli import CommandError, workspace_database

from . import COLLECTION

BATCH = 1000
DUPLICATE_KEY = 11000


class Refused(Exception):
    """What the command line prints, as one line, before exiting with 2."""


def purchase(line: str, number: int, workspace_id: str) -> dict:
    """The document of one line, or Refused naming the line."""
    try:
        item = json.loads(line)
        purchase_id, contact, sku, amount = item["id"], item["contactId"], item["sku"], item["amount"]
        at = dt.datetime.fromisoformat(item["at"])
    except (ValueError, KeyError, TypeError) as exc:
        raise Refused(f"line {number}: not a purchase ({type(exc).__name__}: {exc})") from None
    if not all(isinstance(text, str) and text for text in (purchase_id, contact, sku)):
        raise Refused(f"line {number}: id, contactId and sku must be non-empty strings")
    if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
        raise Refused(f"line {number}: amount must be a number, at least 0")
    if at.utcoffset() is None:
        raise Refused(f"line {number}: at must carry its offset, e.g. 2026-11-28T12:00:00Z")
    return {"_id": f"{workspace_id}:{purchase_id}", "workspace_id": workspace_id, "contact_id": contact, "sku": sku,
            "amount": amount,
            "at": at.astimezone(dt.UTC)}


def purchases(path: Path, workspace_id: str) -> Iterator[dict]:
    """The documents of the file's lines, one by one (Refused at a bad one)."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                yield purchase(line, number, workspace_id)


def import_file(path: Path, workspace: str) -> tuple[int, int]:
    """Store the purchases of ``path`` in ``workspace`` (a name): how many
    were new, and how many were stored already (by an earlier import)."""
    with workspace_database(workspace) as (db, workspace_id):
        total = sum(1 for _ in purchases(path, workspace_id))  # every line checked, nothing stored yet
        docs = purchases(path, workspace_id)
        stored = 0
        while batch := list(itertools.islice(docs, BATCH)):
            try:
                stored += len(db[COLLECTION].insert_many(batch, ordered=False).inserted_ids)
            except BulkWriteError as exc:  # ids stored already are left as they are; anything else is an error
                if any(error["code"] != DUPLICATE_KEY for error in exc.details["writeErrors"]):
                    raise
                stored += exc.details["nInserted"]
    return stored, total - stored


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="segmentql-purchases", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    imp = commands.add_parser("import", help="store purchases from an NDJSON file")
    imp.add_argument("file", type=Path)
    imp.add_argument("--workspace", required=True, help="the workspace's name")
    args = parser.parse_args(argv)
    try:
        stored, already = import_file(args.file, args.workspace)
    except (Refused, CommandError, OSError) as exc:
        print(f"segmentql-purchases: {exc}", file=sys.stderr)
        return 2
    print(f"stored {stored} purchases" + (f" ({already} stored before)" if already else ""))
    refresh = [sys.executable, "-m", "segmentql.cli", "refresh-segments", "--workspace", args.workspace]
    return subprocess.run(refresh, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
