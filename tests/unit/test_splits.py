"""A/B splits: a contact's variant is a pure function of (segment, seed,
contact id) and the weights, so the same inputs give the same split and new
contacts move nobody; each variant gets its share within binomial
tolerance."""

import math
import re

import pytest

from segmentql.server.errors import BadArgument
from segmentql.server.splits import MAX_VARIANTS, Splitter, Variant, check_variants, position

ABC = [Variant("A", 50), Variant("B", 30), Variant("C", 20)]
IDS = [f"c{i:05}" for i in range(10_000)]


def test_a_position_is_a_stable_point_in_the_unit_interval():
    points = [position("s1", "spring", c) for c in IDS[:1000]]
    assert all(0 <= p < 1 for p in points)
    assert points == [position("s1", "spring", c) for c in IDS[:1000]]
    assert len(set(points)) == 1000


def test_each_input_moves_the_position_and_they_cannot_run_together():
    base = position("s1", "spring", "c1")
    assert base not in (position("s2", "spring", "c1"), position("s1", "autumn", "c1"), position("s1", "spring", "c2"))
    assert position("ab", "c", "d") != position("a", "bc", "d")


def test_variants_own_slices_in_the_order_given_proportional_to_their_weights():
    assert Splitter("s1", "spring", ABC).bounds == [0.5, 0.8, 1.0]


def test_the_last_slice_ends_at_one_whatever_the_rounding():
    assert Splitter("s1", "", [Variant(str(i), 0.1) for i in range(3)]).bounds[-1] == 1.0


def test_a_contacts_variant_is_the_slice_holding_its_position():
    splitter = Splitter("s1", "spring", ABC)
    for contact in IDS[:200]:
        point = position("s1", "spring", contact)
        assert splitter.variant_of(contact) == next(i for i, bound in enumerate(splitter.bounds) if point < bound)


def test_every_variant_gets_its_share_within_binomial_tolerance():
    counts = Splitter("s1", "spring", ABC).tally(IDS)
    assert sum(counts) == len(IDS)
    for variant, count in zip(ABC, counts, strict=True):
        share = variant.weight / 100
        assert abs(count - len(IDS) * share) <= 4.5 * math.sqrt(len(IDS) * share * (1 - share)), (variant, count)


def test_new_contacts_move_nobody():
    """A variant's members among the first 500 contacts are the same after 9,500 more join."""
    splitter, first = Splitter("s1", "spring", ABC), set(IDS[:500])
    for variant in range(len(ABC)):
        assert [c for c in splitter.members_of(variant, IDS) if c in first] == splitter.members_of(variant, IDS[:500])


def test_another_seed_is_an_independent_split():
    """Two independent splits agree with chance 0.5² + 0.3² + 0.2² = 0.38."""
    spring, autumn = Splitter("s1", "spring", ABC), Splitter("s1", "autumn", ABC)
    agree = sum(spring.variant_of(c) == autumn.variant_of(c) for c in IDS) / len(IDS)
    assert abs(agree - 0.38) < 4.5 * math.sqrt(0.38 * 0.62 / len(IDS))


def test_members_of_a_variant_keep_their_order():
    splitter = Splitter("s1", "spring", ABC)
    members = splitter.members_of(2, IDS[:300])
    assert members == [c for c in IDS[:300] if splitter.variant_of(c) == 2]
    assert len(members) == splitter.tally(IDS[:300])[2]


@pytest.mark.parametrize("variants, seed, message", [
    ([], "s", f"a split needs 1 to {MAX_VARIANTS} variants, got 0"),
    ([Variant(str(i), 1) for i in range(MAX_VARIANTS + 1)], "s", f"1 to {MAX_VARIANTS} variants, got 101"),
    ([Variant("A", 0)], "s", "variant 'A' needs a weight above 0, got 0"),
    ([Variant("A", -1), Variant("B", 1)], "s", "variant 'A' needs a weight above 0"),
    ([Variant("A", math.nan)], "s", "variant 'A' needs a weight above 0"),
    ([Variant("A", math.inf)], "s", "variant 'A' needs a weight above 0"),
    ([Variant("A", 1), Variant("B", 1), Variant("A", 2)], "s", "variant names must differ; repeated: 'A'"),
    ([Variant(" ", 1)], "s", "variant names must be 1 to 200 characters and not blank"),
    ([Variant("x" * 201, 1)], "s", "variant names must be 1 to 200 characters"),
    ([Variant("A", 1)], "x" * 201, "`seed` may be at most 200 characters"),
])
def test_a_bad_split_is_refused_with_the_reason(variants, seed, message):
    with pytest.raises(BadArgument, match=re.escape(message)):
        check_variants(variants, seed)
    with pytest.raises(BadArgument):
        Splitter("s1", seed, variants)


def test_one_variant_of_any_weight_takes_everyone():
    assert Splitter("s1", "", [Variant("all", 0.001)]).tally(IDS[:100]) == [100]
