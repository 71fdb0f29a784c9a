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
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from pymongo import MongoClient
from pymongo.database import Database as SyncDatabase
from pymongo.errors import PyMongoError

from segmentql.plugins.registry import ConditionRegistry, PluginError, load_registry
from segmentql.server import apikeys, export, fieldtypes, ingest, snapshots
from segmentql.server.database import Database, check_plugin_storage, now
from segmentql.server.embedded import EmbeddedServer, EmbeddedServerError
from segmentql.server.errors import Conflict, SegmentqlError
from segmentql.server.importer import ImportRefused, ImportReport, Progress, import_directory
from segmentql.server.instants import as_text
from segmentql.server.live import Cause, LiveSegments
from segmentql.server.settings import Settings, SettingsError

from . import authoring

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


@contextlib.asynccontextmanager
async def _prepared(settings: Settings, uri: str, storage) -> AsyncIterator[Database]:
    """The database at ``uri``, its collections and indexes made, the enabled
    plugins' too (PluginError naming the plugin when one of theirs cannot be)."""
    db = Database(uri, settings.database, settings.max_time_ms, storage)
    try:
        await db.ensure_indexes()
        yield db
    finally:
        await db.close()


def _run_at(settings: Settings, uri: str, work: Callable[[Database], Awaitable[T]]) -> T:
    storage = _registry(settings).storage

    async def main() -> T:
        async with _prepared(settings, uri, storage) as db:
            return await work(db)
    return asyncio.run(main())


