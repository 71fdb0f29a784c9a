"""``segmentql import``: a data set directory in the datagen format, in batches.

The files are read twice. The first pass only checks that every line is a JSON
object, so a truncated or garbled file is refused before anything is written.
The second pass feeds batches to the same ingestion functions the GraphQL
mutations use. Contacts new to the workspace are held back and written last,
once each, with rollups computed from their stored events (an insert and a
rollup update would each cost about as much). Every step is idempotent
(upserts by id, events deduplicated by id, rollups recomputed from raw
events), so an import that was killed part-way is completed, not doubled, by
running it again; until then, events it stored for contacts it had not yet
written wait for them (a contact created later gets its rollups from them).

An import takes no write lease while it loads (other writers of the
workspace go on); once its data is stored, it evaluates every saved segment
in full (``LiveSegments.evaluate_after``), so whatever it changed, also in a
run that was killed and is now completed, enters the segments' logs: cause
CONTACT for a contact the import wrote, EVENT for one it only added events to.
"""

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import ingest, metrics
from .database import Database
from .errors import Conflict, LimitExceeded
from .live import Cause, LiveSegments


@dataclass
class _Pending:
    """What the import writes after all files: the new contacts it holds back
    (written once, with their rollups) and the stored contacts whose rollups
    its events change, in order."""
    new_contacts: dict[str, dict] = field(default_factory=dict)
    due: dict[str, None] = field(default_factory=dict)
    written: set[str] = field(default_factory=set)  # stored contacts whose fields the import changed

    def cause(self, contact_id: str) -> Cause:
        """Why a membership change after the import happened, as far as the import knows."""
        if contact_id in self.new_contacts or contact_id in self.written:
            return Cause.CONTACT
        return Cause.EVENT if contact_id in self.due else Cause.TIME


async def _contacts(db, workspace_id, items, pending: _Pending):
    result = await ingest.upsert_contacts(db, workspace_id, items, held=pending.new_contacts)
    pending.written.update(result.touched)
    return result


async def _campaigns(db, workspace_id, items, _pending):
    return await ingest.upsert_campaigns(db, workspace_id, items)


async def _events(db, workspace_id, items, pending: _Pending):
    result, contact_ids = await ingest.store_events(db, workspace_id, items, held=pending.new_contacts)
    pending.due.update((cid, None) for cid in contact_ids if cid not in pending.new_contacts)
    return result


# Campaigns first: nothing they hold depends on the rest, and rollups name them.
ENTITY_FILES = (("campaigns.ndjson", _campaigns), ("contacts.ndjson", _contacts), ("events.ndjson", _events))


class ImportRefused(ValueError):
    """The directory cannot be imported; nothing was written."""


@dataclass
class ImportReport:
    counts: dict[str, ingest.IngestResult] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class Progress:
    """One line on stderr that rewrites itself on a terminal and prints
    occasional lines otherwise (logs of CI and containers stay short)."""

    def __init__(self, stream=sys.stderr, quiet: bool = False):
        self.stream, self.quiet = stream, quiet
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self._last = 0.0

    def update(self, label: str, done: int, total: int, final: bool = False) -> None:
        if self.quiet:
            return
        current = time.monotonic()
        if not final and current - self._last < (0.2 if self.tty else 5.0):
            return
        self._last = current
        width = 30
        filled = width * done // total if total else width
        line = f"{label:<18} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8", errors="strict") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield number, line


