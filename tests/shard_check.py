"""Watches every command the test suite sends (pymongo command monitoring)
and records those on ``contacts`` and ``events`` that a sharded cluster could
not route to the shards of one workspace: each must name ``workspace_id`` in
its filter, first ``$match`` or inserted documents (see README, "sharded
cluster", and ``Database``'s contact section)."""

import threading
from collections.abc import Mapping

from pymongo import monitoring

SHARDED = frozenset({"contacts", "events"})
EXEMPT = frozenset({"getMore", "killCursors", "createIndexes", "listIndexes", "dropIndexes", "drop", "create",
                    "collStats", "listCollections"})


def _names_workspace(query) -> bool:
    if not isinstance(query, Mapping):
        return False
    if "workspace_id" in query and not isinstance(query["workspace_id"], Mapping):
        return True
    return any(_names_workspace(part) for part in query.get("$and", ()))


def problems(name: str, command: Mapping) -> list[str]:
    """What is wrong with one command (empty when it is routable)."""
    if name == "explain":
        inner = command["explain"]
        return problems(next(iter(inner)), inner)
    if name in EXEMPT or not isinstance(command.get(name), str) or command[name] not in SHARDED:
        return []
    collection = command[name]
    if name == "insert":
        queries = command["documents"]
    elif name in ("update", "delete"):
        queries = [op["q"] for op in command["updates" if name == "update" else "deletes"]]
    elif name == "aggregate":
        first = command["pipeline"][0] if command["pipeline"] else {}
        queries = [first.get("$match")]
    elif name == "findAndModify":
        queries = [command.get("query")]
    else:  # find, count, distinct
        queries = [command.get("filter", command.get("query"))]
    return [f"{name} on {collection} without workspace_id: {str(q)[:200]}" for q in queries
            if not _names_workspace(q)]


class ShardKeyCheck(monitoring.CommandListener):
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: dict[str, int] = {}
        self.violations: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        found = problems(event.command_name, event.command)
        target = event.command.get(event.command_name)
        with self.lock:
            if isinstance(target, str) and target in SHARDED:
                self.seen[event.command_name] = self.seen.get(event.command_name, 0) + 1
            self.violations.extend(found)

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


CHECK = ShardKeyCheck()
monitoring.register(CHECK)
