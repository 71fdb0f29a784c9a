"""Helpers for evaluating rules through GraphQL in tests."""

PREVIEW = """query($rule: RuleInput!, $asOf: DateTime, $first: Int, $after: String) {
  segmentPreview(rule: $rule, asOf: $asOf) {
    count
    contacts(first: $first, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } }
  }
}"""
COUNT = """query($rule: RuleInput!, $asOf: DateTime) { segmentPreview(rule: $rule, asOf: $asOf) { count } }"""


def member_ids(gql, rule, as_of=None) -> list[str]:
    """Every member id, paging through the connection 1000 at a time."""
    ids, after = [], None
    while True:
        data = gql.run(PREVIEW, rule=rule, asOf=as_of, first=1000, after=after)["segmentPreview"]
        ids += [edge["node"]["id"] for edge in data["contacts"]["edges"]]
        if not data["contacts"]["pageInfo"]["hasNextPage"]:
            assert data["count"] == len(ids)
            return ids
        after = data["contacts"]["pageInfo"]["endCursor"]


def count(gql, rule, as_of=None) -> int:
    return gql.run(COUNT, rule=rule, asOf=as_of)["segmentPreview"]["count"]


def invalid_rule_message(gql, rule) -> str:
    errors = gql.errors(COUNT, rule=rule, asOf=None)
    assert errors[0]["extensions"]["code"] == "INVALID_RULE", errors
    return errors[0]["message"]
