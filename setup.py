"""segmentql's one build step beyond setuptools' own: GraphiQL's files in the package.

Everything else about the package is in pyproject.toml. GraphiQL, React and
the explorer plugin are npm packages, pinned with their integrity hashes by
``graphiql/package-lock.json`` and not committed. When setuptools builds the
package (a wheel, an sdist's wheel, ``pip install .``), :class:`BuildPy` runs
``npm ci`` on a copy of ``graphiql/package*.json`` in the build's temporary
directory (npm checks every tarball against its hash and refuses a mismatch),
then copies the files segmentql serves, ``ASSETS`` of
``segmentql_pkg/graphiql.py``, with the LICENSE files of their packages, into
the package as ``segmentql/static/graphiql/`` (the same relative paths as in
``node_modules``), where ``segmentql.graphiql`` looks first. So an installed
wheel serves GraphiQL with nothing else fetched, and a build without npm
fails instead of making a wheel whose GraphiQL answers 503.

Editable installs (``pip install -e .``, ``make install``) skip this step:
they serve the checkout's ``graphiql/node_modules``, which ``make install``
fills with the same ``npm ci``.
"""

import ast
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
NPM_FLAGS = ["--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]  # as the Makefile's npm ci


def graphiql_assets() -> dict[str, str]:
    """``ASSETS`` of segmentql_pkg/graphiql.py (served name -> path inside
    node_modules), read without importing the module: its imports (starlette)
    are not installed where the package is built."""
    module = ast.parse((HERE / "segmentql_pkg" / "graphiql.py").read_text(encoding="utf-8"))
    for node in module.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "ASSETS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise RuntimeError("segmentql_pkg/graphiql.py defines no ASSETS")


def npm_package(path: str) -> str:
    """The npm package holding ``path``: ``react`` of react/umd/..., ``@graphiql/plugin-explorer`` of a scoped one."""
    parts = path.split("/")
    return "/".join(parts[:2] if parts[0].startswith("@") else parts[:1])


class BuildPy(build_py):
    """setuptools' build_py, then GraphiQL's files fetched by npm ci and copied into the built package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        node_modules = self._npm_ci()
        target = Path(self.build_lib) / "segmentql" / "static" / "graphiql"
        shutil.rmtree(target, ignore_errors=True)  # nothing left over from an earlier build
        assets = list(graphiql_assets().values())
        licenses = [f"{package}/LICENSE" for package in sorted({npm_package(path) for path in assets})]
        for path in assets + [p for p in licenses if (node_modules / p).exists()]:
            (target / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(node_modules / path, target / path)

    def _npm_ci(self) -> Path:
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("building segmentql needs npm (Node.js): GraphiQL's files are fetched with "
                               "`npm ci` from graphiql/package-lock.json")
        work = Path(self.get_finalized_command("build").build_temp) / "graphiql"
        work.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(HERE / "graphiql" / name, work / name)
        subprocess.run([npm, "ci", "--prefix", str(work), *NPM_FLAGS], check=True)
        return work / "node_modules"


setup(cmdclass={"build_py": BuildPy})
