"""One budget per request for all its database work: a deadline, and lanes.

``SEGMENTQL_MAX_TIME_MS`` bounds one aggregate, but a GraphQL request can run
many (aliases, a page of segments each with its count, a split's variants),
so on its own it bounds no request. The HTTP layer opens a
:class:`RequestBudget` around each GraphQL request, in a context variable
(every resolver task the request spawns inherits it), and
:class:`~segmentql.server.database.Database` reads it around every aggregate
and every batch of a streamed one: nothing above the database can forget it.

- **Deadline**: each aggregate gets ``maxTimeMS = min(SEGMENTQL_MAX_TIME_MS,
  time left)``, and none starts once the time is up (:class:`DeadlinePassed`,
  answered ``TIMEOUT``). So a request ends near its deadline whatever it asks.
- **Lanes**: a request's aggregate commands run one after another, never
  side by side, and a workspace's requests together run at most
  ``SEGMENTQL_WORKSPACE_LANES`` at a time (:class:`Lanes`). The embedded
  server evaluates queries under one lock: a request of 30 aliases queued 30
  aggregates ahead of every other workspace's next query (another
  workspace's ``{ __typename }`` waited 21 s). With one lane per request,
  three concurrent requests of nine pages of 1,000 contacts still made
  another workspace's small count wait up to 3.7 s (3,000 contacts); with
  one lane per workspace, 1.3 s: another workspace waits for at most the
  commands running. On MongoDB, lanes keep a workspace to a fair share of
  the cores (raise the setting where there are cores to spare). A lane is held
  per command (an aggregate, or one batch of a stream), never while the
  caller handles the documents, so a caller may start another aggregate
  while it reads a stream.

Work outside a request (the command line, ``record-sizes``) has no budget:
only the per-aggregate limit applies.
"""

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Iterator

from pymongo.errors import ExecutionTimeout

MAX_TIME_MS_EXPIRED = 50  # MongoDB's error code, which ExecutionTimeout carries


class DeadlinePassed(ExecutionTimeout):
    """The request's deadline passed before one of its database commands could start."""

    def __init__(self, timeout_ms: int):
        super().__init__(f"the request passed its deadline of {timeout_ms} ms", code=MAX_TIME_MS_EXPIRED)


class Lanes:
    """Each workspace's lanes to the database: at most ``per_workspace``
    commands of one workspace run at a time. A workspace's semaphore lives
    while a request of it does."""

    def __init__(self, per_workspace: int):
        self.per_workspace = per_workspace
        self._open: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @contextlib.contextmanager
    def of(self, workspace_id: str) -> Iterator[asyncio.Semaphore]:
        lanes, requests = self._open.get(workspace_id) or (asyncio.Semaphore(self.per_workspace), 0)
        self._open[workspace_id] = (lanes, requests + 1)
        try:
            yield lanes
        finally:
            lanes, requests = self._open.pop(workspace_id)
            if requests > 1:
                self._open[workspace_id] = (lanes, requests - 1)


class RequestBudget:
    """A request's deadline and lanes; ``commands`` counts the commands it
    ran (for the log line of a request cut short)."""

    def __init__(self, timeout_ms: int, workspace_lanes: asyncio.Semaphore):
        self.timeout_ms = timeout_ms
        self.started = time.monotonic()
        self.deadline = self.started + timeout_ms / 1000
        self.commands = 0
        self._lane = asyncio.Lock()
        self._workspace_lanes = workspace_lanes

    @contextlib.asynccontextmanager
    async def turn(self, max_time_ms: int) -> AsyncIterator[int]:
        """Wait for the request's lane and one of its workspace's, then hold
        them for one command; yields that command's ``maxTimeMS``:
        ``max_time_ms`` or the time left, whichever is less. Raises
        :class:`DeadlinePassed` when no time is left (waiting counts)."""
        async with self._lane, self._workspace_lanes:
            left_ms = int((self.deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                raise DeadlinePassed(self.timeout_ms)
            self.commands += 1
            yield min(max_time_ms, left_ms)


_CURRENT: contextvars.ContextVar[RequestBudget | None] = contextvars.ContextVar("segmentql_request_budget",
                                                                                default=None)


@contextlib.contextmanager
def request_budget(timeout_ms: int, workspace_lanes: asyncio.Semaphore) -> Iterator[RequestBudget]:
    """The budget of the request running in this block (and in the tasks it starts)."""
    budget = RequestBudget(timeout_ms, workspace_lanes)
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)


def current() -> RequestBudget | None:
    """The budget of the request being served, or None outside a request."""
    return _CURRENT.get()


@contextlib.asynccontextmanager
async def turn(max_time_ms: int) -> AsyncIterator[int]:
    """One database command of the current request (see
    :meth:`RequestBudget.turn`); yields its ``maxTimeMS``. Outside a request:
    ``max_time_ms`` at once."""
    budget = _CURRENT.get()
    if budget is None:
        yield max_time_ms
        return
    async with budget.turn(max_time_ms) as limit:
        yield limit


@contextlib.contextmanager
def outside_request() -> Iterator[None]:
    """Run the block with no request budget (only the per-aggregate limit):
    for work a request starts but must not leave half-done at its deadline,
    such as evaluating saved segments after a write."""
    token = _CURRENT.set(None)
    try:
        yield
    finally:
        _CURRENT.reset(token)
