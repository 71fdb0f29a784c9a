"""Meta-tests in the spirit of datasette's: the plugin guide documents every
hook (with the hookspec's own docstring) and every public name, and the
example plugin a reader would copy actually works when installed."""

import inspect
import json
import subprocess
import sys

import pytest

import segmentql.plugins
from segmentql.plugins import hookspecs

from .conftest import REPO, SHARED

GUIDE = (REPO / "docs" / "plugins.md").read_text()
HOOKS = [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("segmentql_")]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_in_the_guide_with_its_docstring(hook):
    assert f"### `{hook}(" in GUIDE
    assert inspect.getdoc(getattr(hookspecs, hook)) in GUIDE, f"docs/plugins.md is out of date for {hook}"


@pytest.mark.parametrize("name", segmentql.plugins.__all__)
def test_every_public_name_is_documented(name):
    assert f"`{name}" in GUIDE


def test_the_example_plugin_is_installed_and_listed():
    listed = json.loads(subprocess.run([sys.executable, "-m", "segmentql.cli", "plugins", "--json"],
                                       capture_output=True, text=True, check=True).stdout)
    mine = [p for p in listed if p["name"] == "email_domain"]
    assert mine == [{"name": "email_domain", "version": "0.1.0", "distribution": "segmentql-email-domain",
                     "builtin": False, "enabled": True, "fields": ["emailDomain"]}]


@pytest.mark.parametrize("package", ["segmentql-email-domain", "segmentql-purchases"])
def test_the_example_plugins_own_tests_pass_with_the_test_kit(package):
    example = REPO / "examples" / package
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(example / "tests")],
                          cwd=example, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]


@pytest.mark.parametrize("env, absent, present", [
    ({"SEGMENTQL_DISABLE_PLUGINS": "email_domain,tags"}, {"email_domain", "tags"}, {"country"}),
    ({"SEGMENTQL_PLUGINS": ""}, {"email_domain"}, {"country", "tags"}),
    ({"SEGMENTQL_PLUGINS": "email_domain"}, set(), {"email_domain", "country"}),
])
def test_plugins_can_be_disabled_or_allow_listed(env, absent, present):
    import os
    listed = json.loads(subprocess.run([sys.executable, "-m", "segmentql.cli", "plugins", "--json"],
                                       capture_output=True, text=True, check=True,
                                       env={**os.environ, **env}).stdout)
    names = {p["name"] for p in listed if p["enabled"]}
    assert not names & absent and present <= names


def test_the_vendored_data_generator_is_the_contracts_own():
    """`segmentql demo` makes its data with a copy of ../shared/datagen.py, kept byte for byte."""
    assert (REPO / "server" / "datagen.py").read_bytes() == (SHARED / "datagen.py").read_bytes()
