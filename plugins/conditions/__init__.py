"""The built-in conditions. Each module is an ordinary plugin, registered by
the registry exactly as a third-party one would be; ``BUILTIN_MODULES`` lists
them in the order their fields appear in ``RuleInput``."""

BUILTIN_MODULES = (
    "country", "timezone", "tags", "engagement", "recency", "last_open_device", "open_habits", "campaign",
    "lead_score", "numeric_range", "custom_field", "date_range", "date_anniversary",
)
