"""segmentql condition plugins: the hook specification, the API plugin authors
use, and the built-in conditions (each an ordinary plugin in ``conditions/``).

A plugin author imports from here and nowhere else::

    from segmentql.plugins import Condition, RuleError, hookimpl
"""

from .api import (
    ALWAYS,
    COMPARISON_OPERATORS,
    NEVER,
    WEEKDAY_NUMBERS,
    Activity,
    CompileContext,
    Comparison,
    Condition,
    Device,
    Metric,
    Observation,
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

__all__ = [
    "ALWAYS", "COMPARISON_OPERATORS", "NEVER", "WEEKDAY_NUMBERS", "Activity", "CompileContext", "Comparison",
    "Condition", "Device", "ENTRY_POINT_GROUP", "Metric", "Observation", "PROJECT_NAME", "RuleError",
    "ValidationContext", "Weekday", "compare", "given", "hookimpl", "hookspec", "listing", "literal", "needs",
    "require_exactly_one", "require_positive", "require_some",
]
