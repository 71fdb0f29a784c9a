"""What every resolver can reach: the database, the condition registry, the
settings and the authenticated workspace."""

from dataclasses import dataclass

from strawberry.types import Info

from segmentql.server.database import Database
from segmentql.server.registry import ConditionRegistry
from segmentql.server.settings import Settings


@dataclass
class RequestContext:
    db: Database
    registry: ConditionRegistry
    settings: Settings
    workspace_id: str


def request_context(info: Info) -> RequestContext:
    return info.context["segmentql"]
