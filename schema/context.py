"""What every resolver can reach: the database, the condition registry, the
settings and the authenticated workspace."""

from dataclasses import dataclass

from strawberry.types import Info

from segmentql.server.database import Database, Workspace
from segmentql.server.registry import ConditionRegistry
from segmentql.server.settings import Settings


@dataclass
class RequestContext:
    db: Database
    registry: ConditionRegistry
    settings: Settings
    workspace: Workspace  # as read with the API key; mutations that change it reload it

    @property
    def workspace_id(self) -> str:
        return self.workspace.id

    async def reload_workspace(self) -> None:
        """After a write to the workspace's facts (a custom field, the newest
        event day), so later fields of the same request compile with them."""
        self.workspace = await self.db.workspace(self.workspace.id)


def request_context(info: Info) -> RequestContext:
    return info.context["segmentql"]
