"""How many examples the property tests draw (hypothesis, derandomized):
each test's figure, sized so the whole suite keeps to CI's 25 minutes, times
``SEGMENTQL_TEST_EXAMPLES`` (default 1; e.g. 4 for a thorough run before a
release: ``SEGMENTQL_TEST_EXAMPLES=4 make test``)."""

import os

SCALE = float(os.environ.get("SEGMENTQL_TEST_EXAMPLES", "1"))


def examples(n: int) -> int:
    return max(1, round(n * SCALE))
