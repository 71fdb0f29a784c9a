"""The ``segmentql`` command.

Every command uses ``MONGODB_URI`` when it is set; otherwise the embedded
SecantusDB of ``--data-dir`` (shared with a ``serve`` already running on it).
Bad input ends a command with one line naming what is wrong and a non-zero
exit, never a traceback.
"""

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

from pymongo.errors import PyMongoError

from segmentql.plugins.registry import PluginError, load_registry
from segmentql.server import export, fieldtypes, ingest, snapshots
from segmentql.server.database import Database
from segmentql.server.embedded import EmbeddedServer, EmbeddedServerError
from segmentql.server.errors import Conflict, SegmentqlError
from segmentql.server.importer import ImportRefused, ImportReport, Progress, import_directory
from segmentql.server.live import Cause, LiveSegments
from segmentql.server.settings import Settings, SettingsError

DEMO_WORKSPACE = "demo"
T = TypeVar("T")


class CommandError(Exception):
    """Ends the command with this message and exit status 1."""


@contextlib.contextmanager
def database_uri(settings: Settings) -> Iterator[str]:
    """``MONGODB_URI``, or the embedded server of the data dir for as long as the block runs."""
    if settings.mongodb_uri:
        yield settings.mongodb_uri
        return
    server = EmbeddedServer(settings.data_dir)
    uri = server.start()
    try:
        yield uri
    finally:
        server.stop()


def live_segments(db: Database, settings: Settings) -> LiveSegments:
    """The live-membership service for a command that writes (see server/live.py)."""
    return LiveSegments(db, _registry(settings), settings.write_lease_seconds)


