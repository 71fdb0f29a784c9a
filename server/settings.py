"""Settings read once from the environment, with the defaults a single-machine
install wants. Everything tunable lives here so that tests and operators have
one place to look.

Every value is checked when a :class:`Settings` is made, from the environment
or directly (tests do that), so a mistyped limit stops start-up with one line
naming the variable and its range instead of failing every query later
(``SEGMENTQL_MAX_TIME_MS=-1`` would make every aggregate an error).
"""

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

# Characters MongoDB does not allow in a database name (on any platform).
DATABASE_NAME_FORBIDDEN = frozenset('/\\. "$*<>:|?\0')
DATABASE_NAME_MAX = 63
# A browser origin: scheme and host, perhaps a port; no path, query or trailing slash.
ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
LOG_FORMATS = ("text", "json")


class SettingsError(ValueError):
    """A setting out of range or malformed; the message names it and what is allowed."""


@dataclass(frozen=True)
class Bound:
    """The range of one whole-number setting, and its environment variable (if any)."""

    low: int
    high: int
    env: str | None = None

    def describe(self, name: str) -> str:
        return f"{self.env or name} must be a whole number from {self.low} to {self.high}"


# field -> range. README.md's settings table shows the same numbers.
BOUNDS = {
    "max_time_ms": Bound(1, 3_600_000, "SEGMENTQL_MAX_TIME_MS"),  # up to one hour per aggregate
    "ingest_batch_size": Bound(1, 100_000, "SEGMENTQL_INGEST_BATCH"),
    "max_body_bytes": Bound(1024, 256 * 1024 * 1024, "SEGMENTQL_MAX_BODY_BYTES"),
    "max_query_depth": Bound(1, 100, "SEGMENTQL_MAX_QUERY_DEPTH"),
    "max_aliases": Bound(1, 1000, "SEGMENTQL_MAX_ALIASES"),
    "max_tokens": Bound(100, 1_000_000, "SEGMENTQL_MAX_TOKENS"),
    "request_timeout_ms": Bound(1, 3_600_000, "SEGMENTQL_REQUEST_TIMEOUT_MS"),  # one deadline per request
    "max_query_cost": Bound(1000, 1_000_000_000, "SEGMENTQL_MAX_QUERY_COST"),  # see schema/cost.py
    "workspace_lanes": Bound(1, 1000, "SEGMENTQL_WORKSPACE_LANES"),  # see server/deadline.py
    "write_lease_seconds": Bound(2, 600, "SEGMENTQL_WRITE_LEASE_SECONDS"),  # see server/live.py
    # Webhook deliveries (server/delivery.py): how long a receiver may take to
    # answer, the first retry's delay (doubling after each failure, up to an
    # hour) and how long a delivery is retried before it is marked failed.
    "webhook_timeout_seconds": Bound(1, 120, "SEGMENTQL_WEBHOOK_TIMEOUT_SECONDS"),
    "webhook_first_retry_ms": Bound(10, 3_600_000, "SEGMENTQL_WEBHOOK_FIRST_RETRY_MS"),
    "webhook_retry_for_seconds": Bound(1, 7 * 86_400, "SEGMENTQL_WEBHOOK_RETRY_FOR_SECONDS"),
    # Requests per second per API key and service process (0: no limit), with a
    # burst of twice that (segmentql_pkg/ratelimit.py).
    "rate_limit": Bound(0, 1_000_000, "SEGMENTQL_RATE_LIMIT"),
    "max_page_size": Bound(1, 100_000),
    "default_page_size": Bound(1, 100_000),
}


def _int_env(field_name: str, var: str) -> int | None:
    raw = os.environ.get(var)
    if raw is None or raw.strip() == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{BOUNDS[field_name].describe(field_name)}, got {raw!r}") from None


def _flag_env(var: str) -> bool | None:
    raw = os.environ.get(var)
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip().lower()
    if value not in ("0", "1", "true", "false"):
        raise SettingsError(f"{var} must be 1 or 0 (true or false), got {raw!r}")
    return value in ("1", "true")


