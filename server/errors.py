"""Every error segmentql tells a client about: a base class carrying the code
the client sees, and one subclass per kind.

Code that refuses something raises the kind that fits; the client's
``extensions.code`` is the class's ``code``. The GraphQL error extension
(``schema/errors.py``) reads it from whatever :class:`SegmentqlError` a
resolver raised, and the HTTP gate answers a :class:`BadRequest` with its
code and status, so a new kind needs no mapping anywhere else. The message is
the text the client reads: it names what is wrong and never holds internals.

Not here, on purpose:

- errors told to an operator, never to a client: ``settings.SettingsError``,
  ``embedded.EmbeddedServerError``, ``importer.ImportRefused`` and the
  command line's ``CommandError``. A command prints them as one line and
  exits; no client could see a code of theirs, so they are plain exceptions
  of the modules raising them.
- errors of one module's own protocol, turned into something else where they
  leave it: ``instants.OutOfRange`` (a :class:`BadArgument`, a refused item
  or unusable stored data), ``ingest.ItemInvalid`` (one refused item, reported
  in its batch's result while the rest is stored), ``rollups.UnusableData``
  (logged, the contact skipped).
- the plugin layer's ``RuleError`` and ``PluginError``: ``segmentql.plugins``
  imports nothing of the service. The compiler turns a ``RuleError`` into
  :class:`InvalidRule` and any other plugin failure into
  :class:`ConditionFailed`.
- GraphQL's own: a document refused by validation (``schema/limits.py``
  reports ``GraphQLError``s, as graphql-core's validation rules must) or a
  literal a scalar cannot parse.
- the database driver's errors (timeouts, an unreachable server): they are
  not ours, and ``schema/errors.py`` maps their types.
"""

from collections.abc import Iterable
from functools import reduce
from typing import ClassVar


def child_path(path: str, key: str | int) -> str:
    """The path of ``key`` (a field, or a list index) inside the rule node or
    value at ``path``: ``all[1].any[1].leadScore.tier``, JavaScript's own
    spelling, so a front end can follow it into the rule it sent. The one
    spelling of a place in a rule: plugins' errors (the compiler's walk) and
    GraphQL's input errors (``schema/rule_errors.py``) both use it."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def rule_path(keys: Iterable[str | int]) -> str:
    """The path of a place given as its keys from the rule's root ("" is the whole rule)."""
    return reduce(child_path, keys, "")


class SegmentqlError(Exception):
    """An error a client is told about. Raise a subclass: each sets ``code``."""

    code: ClassVar[str]

    @property
    def extensions(self) -> dict[str, object]:
        """The GraphQL error's ``extensions``: the code, and whatever else a kind tells."""
        return {"code": self.code}


class BadArgument(SegmentqlError):
    """An argument outside what the field accepts; the message names it."""

    code = "BAD_USER_INPUT"


class InvalidRule(SegmentqlError):
    """A rule that is not well formed; ``str()`` names the node's path and the
    reason, ``rulePath`` the path alone (a builder marks that node)."""

    code = "INVALID_RULE"

    def __init__(self, path: str, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}" if path else reason)

    @property
    def extensions(self) -> dict[str, object]:
        return {**super().extensions, "rulePath": self.path}


class ConditionFailed(SegmentqlError):
    """A plugin failed on one node, or gave something the service or the
    database refuses; the request fails, the service lives on. ``reason``
    completes "the condition at <path> (plugin <name>) ..."."""

    code = "CONDITION_FAILED"

    def __init__(self, path: str, plugin: str, reason: str):
        self.path, self.plugin = path, plugin
        super().__init__(f"the condition at {path} (plugin {plugin!r}) {reason}")

    @property
    def extensions(self) -> dict[str, object]:
        return {**super().extensions, "rulePath": self.path}

    @classmethod
    def raised(cls, path: str, plugin: str, error: BaseException) -> "ConditionFailed":
        """The plugin's own exception: only its type is told, since its message
        may hold internals (connection strings, rule values)."""
        return cls(path, plugin, f"failed: {type(error).__name__}")


class NotFound(SegmentqlError):
    """The thing asked for does not exist in this workspace."""

    code = "NOT_FOUND"


class Conflict(SegmentqlError):
    """The change contradicts what is stored or how it must be named (a custom
    field declared again with another type, a key that is not a field key, a
    workspace name taken)."""

    code = "CONFLICT"


class LimitExceeded(SegmentqlError):
    """The change would pass a budget (a workspace's indexed custom fields, the
    collection's indexes); nothing was written."""

    code = "LIMIT_EXCEEDED"


class Forbidden(SegmentqlError):
    """The API key's scope does not allow the operation (``schema/scopes.py``);
    the message names the fields refused, ``requiredScope`` the scope they
    need. Nothing of the request ran."""

    code = "FORBIDDEN"

    def __init__(self, message: str, required_scope: str):
        self.required_scope = required_scope
        super().__init__(message)

    @property
    def extensions(self) -> dict[str, object]:
        return {**super().extensions, "requiredScope": self.required_scope}


class Busy(SegmentqlError):
    """The workspace's other writes held it for longer than a write waits
    (``server/live.py``); nothing of this one was written: retry it."""

    code = "BUSY"


class RateLimited(SegmentqlError):
    """The API key sent more requests than its rate allows (``segmentql_pkg/ratelimit.py``);
    nothing of this one ran. The answer (HTTP 429) says when to retry."""

    code = "RATE_LIMITED"


class QueryTooCostly(SegmentqlError):
    """A request costing more than the budget (``schema/cost.py``); nothing of
    it ran. The client is told both numbers."""

    code = "QUERY_TOO_COSTLY"

    def __init__(self, message: str, cost: int, budget: int):
        self.cost, self.budget = cost, budget
        super().__init__(message)

    @property
    def extensions(self) -> dict[str, object]:
        return {**super().extensions, "cost": self.cost, "budget": self.budget}


class BadRequest(SegmentqlError):
    """An HTTP request that is not a GraphQL request strawberry can run
    (``transport``); the gate answers it with ``status`` before GraphQL runs.
    ``str()`` says what to send instead."""

    code = "BAD_REQUEST"
    status: ClassVar[int] = 400
    headers: ClassVar[dict[str, str]] = {}


class MethodNotAllowed(BadRequest):
    """A mutation (or subscription) sent by GET, which runs queries only."""

    code = "METHOD_NOT_ALLOWED"
    status = 405
    headers: ClassVar[dict[str, str]] = {"Allow": "POST"}


class PersistedQueryNotFound(BadRequest):
    """A persisted query's hash sent without its document, and not held
    (``segmentql.persisted``: never sent, or forgotten). Apollo's clients
    expect this answer with HTTP 200, and the message as it is, and then send
    the document with its hash."""

    code = "PERSISTED_QUERY_NOT_FOUND"
    status = 200

    def __init__(self) -> None:
        super().__init__("PersistedQueryNotFound")
