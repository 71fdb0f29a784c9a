"""What an API key's scope allows (``server/apikeys.py``), checked before any
of a request runs.

Every root field of the operation (those in its fragments too) needs a
scope: a field of ADMIN_FIELDS needs ADMIN (the workspace's keys and
webhooks: whoever manages them can hand out access, or send the audience to
any URL), any other mutation WRITE, any other query or subscription READ.
A request whose key lacks the scope of one of its fields is refused whole
with ``FORBIDDEN``, naming the fields and the scope they need: nothing of it
runs, so a READ key's mutation writes nothing, not even its allowed fields.

A new mutation needs WRITE without a word here; one that manages access must
be added to ADMIN_FIELDS (``tests/test_apikeys.py`` checks that every name
here is a field of the schema). A field skipped by ``@skip``/``@include``
still counts: the check reads the document, not the variables.
"""

from collections.abc import Iterator

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    get_operation_ast,
)
from strawberry.extensions import SchemaExtension

from segmentql.server.apikeys import Scope
from segmentql.server.errors import Forbidden

from .fragments import Fragments

ADMIN_FIELDS = frozenset({
    "apiKeys", "createApiKey", "revokeApiKey",
    "webhooks", "createWebhook", "updateWebhook", "deleteWebhook", "rotateWebhookSecret", "redeliverWebhook",
})


def needed(operation: OperationType, field: str) -> Scope:
    """The scope a root field of this kind of operation needs."""
    if field in ADMIN_FIELDS:
        return Scope.ADMIN
    if operation is OperationType.MUTATION and not field.startswith("__"):  # __typename reads
        return Scope.WRITE
    return Scope.READ


def root_fields(document: DocumentNode, selection_set: SelectionSetNode) -> frozenset[str]:
    """The names of the fields a selection set selects, through its fragments."""
    fragments: Fragments[frozenset[str]] = Fragments(document, frozenset)

    def walk(selections: SelectionSetNode) -> frozenset[str]:
        names: set[str] = set()
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                names.add(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                names |= walk(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                names |= fragments.measure(selection.name.value, selection.name.value,
                                           lambda definition: walk(definition.selection_set))
        return frozenset(names)
    return walk(selection_set)


def refusal(document: DocumentNode, operation_name: str | None, scope: Scope) -> GraphQLError | None:
    """The FORBIDDEN error of an operation the scope does not allow, or None."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:  # validation refused the document already
        return None
    denied = sorted((needed(operation.operation, f), f) for f in root_fields(document, operation.selection_set)
                    if needed(operation.operation, f) > scope)
    if not denied:
        return None
    scope_needed = denied[-1][0]
    fields = ", ".join(f"`{field}`" for _, field in denied)
    refused = Forbidden(f"this API key's scope is {scope.name}; {fields} need{'s' if len(denied) == 1 else ''} "
                        f"a key of scope {scope_needed.name}", scope_needed.name)
    return GraphQLError(str(refused), original_error=refused)


class ScopeCheck(SchemaExtension):
    """Refuses an operation with a root field the request's key may not use,
    before it runs: as validation starts, once :class:`BoundedValidation`
    found the document valid, so subscriptions (which strawberry streams
    without an execution result to replace) are refused too."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if not context.pre_execution_errors and context.graphql_document is not None:
            error = refusal(context.graphql_document, context.operation_name, context.context["segmentql"].scope)
            if error is not None:
                context.pre_execution_errors = [error]
        yield
