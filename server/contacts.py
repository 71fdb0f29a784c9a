"""Contacts as the API reads them. Writes (upserts, deletes, their rollups)
are ingestion's (``ingest``); this is the read side resolvers go through,
so no resolver needs the database itself."""

from .database import Database


async def find_contact(db: Database, workspace_id: str, contact_id: str) -> dict | None:
    """The contact as stored (fields and rollups), or None when the workspace has none with this id."""
    return await db.contact(workspace_id, contact_id)
