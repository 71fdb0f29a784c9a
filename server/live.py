"""Live segments: every saved segment's members kept stored, and every change logged.

A saved segment's members are stored (``Database.log_changes``) and kept
current by every write: a write runs as its workspace's only writer
(:meth:`LiveSegments.write`), stores its data, then re-evaluates the contacts
it touched against every saved segment of the workspace, with each segment's
own compiled pipeline restricted to them (``segments.members_among``), and
logs each difference as ENTERED or LEFT. One write at a time per workspace,
across processes, is what makes the log exact: writes are evaluated in the
order they were accepted, each against the data as it left it, so a contact
that enters with one write and leaves with the next has both changes logged.

Time moves memberships too ("opened in the last 30 days"): :meth:`refresh`
evaluates every segment of a workspace in full, and the service runs it when
the UTC day changes (:meth:`keep_current`). Creating or changing a segment's
rule evaluates it in full as well (cause RULE), so replaying a segment's log
from the start gives its members.

Nothing is lost to a crash. Before a write stores anything, a journal entry
(``membership_journal``) names what it touches; it is closed once the
write's changes are evaluated. Whoever next takes the workspace's lease first
evaluates what open entries name (a writer that died, or a write that
failed half-way), after bringing member documents up to the changes already
logged (``Database.roll_forward``): nothing is logged twice or missed.

The lease (``write_leases``) is held by one process at a time, renewed while
held, and lapses ``SEGMENTQL_WRITE_LEASE_SECONDS`` after its holder dies.
Within a process, a workspace's writers queue on an asyncio lock first, so
only one of them polls the database.
"""

import asyncio
import contextlib
import datetime as dt
import enum
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from pymongo.errors import OperationFailure, PyMongoError

from segmentql.plugins.contact import day_number, day_start
from segmentql.plugins.registry import ConditionRegistry

from . import deadline, segments
from .compiler import CompiledRule, compile_rule_for
from .database import MEMBER_BATCH, Database, now
from .errors import Busy, SegmentqlError

log = logging.getLogger("segmentql")
T = TypeVar("T")

# A write waits this long for its workspace's other writers before BUSY.
WRITE_WAIT_SECONDS = 60.0
# More touched contacts than this are evaluated by evaluating the whole
# segment (one pipeline, merged with the stored members) instead of in batches.
FULL_EVALUATION_ABOVE = 2000
# How often the service checks for a new UTC day and for writes left unevaluated.
CHECK_EVERY_SECONDS = 30.0


class Cause(enum.Enum):
    """Why a contact entered or left a segment."""

    RULE = "the segment was created or its rule changed"
    CONTACT = "the contact's fields changed (or a custom field was declared)"
    EVENT = "the contact's events changed (recorded, imported, rollups rebuilt)"
    CAMPAIGN = "a campaign the contact received was renamed or re-dated"
    TIME = "time passed (a refresh at the day's change, or `segmentql refresh-segments`)"
    DELETE = "the contact was deleted"


@dataclass(frozen=True)
class Scope:
    """What a write may change: some contacts (``contacts``), the recipients
    of some campaigns (``campaigns``), or every contact (neither); in some
    saved segments (``segments``) or all of them."""

    contacts: tuple[str, ...] | None = None
    campaigns: tuple[str, ...] | None = None
    segments: tuple[str, ...] | None = None

    def document(self) -> dict:
        return {k: list(v) for k, v in vars(self).items() if v is not None}

    @classmethod
    def from_document(cls, doc: Mapping) -> "Scope":
        return cls(**{k: tuple(doc[k]) for k in ("contacts", "campaigns", "segments") if k in doc})


