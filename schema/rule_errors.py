"""GraphQL's refusals of a rule's input, placed: ``INVALID_RULE`` with
``extensions.rulePath`` (``all[1].any[1].leadScore.tier``).

A value that does not fit ``RuleInput`` (an unknown enum value, a wrong type,
a missing or unknown field, two conditions or none in one node) is refused by
GraphQL before any resolver runs, and graphql-core says where only in its
own way: for a variable, in the words of its message ("Variable '$r' has
invalid value at .all[1]..."); for a literal, by the AST node it points at;
for two conditions in a variable's node, not at all (strawberry's ``@oneOf``
check raises without a place). A builder needs the node, so these become
:class:`InvalidRule` errors, like those of the plugins' validation, with the
path spelt by the one function that spells every rule path
(``server.errors.child_path``).

Only values inside an argument whose type is ``RuleInput`` are placed (found
by the document's types, whatever the argument is called); a variable is
placed where it is used inside one (``{all: [$r]}`` too). Every other error
keeps its code (GRAPHQL_VALIDATION_FAILED, BAD_USER_INPUT).
"""

import re
from collections.abc import Mapping
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLInputType,
    GraphQLSchema,
    ListValueNode,
    Node,
    ObjectFieldNode,
    ObjectValueNode,
    TypeInfo,
    TypeInfoVisitor,
    ValueNode,
    VariableDefinitionNode,
    VariableNode,
    Visitor,
    get_named_type,
    get_nullable_type,
    is_input_object_type,
    is_list_type,
    visit,
)

from segmentql.server.compiler import ONE_KEY
from segmentql.server.errors import InvalidRule, rule_path

from .rule_input import RULE_INPUT

Keys = list[str | int]

# A path as graphql-core prints it in a variable's message (``print_path_list``): " at .all[1].leadScore".
PRINTED_KEY = re.compile(r"\.(\w+)|\[(\d+)\]")
# A rule path's keys: ``[1]`` or a name (a name the client chose may hold anything but "." and "[").
PATH_KEY = re.compile(r"\[(\d+)\]|([^.\[]+)")
UNKNOWN_NAME = "?"
# The refusals naming a field of the object they point at (graphql-core's wording): placed at that field.
NAMED_FIELD = re.compile(r"to include (?:required|unknown) field '(\w+)'")
# Strawberry's refusals of a @oneOf value: with a place for a literal, without one for a variable.
ONE_OF = re.compile(r"OneOf Input Object '\w+' must specify exactly one key\.|"
                    r"Value for member field '\w+' must be non-null|Field '\w+\.\w+' must be non-null\.")


