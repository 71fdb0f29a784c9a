"""Helpers for evaluating rules through GraphQL in tests."""

COUNT = """query($rule: RuleInput!, $asOf: DateTime) { segmentPreview(rule: $rule, asOf: $asOf) { count } }"""


def member_ids(gql, rule, as_of=None) -> list[str]:
    """Every member id (``as_of`` None: now), checked against the count."""
    return gql.members(rule, as_of)


def count(gql, rule, as_of=None) -> int:
    return gql.graphql(COUNT, rule=rule, asOf=as_of)["segmentPreview"]["count"]


def invalid_rule_message(gql, rule) -> str:
    errors = gql.errors(COUNT, rule=rule, asOf=None)
    assert errors[0]["extensions"]["code"] == "INVALID_RULE", errors
    return errors[0]["message"]
