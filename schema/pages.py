"""Pages and cursors: every field that returns contacts, contact ids or
saved segments pages them here.

Cursors are opaque to clients (``segmentql.server.cursors``). Services take
the decoded position (a contact id, a ``(createdAt, id)`` pair, a log
position), and a cursor that is not one of ours is refused here with a
message naming ``after``."""

import datetime as dt
from typing import Annotated

import strawberry
from strawberry.types import Info
from strawberry.types.nodes import FragmentSpread, InlineFragment

from segmentql.server import segments
from segmentql.server.compiler import CompiledRule
from segmentql.server.cursors import CONTACT, SEGMENT, decode_cursor, encode_cursor
from segmentql.server.errors import BadArgument
from segmentql.server.snapshots import IdPage

from .arguments import in_range
from .context import request_context
from .types import Contact, ContactConnection, ContactEdge, ContactIdConnection, ContactIdEdge, PageInfo

First = Annotated[int | None, strawberry.argument(
    description="Page size, 0-1000; 0 gives no items, and `pageInfo.hasNextPage` tells whether there are any.")]
After = Annotated[str | None, strawberry.argument(description="Cursor of the last item of the previous page.")]

def after_contact(after: str | None) -> str | None:
    """The contact id a contact cursor ``after`` stands for (None: from the first contact)."""
    return decode_cursor(CONTACT, after) if after else None


def segment_cursor(doc: dict) -> str:
    created = doc["createdAt"]
    created = created.replace(tzinfo=dt.UTC) if created.tzinfo is None else created
    return encode_cursor(SEGMENT, f"{created.isoformat()}|{doc['id']}")


def after_segment(after: str | None) -> tuple[dt.datetime, str] | None:
    """The (createdAt, id) a segment cursor ``after`` stands for (None: from the newest segment)."""
    if not after:
        return None
    created, _, segment_id = decode_cursor(SEGMENT, after).partition("|")
    try:
        return dt.datetime.fromisoformat(created), segment_id
    except ValueError:
        raise BadArgument(f"`after` is not a {SEGMENT} cursor returned by this API") from None


def page_size(info: Info, first: int | None) -> int:
    """The page size ``first`` asks for (the default when omitted). 0 is a page
    of no items whose ``hasNextPage`` still tells whether there are any."""
    settings = request_context(info).settings
    return in_range("first", settings.default_page_size if first is None else first, 0, settings.max_page_size)


def _selects(selections, path: tuple[str, ...]) -> bool:
    """Whether the query selects ``path`` (field names) below these selections, through fragments too."""
    for selection in selections:
        if isinstance(selection, (FragmentSpread, InlineFragment)):
            if _selects(selection.selections, path):
                return True
        elif selection.name == path[0] and (len(path) == 1 or _selects(selection.selections, path[1:])):
            return True
    return False


def wants_stats(info: Info) -> bool:
    """Whether the contacts' engagement stats are selected (if not, they stay in the database)."""
    return _selects(info.selected_fields[0].selections, ("edges", "node", "stats"))


def contact_connection(page: segments.Page, after: str | None) -> ContactConnection:
    """A page of contacts asked for ``after`` a cursor."""
    edges = [ContactEdge(cursor=encode_cursor(CONTACT, doc["id"]), node=Contact.from_doc(doc))
             for doc in page.contacts]
    return ContactConnection(edges=edges, page_info=PageInfo.of(edges, page.has_next, after))


async def members_page(info: Info, compiled: CompiledRule, first: int | None, after: str | None
                       ) -> ContactConnection:
    """A page of the members of ``compiled`` (a preview's or a saved segment's rule)."""
    page = await segments.members(request_context(info).db, compiled, page_size(info, first), after_contact(after),
                                  wants_stats(info))
    return contact_connection(page, after)


def wants_total(info: Info) -> bool:
    """Whether ``totalCount`` is selected (some totals cost a pass over every item)."""
    return _selects(info.selected_fields[0].selections, ("totalCount",))


def id_connection(page: IdPage, total: int, after: str | None) -> ContactIdConnection:
    """A page of sorted contact ids asked for ``after`` a cursor, with their total."""
    edges = [ContactIdEdge(cursor=encode_cursor(CONTACT, i), node=strawberry.ID(i)) for i in page.ids]
    return ContactIdConnection(total_count=total, ids=[e.node for e in edges], edges=edges,
                               page_info=PageInfo.of(edges, page.has_next, after))
