"""Paging helpers shared by every field that returns contacts or contact ids."""

from typing import Annotated, Optional

import strawberry
from strawberry.types import Info
from strawberry.types.nodes import FragmentSpread, InlineFragment

from segmentql.server import segments
from segmentql.server.snapshots import IdPage

from .context import request_context
from .types import Contact, ContactConnection, ContactEdge, ContactIdConnection, PageInfo

First = Annotated[Optional[int], strawberry.argument(
    description="Page size, 0-1000; 0 gives no items, and `pageInfo.hasNextPage` tells whether there are any.")]
After = Annotated[Optional[str], strawberry.argument(description="Cursor of the last item of the previous page.")]


def page_size(info: Info, first: Optional[int]) -> int:
    settings = request_context(info).settings
    return segments.page_size(first, settings.default_page_size, settings.max_page_size)


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


def contact_connection(page: segments.Page) -> ContactConnection:
    edges = [ContactEdge(cursor=segments.encode_cursor("contact", doc["id"]), node=Contact.from_doc(doc))
             for doc in page.contacts]
    return ContactConnection(edges=edges, page_info=PageInfo(has_next_page=page.has_next,
                                                             end_cursor=edges[-1].cursor if edges else None))


def wants_total(info: Info) -> bool:
    """Whether ``totalCount`` is selected (some totals cost a pass over every item)."""
    return _selects(info.selected_fields[0].selections, ("totalCount",))


def id_connection(page: IdPage, total: int) -> ContactIdConnection:
    """A page of sorted contact ids, with their total."""
    end = segments.encode_cursor("contact", page.ids[-1]) if page.ids else None
    return ContactIdConnection(total_count=total, ids=[strawberry.ID(i) for i in page.ids],
                               page_info=PageInfo(has_next_page=page.has_next, end_cursor=end))
