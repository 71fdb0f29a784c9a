"""One error convention for the whole API: every error carries
``extensions.code``.

    UNAUTHENTICATED         (HTTP 401, before GraphQL runs) missing, wrong, revoked or expired API key
    FORBIDDEN               the API key's scope does not allow a field of the operation (names the scope
                            needed); nothing ran
    GRAPHQL_VALIDATION_FAILED  the document does not fit the schema or its limits (depth, aliases, size)
    QUERY_TOO_COSTLY        the request would cost more than the budget (schema/cost.py); nothing ran
    BAD_USER_INPUT          an argument out of range or malformed (message names it)
    INVALID_RULE            a rule that is not well formed: a plugin refused a node, or the value does not fit
                            RuleInput (an unknown enum value, a wrong type, a missing or unknown field, two
                            conditions or none in one node; schema/rule_errors.py), as a variable or a literal.
                            ``extensions.rulePath`` is where, ``all[1].any[1].leadScore.tier`` ("" is the
                            whole rule); the message starts with it
    NOT_FOUND               the segment (or other item) does not exist in this workspace
    CONFLICT                the change contradicts stored data (e.g. a field's declared type)
    LIMIT_EXCEEDED          the change would pass a workspace's budget (e.g. of indexed custom fields)
    CONDITION_FAILED        a condition plugin failed on this rule; the service is unaffected
                            (``extensions.rulePath``: the condition's node)
    TIMEOUT                 the database did not answer within the time limit, or the request passed its deadline
    DATABASE_UNAVAILABLE    the database cannot be reached right now; retry
    RATE_LIMITED            (HTTP 429, before GraphQL runs) the API key sent more requests than its rate
                            allows; retry after the Retry-After header's seconds
    INTERNAL_ERROR          anything unexpected; details are logged, never sent

Before GraphQL runs, the HTTP gate refuses a request that is not one it can run (``server/transport.py``):
    BAD_REQUEST             (HTTP 400) not one JSON object, no ``query``, a batch, a malformed persisted query
    METHOD_NOT_ALLOWED      (HTTP 405) a method other than GET and POST; a mutation sent by GET
    PAYLOAD_TOO_LARGE       (HTTP 413) a body over SEGMENTQL_MAX_BODY_BYTES
    UNSUPPORTED_MEDIA_TYPE  (HTTP 415) a POST that is not application/json
    PERSISTED_QUERY_NOT_FOUND  (HTTP 200, as Apollo's clients expect) a persisted query's hash not held

Errors the service raises on purpose are ``SegmentqlError``s
(``segmentql.server.errors``): each carries its code, read here. The driver's
errors are not ours, so their types are mapped here. Anything else is masked
so that no driver message or stack trace reaches a client.
"""

import logging
from collections.abc import Iterator

from graphql import GraphQLSchema
from graphql.error import GraphQLError
from pymongo.errors import ConnectionFailure, ExecutionTimeout
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from segmentql.server.errors import SegmentqlError

from .rule_errors import logged_path, placed

log = logging.getLogger("segmentql.errors")

# The database driver's failures, told without the driver's words.
DRIVER_ERRORS: tuple[tuple[type[BaseException], str, str], ...] = (
    (ExecutionTimeout, "TIMEOUT", "the query took longer than the time limit; narrow the rule or try again"),
    (ConnectionFailure, "DATABASE_UNAVAILABLE", "the database is unavailable right now; try again shortly"),
)
INTERNAL_ERROR = "internal error; it has been logged"


# graphql-core refuses deeply nested variables before any resolver runs; the
# only recursive input is RuleInput, so that refusal is about a rule.
GRAPHQL_CORE_MESSAGES = {
    "Variable values are nested too deeply.": (
        "INVALID_RULE", "the rule is nested too deeply; a rule may be nested at most 32 levels deep"),
}


def code_for(error: GraphQLError, schema: GraphQLSchema) -> tuple[dict, str]:
    """The extensions (``code`` and whatever else the client is told) and the
    message of ``error``, logged: an unexpected error with its traceback (the
    only one: the service turns strawberry's own error log off), any other at
    INFO with its code and where it happened, never its message, which may
    echo the request's values."""
    extensions, message = classify(error)
    code = extensions["code"]
    if code == "INTERNAL_ERROR":
        log.error("unexpected error at %s", error.path, exc_info=error.original_error)
    else:
        # A rule's node (InvalidRule, ConditionFailed), as "all[1].opens": its place, never its values
        # (names the client chose, as "?": rule_errors.logged_path).
        node = getattr(error.original_error, "path", None) if isinstance(error.original_error, SegmentqlError) else None
        node = logged_path(node, schema) if node else node
        log.info("%s at %s%s", code, error.path or "the document", f", rule node {node}" if node else "",
                 extra={"code": code, "path": error.path, "node": node})
    return extensions, message


def classify(error: GraphQLError) -> tuple[dict, str]:
    """:func:`code_for` without logging (for metrics: the same error is logged once)."""
    original = error.original_error
    if original is None:
        if error.message in GRAPHQL_CORE_MESSAGES:
            code, message = GRAPHQL_CORE_MESSAGES[error.message]
            return {"code": code}, message
        return {"code": (error.extensions or {}).get("code") or "GRAPHQL_VALIDATION_FAILED"}, error.message
    if isinstance(original, SegmentqlError):
        return original.extensions, str(original)
    for kind, code, message in DRIVER_ERRORS:
        if isinstance(original, kind):
            return {"code": code}, message
    if isinstance(original, GraphQLError):
        return {"code": (original.extensions or {}).get("code") or "BAD_USER_INPUT"}, original.message
    return {"code": "INTERNAL_ERROR"}, INTERNAL_ERROR


def operation_errors(context: ExecutionContext) -> list[GraphQLError]:
    """The errors of an operation as its client is told them: errors of a rule's
    value placed at their ``rulePath`` (``rule_errors.placed``). Metrics read
    them too, so a request is counted under the code its client got."""
    errors = (context.result.errors if context.result else context.pre_execution_errors) or []
    return placed(errors, context.schema._schema, context.graphql_document, context.variables)


class ErrorCodes(SchemaExtension):
    """Gives every error its code and masks unexpected ones."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        processed = []
        for error in operation_errors(self.execution_context):
            extensions, message = code_for(error, self.execution_context.schema._schema)
            processed.append(GraphQLError(message, nodes=error.nodes, source=error.source,
                                          positions=error.positions, path=error.path,
                                          extensions={**(error.extensions or {}), **extensions}))
        result.errors = processed