def check_directory(directory: Path) -> dict[str, int]:
    """Item counts per file; raises ImportRefused naming file, line and reason."""
    if not directory.is_dir():
        raise ImportRefused(f"{directory} is not a directory")
    names = ["fields.json"] + [name for name, _ in ENTITY_FILES]
    if not any((directory / n).exists() for n in names):
        raise ImportRefused(f"{directory} has none of {', '.join(names)}")
    counts = {}
    fields_path = directory / "fields.json"
    if fields_path.exists():
        try:
            fields = json.loads(fields_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ImportRefused(f"{fields_path}: not valid JSON ({exc})") from None
        if not isinstance(fields, list) or not all(
                isinstance(f, dict) and isinstance(f.get("key"), str) and isinstance(f.get("type"), str)
                and isinstance(f.get("indexed", False), bool) for f in fields):
            raise ImportRefused(f"{fields_path}: expected a list of {{\"key\": ..., \"type\": ...}} objects "
                                "(with an optional boolean \"indexed\")")
        counts["fields.json"] = len(fields)
    for name, _ in ENTITY_FILES:
        path = directory / name
        if not path.exists():
            continue
        total = 0
        try:
            for number, line in _lines(path):
                try:
                    item = json.loads(line)
                except ValueError as exc:
                    raise ImportRefused(f"{path}:{number}: not valid JSON ({exc.args[0]})") from None
                except RecursionError:
                    raise ImportRefused(f"{path}:{number}: JSON nested too deeply") from None
                if not isinstance(item, dict):
                    raise ImportRefused(f"{path}:{number}: expected a JSON object, got {type(item).__name__}")
                total += 1
        except UnicodeDecodeError as exc:
            raise ImportRefused(f"{path}: not UTF-8 text ({exc.reason})") from None
        counts[name] = total
    return counts


async def import_directory(live: LiveSegments, workspace_id: str, directory: Path, batch_size: int,
                           progress: Progress) -> ImportReport:
    totals = check_directory(directory)
    db = live.db
    report = ImportReport()
    if "fields.json" in totals:
        result = ingest.IngestResult()
        for spec in json.loads((directory / "fields.json").read_text(encoding="utf-8")):
            try:
                created = await ingest.define_custom_field(db, workspace_id, spec["key"], spec["type"],
                                                           spec.get("indexed", False))
            except (Conflict, LimitExceeded) as exc:
                report.problems.append(f"{directory / 'fields.json'}: {exc}")
                continue
            result.accepted += created
            result.unchanged += not created
        report.counts["fields"] = result
    pending = _Pending()
    for name, ingest_batch in ENTITY_FILES:
        if name not in totals:
            continue
        report.counts[name.split(".")[0]] = await _import_file(
            db, workspace_id, directory / name, ingest_batch, batch_size, totals[name], progress, report.problems,
            pending)

    def reporter(label: str):
        return lambda done, total: progress.update(label, done, total, final=done == total)
    failures = await ingest.create_contacts(db, workspace_id, pending.new_contacts,
                                            on_progress=reporter("new contacts"))
    failures |= await ingest.refresh_rollups(db, workspace_id, list(pending.due), bulk=True,
                                             on_progress=reporter("rollups"))
    report.problems.extend(f"{directory}: contact {cid!r}: stored, but its engagement rollups cannot be computed: "
                           f"{reason}" for cid, reason in sorted(failures.items()))
    await live.evaluate_after(workspace_id, pending.cause)
    return report


async def _import_file(db: Database, workspace_id: str, path: Path, ingest_batch: Callable, batch_size: int,
                       total: int, progress: Progress, problems: list[str], pending: _Pending) -> ingest.IngestResult:
    result = ingest.IngestResult()
    batch: list[dict] = []
    line_numbers: list[int] = []
    done = 0

    async def flush():
        nonlocal done
        outcome = await ingest_batch(db, workspace_id, batch, pending)
        result.add(outcome)
        metrics.IMPORTED_ROWS.labels(path.name.split(".")[0]).inc(outcome.accepted)
        problems.extend(f"{path}:{line_numbers[e.index]}: {e.message}" for e in outcome.errors)
        done += len(batch)
        progress.update(path.name, done, total)
        batch.clear()
        line_numbers.clear()

    for number, line in _lines(path):
        batch.append(json.loads(line))
        line_numbers.append(number)
        if len(batch) >= batch_size:
            await flush()
    if batch:
        await flush()
    progress.update(path.name, done, total, final=True)
    return result
