"""Subscriptions: the change log of saved segments, as it grows, over
WebSocket (the ``graphql-transport-ws`` protocol; the app authenticates the
key sent in ``connection_init``)."""

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry
from strawberry.types import Info

from segmentql.server.cursors import change_position
from segmentql.server.errors import BadArgument
from segmentql.server.segments import saved_segment_ids

from .arguments import described
from .context import request_context
from .segment import SegmentChangeEvent


@strawberry.type(description="Live updates, over WebSocket (`graphql-transport-ws`; send the key in "
                             "`connection_init`'s payload as `{\"Authorization\": \"Bearer KEY\"}`).")
class Subscription:
    @strawberry.subscription(description=(
        "Every change of saved segments' members, in log order, as it is logged: by every write, rule "
        "change and the day's refresh. Without `after` it starts with the next change; with a cursor (of a "
        "change event, or of `Segment.changes`) it first sends every change after it, so a client that "
        "reconnects with its last cursor misses nothing."))
    async def segment_changes(
            self, info: Info,
            segment_ids: Annotated[list[strawberry.ID] | None, described(
                "The segments to follow (at most 100); leave out for every segment of the workspace.")] = None,
            after: Annotated[str | None, described("Resume after this change cursor.")] = None
    ) -> AsyncGenerator[SegmentChangeEvent, None]:
        ctx = request_context(info)
        followed = None if segment_ids is None else await saved_segment_ids(ctx.db, ctx.workspace_id, segment_ids)
        settled = await ctx.db.settled_seq(ctx.workspace_id)
        after_seq = change_position(after) if after else settled
        if after_seq > settled:  # another workspace's, or of a database since reset: its changes would be skipped
            raise BadArgument("`after` is past the end of this workspace's change log")
        async for change in ctx.feed.follow(ctx.workspace_id, followed, after_seq):
            yield SegmentChangeEvent.of(change)