class RuleArguments:
    """Where every value node and every variable of a document sits inside a
    ``RuleInput`` argument: its keys from the rule's root, and (a variable)
    the input type expected there."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode):
        self.nodes: dict[int, Keys] = {}  # id() of a value or object field node
        self.variables: dict[str, tuple[Keys, GraphQLInputType]] = {}  # the first use of each
        rule_input = schema.get_type(RULE_INPUT)
        type_info = TypeInfo(schema)
        arguments = self

        class Arguments(Visitor):
            def enter_argument(self, node, *_):
                argument = type_info.get_argument()
                if argument is not None and get_named_type(argument.type) is rule_input:
                    arguments._walk(node.value, argument.type)

        visit(document, TypeInfoVisitor(type_info, Arguments()))
        # An operation's default for a variable used in a rule is that part of the rule too.
        for definition in document.definitions:
            for variable in getattr(definition, "variable_definitions", None) or ():
                use = self.variables.get(variable.variable.name.value)
                if use is not None and variable.default_value is not None:
                    self._walk(variable.default_value, use[1], use[0])

    def _walk(self, value: ValueNode, type_: GraphQLInputType, keys: Keys | None = None) -> None:
        stack: list[tuple[ValueNode, Keys, Any]] = [(value, keys or [], type_)]
        while stack:
            node, keys, expected = stack.pop()
            self.nodes[id(node)] = keys
            nullable = get_nullable_type(expected) if expected is not None else None
            if isinstance(node, VariableNode):
                self.variables.setdefault(node.name.value, (keys, expected))
            elif isinstance(node, ListValueNode):
                item = nullable.of_type if is_list_type(nullable) else nullable
                stack.extend((v, [*keys, i], item) for i, v in enumerate(node.values))
            elif isinstance(node, ObjectValueNode):
                fields = nullable.fields if is_input_object_type(nullable) else {}
                for field in node.fields:
                    self.nodes[id(field)] = [*keys, field.name.value]
                    definition = fields.get(field.name.value)
                    stack.append((field.value, [*keys, field.name.value], definition and definition.type))

    def place(self, error: GraphQLError, variables: Mapping[str, Any]) -> GraphQLError | None:
        """``error`` as an InvalidRule at its place in a rule, or None when it is not about one."""
        node: Node | None = error.nodes[0] if error.nodes else None
        if isinstance(node, VariableDefinitionNode):
            return self._variable(error, node.variable.name.value, variables)
        if self._is_value_refusal(error, node):
            keys = self.nodes[id(node)]
            if ONE_OF.fullmatch(error.message):
                return _placed(error, keys, ONE_KEY)
            named = NAMED_FIELD.search(error.message)
            extra = [named[1]] if named and not isinstance(node, ObjectFieldNode) else []
            return _placed(error, [*keys, *extra], error.message)
        if node is None and error.path is None and ONE_OF.fullmatch(error.message):
            return self._one_of_in_variables(error, variables)
        return None

    def _is_value_refusal(self, error: GraphQLError, node: Node | None) -> bool:
        """Whether ``error`` refuses one value inside a rule: it points at that
        value alone. One pointing at a variable there (not defined, of another
        type) is about the document, and keeps its code."""
        return (node is not None and id(node) in self.nodes and len(error.nodes or ()) == 1
                and not isinstance(node, VariableNode))

    def _variable(self, error: GraphQLError, name: str, variables: Mapping[str, Any]) -> GraphQLError | None:
        """A variable's value refused: "Variable '$r' has invalid value at .all[1].x: <reason>".
        A variable not given, or null, is no rule to place: an argument missing."""
        use = self.variables.get(name)
        reason = error.original_error
        prefix = f"Variable '${name}' has invalid value"
        if use is None or not isinstance(reason, GraphQLError) or variables.get(name) is None:
            return None
        suffix = f": {reason.message}"
        if not (error.message.startswith(prefix) and error.message.endswith(suffix)):
            return None
        printed = error.message[len(prefix):-len(suffix)].removeprefix(" at ")
        found = PRINTED_KEY.findall(printed)
        if "".join(f".{k}" if k else f"[{i}]" for k, i in found) != printed:
            return None
        named = NAMED_FIELD.search(reason.message)
        keys: Keys = [*use[0], *(k or int(i) for k, i in found), *([named[1]] if named else [])]
        return _placed(error, keys, reason.message)

    def _one_of_in_variables(self, error: GraphQLError, variables: Mapping[str, Any]) -> GraphQLError | None:
        """Strawberry refused a variable's node for not holding exactly one
        key, without saying which: the first such node of the variables used
        in rules, found again."""
        for name, (keys, expected) in self.variables.items():
            found = _one_of_problem(variables.get(name), expected)
            if found is not None:
                return _placed(error, [*keys, *found], ONE_KEY)
        return None


def _one_of_problem(value: Any, expected: Any) -> Keys | None:
    """The keys of the first node of ``value`` (of the input type ``expected``)
    that a @oneOf type refuses: not exactly one key, or its one key null."""
    stack: list[tuple[Any, Keys, Any]] = [(value, [], expected)]
    while stack:
        item, keys, type_ = stack.pop()
        type_ = get_nullable_type(type_) if type_ is not None else None
        if item is None or type_ is None:
            continue
        if is_list_type(type_):
            items = list(enumerate(item)) if isinstance(item, list) else [(None, item)]
            stack.extend((v, keys if i is None else [*keys, i], type_.of_type) for i, v in reversed(items))
        elif is_input_object_type(type_) and isinstance(item, Mapping):
            definition = type_.extensions.get("strawberry-definition")
            if definition is not None and definition.is_one_of and (
                    len(item) != 1 or next(iter(item.values())) is None):
                return keys
            stack.extend((item[name], [*keys, name], field.type)
                         for name, field in reversed(type_.fields.items()) if name in item)
    return None


def logged_path(path: str, schema: GraphQLSchema) -> str:
    """A rule path as logs show it: every name ``RuleInput``'s types do not
    have (an unknown field, a key inside a ``JSON`` value) as ``?``. The
    client chose those names, so they are values, and logs tell a rule's
    place, never its values; the client is told the whole path."""
    type_: Any = schema.get_type(RULE_INPUT)
    keys: Keys = []
    for index, name in PATH_KEY.findall(path):
        if index:
            nullable = get_nullable_type(type_) if type_ is not None else None
            keys.append(int(index))
            type_ = nullable.of_type if is_list_type(nullable) else nullable
            continue
        named = get_named_type(type_) if type_ is not None else None
        field = named.fields.get(name) if is_input_object_type(named) else None
        keys.append(name if field is not None else UNKNOWN_NAME)
        type_ = field.type if field is not None else None
    return rule_path(keys)


def _placed(error: GraphQLError, keys: Keys, reason: str) -> GraphQLError:
    invalid = InvalidRule(rule_path(keys), reason)
    return GraphQLError(str(invalid), nodes=error.nodes, source=error.source, positions=error.positions,
                        path=error.path, original_error=invalid)


def placed(errors: list[GraphQLError], schema: GraphQLSchema, document: DocumentNode | None,
           variables: Mapping[str, Any] | None) -> list[GraphQLError]:
    """``errors``, those about a rule's input as InvalidRule errors at their place."""
    if document is None or not errors:
        return errors
    arguments = RuleArguments(schema, document)
    if not arguments.nodes:
        return errors
    return [arguments.place(error, variables or {}) or error for error in errors]
