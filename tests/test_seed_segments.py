"""The product's reference segments give exactly their expected counts on the
seed-7 data set, through GraphQL on the embedded database, and the reference
evaluator agrees with them (so it can be trusted as the differential oracle)."""

import datetime as dt
import json

import pytest

from .conftest import SEED_AS_OF, SHARED
from .reference import Dataset
from .rules import count, member_ids

SEEDS = json.loads((SHARED / "seed-segments.json").read_text())["segments"]


@pytest.fixture(scope="module")
def reference(seed_dir):
    return Dataset.load(seed_dir)


@pytest.mark.parametrize("segment", SEEDS, ids=[s["name"] for s in SEEDS])
def test_seed_segment_count(seed, segment):
    assert count(seed, segment["rule"], SEED_AS_OF) == segment["expected_count"]


@pytest.mark.parametrize("segment", SEEDS, ids=[s["name"] for s in SEEDS])
def test_seed_segment_members_match_reference(seed, reference, segment):
    as_of = dt.datetime.fromisoformat(SEED_AS_OF.replace("Z", "+00:00"))
    expected = reference.members(segment["rule"], as_of)
    assert len(expected) == segment["expected_count"]
    assert sorted(member_ids(seed, segment["rule"], SEED_AS_OF)) == sorted(expected)
