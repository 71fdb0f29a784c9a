"""A saved segment's change log pages both ways (Relay cursor connections):
forward from the oldest with ``first``/``after``, backward from the newest
with ``last``/``before``; either way a page lists its changes oldest first."""

import pytest

from .conftest import new_workspace

CONTACTS = "mutation($c: [ContactInput!]!) { upsertContacts(contacts: $c) { accepted } }"
CREATE = "mutation($n: String!, $r: RuleInput!) { createSegment(name: $n, rule: $r) { id } }"
PAGE = """query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) { segment(id: $id) {
  changes(first: $first, after: $after, last: $last, before: $before) { edges { cursor node { contactId change } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }"""


def scores(**by_id: int) -> list[dict]:
    return [{"id": cid, "email": f"{cid}@x.io", "leadScore": score} for cid, score in by_id.items()]


@pytest.fixture(scope="module")
def logged(http):
    """A workspace with a segment of hot leads whose log holds 8 changes,
    interleaved with the changes of a second segment (warm leads)."""
    client = new_workspace(http)
    client.graphql(CONTACTS, c=scores(a=90, b=80, c=85, w=55))
    hot = client.graphql(CREATE, n="hot", r={"leadScore": {"min": 75}})["createSegment"]["id"]  # a, b, c enter
    client.graphql(CREATE, n="warm", r={"leadScore": {"min": 50, "max": 74}})  # w enters
    for write in (scores(b=60), scores(d=99, w=10), scores(a=20, e=77), scores(b=95)):  # 5 more for hot
        client.graphql(CONTACTS, c=write)
    return client, hot


def page(client, segment_id: str, **arguments) -> dict:
    return client.graphql(PAGE, id=segment_id, **arguments)["segment"]["changes"]


def changes(connection: dict) -> list[tuple[str, str]]:
    return [(e["node"]["contactId"], e["node"]["change"]) for e in connection["edges"]]


def forward_log(client, segment_id: str) -> list[dict]:
    edges, after = [], None
    while True:
        connection = page(client, segment_id, first=3, after=after)
        edges += connection["edges"]
        if not connection["pageInfo"]["hasNextPage"]:
            return edges
        after = connection["pageInfo"]["endCursor"]


LOG = [("a", "ENTERED"), ("b", "ENTERED"), ("c", "ENTERED"), ("b", "LEFT"), ("d", "ENTERED"), ("a", "LEFT"),
       ("e", "ENTERED"), ("b", "ENTERED")]


def test_last_gives_the_newest_changes_oldest_first(logged):
    client, hot = logged
    newest = page(client, hot, last=3)
    assert changes(newest) == LOG[-3:]
    assert newest["pageInfo"] == {"hasPreviousPage": True, "hasNextPage": False,
                                  "startCursor": newest["edges"][0]["cursor"],
                                  "endCursor": newest["edges"][-1]["cursor"]}
    everything = page(client, hot, last=100)
    assert changes(everything) == LOG and everything["pageInfo"]["hasPreviousPage"] is False
    empty = page(client, hot, last=0)  # no items, and whether there are any
    assert empty["edges"] == [] and empty["pageInfo"] == {
        "hasPreviousPage": True, "hasNextPage": False, "startCursor": None, "endCursor": None}


def test_paging_backwards_through_the_log_gives_the_forward_log(logged):
    client, hot = logged
    forward = forward_log(client, hot)
    assert [(e["node"]["contactId"], e["node"]["change"]) for e in forward] == LOG
    backward, before, pages = [], None, []
    while True:
        connection = page(client, hot, last=3, before=before)
        backward = connection["edges"] + backward
        pages.append(connection["pageInfo"])
        if not connection["pageInfo"]["hasPreviousPage"]:
            break
        before = connection["pageInfo"]["startCursor"]
    assert backward == forward  # the same changes with the same cursors
    assert len(pages) == 3 and pages[-1]["hasPreviousPage"] is False
    assert [p["hasNextPage"] for p in pages] == [False, True, True]  # true once `before` is given
    oldest = page(client, hot, last=2, before=forward[2]["cursor"])  # the two before the third
    assert oldest["edges"] == forward[:2] and oldest["pageInfo"]["hasPreviousPage"] is False
    assert page(client, hot, last=5, after=forward[1]["cursor"], before=forward[5]["cursor"])["edges"] == forward[2:5]


def test_forward_pages_say_where_they_are(logged):
    client, hot = logged
    assert changes(page(client, hot)) == LOG  # neither size: the oldest 100
    start = page(client, hot, first=3)
    assert start["pageInfo"] == {"hasPreviousPage": False, "hasNextPage": True,
                                 "startCursor": start["edges"][0]["cursor"], "endCursor": start["edges"][-1]["cursor"]}
    rest = page(client, hot, first=100, after=start["pageInfo"]["endCursor"])
    assert changes(rest) == LOG[3:]
    assert rest["pageInfo"]["hasPreviousPage"] is True and rest["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize("arguments, named", [
    ({"first": 2, "last": 2}, "`first`"),
    ({"last": -1}, "`last`"),
    ({"last": 1001}, "`last`"),
    ({"last": 2, "before": "nonsense"}, "`before`"),
    ({"last": 2, "before": "Y2hhbmdlOng="}, "`before`"),  # "change:x"
])
def test_bad_page_arguments_are_refused_naming_them(logged, arguments, named):
    client, hot = logged
    [error] = client.errors(PAGE, id=hot, **arguments)
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and named in error["message"], error


def test_a_page_read_backward_costs_its_last(logged):
    client, _ = logged
    many = "query($n: Int) { segments(first: 25) { edges { node { changes(last: $n) { edges { cursor } } } } } }"
    [error] = client.errors(many, n=1000)  # 25 pages of 1,000: over the budget of 20,000
    assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert error["extensions"]["cost"] == 25 + 25 * 1000
    assert client.graphql(many, n=10)["segments"]["edges"]