def run_with_db(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``work(db)`` (a coroutine function) against the configured database,
    with the enabled plugins' collections, indexes and rollups."""
    with database_uri(settings) as uri:
        return _run_at(settings, uri, work)


@contextlib.contextmanager
def workspace_database(workspace: str) -> Iterator[tuple[SyncDatabase[dict[str, Any]], str]]:
    """For a plugin's own command (e.g. one importing into its collection):
    the database segmentql uses, found as every ``segmentql`` command finds
    it (``MONGODB_URI`` and ``SEGMENTQL_DATABASE``, else the embedded database
    of ``./segmentql-data``), as a pymongo ``Database`` with the enabled
    plugins' collections and indexes made, and the id of the workspace named
    ``workspace``, for the ``workspace_id`` of every document the plugin
    stores. CommandError (one line to print) when there is no such workspace
    or segmentql cannot start on that database."""
    with contextlib.ExitStack() as stack:
        try:
            settings = Settings.from_env()
            uri = stack.enter_context(database_uri(settings))
            workspace_id = _run_at(settings, uri, lambda db: _workspace_id(db, workspace))
        except (SettingsError, PluginError, EmbeddedServerError) as exc:
            raise CommandError(str(exc)) from None
        client: MongoClient[dict[str, Any]] = MongoClient(uri, tz_aware=True)
        with client:
            yield client[settings.database], workspace_id


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
    expires_at = _instant(args.expires, "--expires") if args.expires else None

    async def work(db: Database) -> tuple[dict, str]:
        try:
            return await apikeys.create_key(db, await _workspace_id(db, args.name), args.label,
                                            apikeys.Scope[args.scope], expires_at)
        except SegmentqlError as exc:
            raise CommandError(str(exc)) from None

    doc, secret = run_with_db(settings, work)
    print(f"issued key {doc['id']} ({doc['scope']}, {doc['name']!r}, expires "
          f"{as_text(expires_at) if expires_at else 'never'}) for workspace {args.name!r}; its secret (shown once, "
          f"store it safely):", file=sys.stderr)
    print(secret)


KEY_COLUMNS = ("id", "name", "prefix", "scope", "created", "last used", "expires")


def cmd_workspace_keys(args, settings: Settings) -> None:
    async def work(db: Database) -> list[dict]:
        return await apikeys.list_keys(db, await _workspace_id(db, args.name))

    def shown(value) -> str:
        return "-" if value is None else as_text(value) if isinstance(value, dt.datetime) else str(value)

    print("\t".join(KEY_COLUMNS))
    for key in run_with_db(settings, work):
        print("\t".join(shown(key[field]) for field in ("id", "name", "prefix", "scope", "createdAt", "lastUsedAt",
                                                        "expiresAt")))


def cmd_workspace_revoke(args, settings: Settings) -> None:
    async def work(db: Database) -> bool:
        return await apikeys.revoke_key(db, await _workspace_id(db, args.name), args.key_id)

    if not run_with_db(settings, work):
        raise CommandError(f"workspace {args.name!r} has no key {args.key_id!r} that is not revoked already; "
                           f"list its keys with: segmentql workspace keys {args.name}")
    print(f"revoked key {args.key_id} of workspace {args.name!r}: it is refused from now on", file=sys.stderr)


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


def _instant(text: str, option: str = "--as-of") -> dt.datetime:
    try:
        return fieldtypes.parse_datetime(text)
    except ValueError as exc:
        raise CommandError(f"{option}: {exc}") from None


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


def _checked(settings: Settings):
    """The registry and its GraphQL schema: a plugin that breaks the schema,
    or declares storage that can never be made (a collection of segmentql's
    own, more contact indexes than plugins may have), stops the command here
    with one line, before any database or worker process starts (a worker
    refusing would only be started again)."""
    from segmentql.schema import build_schema  # the schema needs the registry first
    registry = _registry(settings)
    check_plugin_storage(registry.storage)
    return registry, build_schema(registry)


def _checked_registry(settings: Settings):
    """The registry, checked as :func:`_checked` does."""
    return _checked(settings)[0]


def cmd_plugins(args, settings: Settings) -> None:
    """Every known plugin, the disabled ones too (without fields: they are not
    loaded); a plugin problem that would stop ``serve`` stops this too."""
    registry = _checked_registry(settings)
    rows = [{"name": p.name, "version": p.version, "distribution": p.distribution, "builtin": p.builtin,
             "enabled": enabled, "fields": list(p.fields)}
            for enabled, plugins in ((True, registry.plugins), (False, registry.disabled)) for p in plugins]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        origin = f"{r['distribution']} {r['version']}" if r["distribution"] else "(not from a package)"
        kind = "built-in" if r["builtin"] else "installed"
        fields = (", ".join(r["fields"]) or "-") if r["enabled"] else "(disabled)"
        print(f"{r['name']:<{width}}  {kind:<9}  {origin:<24}  {fields}")


def cmd_schema(_args, settings: Settings) -> None:
    print(_checked(settings)[1].as_str())


def cmd_plugin_new(args, _settings: Settings) -> None:
    try:
        names = authoring.skeleton(args.name)
    except authoring.BadName as exc:
        raise CommandError(str(exc)) from None
    if reason := authoring.clash(names, load_registry()):
        raise CommandError(f"cannot name a plugin {args.name!r}: {reason}")
    try:
        target = authoring.write(names, Path.cwd())
    except FileExistsError:
        raise CommandError(f"{names.distribution} exists already; pick another name or move it away") from None
    print(f"wrote {target}: plugin {names.plugin!r}, condition {names.field!r}. Next: cd {names.distribution} && "
          "pip install -e '.[test]' && pytest", file=sys.stderr)


def _exit_on_sigterm() -> None:
    """SIGTERM (``docker stop``, Kubernetes) ends the command the way Ctrl-C does, through its
    ``finally`` blocks, so the embedded database is stopped in order before the process exits.
    Without this, uvicorn re-raises SIGTERM after its graceful shutdown and its default action
    ends the process on the spot."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


# What `serve --workers N` has uvicorn import in each worker (server/app.py).
ASGI_FACTORY = "segmentql.server.app:create_app"


async def _storage_made(settings: Settings, uri: str, storage) -> None:
    async with _prepared(settings, uri, storage):
        pass


def serve(settings: Settings, host: str, port: int, banner: str | None = None, workers: int = 1,
          registry: ConditionRegistry | None = None) -> None:
    """Serve the app made here, or with ``workers`` above 1 (MONGODB_URI only,
    see :func:`cmd_serve`) have uvicorn start that many worker processes, each
    making its app with the ASGI factory, from the same environment.
    ``registry``: one :func:`_checked_registry` gave already."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from .app import create_app
    from .observability import configure_logging

    configure_logging(settings.log_format)  # uvicorn's lines too: it is given no logging config of its own
    registry = registry or _checked_registry(settings)  # a plugin problem stops us before the database starts
    with database_uri(settings) as uri:
        # Plugins' storage that this database cannot take (an index there with
        # other options, no room left for their contact indexes) stops us here
        # too, with one line, rather than in a worker's start-up (a traceback,
        # once per worker).
        asyncio.run(_storage_made(settings, uri, registry.storage))
        app = create_app(settings, uri, registry) if workers == 1 else ASGI_FACTORY
        if banner:
            print(banner, flush=True)
        print(f"segmentql: GraphQL and GraphiQL at http://{host}:{port}/graphql", file=sys.stderr, flush=True)
        # A WebSocket message (a subscription's document) is bounded like a request body.
        config = uvicorn.Config(app, factory=workers > 1, workers=workers, host=host, port=port, log_level="info",
                                lifespan="on", log_config=None, ws="websockets-sansio",
                                ws_max_size=settings.max_body_bytes)
        # Not uvicorn.run, which swallows Ctrl-C's KeyboardInterrupt (serve then exits 130, see main).
        if workers == 1:
            uvicorn.Server(config).run()
        else:  # uvicorn.run's own way with workers: each worker process imports the factory
            Multiprocess(config, sockets=[config.bind_socket()]).run()


def cmd_serve(args, settings: Settings) -> None:
    # The embedded database is a child of this one process, started and stopped
    # with it: workers would all wait on that one server, and `serve` is then a
    # development and demo set-up; several workers are for a real MongoDB.
    if args.workers > 1 and not settings.mongodb_uri:
        raise CommandError("--workers above 1 needs MONGODB_URI (a real MongoDB); the embedded database is "
                           "served by one process")
    _exit_on_sigterm()
    serve(settings, args.host, args.port, workers=args.workers)


def cmd_demo(args, settings: Settings) -> None:
    _exit_on_sigterm()
    registry = _checked_registry(settings)  # before minutes of generating and importing data
    dataset = settings.data_dir / f"demo-{args.contacts}"
    if not (dataset / "meta.json").exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "segmentql.server.datagen", str(dataset), "--contacts",
                        str(args.contacts), "--seed", "7"], check=True, stdout=sys.stderr)

    async def work(db: Database) -> str:
        workspace = await db.workspace_by_name(DEMO_WORKSPACE)
        if workspace is None:
            workspace, key = await db.create_workspace(DEMO_WORKSPACE)
            _keep_demo_key(settings.data_dir / DEMO_KEY_FILE, key)
        else:
            key = await demo_key(db, workspace["_id"], settings.data_dir / DEMO_KEY_FILE)
        if workspace.get("demoDataset") != dataset.name:
            report = await import_directory(live_segments(db, settings), workspace["_id"], dataset,
                                            settings.ingest_batch_size, Progress())
            _print_import_report(report)
            await db.set_demo_dataset(workspace["_id"], dataset.name)
        return key

    key = run_with_db(settings, work)
    serve(settings, args.host, args.port, registry=registry, banner=(
        f"demo workspace {DEMO_WORKSPACE!r} is ready (data as of 2026-11-28T12:00:00Z). API key:\n{key}"))


