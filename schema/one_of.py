"""Document validation with strawberry's checks, its ``@oneOf`` one guarded.

strawberry adds ``OneOfInputValidationRule`` to graphql-core's rules, and
that rule looks up every variable it meets in a ``@oneOf`` field in the
operation's definitions without asking whether it is defined: for
``segmentPreview(rule: {not: $r})`` without ``$r`` it raised ``KeyError``,
which aborted validation, and the client was told ``'r'`` with no code.
graphql-core's ``NoUndefinedVariablesRule`` already reports that variable
("Variable '$r' is not defined.", GRAPHQL_VALIDATION_FAILED), so the guarded
rule here leaves a variable it does not know to that rule; a variable met in
a fragment before any operation is one it does not know either.
"""

from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLNamedType,
    GraphQLSchema,
    ObjectValueNode,
    ValidationContext,
    VariableDefinitionNode,
    VariableNode,
    validate,
)
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule


class OneOfRule(OneOfInputValidationRule):
    """strawberry's ``@oneOf`` validation rule, silent on a variable the operation does not define."""

    def __init__(self, validation_context: ValidationContext) -> None:
        super().__init__(validation_context)
        self.variable_definitions: dict[str, VariableDefinitionNode] = {}

    def validate_one_of(self, node: ObjectValueNode, type: GraphQLNamedType) -> None:
        values = [field.value for field in node.fields]
        if (len(values) == 1 and isinstance(values[0], VariableNode)
                and values[0].name.value not in self.variable_definitions):
            return
        super().validate_one_of(node, type)


def validate_document(schema: GraphQLSchema, document: DocumentNode,
                      rules: tuple[type[ASTValidationRule], ...]) -> list[GraphQLError]:
    """``rules`` and strawberry's own (as ``strawberry.schema.schema.validate_document`` adds them), guarded."""
    return validate(schema, document, (*rules, MaybeNullValidationRule, OneOfRule))