def run_with_db(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``work(db)`` (a coroutine function) against the configured database."""
    async def main(uri: str) -> T:
        db = Database(uri, settings.database, settings.max_time_ms)
        try:
            await db.ensure_indexes()
            return await work(db)
        finally:
            await db.close()

    with database_uri(settings) as uri:
        return asyncio.run(main(uri))


async def _workspace_id(db: Database, name: str) -> str:
    workspace = await db.workspace_by_name(name)
    if workspace is None:
        raise CommandError(f"no workspace named {name!r}; create it with: segmentql workspace create {name}")
    return workspace["_id"]


# -- commands ---------------------------------------------------------------------

def cmd_workspace_create(args, settings: Settings) -> None:
    name = args.name.strip()
    if not name or len(name) > 100:
        raise CommandError("a workspace name must be 1 to 100 characters")

    async def work(db: Database) -> str:
        try:
            _doc, key = await db.create_workspace(name)
        except Conflict as exc:
            raise CommandError(f"{exc}; issue another key with: segmentql workspace key {name}") from None
        return key

    key = run_with_db(settings, work)
    print(f"created workspace {name!r}; its API key (shown once, store it safely):", file=sys.stderr)
    print(key)


def cmd_workspace_key(args, settings: Settings) -> None:
    async def work(db: Database) -> str:
        key = await db.add_workspace_key(args.name)
        if key is None:
            raise CommandError(f"no workspace named {args.name!r}")
        return key

    print(run_with_db(settings, work))


def _print_import_report(report, stream=sys.stderr) -> None:
    for name, result in report.counts.items():
        print(f"{name}: {result.accepted} stored, {result.unchanged} unchanged, {len(result.errors)} refused",
              file=stream)
    for problem in report.problems[:50]:
        print(problem, file=stream)
    if len(report.problems) > 50:
        print(f"... and {len(report.problems) - 50} more problems", file=stream)


def cmd_import(args, settings: Settings) -> None:
    directory = Path(args.directory)

    async def work(db: Database) -> ImportReport:
        workspace_id = await _workspace_id(db, args.workspace)
        return await import_directory(live_segments(db, settings), workspace_id, directory,
                                      settings.ingest_batch_size, Progress(quiet=args.quiet))

    try:
        report = run_with_db(settings, work)
    except ImportRefused as exc:
        raise CommandError(f"nothing imported: {exc}") from None
    _print_import_report(report)
    if report.problems:
        raise CommandError(f"import finished with {len(report.problems)} refused item(s); the rest is stored")


def cmd_rebuild(args, settings: Settings) -> None:
    async def work(db: Database) -> int:
        workspace_id = await _workspace_id(db, args.workspace)
        rebuilt = await ingest.rebuild_all_rollups(db, workspace_id)
        await live_segments(db, settings).evaluate_after(workspace_id, lambda _contact_id: Cause.EVENT)
        return rebuilt

    print(f"rebuilt the rollups of {run_with_db(settings, work)} contacts from their raw events", file=sys.stderr)


def _instant(text: str) -> dt.datetime:
    try:
        return fieldtypes.parse_datetime(text)
    except ValueError as exc:
        raise CommandError(f"--as-of: {exc}") from None


def cmd_refresh_segments(args, settings: Settings) -> None:
    as_of = _instant(args.as_of) if args.as_of else None

    async def work(db: Database) -> list[tuple[str, int]]:
        live = live_segments(db, settings)
        if args.workspace:
            names = {await _workspace_id(db, args.workspace): args.workspace}
        else:
            names = {w["_id"]: w["name"] for w in await db.workspaces_named()}
        return [(name, await live.refresh(workspace_id, as_of)) for workspace_id, name in names.items()]

    for name, evaluated in run_with_db(settings, work):
        print(f"{name}\t{evaluated} segment(s) evaluated")


def cmd_record_sizes(args, settings: Settings) -> None:
    registry = _registry(settings)

    async def work(db: Database) -> list[tuple[dict, int | str]]:
        workspace_id = await _workspace_id(db, args.workspace) if args.workspace else None
        await ingest.upgrade_rollups(db)  # sizes counted on older rollups would be wrong
        return await snapshots.record_sizes(db, registry, workspace_id)

    skipped = 0
    for segment, size in run_with_db(settings, work):
        if isinstance(size, str):
            skipped += 1
            print(f"segmentql: skipped segment {segment['id']} ({segment['name']}): {size}", file=sys.stderr)
        else:
            print(f"{segment['workspace_id']}\t{segment['id']}\t{size}\t{segment['name']}")
    if skipped:
        raise CommandError(f"{skipped} segment(s) skipped; the others are recorded")


def cmd_export(args, settings: Settings) -> None:
    registry = _registry(settings)
    fmt = export.FORMATS[args.format]

    async def work(db: Database) -> None:
        workspace = await db.workspace(await _workspace_id(db, args.workspace))
        try:
            fields = export.parse_fields(args.fields, workspace)
            members = await export.of_segment(db, registry, workspace, args.segment)
            progress = Progress(quiet=not sys.stderr.isatty())
            written = 0
            with _export_output(args.out) as out:
                async for text, written in export.chunks(db, workspace.id, members, fields, fmt):
                    out.write(text.encode("utf-8"))
                    progress.update("exporting", written, members.total or written)
            progress.update("exporting", written, members.total or written, final=True)
        except SegmentqlError as exc:
            raise CommandError(str(exc)) from None

    run_with_db(settings, work)


@contextlib.contextmanager
def _export_output(path: str | None) -> Iterator[BinaryIO]:
    """stdout, or the file ``path``, written as ``path.part`` and renamed once
    complete: a failed export leaves no partial file (nor spoils an older one)."""
    if path is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    partial = target.with_name(target.name + ".part")
    try:
        with partial.open("wb") as out:
            yield out
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def _registry(settings: Settings):
    return load_registry(allow=settings.plugin_allow, block=settings.plugin_block)


def cmd_plugins(args, settings: Settings) -> None:
    registry = _registry(settings)
    rows = [{"name": p.name, "version": p.version, "distribution": p.distribution, "builtin": p.builtin,
             "fields": list(p.fields)} for p in registry.plugins]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        origin = f"{r['distribution']} {r['version']}" if r["distribution"] else "(not from a package)"
        kind = "built-in" if r["builtin"] else "installed"
        print(f"{r['name']:<{width}}  {kind:<9}  {origin:<24}  {', '.join(r['fields']) or '-'}")


def cmd_schema(_args, settings: Settings) -> None:
    from segmentql.schema import build_schema  # the schema needs the registry first
    print(build_schema(_registry(settings)).as_str())


def _exit_on_sigterm() -> None:
    """SIGTERM (``docker stop``, Kubernetes) ends the command the way Ctrl-C does, through its
    ``finally`` blocks, so the embedded database is stopped in order before the process exits.
    Without this, uvicorn re-raises SIGTERM after its graceful shutdown and its default action
    ends the process on the spot."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def serve(settings: Settings, host: str, port: int, banner: str | None = None) -> None:
    import uvicorn

    from .app import create_app

    registry = _registry(settings)  # a plugin problem stops us before the database starts
    with database_uri(settings) as uri:
        app = create_app(settings, uri, registry)
        if banner:
            print(banner, flush=True)
        print(f"segmentql: GraphQL and GraphiQL at http://{host}:{port}/graphql", file=sys.stderr, flush=True)
        # A WebSocket message (a subscription's document) is bounded like a request body.
        uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info", lifespan="on",
                                      ws="websockets-sansio", ws_max_size=settings.max_body_bytes)).run()


def cmd_serve(args, settings: Settings) -> None:
    _exit_on_sigterm()
    serve(settings, args.host, args.port)