# The demo's key, kept (readable by its owner only) in the data dir so each run
# prints the same key instead of making one more: the database holds only its hash.
DEMO_KEY_FILE = "demo-key"


async def demo_key(db: Database, workspace_id: str, path: Path) -> str:
    """The demo workspace's key: the one kept in ``path`` while it is valid
    for that workspace, else a new ADMIN key, kept there for the next run."""
    with contextlib.suppress(FileNotFoundError):
        kept = path.read_text().strip()
        found = await db.api_key_for(kept, now()) if kept else None
        if found is not None and found[1].id == workspace_id:
            return kept
    _doc, key = await apikeys.create_key(db, workspace_id, "demo", apikeys.Scope.ADMIN, None)
    _keep_demo_key(path, key)
    return key


def _keep_demo_key(path: Path, key: str) -> None:
    """Write ``key`` to ``path`` (mode 0600), whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.unlink(missing_ok=True)
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(key + "\n")
    partial.replace(path)


# -- parsing ----------------------------------------------------------------------

def _workers(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number, 1 or more, got {text!r}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=None,
                        help="embedded database directory when MONGODB_URI is not set (default ./segmentql-data)")
    top = argparse.ArgumentParser(prog="segmentql", description="GraphQL segment engine for email marketing.")
    top.add_argument("--version", action="version", version=f"segmentql {metadata.version('segmentql')}")
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
        if name == "serve":
            p.add_argument("--workers", type=_workers, default=1, help="worker processes (above 1: MONGODB_URI only)")
        if name == "demo":
            p.add_argument("--contacts", type=int, default=2000, help="size of the generated data set")

    ws = sub.add_parser("workspace", help="manage workspaces").add_subparsers(dest="action", required=True,
                                                                                 metavar="ACTION")
    create = ws.add_parser("create", help="create a workspace and print its API key", parents=[common])
    create.add_argument("name")
    create.set_defaults(func=cmd_workspace_create)
    key = ws.add_parser("key", help="issue another API key for a workspace and print its secret", parents=[common])
    key.add_argument("name", help="the workspace")
    key.add_argument("--scope", choices=[s.name for s in apikeys.Scope], default="ADMIN",
                     help="READ: queries and subscriptions; WRITE: also data and segment mutations; ADMIN (default): "
                     "also keys and webhooks")
    key.add_argument("--expires", help="when it stops working (ISO 8601 instant, in the future; default: never)")
    key.add_argument("--name", dest="label", default="cli", help="what the key is for (default: cli)")
    key.set_defaults(func=cmd_workspace_key)
    keys = ws.add_parser("keys", help="list a workspace's keys that are not revoked (tab-separated: "
                         + ", ".join(KEY_COLUMNS) + ")", parents=[common])
    keys.add_argument("name", help="the workspace")
    keys.set_defaults(func=cmd_workspace_keys)
    revoke = ws.add_parser("revoke", help="revoke a key: it is refused from now on", parents=[common])
    revoke.add_argument("name", help="the workspace")
    revoke.add_argument("key_id", help="the key's id (see `segmentql workspace keys`)")
    revoke.set_defaults(func=cmd_workspace_revoke)

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
    plugin = sub.add_parser("plugin", help="write condition plugins").add_subparsers(dest="action", required=True,
                                                                                   metavar="ACTION")
    new = plugin.add_parser("new", help="write the package segmentql-NAME/ here: a working condition, its entry "
                            "point and tests using the test kit")
    new.add_argument("name", help="the plugin's name, e.g. weekend-opens (lower-case words joined by - or _)")
    new.set_defaults(func=cmd_plugin_new)
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
