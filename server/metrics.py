"""What the service counts and times, for Prometheus (``/metrics``).

The metrics live in ``prometheus_client``'s default registry, one set per
process: with several service processes (``serve --workers N``, replicas)
Prometheus scrapes each and sums them, which is what counters and histograms
are made for. Recording is a few lines where the work happens (the request's
outcome in ``segmentql_pkg/observability.py``, a pipeline's time in
``database.py``, rows in ``importer.py``, webhook attempts in ``delivery.py``);
none of it touches the database or waits.
"""

import functools
import time
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from prometheus_client import Counter, Histogram

# Requests and pipelines run from about a millisecond (a stored count) to the
# request deadline (minutes for the snapshot of a huge segment).
SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter("segmentql_requests", "GraphQL operations by type and outcome (ok, or the first error's code)",
                   ["operation_type", "outcome"])
REQUEST_SECONDS = Histogram("segmentql_request_seconds", "Time to answer a GraphQL query or mutation",
                            ["operation_type"], buckets=SECONDS)
RATE_LIMITED = Counter("segmentql_rate_limited", "Requests refused with RATE_LIMITED (HTTP 429)")
PIPELINE_SECONDS = Histogram("segmentql_pipeline_seconds", "Time of a segment pipeline on the contacts, its wait "
                             "for the workspace's turn included: the whole answer (aggregate), or until its first "
                             "batch (stream)", ["kind"],
                             buckets=SECONDS)
IMPORTED_ROWS = Counter("segmentql_imported_rows", "Rows stored by `segmentql import`, by file",
                        ["kind"])
WEBHOOK_DELIVERIES = Counter("segmentql_webhook_deliveries", "Webhook delivery attempts: ok (2xx) or failed",
                             ["outcome"])
WEBHOOK_ATTEMPT_SECONDS = Histogram("segmentql_webhook_attempt_seconds",
                                    "Time of a webhook delivery attempt, the name's lookup included", buckets=SECONDS)

P = ParamSpec("P")
R = TypeVar("R")


def timed_pipeline(kind: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Decorates a coroutine function: each call's time goes to ``segmentql_pipeline_seconds{kind}``
    (prometheus_client's own ``time()`` decorator would time making the coroutine, not running it)."""
    histogram = PIPELINE_SECONDS.labels(kind)

    def decorate(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(function)
        async def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                histogram.observe(time.perf_counter() - started)
        return timed
    return decorate


def webhook_attempt(delivered: bool, seconds: float) -> None:
    WEBHOOK_DELIVERIES.labels("ok" if delivered else "failed").inc()
    WEBHOOK_ATTEMPT_SECONDS.observe(seconds)
