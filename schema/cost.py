"""What a GraphQL request costs, added up before it runs, and the budget it must fit.

Validation bounds a document's size, not its work: 30 aliases of
``segmentPreview { contacts(first: 1000) }`` are a short document that runs
30 evaluations and returns 30,000 contacts (36 s on the embedded server,
every other workspace waiting). So before a request executes, its cost is
added up from its operation and variables, and a request costing more than
``SEGMENTQL_MAX_QUERY_COST`` is refused with ``QUERY_TOO_COSTLY`` (the
message names the cost and the budget) before any of it runs.

**Units.** A contact (or other item) read or written is ``ROW`` = 1; a full
evaluation of a rule over the workspace's contacts is ``EVALUATION`` = 1000.
An evaluation is what ``count``, ``breakdown`` and ``analytics`` run, what a
page of members needs before its first row (the members sorted by id), what
a split's counts and a snapshot read. The ratio is measured: with 3,000
contacts on the embedded server a count takes 0.35 s and a page of 1,000
contacts with their stats 0.65 s more, so there an evaluation is worth about
500 rows, and more on larger workspaces.

**Weights** (``WEIGHTS``, by GraphQL type and field): the evaluations a field
runs, and the argument giving how many items it returns or takes (``first``,
``last``, a split's ``variants``, a batch's list); each item is a row. Every
other field costs nothing: it reads a document or two by key. A field that
starts running aggregates needs its weight here.

**Multiplication.** A field's selection runs once per item of the list it
sits in, so nested connections multiply:
``segments(first: 10) { edges { node { count } } }`` is 10 evaluations.
A list's length is the size its field asked for (``edges`` of
``contacts(first: 50)`` holds 50; the ``variants`` of a split as many as it
was given); lists the request cannot size count as long as they may be
(a workspace's webhooks), or once when they hold only cheap fields (a
segment's snapshots, a contact's campaigns). A split's
counts come from one pass however many variants it has, so
``SplitVariant.count`` is charged once per split.

**Sizes.** An omitted ``first`` takes its default; a page read backward
is sized by its ``last``. A size out of the field's range (``first: 5000``,
101 variants) costs nothing: the field
refuses it (``BAD_USER_INPUT``) before any work, its selection included.
A field selected twice (through two fragments, say) counts twice though
GraphQL runs it once: a request is never undercounted.

The default budget, 20,000, is twenty evaluations: every page, split and
analytics view the front end asks for fits, while e.g. the counts of 20
segments at once, 20 split variants' pages or 30 pages of 1,000 contacts do
not. The time a request may take is bounded apart from this, by its
deadline (``segmentql.server.deadline``).
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    NullValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    get_operation_ast,
    is_list_type,
)
from graphql.pyutils import Undefined
from strawberry.extensions import SchemaExtension

from segmentql.server.errors import QueryTooCostly
from segmentql.server.splits import MAX_VARIANTS
from segmentql.server.webhooks import MAX_DELIVERIES_PAGE, MAX_WEBHOOKS

from .arguments import argument_value
from .build import MAX_BATCH
from .fragments import Fragments

EVALUATION = 1000
ROW = 1
PAGE = None  # a size capped by the page size setting


@dataclass(frozen=True)
class Weight:
    evaluations: int = 0
    size: str | None = None  # the argument giving how many items (rows) the field returns or takes
    cap: int | None = PAGE  # the most items the field accepts
    once_per_list: bool = False  # its evaluations serve every item of the list it sits in
    only_with: str | None = None  # the evaluations run only when this argument is given (not null)
    length: int | None = None  # a list the request cannot size, of at most this many items
    backward: str | None = None  # the argument sizing a page read backward (``last``), which counts when given


WEIGHTS = {
    "SegmentPreview.count": Weight(1),
    "SegmentPreview.breakdown": Weight(1),
    "SegmentPreview.contacts": Weight(1, "first"),
    # A saved segment's members are stored: only an ``asOf`` evaluates its rule.
    "Segment.count": Weight(1, only_with="asOf"),
    "Segment.contacts": Weight(1, "first", only_with="asOf"),
    "Segment.changes": Weight(0, "first", backward="last"),
    "Segment.analytics": Weight(1),
    "Segment.split": Weight(0, "variants", MAX_VARIANTS),
    "Segment.sizeHistory": Weight(0, "last"),
    "SplitVariant.count": Weight(1, once_per_list=True),
    "SplitVariant.contacts": Weight(1, "first"),
    "Query.segments": Weight(0, "first"),
    "Snapshot.memberIds": Weight(0, "first"),
    # A diff reads both snapshots' ids side by side; a page may read them through.
    "SnapshotDiff.entered": Weight(1, "first"),
    "SnapshotDiff.left": Weight(1, "first"),
    "SnapshotDiff.stayedCount": Weight(1),
    "Mutation.snapshotSegment": Weight(1),
    "Mutation.createSegment": Weight(1),
    "Mutation.updateSegment": Weight(1),
    "Mutation.upsertContacts": Weight(0, "contacts", MAX_BATCH),
    "Mutation.upsertCampaigns": Weight(0, "campaigns", MAX_BATCH),
    "Mutation.recordEvents": Weight(0, "events", MAX_BATCH),
    "Mutation.deleteContacts": Weight(0, "ids", MAX_BATCH),
    # A workspace's webhooks are few (MAX_WEBHOOKS), each with pages of deliveries.
    "Query.webhooks": Weight(length=MAX_WEBHOOKS),
    "Webhook.deliveries": Weight(0, "first", MAX_DELIVERIES_PAGE),
}
FREE = Weight()
MISSING = object()


@dataclass(frozen=True)
class Cost:
    """``each``: paid once per item of the enclosing list; ``once``: paid
    once for the whole list (a split's counts)."""

    each: int = 0
    once: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.each + other.each, self.once + other.once)


