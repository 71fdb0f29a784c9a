"""segmentql condition plugins: the hook specification, the API plugin authors
use, the contact document they query (``contact``), the built-in conditions
(each an ordinary plugin in ``conditions/``) and the registry that loads them
all. This is the lowest layer: it imports nothing else of segmentql, so a
condition cannot depend on the service's internals.

A plugin author imports from here and nowhere else::

    from segmentql.plugins import Condition, RuleError, hookimpl
    from segmentql.plugins.contact import at_least_since, window_count_expression
"""

from .api import (
    ALWAYS,
    COMPARISON_OPERATORS,
    NEVER,
    WEEKDAY_NUMBERS,
    Activity,
    Comparison,
    CompileContext,
    Condition,
    Device,
    Metric,
    Node,
    Observation,
    Query,
    Register,
    RuleError,
    ValidationContext,
    Weekday,
    compare,
    given,
    listing,
    literal,
    needs,
    require_exactly_one,
    require_positive,
    require_some,
)
from .hookspecs import ENTRY_POINT_GROUP, PROJECT_NAME, hookimpl, hookspec
from .storage import Collection, Index, Rollup
from .version import API_VERSION

__all__ = [
    "ALWAYS", "API_VERSION", "COMPARISON_OPERATORS", "ENTRY_POINT_GROUP", "NEVER", "PROJECT_NAME", "WEEKDAY_NUMBERS",
    "Activity",
    "Collection", "Comparison", "CompileContext", "Condition", "Device", "Index", "Metric", "Node", "Observation",
    "Query", "Register", "Rollup", "RuleError", "ValidationContext", "Weekday", "compare", "given", "hookimpl",
    "hookspec", "listing", "literal", "needs", "require_exactly_one", "require_positive", "require_some",
]