class LiveSegments:
    """The live-membership service of one process (the app, a command)."""

    def __init__(self, db: Database, registry: ConditionRegistry, lease_seconds: float = 30.0):
        self.db, self.registry, self.lease_seconds = db, registry, lease_seconds
        self.owner = uuid.uuid4().hex
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # workspace -> its lock, and its users
        self._started = False  # refresh_due ran once (broken segments are tried at start-up only)
        # Called with a workspace's id after each of its writes here (its log
        # may have grown): the change feed and the webhook dispatcher.
        self.listeners: list[Callable[[str], None]] = []

    # -- one writer per workspace -------------------------------------------------

    @contextlib.asynccontextmanager
    async def _sole_writer(self, workspace_id: str) -> AsyncIterator[None]:
        """Hold the workspace's write lease (waiting at most WRITE_WAIT_SECONDS,
        else :class:`Busy`), renewed while the block runs; open journal entries
        are evaluated first."""
        lock, users = self._locks.get(workspace_id) or (asyncio.Lock(), 0)
        self._locks[workspace_id] = (lock, users + 1)  # kept while anyone holds or awaits it
        try:
            try:
                await asyncio.wait_for(lock.acquire(), WRITE_WAIT_SECONDS)
            except TimeoutError:
                raise Busy("this workspace's other writes have held it for a minute; retry shortly") from None
            try:
                await self._take_lease(workspace_id)
                lost = asyncio.Event()
                renewal = asyncio.create_task(self._renew(workspace_id, asyncio.current_task(), lost))
                try:
                    with deadline.outside_request():
                        await self._recover(workspace_id)
                        yield
                except asyncio.CancelledError:
                    if not lost.is_set():
                        raise
                    asyncio.current_task().uncancel()  # type: ignore[union-attr]  # it runs this
                    raise Busy("this write was stopped: it held its workspace for longer than the write lease "
                               "and another writer took over; what it stored is completed by that writer") from None
                finally:
                    renewal.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await renewal
                    with contextlib.suppress(PyMongoError):
                        await self.db.release_lease(workspace_id, self.owner)
                    for listener in self.listeners:
                        listener(workspace_id)
            finally:
                lock.release()
        finally:
            lock, users = self._locks.pop(workspace_id)
            if users > 1:
                self._locks[workspace_id] = (lock, users - 1)

    async def _take_lease(self, workspace_id: str) -> None:
        waited, pause = 0.0, 0.01
        while not await self.db.take_lease(workspace_id, self.owner, self.lease_seconds):
            if waited >= WRITE_WAIT_SECONDS:
                raise Busy("another process has held this workspace's writes for a minute; retry shortly")
            await asyncio.sleep(pause)
            waited += pause
            pause = min(pause * 2, 0.5)

    async def _renew(self, workspace_id: str, holder: asyncio.Task | None, lost: asyncio.Event) -> None:
        """Renew the lease every third of its length. Once another process has
        taken it (this one stalled past it), the holder is stopped at its next
        await: two writers must not log at once. What it stored stays in its
        journal entry, for the new holder to complete."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                renewed = await self.db.take_lease(workspace_id, self.owner, self.lease_seconds)
            except PyMongoError as exc:  # the next renewal may succeed; the work itself will fail if not
                log.warning("workspace %s: the write lease could not be renewed: %s", workspace_id, exc)
                continue
            if not renewed:
                log.error("workspace %s: the write lease lapsed and another process took it (this one was stalled "
                          "for over %s s): the write is stopped", workspace_id, self.lease_seconds)
                lost.set()
                if holder is not None:
                    holder.cancel()
                return

    # -- writes --------------------------------------------------------------------

    async def write(self, workspace_id: str, scope: Scope, cause: Cause,
                    work: Callable[[], Awaitable[tuple[T, Sequence[str] | None]]]) -> T:
        """Run ``work`` as the workspace's only writer, then evaluate the
        contacts it touched. ``work`` stores the write and returns (its result,
        the ids of the contacts it changed, or None for "any"), or raises a
        SegmentqlError having written nothing (a refused write); ``scope``
        says beforehand what it may touch, for the journal."""
        async with self._sole_writer(workspace_id):
            entry = await self.db.open_journal(workspace_id, {"cause": cause.name, **scope.document()})
            try:
                result, touched = await work()
            except SegmentqlError:  # refused before anything was written: nothing to evaluate
                await self.db.close_journal(workspace_id, entry)
                raise
            await self._evaluate(workspace_id, scope.segments, touched, _always(cause), now())
            await self.db.close_journal(workspace_id, entry)
        return result

    async def refresh(self, workspace_id: str, as_of: dt.datetime | None = None, only_due: bool = False) -> int:
        """Evaluate every saved segment of the workspace in full, as of
        ``as_of`` (default now); changes nobody's write explains are logged
        with cause TIME. ``only_due``: only if a segment was last evaluated on
        an earlier UTC day than today (or never). Returns the segments evaluated."""
        async with self._sole_writer(workspace_id):
            if only_due and not await self._due(workspace_id):
                return 0
            at = as_of or now()
            entry = await self.db.open_journal(workspace_id, {"cause": Cause.TIME.name, "asOf": at})
            evaluated = await self._evaluate(workspace_id, None, None, _always(Cause.TIME), at)
            await self.db.close_journal(workspace_id, entry)
        return evaluated

    async def evaluate_after(self, workspace_id: str, causes: Callable[[str], Cause]) -> int:
        """Evaluate every saved segment in full after a bulk write that took no
        lease (``segmentql import``, ``rebuild-rollups``); ``causes`` names
        each change's cause by its contact. Returns the segments evaluated."""
        async with self._sole_writer(workspace_id):
            entry = await self.db.open_journal(workspace_id, {"cause": Cause.EVENT.name})
            evaluated = await self._evaluate(workspace_id, None, None, causes, now())
            await self.db.close_journal(workspace_id, entry)
        return evaluated

    async def _due(self, workspace_id: str) -> bool:
        return bool(await self.db.workspaces_evaluated_before(day_start(day_number(now())), workspace_id,
                                                              with_broken=not self._started))

    async def _recover(self, workspace_id: str) -> None:
        """Complete the writes whose evaluation never finished, oldest first."""
        entries = await self.db.open_journals(workspace_id)
        if not entries:
            return
        log.warning("workspace %s: evaluating %d write(s) whose evaluation was cut short", workspace_id, len(entries))
        rolled = await self.db.roll_forward(workspace_id, min(e["afterSeq"] for e in entries))
        for entry in entries:
            scope = Scope.from_document(entry)
            contacts: Sequence[str] | None = scope.contacts
            if scope.campaigns is not None:
                contacts = sorted({cid for campaign in scope.campaigns
                                   for cid in await self.db.contact_ids_with_campaign(workspace_id, campaign)})
            at = entry.get("asOf") or now()
            await self._evaluate(workspace_id, scope.segments, contacts, _always(Cause[entry["cause"]]), at)
            await self.db.close_journal(workspace_id, entry["_id"])
        for segment_id in rolled:
            await self.db.recount_members(workspace_id, segment_id)
        await self.db.settle_log(workspace_id)  # what the writer logged before it died

    # -- evaluation ------------------------------------------------------------

    async def _evaluate(self, workspace_id: str, segment_ids: Sequence[str] | None, contacts: Sequence[str] | None,
                        causes: Callable[[str], Cause], at: dt.datetime) -> int:
        """Evaluate saved segments (``segment_ids``, or all) as of ``at`` for
        the touched ``contacts``, or in full (when they are many, or None: any
        contact), and log what changed, each change with ``causes(contact
        id)``. A segment whose rule no longer
        compiles, or whose query the database refuses, is logged and left as
        it was: one broken segment does not stop the others (or the write)."""
        workspace = await self.db.workspace(workspace_id)
        saved = [s for s in await self.db.all_segments(workspace_id) if segment_ids is None or s["id"] in segment_ids]
        rules = []
        for segment in saved:
            try:
                rules.append((segment["id"], compile_rule_for(self.registry, workspace, segment["rule"], at)))
            except SegmentqlError as exc:  # e.g. its plugin was uninstalled: readers evaluate it (and fail) again
                log.error("workspace %s: segment %s is not kept current: its rule no longer compiles: %s",
                          workspace_id, segment["id"], exc)
                await self.db.note_membership_broken(workspace_id, segment["id"], str(exc))
        if contacts is None or len(contacts) > FULL_EVALUATION_ABOVE:
            for segment_id, rule in rules:
                await self._evaluate_fully(workspace_id, segment_id, rule, causes, at)
        elif contacts:
            await self._evaluate_contacts(workspace_id, rules, sorted(set(contacts)), causes, at)
        return len(rules)

    async def _evaluate_contacts(self, workspace_id: str, rules: list[tuple[str, CompiledRule]],
                                 contact_ids: list[str], causes: Callable[[str], Cause], at: dt.datetime) -> None:
        for start in range(0, len(contact_ids), MEMBER_BATCH):
            batch = contact_ids[start:start + MEMBER_BATCH]
            matched = await self._members_among(workspace_id, rules, batch)
            counts = await self.db.member_states(workspace_id, batch)
            changes = []
            for (segment_id, _), members in zip(rules, matched, strict=True):
                if members is None:
                    continue
                for contact_id in batch:
                    number = counts.get((segment_id, contact_id), 0)
                    if (contact_id in members) != (number % 2 == 1):
                        changes.append(_change(segment_id, contact_id, number + 1, at, causes(contact_id)))
            await self.db.log_changes(workspace_id, changes)

    async def _members_among(self, workspace_id: str, rules: list[tuple[str, CompiledRule]],
                             contact_ids: list[str]) -> list[set[str] | None]:
        """Each rule's members among the contacts (None for a rule the database refuses)."""
        try:
            return list(await segments.members_among(self.db, [r for _, r in rules], contact_ids))
        except (SegmentqlError, OperationFailure):
            pass
        found: list[set[str] | None] = []
        for segment_id, rule in rules:  # one at a time: the others still count
            try:
                found.append((await segments.members_among(self.db, [rule], contact_ids))[0])
            except (SegmentqlError, OperationFailure) as exc:
                log.error("workspace %s: segment %s is not kept current: %s", workspace_id, segment_id, exc)
                found.append(None)
        return found

    async def _evaluate_fully(self, workspace_id: str, segment_id: str, rule: CompiledRule,
                              causes: Callable[[str], Cause], at: dt.datetime) -> None:
        """The segment's members by its whole pipeline, merged (both in id
        order) with those stored; the differences logged MEMBER_BATCH at a time."""
        changes: list[dict] = []
        size = 0
        try:
            async with (contextlib.aclosing(segments.stream(self.db, rule, rule.ids_pipeline())) as evaluated,
                        contextlib.aclosing(self.db.stored_members(workspace_id, segment_id)) as stored):
                async for contact_id, is_member, number in _merged((d["id"] async for d in evaluated), stored):
                    size += is_member
                    if is_member != (number % 2 == 1):
                        changes.append(_change(segment_id, contact_id, number + 1, at, causes(contact_id)))
                        if len(changes) == MEMBER_BATCH:
                            await self.db.log_changes(workspace_id, changes)
                            changes = []
        except (SegmentqlError, OperationFailure) as exc:
            log.error("workspace %s: segment %s is not kept current: %s", workspace_id, segment_id, exc)
            return
        await self.db.log_changes(workspace_id, changes)
        await self.db.note_membership(workspace_id, segment_id, at, size)

    # -- the service's clock ------------------------------------------------------

    async def refresh_due(self) -> None:
        """Complete the writes whose writer died (their journal entries are
        older than a lease), then refresh the workspaces whose memberships
        date from an earlier UTC day than today; several processes may do
        this at once (each workspace is refreshed once: :meth:`refresh` checks
        again under its lease)."""
        for workspace_id in await self.db.workspaces_with_journals(now() - dt.timedelta(seconds=self.lease_seconds)):
            async with self._sole_writer(workspace_id):
                pass  # taking the lease completes them
        for workspace_id in await self.db.workspaces_evaluated_before(day_start(day_number(now())),
                                                                      with_broken=not self._started):
            evaluated = await self.refresh(workspace_id, only_due=True)
            if evaluated:
                log.info("workspace %s: %d segment(s) refreshed for the new day", workspace_id, evaluated)

    async def keep_current(self) -> None:
        """Run :meth:`refresh_due` now and every CHECK_EVERY_SECONDS, for as long
        as the service runs. Segments whose rule no longer compiles are tried
        again at start-up only (a plugin installed again comes with a restart)."""
        while True:
            try:
                await self.refresh_due()
                self._started = True
            except (PyMongoError, SegmentqlError) as exc:
                log.warning("keeping segments current failed for now (retried in %.0f s): %s",
                            CHECK_EVERY_SECONDS, exc)
            await asyncio.sleep(CHECK_EVERY_SECONDS)


async def _merged(evaluated: AsyncIterator[str], stored: AsyncIterator[tuple[str, int]]
                  ) -> AsyncIterator[tuple[str, bool, int]]:
    """(contact id, whether a member now, its changes so far) of every contact
    in ``evaluated`` (members now) or ``stored`` (ever members, with their
    changes), both in id order."""
    member, known = await anext(evaluated, None), await anext(stored, None)
    while member is not None or known is not None:
        if known is None or (member is not None and member < known[0]):
            assert member is not None
            yield member, True, 0
            member = await anext(evaluated, None)
        elif member is None or known[0] < member:
            yield known[0], False, known[1]
            known = await anext(stored, None)
        else:
            yield member, True, known[1]
            member, known = await anext(evaluated, None), await anext(stored, None)


def _always(cause: Cause) -> Callable[[str], Cause]:
    return lambda _contact_id: cause


def _change(segment_id: str, contact_id: str, number: int, at: dt.datetime, cause: Cause) -> dict:
    """The ``number``-th change of a contact in a segment: odd numbers enter, even ones leave."""
    return {"segment_id": segment_id, "contact_id": contact_id, "number": number,
            "change": "ENTERED" if number % 2 else "LEFT", "at": at, "cause": cause.name}