def _items(value, cap: int, if_null: int, is_list: bool) -> int | None:
    """How many items an argument's value asks for (a list's length, or an
    Int); None when the field refuses it."""
    if value is None:
        count = if_null
    elif is_list:
        count = len(value) if isinstance(value, (list, tuple)) else 1  # GraphQL reads one value as a list of one
    elif isinstance(value, float) and value.is_integer():
        count = int(value)  # GraphQL takes 20.0 for an Int
    elif isinstance(value, int) and not isinstance(value, bool):
        count = value
    else:
        return None  # not an Int: GraphQL refuses it
    return count if 0 <= count <= cap else None


class _Walk:
    """The cost of one operation, each fragment costed once per list size it is spread under."""

    def __init__(self, model: "CostModel", schema: GraphQLSchema, document: DocumentNode,
                 operation: OperationDefinitionNode, variables: Mapping):
        self.model, self.schema, self.variables = model, schema, variables
        self.defaults = {d.variable.name.value: self._value(d.default_value)
                         for d in operation.variable_definitions or () if d.default_value is not None}
        self.fragments = Fragments(document, Cost)

    def _value(self, node: ValueNode):
        if isinstance(node, VariableNode):
            name = node.name.value
            return self.variables[name] if name in self.variables else self.defaults.get(name, MISSING)
        if isinstance(node, ListValueNode):
            return list(node.values)
        if isinstance(node, IntValueNode):
            return int(node.value)
        if isinstance(node, NullValueNode):
            return None
        return node

    def _size(self, node: FieldNode, definition, weight: Weight) -> int | None:
        name = weight.backward if weight.backward and self._given(node, weight.backward) else weight.size
        assert name is not None, "asked only of weights with a size"
        argument = definition.args[name]
        given = argument_value(node, name)
        value = MISSING if given is None else self._value(given)
        if value is MISSING:
            value = None if argument.default_value is Undefined else argument.default_value
        if weight.cap is PAGE:
            return _items(value, self.model.max_page_size, self.model.default_page_size, is_list=False)
        return _items(value, weight.cap, 0, is_list=is_list_type(get_nullable_type(argument.type)))

    def _given(self, node: FieldNode, name: str) -> bool:
        """Whether the field is given argument ``name`` (a variable counts unless it is null)."""
        given = argument_value(node, name)
        return given is not None and self._value(given) not in (None, MISSING)

    def selections(self, selection_set: SelectionSetNode, parent, items: int | None) -> Cost:
        total = Cost()
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, items)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                kind = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selections(selection.selection_set, kind, items)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment(selection.name.value, items)
        return total

    def fragment(self, name: str, items: int | None) -> Cost:
        def walk(definition: FragmentDefinitionNode) -> Cost:
            kind = self.schema.get_type(definition.type_condition.name.value)
            return self.selections(definition.selection_set, kind, items)
        return self.fragments.measure(name, (name, items), walk)

    def field(self, node: FieldNode, parent, items: int | None) -> Cost:
        definition = getattr(parent, "fields", {}).get(node.name.value)
        if definition is None:
            return Cost()  # introspection
        weight = WEIGHTS.get(f"{parent.name}.{node.name.value}", FREE)
        size = self._size(node, definition, weight) if weight.size else None
        if weight.size and size is None:
            return Cost()  # refused by the field before any work
        evaluations = weight.evaluations if weight.only_with is None or self._given(node, weight.only_with) else 0
        own = evaluations * EVALUATION + (size or 0) * ROW
        inner = (self.selections(node.selection_set, get_named_type(definition.type), size)
                 if node.selection_set else Cost())
        if is_list_type(get_nullable_type(definition.type)):
            length = next(n for n in (size, weight.length, items, 1) if n is not None)
            inner = Cost(length * inner.each + inner.once)
        return Cost(inner.each, inner.once + own) if weight.once_per_list else Cost(own + inner.each, inner.once)


@dataclass(frozen=True)
class CostModel:
    """The cost of requests, and their budget (``SEGMENTQL_MAX_QUERY_COST``)."""

    budget: int
    max_page_size: int
    default_page_size: int

    def cost(self, schema: GraphQLSchema, document: DocumentNode, operation_name: str | None,
             variables: Mapping | None) -> int | None:
        """The cost of the operation the request runs; None when there is no
        such operation (execution refuses the request then)."""
        operation = get_operation_ast(document, operation_name)
        root = None if operation is None else schema.get_root_type(operation.operation)
        if operation is None or root is None:
            return None
        walk = _Walk(self, schema, document, operation, variables if isinstance(variables, Mapping) else {})
        total = walk.selections(operation.selection_set, root, None)
        return total.each + total.once

    def refusal(self, cost: int) -> GraphQLError:
        """The request's only error: no resolver runs, so it is made here, as the error of no field."""
        refused = QueryTooCostly(
            f"the request costs {cost} and the budget is {self.budget} (a segment evaluated costs {EVALUATION}, "
            f"a contact or item {ROW}, nested lists multiply): ask for fewer segments, aliases or variants, or "
            f"smaller pages, or send several requests", cost, self.budget)
        return GraphQLError(str(refused), original_error=refused)


class QueryCost(SchemaExtension):
    """Refuses a request over the budget before it executes."""

    def __init__(self, model: CostModel):
        self.model = model

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        assert context.graphql_document is not None  # parsed before execution (as strawberry asserts too)
        cost = self.model.cost(context.schema._schema, context.graphql_document, context.operation_name,
                               context.variables)
        if cost is not None and cost > self.model.budget:
            context.result = ExecutionResult(data=None, errors=[self.model.refusal(cost)])
        yield
