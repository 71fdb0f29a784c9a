"""Following a workspace's change log as it grows (subscriptions).

A follower reads the settled log (``Database._settle``) from its cursor, a
page at a time, and waits when it has read everything. It is woken at once
by a write of this process (:meth:`ChangeFeed.nudge`, which ``LiveSegments``
calls after each write), and within POLL_SECONDS by a write of any other
process: one poller per followed workspace reads the workspace's settled
position, however many follow it, and wakes them only when it moved. So an
idle subscription costs nothing but its share of one small read, and a
follower that falls behind (a slow client) reads on from the database at
its own pace: nothing is buffered for it.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Sequence

from pymongo.errors import PyMongoError

from .database import Database
from .errors import LimitExceeded

log = logging.getLogger("segmentql")

POLL_SECONDS = 0.25
PAGE = 100
# Followers of one workspace in one process (subscriptions over every
# connection): each reads the log, so a workspace cannot open thousands.
MAX_FOLLOWERS = 50


class _Watch:
    """One followed workspace: its followers wait for ``version`` to change."""

    def __init__(self) -> None:
        self.followers = 0
        self.version = 0
        self.changed = asyncio.Event()
        self.poller: asyncio.Task | None = None

    def wake(self) -> None:
        self.version += 1
        self.changed.set()
        self.changed = asyncio.Event()

    async def wait_past(self, version: int) -> None:
        while self.version == version:
            await self.changed.wait()


class ChangeFeed:
    """The change log followers of one process."""

    def __init__(self, db: Database, poll_seconds: float = POLL_SECONDS):
        self.db, self.poll_seconds = db, poll_seconds
        self._watches: dict[str, _Watch] = {}

    def nudge(self, workspace_id: str) -> None:
        """The workspace's log may have grown (a write of this process ended)."""
        if (watch := self._watches.get(workspace_id)) is not None:
            watch.wake()

    async def follow(self, workspace_id: str, segment_ids: Sequence[str] | None, after_seq: int
                     ) -> AsyncGenerator[dict, None]:
        """Every change after log position ``after_seq`` of these segments (or
        all), in log order, as it is settled, for as long as the caller reads."""
        watch = self._watches.setdefault(workspace_id, _Watch())
        if watch.followers >= MAX_FOLLOWERS:
            raise LimitExceeded(f"a workspace has at most {MAX_FOLLOWERS} subscriptions to its changes open at once "
                                "per service process; close one first")
        watch.followers += 1
        if watch.poller is None:
            watch.poller = asyncio.create_task(self._poll(workspace_id, watch))
        try:
            while True:
                version = watch.version
                page = await self.db.changes_page(workspace_id, segment_ids, after_seq, PAGE,
                                                  await self.db.settled_seq(workspace_id))
                for change in page:
                    after_seq = change["seq"]
                    yield change
                if len(page) < PAGE:
                    await watch.wait_past(version)
        finally:
            watch.followers -= 1
            if watch.followers == 0:
                del self._watches[workspace_id]
                if watch.poller is not None:
                    watch.poller.cancel()

    async def _poll(self, workspace_id: str, watch: _Watch) -> None:
        """Wake the workspace's followers when its settled position moves (a write of any process)."""
        seen = None
        while True:
            with contextlib.suppress(PyMongoError):  # the followers' own reads report an outage
                settled = await self.db.settled_seq(workspace_id)
                if settled != seen:
                    seen = settled
                    watch.wake()
            await asyncio.sleep(self.poll_seconds)
