"""Settings are checked when they are made: a value out of range stops every
command at start-up with one line naming the variable and what it allows,
instead of failing every query later."""

import dataclasses
import re

import pytest

from segmentql.server.settings import BOUNDS, Settings, SettingsError

from .conftest import REPO, segmentql

ENV_BOUNDS = {bound.env: (name, bound) for name, bound in BOUNDS.items() if bound.env}


@pytest.fixture
def clean_env(monkeypatch):
    """No segmentql variable from the machine running the tests."""
    for var in [*ENV_BOUNDS, "MONGODB_URI", "SEGMENTQL_DATABASE", "SEGMENTQL_DATA_DIR", "SEGMENTQL_PLUGINS",
                "SEGMENTQL_DISABLE_PLUGINS", "SEGMENTQL_WEBHOOK_ALLOW_PRIVATE"]:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_the_defaults_are_within_their_ranges(clean_env):
    assert Settings.from_env() == Settings()
    for name, bound in BOUNDS.items():
        assert bound.low <= getattr(Settings(), name) <= bound.high, name


@pytest.mark.parametrize("var", ENV_BOUNDS)
def test_every_number_accepts_its_range_and_refuses_past_it(clean_env, var):
    name, bound = ENV_BOUNDS[var]
    for good in (bound.low, bound.high):
        clean_env.setenv(var, str(good))
        assert getattr(Settings.from_env(), name) == good
    for bad in (str(bound.low - 1), str(bound.high + 1), "abc", "1.5"):
        clean_env.setenv(var, bad)
        with pytest.raises(SettingsError) as refused:
            Settings.from_env()
        assert str(refused.value).startswith(f"{var} must be a whole number from {bound.low} to {bound.high}, got ")


def test_an_empty_number_takes_its_default(clean_env):
    clean_env.setenv("SEGMENTQL_MAX_TIME_MS", "")
    assert Settings.from_env().max_time_ms == Settings().max_time_ms


@pytest.mark.parametrize("kwargs, message", [
    ({"max_time_ms": -1}, "SEGMENTQL_MAX_TIME_MS must be a whole number from 1 to 3600000, got -1"),
    ({"max_time_ms": 0}, "SEGMENTQL_MAX_TIME_MS must be a whole number from 1 to 3600000, got 0"),
    ({"max_time_ms": "100"}, "SEGMENTQL_MAX_TIME_MS must be a whole number from 1 to 3600000, got '100'"),
    ({"max_tokens": True}, "SEGMENTQL_MAX_TOKENS must be a whole number from 100 to 1000000, got True"),
    ({"max_page_size": 0}, "max_page_size must be a whole number from 1 to 100000, got 0"),
    ({"max_page_size": 10}, "default_page_size (20) must not exceed max_page_size (10)"),
    ({"database": ""}, "SEGMENTQL_DATABASE must be a MongoDB database name"),
    ({"database": "my.db"}, "SEGMENTQL_DATABASE must be a MongoDB database name"),
])
def test_settings_made_directly_are_checked_too(kwargs, message):
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings(**kwargs)
    with pytest.raises(SettingsError, match=re.escape(message)):
        dataclasses.replace(Settings(), **kwargs)


def test_a_settings_error_is_a_value_error_not_an_exit():
    assert issubclass(SettingsError, ValueError) and not issubclass(SettingsError, SystemExit)


@pytest.mark.parametrize("value, shown", [("-1", "-1"), ("0", "0"), ("abc", "'abc'")])
def test_serve_with_a_bad_time_limit_stops_with_one_line(cli_env, tmp_path, value, shown):
    done = segmentql("serve", "--port", "0", "--data-dir", str(tmp_path),
                     env={**cli_env, "SEGMENTQL_MAX_TIME_MS": value}, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"segmentql: SEGMENTQL_MAX_TIME_MS must be a whole number from 1 to 3600000, got {shown}"]


@pytest.mark.parametrize("command", [["schema"], ["plugins"], ["workspace", "create", "x"], ["record-sizes"]])
def test_every_command_checks_the_settings(cli_env, command):
    done = segmentql(*command, env={**cli_env, "SEGMENTQL_INGEST_BATCH": "0"}, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == "segmentql: SEGMENTQL_INGEST_BATCH must be a whole number from 1 to 100000, got 0\n"


def test_the_readme_lists_every_variable_the_code_reads():
    """Every variable named in the code (``os.environ.get("X")``, or a name
    passed to a helper that reads it) has a row in README.md's settings table,
    and a number's row shows its default and its range."""
    named = set()
    for package in ("server", "schema", "plugins", "segmentql_pkg"):
        for source in (REPO / package).rglob("*.py"):
            named |= set(re.findall(r"\"(MONGODB_URI|SEGMENTQL_[A-Z_]+)\"", source.read_text()))
    named -= {"SEGMENTQL_API_VERSION"}  # what a plugin module declares (plugins/version.py), not a variable
    assert named >= {"MONGODB_URI", "SEGMENTQL_MAX_TIME_MS", "SEGMENTQL_PLUGINS", "SEGMENTQL_GRAPHIQL_ASSETS"}
    rows = {line.split("`")[1]: line for line in (REPO / "README.md").read_text().splitlines()
            if line.startswith("| `")}
    for var in named:
        assert var in rows, f"README.md's settings table lacks {var}"
        if var in ENV_BOUNDS:
            name, bound = ENV_BOUNDS[var]
            assert f"| {getattr(Settings(), name)} | {bound.low} to {bound.high} |" in rows[var], rows[var]


def test_the_data_dir_comes_from_the_environment_unless_given(clean_env, monkeypatch, tmp_path):
    monkeypatch.setenv("SEGMENTQL_DATA_DIR", str(tmp_path / "from-env"))
    assert Settings.from_env(data_dir=None).data_dir == tmp_path / "from-env"
    assert Settings.from_env(data_dir=tmp_path / "flag").data_dir == tmp_path / "flag"


@pytest.mark.parametrize("raw, allowed", [("1", True), ("true", True), ("0", False), ("FALSE", False), ("", False)])
def test_private_webhook_targets_are_allowed_by_a_flag(clean_env, raw, allowed):
    clean_env.setenv("SEGMENTQL_WEBHOOK_ALLOW_PRIVATE", raw)
    assert Settings.from_env().webhook_allow_private is allowed


def test_a_malformed_flag_is_refused_naming_it(clean_env):
    clean_env.setenv("SEGMENTQL_WEBHOOK_ALLOW_PRIVATE", "yes please")
    with pytest.raises(SettingsError, match="SEGMENTQL_WEBHOOK_ALLOW_PRIVATE must be 1 or 0"):
        Settings.from_env()