def cmd_demo(args, settings: Settings) -> None:
    _exit_on_sigterm()
    dataset = settings.data_dir / f"demo-{args.contacts}"
    if not (dataset / "meta.json").exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "segmentql.server.datagen", str(dataset), "--contacts",
                        str(args.contacts), "--seed", "7"], check=True, stdout=sys.stderr)

    async def work(db: Database) -> str | None:
        workspace = await db.workspace_by_name(DEMO_WORKSPACE)
        key: str | None
        if workspace is None:
            workspace, key = await db.create_workspace(DEMO_WORKSPACE)
        else:
            key = await db.add_workspace_key(DEMO_WORKSPACE)
        if workspace.get("demoDataset") != dataset.name:
            report = await import_directory(live_segments(db, settings), workspace["_id"], dataset,
                                            settings.ingest_batch_size, Progress())
            _print_import_report(report)
            await db.set_demo_dataset(workspace["_id"], dataset.name)
        return key

    key = run_with_db(settings, work)
    serve(settings, args.host, args.port, banner=(
        f"demo workspace {DEMO_WORKSPACE!r} is ready (data as of 2026-11-28T12:00:00Z). API key:\n{key}"))


# -- parsing ----------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=None,
                        help="embedded database directory when MONGODB_URI is not set (default ./segmentql-data)")
    top = argparse.ArgumentParser(prog="segmentql", description="GraphQL segment engine for email marketing.")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, func, help_text, **kw):
        p = sub.add_parser(name, help=help_text, parents=[common], description=help_text, **kw)
        p.set_defaults(func=func)
        return p

    for name, func, text in (("serve", cmd_serve, "run the GraphQL service"),
                             ("demo", cmd_demo, "create a demo workspace with generated data, print its key, serve")):
        p = add(name, func, text)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8000)
        if name == "demo":
            p.add_argument("--contacts", type=int, default=2000, help="size of the generated data set")

    ws = sub.add_parser("workspace", help="manage workspaces").add_subparsers(dest="action", required=True,
                                                                                 metavar="ACTION")
    create = ws.add_parser("create", help="create a workspace and print its API key", parents=[common])
    create.add_argument("name")
    create.set_defaults(func=cmd_workspace_create)
    key = ws.add_parser("key", help="issue another API key for a workspace", parents=[common])
    key.add_argument("name")
    key.set_defaults(func=cmd_workspace_key)

    imp = add("import", cmd_import, "import a data set directory (datagen format); safe to run again")
    imp.add_argument("--workspace", required=True)
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    imp.add_argument("directory")

    reb = add("rebuild-rollups", cmd_rebuild, "recompute every contact's engagement rollups from raw events")
    reb.add_argument("--workspace", required=True)

    refresh = add("refresh-segments", cmd_refresh_segments, "evaluate every saved segment again in full, as the "
                  "service does when the UTC day changes; prints each workspace and how many segments")
    refresh.add_argument("--workspace", help="only this workspace (default: all)")
    refresh.add_argument("--as-of", help="evaluate as of this instant (ISO 8601; for tests and backfills): the "
                         "memberships are then as of it")

    sizes = add("record-sizes", cmd_record_sizes, "record the current size of every saved segment for its "
                "sizeHistory (run it from cron, e.g. daily); prints workspace, segment id, size, name")
    sizes.add_argument("--workspace", help="only this workspace (default: all)")

    exp = add("export", cmd_export, "write a saved segment's members (its stored membership) in id order, "
              "to stdout or --out; progress on stderr when it is a terminal")
    exp.add_argument("--workspace", required=True)
    exp.add_argument("--segment", required=True, help="the segment's id")
    exp.add_argument("--format", choices=sorted(export.FORMATS), default="ndjson")
    exp.add_argument("--fields", help="comma-separated, e.g. id,email,custom.plan (default: id, email, country, "
                     "timezone, tags, leadScore and every declared custom field)")
    exp.add_argument("--out", help="write to this file instead of stdout")

    plug = add("plugins", cmd_plugins, "list installed condition plugins")
    plug.add_argument("--json", action="store_true", help="as JSON")
    add("schema", cmd_schema, "print the GraphQL schema (SDL)")
    return top


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env(data_dir=Path(args.data_dir) if getattr(args, "data_dir", None) else None)
    except SettingsError as exc:
        sys.exit(f"segmentql: {exc}")
    try:
        args.func(args, settings)
    except CommandError as exc:
        sys.exit(f"segmentql: {exc}")
    except (EmbeddedServerError, PluginError) as exc:
        sys.exit(f"segmentql: {exc}")
    except PyMongoError as exc:
        where = "MONGODB_URI" if settings.mongodb_uri else f"the embedded database in {settings.data_dir}"
        sys.exit(f"segmentql: database error with {where}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as exc:
        sys.exit(f"segmentql: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))


if __name__ == "__main__":
    main()
