"""Settings read once from the environment, with the defaults a single-machine
install wants. Everything tunable lives here so that tests and operators have
one place to look."""

import os
from dataclasses import dataclass, field
from pathlib import Path


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"segmentql: environment variable {name} must be a whole number, got {raw!r}")


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
    plugin_allow: tuple[str, ...] | None = None
    plugin_block: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        def names(var: str) -> tuple[str, ...] | None:
            raw = os.environ.get(var)
            if raw is None:
                return None
            return tuple(n.strip() for n in raw.split(",") if n.strip())

        values = dict(
            mongodb_uri=os.environ.get("MONGODB_URI", ""),
            database=os.environ.get("SEGMENTQL_DATABASE", "segmentql"),
            data_dir=Path(os.environ.get("SEGMENTQL_DATA_DIR", "segmentql-data")),
            max_time_ms=_int_env("SEGMENTQL_MAX_TIME_MS", 30_000),
            ingest_batch_size=_int_env("SEGMENTQL_INGEST_BATCH", 2000),
            max_body_bytes=_int_env("SEGMENTQL_MAX_BODY_BYTES", 2_000_000),
            max_query_depth=_int_env("SEGMENTQL_MAX_QUERY_DEPTH", 12),
            max_aliases=_int_env("SEGMENTQL_MAX_ALIASES", 30),
            max_tokens=_int_env("SEGMENTQL_MAX_TOKENS", 5000),
            plugin_allow=names("SEGMENTQL_PLUGINS"),
            plugin_block=names("SEGMENTQL_DISABLE_PLUGINS") or (),
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
