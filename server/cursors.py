"""Cursors: opaque to clients, ``base64("<kind>:<position>")``, where the
position is a contact id, a saved segment's ``createdAt|id`` or a change's
place in its workspace's log.

GraphQL pages hand them out (``schema/pages.py``), and so do the change
events of subscriptions and webhooks, which a client gives back as ``after``
or ``fromCursor``: one encoding for all. A cursor that is not one of ours is
refused with a message naming the argument it came in."""

import base64
import binascii

from .errors import BadArgument

CONTACT, SEGMENT, CHANGE = "contact", "segment", "change"


def encode_cursor(kind: str, position: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{position}".encode()).decode()


def decode_cursor(kind: str, cursor: str, argument: str = "after") -> str:
    """The position a ``kind`` cursor given as ``argument`` holds."""
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadArgument(f"`{argument}` is not a cursor returned by this API: {cursor[:40]!r}") from None
    prefix, _, position = text.partition(":")
    if prefix != kind or not position:
        raise BadArgument(f"`{argument}` is not a {kind} cursor returned by this API")
    return position


def change_cursor(seq: int) -> str:
    """The cursor of the change at log position ``seq``: it also identifies the change."""
    return encode_cursor(CHANGE, str(seq))


def change_position(cursor: str | None, argument: str = "after") -> int:
    """The log position a change cursor stands for (0: none given, the start of the log)."""
    if not cursor:
        return 0
    position = decode_cursor(CHANGE, cursor, argument)
    if not (position.isascii() and position.isdigit()) or len(position) > 18:
        raise BadArgument(f"`{argument}` is not a {CHANGE} cursor returned by this API")
    return int(position)
