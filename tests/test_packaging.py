"""segmentql as operators get it: the license, ``--version``, dependency
ranges with exact constraints, the ASGI factory and ``serve --workers``, and
the image, whose steps are replayed here as no container engine runs on this
machine: the wheel it builds (GraphiQL's files inside) is installed into a
fresh venv with the constraints, runs ``segmentql demo`` and serves GraphiQL
to a real headless Chromium, then the image's own command and health check.
"""

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from importlib import metadata
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from segmentql.graphiql import ASSETS

from .conftest import REPO, SEED_AS_OF, free_port, new_workspace, segmentql

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
DOCKERFILE = REPO / "Dockerfile"
# sha256 of the Apache License 2.0 as the ASF publishes it (LICENSE-2.0.txt).
APACHE_2_0_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def constraints() -> dict[str, str]:
    """constraints.txt: canonical name -> the exact release it pins."""
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each a list of (INSTRUCTION, arguments), continued lines joined."""
    stages: list[list[tuple[str, str]]] = []
    for line in re.sub(r"\\\n\s*", "", DOCKERFILE.read_text()).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, arguments = line.strip().partition(" ")
            if instruction.upper() == "FROM":
                stages.append([])
            stages[-1].append((instruction.upper(), arguments.strip()))
    return stages


def exec_form(arguments: str) -> list[str]:
    """A CMD's JSON array (a HEALTHCHECK's after its options)."""
    return json.loads(arguments[arguments.index("["):])


@contextlib.contextmanager
def running(command: list[str], *, env: dict, port: int, cwd: Path | None = None,
            output: Path | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """``command`` (a service listening on ``port``) as a child process until
    /healthz answers 200; yields its base URL and the process, and stops it after."""
    log = (output or Path(os.devnull)).open("w")
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{command} did not start: " + (output.read_text()[-3000:] if output else ""))
            time.sleep(0.2)
        yield base, proc
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


# -- license, version, dependencies -------------------------------------------------

def test_the_license_is_the_apache_2_0_text_the_package_declares():
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert hashlib.sha256((REPO / "LICENSE").read_bytes()).hexdigest() == APACHE_2_0_SHA256


def test_version_prints_the_installed_release():
    done = segmentql("--version", timeout=60)
    assert done.returncode == 0 and done.stdout == f"segmentql {metadata.version('segmentql')}\n"


def test_dependencies_are_ranges_and_the_constraints_pin_one_release_inside_each():
    pins = constraints()
    project = PYPROJECT["project"]
    requirements = [Requirement(r) for r in
                    project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]]
    for requirement in requirements:
        operators = {spec.operator for spec in requirement.specifier}
        assert ">=" in operators and not operators & {"==", "==="}, requirement
        if requirement.name != "tzdata":  # the time zone database: a newer release is only newer data
            assert "<" in operators, f"{requirement} has no upper bound"
        pinned = pins.get(canonicalize_name(requirement.name))
        assert pinned and requirement.specifier.contains(pinned, prereleases=True), (requirement, pinned)
    assert {"websockets": "17.4", "httpx": "0.28.1", "prometheus-client": "0.23.1"}.items() <= pins.items()


def test_installs_use_the_constraints():
    makefile = (REPO / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "pip install" in line and "-e " in line]
    assert len(installs) == 2 and all("-c constraints.txt" in line for line in installs)  # install, install-test
    runtime = dockerfile_stages()[-1]
    assert [args for ins, args in runtime if ins == "RUN" and "pip install" in args and "-c " in args and
            "constraints.txt" in args]


# -- the ASGI factory and workers ---------------------------------------------------

def test_the_asgi_factory_builds_the_app_from_the_environment(cli_env):
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", "segmentql.server.app:create_app", "--port", str(port)]
    with running(command, env=cli_env, port=port) as (base, _proc):
        assert httpx.get(base + "/healthz").json() == {"status": "ok"}


def test_the_asgi_factory_needs_mongodb_uri_and_says_so_in_one_line(cli_env, tmp_path):
    env = {k: v for k, v in cli_env.items() if k != "MONGODB_URI"}
    done = subprocess.run([sys.executable, "-m", "uvicorn", "--factory", "segmentql.server.app:create_app",
                           "--port", str(free_port())], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    # uvicorn's STARTUP_FAILURE: a supervisor stops instead of starting the worker again
    assert done.returncode == 3 and "Traceback" not in done.stderr
    assert "segmentql: MONGODB_URI must be set for the ASGI factory" in done.stderr


def _worker_processes(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def test_serve_with_workers_runs_that_many_processes_on_one_database(http, cli_env):
    client = new_workspace(http)
    port = free_port()
    command = [sys.executable, "-m", "segmentql.cli", "serve", "--workers", "2", "--port", str(port)]
    with running(command, env=cli_env, port=port) as (base, proc):
        assert len(_worker_processes(proc.pid)) == 2
        query = f'{{ segmentPreview(rule: {{leadScore: {{min: 0}}}}, asOf: "{SEED_AS_OF}") {{ count }} }}'
        for _ in range(6):
            answer = httpx.post(base + "/graphql", json={"query": query},
                                headers={"Authorization": f"Bearer {client.key}"}, timeout=30).json()
            assert answer == {"data": {"segmentPreview": {"count": 0}}}
    assert proc.returncode == 0


def test_serve_refuses_workers_without_mongodb_uri(cli_env, tmp_path):
    env = {k: v for k, v in cli_env.items() if k != "MONGODB_URI"}
    done = segmentql("serve", "--workers", "2", "--data-dir", str(tmp_path / "data"), env=env, timeout=60)
    assert done.returncode == 1 and done.stderr == (
        "segmentql: --workers above 1 needs MONGODB_URI (a real MongoDB); the embedded database is served by "
        "one process\n")
    assert not (tmp_path / "data").exists()  # refused before the embedded database started
    done = segmentql("serve", "--workers", "0", env=env, timeout=60)
    assert done.returncode == 2 and "argument --workers: must be a whole number, 1 or more, got '0'" in done.stderr


# -- the image ----------------------------------------------------------------------

def test_the_image_runs_unprivileged_with_a_healthcheck_and_a_volume_on_lts_bases():
    build, runtime = dockerfile_stages()
    node = re.fullmatch(r"node:(\d+)-slim AS build", build[0][1])
    assert node and int(node[1]) >= 22 and int(node[1]) % 2 == 0  # an LTS line (even), none past its end of life
    assert re.fullmatch(r"python:3\.1[1-9]-slim", runtime[0][1])
    instructions = [ins for ins, _args in runtime]
    user = dict(runtime)["USER"]
    assert user not in ("root", "0") and instructions.index("USER") > max(
        i for i, ins in enumerate(instructions) if ins == "RUN")  # installs as root, runs as the user
    assert ("VOLUME", "/data") in runtime and ("ENV", "SEGMENTQL_DATA_DIR=/data") in runtime
    check = exec_form(dict(runtime)["HEALTHCHECK"])
    assert check[:2] == ["python", "-c"] and "http://127.0.0.1:8000/healthz" in check[2]


def _context_files() -> Iterator[Path]:
    """The files `docker build .` sends: all but those .dockerignore matches (or lies under)."""
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def ignored(path: Path) -> bool:
        return any(fnmatch(path.relative_to(REPO).as_posix(), pattern) for pattern in patterns)

    for folder, subfolders, files in os.walk(REPO):
        subfolders[:] = [name for name in subfolders if not ignored(Path(folder) / name)]
        yield from (Path(folder) / name for name in files if not ignored(Path(folder) / name))


def test_the_build_context_leaves_out_environments_data_and_caches():
    files = list(_context_files())
    names = {part for path in files for part in path.relative_to(REPO).parts}
    assert not names & {".git", ".venv", "node_modules", "segmentql-data", "__pycache__", ".mypy_cache", "build"}
    assert sum(path.stat().st_size for path in files) < 20_000_000
    context = {path.relative_to(REPO).as_posix() for path in files}
    for instruction, arguments in dockerfile_stages()[0]:
        if instruction == "COPY":
            for source in arguments.split()[:-1]:
                assert source in context or any(f.startswith(source + "/") for f in context), source


def _copy(source: Path, target: Path, into: bool) -> None:
    """Docker's COPY of one source: a folder's contents into ``target``, a file
    to ``target`` (``into`` it when the destination ends with a slash)."""
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        target = target / source.name if into else target
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def replay_image(tmp_path: Path) -> tuple[dict, dict[str, Path]]:
    """The Dockerfile's steps, in folders of ``tmp_path`` standing for the image's paths.

    Its COPY, WORKDIR, ENV and RUN instructions are carried out as written, less
    the two RUNs that make the system of the image, which this machine has
    already or may not change: the build stage's apt-get (Python's venv beside
    Node.js) and the runtime's useradd. The runtime image's Python is a fresh
    venv, first on PATH. Returns the environment the image's command runs in,
    and the image path -> local folder mapping.
    """
    local = {path: tmp_path / path.strip("/").replace("/", "-")
             for path in ("/src", "/venv", "/dist", "/tmp/dist", "/data", "/home/segmentql")}

    def mapped(text: str) -> str:  # the image's absolute paths replaced by their folders, longest first
        for path in sorted(local, key=len, reverse=True):
            text = re.sub(rf"(?<![\w/.-]){re.escape(path)}(?=/|\s|$)", str(local[path]), text)
        return text

    runtime_python = tmp_path / "runtime-python"
    subprocess.run([sys.executable, "-m", "venv", str(runtime_python)], check=True)
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("SEGMENTQL_") and k not in ("MONGODB_URI", "VIRTUAL_ENV", "PYTHONPATH")}
    build, runtime = dockerfile_stages()
    for stage, env in ((build, dict(clean)), (runtime, dict(clean, PATH=f"{runtime_python / 'bin'}:{clean['PATH']}"))):
        cwd = tmp_path
        for instruction, arguments in stage:
            if instruction == "WORKDIR":
                cwd = Path(mapped(arguments))
                cwd.mkdir(parents=True, exist_ok=True)
            elif instruction == "COPY":
                *sources, dest = arguments.split()
                built = sources[0].startswith("--from=build")
                target = Path(mapped(dest)) if dest.startswith("/") else cwd / dest
                for source in sources[1:] if built else sources:
                    _copy(Path(mapped(source)) if built else REPO / source, target, into=dest.endswith("/"))
            elif instruction == "RUN" and not arguments.startswith(("apt-get", "useradd")):
                subprocess.run(["/bin/sh", "-c", mapped(arguments)], cwd=cwd, env=env, check=True, timeout=900)
            elif instruction == "ENV":
                name, value = arguments.split("=", 1)
                env[name] = mapped(value)
    return dict(env, HOME=str(local["/home/segmentql"])), local


@pytest.mark.slow
def test_the_images_steps_make_a_wheel_that_serves_graphiql_from_a_fresh_venv(tmp_path):
    from .test_graphiql import browser_page, run_with_key  # Chromium, every request outside loopback refused

    env, local = replay_image(tmp_path)
    wheel = next(local["/dist"].glob("segmentql-*.whl"))
    names = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheel)], capture_output=True, text=True,
                           check=True).stdout
    for path in ASSETS.values():
        assert f"segmentql/static/graphiql/{path}" in names, path
    assert "node_modules" not in names and "dist-info/licenses/LICENSE" in names

    # Everything the fresh venv installed is pinned, at that release.
    python = Path(env["PATH"].split(":")[0]) / "python"
    installed = json.loads(subprocess.run([python, "-m", "pip", "list", "--format=json"], capture_output=True,
                                          text=True, check=True).stdout)
    pins = constraints()
    unpinned = [(d["name"], d["version"]) for d in installed if pins.get(canonicalize_name(d["name"])) != d["version"]
                and canonicalize_name(d["name"]) not in ("segmentql", "pip", "setuptools")]
    assert unpinned == []

    # `segmentql demo` of the installed wheel: GraphiQL runs a query in Chromium.
    home = local["/home/segmentql"]
    port = free_port()
    demo = ["segmentql", "demo", "--contacts", "300", "--host", "127.0.0.1", "--port", str(port)]  # on env's PATH
    rule = json.dumps({"rule": {"leadScore": {"min": 0, "max": 49}}})
    query = f'query Cold($rule: RuleInput!) {{ segmentPreview(rule: $rule, asOf: "{SEED_AS_OF}") {{ count }} }}'
    with running(demo, env=env, port=port, cwd=home, output=tmp_path / "demo.log") as (base, _proc):
        lines = (tmp_path / "demo.log").read_text().splitlines()
        key = lines[next(i for i, line in enumerate(lines) if line.endswith("API key:")) + 1]
        with browser_page() as (page, refused, violations):
            page.goto(f"{base}/graphql?" + urlencode({"query": query, "variables": rule}))
            result = run_with_key(page, key)
        assert refused == [] and violations == []
        count = int(re.search(r'"count": (\d+)', result)[1])
        assert 0 < count < 300, result

    # The image's command and health check, on the same data (its volume).
    runtime = dict(dockerfile_stages()[-1])
    port = free_port()
    command = [{"0.0.0.0": "127.0.0.1", "8000": str(port)}.get(arg, arg) for arg in exec_form(runtime["CMD"])]
    check = [arg.replace(":8000/", f":{port}/") for arg in exec_form(runtime["HEALTHCHECK"])]
    with running(command, env=env, port=port, cwd=home, output=tmp_path / "serve.log") as (base, _proc):
        assert subprocess.run(check, env=env, timeout=30).returncode == 0
        assert httpx.get(base + "/graphql", headers={"Accept": "text/html"}).status_code == 200
        for name in ASSETS:
            assert httpx.get(f"{base}/graphiql/assets/{name}").status_code == 200, name
        answer = httpx.post(base + "/graphql", json={"query": query, "variables": json.loads(rule)},
                            headers={"Authorization": f"Bearer {key}"}, timeout=30).json()
        assert answer == {"data": {"segmentPreview": {"count": count}}}
    assert subprocess.run(check, env=env, capture_output=True, timeout=30).returncode != 0  # nothing answers now
