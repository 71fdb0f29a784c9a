"""The built-in conditions. Each module is an ordinary plugin, registered by
the registry exactly as a third-party one would be; ``BUILTIN_MODULES`` lists
them in the order their fields appear in ``RuleInput``. Each imports from
``segmentql.plugins`` (``..``) as a third-party plugin does; the types of its
annotations, the same objects, from ``..api``, so that each import is one line."""

BUILTIN_MODULES = (
    "country", "timezone", "tags", "engagement", "recency", "last_open_device", "open_habits", "campaign",
    "lead_score", "numeric_range", "custom_field", "date_range", "date_anniversary",
)
