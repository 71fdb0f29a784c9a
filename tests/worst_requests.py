"""The requests issue 14 found to stall the service, and the heaviest of the same
shapes the cost budget lets through: shared by tests/test_abuse.py and the
benchmark's ``isolation`` part. Each expects the variables ``r`` (a rule, e.g.
``EVERYONE``) and ``id`` (a saved segment of it)."""

EVERYONE = {"leadScore": {"min": 0}}  # nearly every contact: each evaluation reads the workspace
STATS_PAGE = "contacts(first: 1000) { edges { node { id stats { opens clicks campaigns { campaignId } } } } }"


def aliased(n: int, selection: str) -> str:
    """``n`` aliases of ``segmentPreview(rule: $r) { selection }``."""
    return "query($r: RuleInput!) { " + " ".join(f"a{i}: segmentPreview(rule: $r) {{ {selection} }}"
                                                 for i in range(n)) + " }"


def split_pages(variants: int, first: int) -> str:
    """A split of segment ``$id`` into equal ``variants``, each with its count and a page."""
    given = ", ".join(f'{{name: "v{i}", weight: 1}}' for i in range(variants))
    return (f'query($id: ID!) {{ segment(id: $id) {{ split(seed: 1, variants: [{given}]) {{ variants {{ count '
            f'contacts(first: {first}) {{ edges {{ node {{ id }} }} }} }} }} }} }}')


def fragment_bomb(fragments: int) -> str:
    """``fragments`` fragments, each spreading the next twice: 2^fragments fields written out."""
    return "\n".join(["query { ...F0 }", *(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}"
                                          for i in range(fragments)),
                      f"fragment F{fragments} on Query {{ __typename }}"])


# 35-85 s each before the budget, every workspace stalled meanwhile.
WORST = {
    "30 pages of 1,000 contacts with stats": aliased(30, STATS_PAGE),
    "20 split variants with counts and pages": split_pages(20, 100),
    # Evaluated at an instant: without asOf, a saved segment's count and members are stored reads.
    "10 segments with count, analytics and contacts as of an instant":
        '{ segments(first: 10) { edges { node { count(asOf: "2026-11-28T12:00:00Z") analytics { openRate } '
        'contacts(asOf: "2026-11-28T12:00:00Z") { edges { cursor } } } } } }',
}
HEAVIEST_ALLOWED = {
    "19 counts": aliased(19, "count"),
    "9 pages of 1,000 contacts with stats": aliased(9, STATS_PAGE),
    "10 split variants with counts and pages": split_pages(10, 100),
}
# Everything an attacker of the isolation measurements sends, in turn.
ATTACKS = [*WORST.values(), fragment_bomb(26), *HEAVIEST_ALLOWED.values()]
