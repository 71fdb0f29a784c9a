"""Validation of GraphQL documents at a cost bounded whatever the document.

Fragments let a short document stand for a huge one: 21 fragments, each
spreading the next twice, are 864 bytes standing for 2^21 fields.
strawberry's ``QueryDepthLimiter`` and ``MaxAliasesLimiter`` walk every
spread again, so checking that document took 2^21 steps on the event loop
(another workspace's ``{ __typename }`` waited 33 s; at 26 fragments the
service never recovered). Here:

- **Each fragment is measured once** (memoised): depth, aliases and fields
  of the document *as if every spread were replaced by its fragment* are
  computed in one pass over the text. The expanded document must fit the
  same budgets as a written-out one: depth ``SEGMENTQL_MAX_QUERY_DEPTH``,
  aliases ``SEGMENTQL_MAX_ALIASES``, and at most ``SEGMENTQL_MAX_TOKENS``
  fields (a field written out is at least one token).
- **These limits come first**; graphql-core's own rules run only on a
  document within them. Those rules are linear in the document's text
  (graphql-core memoises fragments itself) but one of them compares fields
  of the same name pairwise: a document of 5,000 tokens can take up to a
  second.
- **So validation runs in a worker thread**, the first time a document is
  seen; the event loop keeps serving other requests meanwhile. Results are
  cached by document (front ends send the same few documents again and
  again), and a cached result is answered on the loop at once.
"""

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import SchemaExtension

from .fragments import Fragments
from .one_of import validate_document


@dataclass(frozen=True)
class Size:
    """A selection set once its spreads are expanded. ``levels``: nested
    field levels, introspection fields (``__typename``, ``__schema``) not
    counted, as strawberry's depth limit did not count them."""

    levels: int = 0
    aliases: int = 0
    fields: int = 0

    def __add__(self, other: "Size") -> "Size":
        return Size(max(self.levels, other.levels), self.aliases + other.aliases, self.fields + other.fields)


class _Measure:
    """Sizes of one document's selection sets, each fragment measured once."""

    def __init__(self, document: DocumentNode):
        self.fragments = Fragments(document, Size)

    def selections(self, selection_set: SelectionSetNode | None) -> Size:
        total = Size()
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                inner = self.selections(selection.selection_set)
                counted = not selection.name.value.startswith("__")
                total += Size(1 + inner.levels if counted else 0, inner.aliases + (selection.alias is not None),
                              1 + inner.fields)
            elif isinstance(selection, InlineFragmentNode):
                total += self.selections(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment(selection.name.value)
        return total

    def fragment(self, name: str) -> Size:
        return self.fragments.measure(name, name, lambda definition: self.selections(definition.selection_set))


@dataclass(frozen=True)
class DocumentLimits:
    """The budgets of a document expanded (see the module docstring)."""

    max_depth: int
    max_aliases: int
    max_fields: int

    def errors(self, document: DocumentNode) -> list[GraphQLError]:
        measure = _Measure(document)
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        try:
            sizes = [(op, measure.selections(op.selection_set)) for op in operations]
        except RecursionError:
            return [GraphQLError("the document nests its fragments too deeply")]
        errors = [GraphQLError(f"'{op.name.value if op.name else 'anonymous'}' exceeds maximum operation depth of "
                               f"{self.max_depth}", [op])
                  for op, size in sizes if size.levels - 1 > self.max_depth]
        aliases = sum(size.aliases for _, size in sizes)
        if aliases > self.max_aliases:
            errors.append(GraphQLError(f"the document has {aliases} aliases once its fragments are spread; "
                                       f"at most {self.max_aliases} are allowed"))
        fields = sum(size.fields for _, size in sizes)
        if fields > self.max_fields:
            errors.append(GraphQLError(f"the document has {fields} fields once its fragments are spread; "
                                       f"at most {self.max_fields} are allowed"))
        return errors


class DocumentCheck:
    """Validation of one app's documents: the limits, then graphql-core's
    rules, in a worker thread; results cached for the last ``cache_size``
    documents."""

    def __init__(self, limits: DocumentLimits, cache_size: int):
        self.limits, self.cache_size = limits, cache_size
        self._results: OrderedDict[tuple, list[GraphQLError]] = OrderedDict()

    def validate(self, schema: GraphQLSchema, document: DocumentNode, rules: tuple) -> list[GraphQLError]:
        return self.limits.errors(document) or validate_document(schema, document, rules)

    async def errors(self, schema: GraphQLSchema, document: DocumentNode, rules: tuple) -> list[GraphQLError]:
        key = (document, rules)
        if key in self._results:
            self._results.move_to_end(key)
            return self._results[key]
        errors = await asyncio.to_thread(self.validate, schema, document, rules)
        self._results[key] = errors
        if len(self._results) > self.cache_size:
            self._results.popitem(last=False)
        return errors


class BoundedValidation(SchemaExtension):
    """Validates the request's document through a :class:`DocumentCheck`
    (strawberry then skips its own validation, which would repeat it on the loop)."""

    def __init__(self, check: DocumentCheck):
        self.check = check

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context
        assert context.graphql_document is not None  # parsed before validation (as strawberry asserts too)
        context.pre_execution_errors = await self.check.errors(context.schema._schema, context.graphql_document,
                                                               context.validation_rules)
        yield