def _names(var: str) -> tuple[str, ...] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return tuple(n.strip() for n in raw.split(",") if n.strip())


@dataclass(frozen=True)
class Settings:
    """Service settings.

    ``mongodb_uri`` empty means "use the embedded SecantusDB in ``data_dir``".
    """

    mongodb_uri: str = ""
    database: str = "segmentql"
    data_dir: Path = Path("segmentql-data")
    max_time_ms: int = 30_000
    max_page_size: int = 1000
    default_page_size: int = 20
    ingest_batch_size: int = 2000
    max_body_bytes: int = 2_000_000
    max_query_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 5000
    request_timeout_ms: int = 120_000
    max_query_cost: int = 20_000
    workspace_lanes: int = 1
    write_lease_seconds: int = 30
    webhook_timeout_seconds: int = 10
    webhook_first_retry_ms: int = 10_000
    webhook_retry_for_seconds: int = 86_400
    # Webhooks may target loopback, private and link-local addresses (tests, a
    # receiver beside the service); off, they are refused (server/webhook_targets.py).
    webhook_allow_private: bool = False
    plugin_allow: tuple[str, ...] | None = None
    plugin_block: tuple[str, ...] = field(default_factory=tuple)
    # Browser origins allowed to call the API (CORS); "*" allows any.
    cors_origins: tuple[str, ...] = ()
    rate_limit: int = 50
    log_format: str = "text"
    # /metrics (Prometheus text) served, unauthenticated: keep it on an internal network.
    metrics: bool = True

    def __post_init__(self) -> None:
        for item in fields(self):
            bound = BOUNDS.get(item.name)
            value = getattr(self, item.name)
            if bound and (type(value) is not int or not bound.low <= value <= bound.high):
                raise SettingsError(f"{bound.describe(item.name)}, got {value!r}")
        if self.default_page_size > self.max_page_size:
            raise SettingsError(f"default_page_size ({self.default_page_size}) must not exceed "
                                f"max_page_size ({self.max_page_size})")
        for origin in self.cors_origins:
            if origin != "*" and not ORIGIN.fullmatch(origin):
                raise SettingsError("SEGMENTQL_CORS_ORIGINS must be comma-separated origins such as "
                                    f"https://app.example.com (no path), or *, got {origin!r}")
        if self.log_format not in LOG_FORMATS:
            raise SettingsError(f"SEGMENTQL_LOG_FORMAT must be text or json, got {self.log_format!r}")
        name = self.database
        if not name or len(name) > DATABASE_NAME_MAX or set(name) & DATABASE_NAME_FORBIDDEN:
            raise SettingsError(f"SEGMENTQL_DATABASE must be a MongoDB database name: 1 to {DATABASE_NAME_MAX} "
                                f"characters, none of / \\ . \" $ * < > : | ? or space, got {name!r}")

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        """Settings from the environment (a number unset or empty takes its
        default), then ``overrides`` that are not None; raises :class:`SettingsError`."""
        # Field name -> value of any field's type: __post_init__ checks each.
        values: dict[str, Any] = dict(
            mongodb_uri=os.environ.get("MONGODB_URI", ""),
            database=os.environ.get("SEGMENTQL_DATABASE", "segmentql"),
            data_dir=Path(os.environ.get("SEGMENTQL_DATA_DIR", "segmentql-data")),
            **{name: _int_env(name, bound.env) for name, bound in BOUNDS.items() if bound.env},
            webhook_allow_private=_flag_env("SEGMENTQL_WEBHOOK_ALLOW_PRIVATE"),
            plugin_allow=_names("SEGMENTQL_PLUGINS"),
            plugin_block=_names("SEGMENTQL_DISABLE_PLUGINS") or (),
            cors_origins=_names("SEGMENTQL_CORS_ORIGINS"),
            log_format=(os.environ.get("SEGMENTQL_LOG_FORMAT") or "").strip().lower() or None,
            metrics=_flag_env("SEGMENTQL_METRICS"),
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**{k: v for k, v in values.items() if v is not None})
