"""What must hold of every saved segment, whatever happened before: its stored
members equal a fresh evaluation of its rule and the replay of its change log,
and each contact's changes alternate ENTERED, LEFT, ENTERED..."""

SEGMENT = """query($id: ID!, $after: String, $changesAfter: String) { segment(id: $id) { rule count
  contacts(first: 1000, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } }
  changes(first: 1000, after: $changesAfter) { edges { cursor node { contactId change cause at } }
    pageInfo { hasNextPage endCursor } } } }"""


def stored_members(gql, segment_id: str) -> list[str]:
    ids, after = [], None
    while True:
        page = gql.graphql(SEGMENT, id=segment_id, after=after)["segment"]["contacts"]
        ids += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return ids
        after = page["pageInfo"]["endCursor"]


def change_log(gql, segment_id: str) -> list[dict]:
    """The segment's whole change log, paged through with its cursors."""
    changes, after = [], None
    while True:
        page = gql.graphql(SEGMENT, id=segment_id, changesAfter=after)["segment"]["changes"]
        changes += [e["node"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return changes
        after = page["pageInfo"]["endCursor"]


def replay(changes: list[dict]) -> list[str]:
    """The members a log leaves, checking that each contact's changes alternate, starting with ENTERED."""
    members: set[str] = set()
    for change in changes:
        entering = change["change"] == "ENTERED"
        assert (change["contactId"] in members) != entering, f"{change} does not follow the contact's last change"
        (members.add if entering else members.discard)(change["contactId"])
    return sorted(members)


def assert_consistent(gql, segment_id: str) -> list[str]:
    """Stored members == fresh evaluation == replayed log (and the stored count agrees); returns the members."""
    segment = gql.graphql(SEGMENT, id=segment_id)["segment"]
    stored = stored_members(gql, segment_id)
    assert segment["count"] == len(stored)
    assert stored == gql.members(segment["rule"], as_of=None), "stored members differ from an evaluation now"
    assert replay(change_log(gql, segment_id)) == stored, "the change log does not replay to the stored members"
    return stored
