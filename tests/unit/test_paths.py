"""Changes as dotted paths: applied to a plain document, merged (a batch may
name a contact twice) into one valid update, and written as ``$set`` /
``$unset``."""

from hypothesis import given, settings
from hypothesis import strategies as st

from segmentql.server.paths import UNSET, apply, merge, overlaps, update_document


def test_paths_overlap_when_equal_or_one_holds_the_other():
    assert overlaps("custom", "custom") and overlaps("custom", "custom.plan") and overlaps("custom.plan", "custom")
    assert not overlaps("custom.plan", "custom.plans") and not overlaps("email", "custom.email")


def test_apply_sets_and_unsets_paths_on_a_copy():
    doc = {"email": "a@example.com", "custom": {"plan": "pro", "seats": 3}}
    changed = apply(doc, {"email": "b@example.com", "custom.plan": UNSET, "custom.ltv": 9})
    assert changed == {"email": "b@example.com", "custom": {"seats": 3, "ltv": 9}}
    assert doc == {"email": "a@example.com", "custom": {"plan": "pro", "seats": 3}}  # untouched


def test_apply_creates_the_documents_a_path_goes_through():
    assert apply({}, {"custom.plan": "pro"}) == {"custom": {"plan": "pro"}}
    assert apply({"custom": 5}, {"custom.plan": "pro"}) == {"custom": {"plan": "pro"}}


def test_unsetting_a_missing_path_changes_no_value():
    assert apply({"email": "a"}, {"country": UNSET}) == {"email": "a"}


def test_a_later_change_of_a_path_wins():
    assert merge({"email": "a", "country": "US"}, {"email": "b"}) == {"email": "b", "country": "US"}
    assert merge({"custom.plan": "pro"}, {"custom.plan": UNSET}) == {"custom.plan": UNSET}


def test_a_later_change_of_a_document_replaces_earlier_changes_inside_it():
    assert merge({"custom.plan": "pro", "custom.seats": 3}, {"custom": {}}) == {"custom": {}}


def test_a_later_change_inside_a_document_written_earlier_goes_into_it():
    assert merge({"custom": {"plan": "pro"}}, {"custom.seats": 3}) == {"custom": {"plan": "pro", "seats": 3}}
    assert merge({"custom": UNSET}, {"custom.seats": 3}) == {"custom": {"seats": 3}}


def test_the_update_sets_values_and_unsets_removed_paths():
    assert update_document({"email": "b", "custom.plan": UNSET}) == {"$set": {"email": "b"},
                                                                     "$unset": {"custom.plan": ""}}
    assert update_document({"email": "b"}) == {"$set": {"email": "b"}}
    assert update_document({}) == {}


# -- merging is applying one change after the other --------------------------------------

PATHS = st.lists(st.sampled_from("abc"), min_size=1, max_size=3).map(".".join)
VALUES = st.one_of(st.integers(0, 3), st.just(UNSET), st.dictionaries(st.sampled_from("abc"), st.integers(0, 3),
                                                                       max_size=2))
DOCUMENTS = st.recursive(st.integers(0, 3), lambda inner: st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
                         max_leaves=6)


def change() -> st.SearchStrategy[dict]:
    """A valid update: no two of its paths overlap."""
    return st.dictionaries(PATHS, VALUES, max_size=3).filter(
        lambda c: not any(overlaps(p, q) for p in c for q in c if p != q))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from("abc"), DOCUMENTS, max_size=3), change(), change())
def test_a_merged_change_has_the_effect_of_both_in_order_and_is_one_valid_update(doc, first, then):
    merged = merge(first, then)
    assert apply(doc, merged) == apply(apply(doc, first), then)
    assert not any(overlaps(p, q) for p in merged for q in merged if p != q)
