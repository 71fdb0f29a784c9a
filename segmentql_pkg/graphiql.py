"""The GraphiQL explorer, served entirely by segmentql.

GraphiQL, React and the explorer plugin come from the npm registry at build
time (``graphiql/package.json`` with exact versions, ``package-lock.json``
with integrity hashes, fetched by ``npm ci``), and are served from
``/graphiql/assets/``. Nothing is loaded from a CDN, so the page works on a
machine without internet access. Where the files are: see :func:`node_modules`.

The page opens on the product's reference segments as ready-to-run named
operations, with a headers editor holding an ``Authorization`` template.

The page holds a key once its user types one, so it is kept from other
sites: a link may prefill the query and variables but never the headers (a
link's ``headers=`` is ignored), headers stay out of the browser's storage
unless the user turns that on in GraphiQL's settings, and the page and its
assets are sent with ``X-Frame-Options: DENY`` and a Content-Security-Policy
allowing scripts, styles, fonts and requests from segmentql only: the page
has no inline script or style, GraphiQL and React style elements through the
DOM (which no policy limits) and its fonts are ``data:`` URLs. The one thing
refused is the ``<style>`` a GraphiQL dialog adds to stop the page scrolling
behind it; the page never scrolls anyway.
"""

import html
import json
import os
from functools import cache
from importlib import resources
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

ASSETS_URL = "/graphiql/assets"
ASSETS = {  # served name -> path inside node_modules
    "graphiql.min.js": "graphiql/graphiql.min.js",
    "graphiql.min.css": "graphiql/graphiql.min.css",
    "explorer.umd.js": "@graphiql/plugin-explorer/dist/index.umd.js",
    "explorer.css": "@graphiql/plugin-explorer/dist/style.css",
    "react.production.min.js": "react/umd/react.production.min.js",
    "react-dom.production.min.js": "react-dom/umd/react-dom.production.min.js",
}
# segmentql's own: the page's script and style (segmentql_pkg/static/).
OWN_ASSETS = ("segmentql-graphiql.js", "segmentql-graphiql.css")
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "font-src 'self' data:; img-src 'self' data:; connect-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
SEED_AS_OF = "2026-11-28T12:00:00Z"


def node_modules() -> Path:
    """The folder holding GraphiQL's files at their ``node_modules`` paths (``ASSETS``).

    First the copy built into the installed package (setup.py puts it in a
    wheel), as that is the version the page was built and tested with; then
    ``SEGMENTQL_GRAPHIQL_ASSETS``; then the checkout's ``graphiql/node_modules``,
    which an editable install serves (``make install`` runs ``npm ci`` there).
    """
    packaged = Path(__file__).resolve().parent / "static" / "graphiql"
    if packaged.is_dir():
        return packaged
    configured = os.environ.get("SEGMENTQL_GRAPHIQL_ASSETS")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[1] / "graphiql" / "node_modules"


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)


@cache
def default_document() -> dict:
    """One named operation per reference segment, each with its rule in its
    own variable (GraphQL ignores the variables an operation does not declare),
    so the rules stay exactly the JSON a front end sends."""
    seeds = json.loads(resources.files("segmentql.schema").joinpath("seed-segments.json").read_text())
    parts = ["# segmentql: the reference segments, ready to run (pick one with the run button).\n"
             "# Put your API key in the Headers tab. The demo data is as of " + SEED_AS_OF + ".\n"]
    variables = {}
    for segment in seeds["segments"]:
        name = _camel(segment["name"])
        variables[name] = segment["rule"]
        parts.append(f"# {segment['seed_text']}\n"
                     f"query {name[0].upper() + name[1:]}(${name}: RuleInput!) {{\n"
                     f"  segmentPreview(rule: ${name}, asOf: \"{SEED_AS_OF}\") {{\n"
                     f"    count\n    contacts(first: 5) {{ edges {{ node {{ id email }} }} }}\n  }}\n}}\n")
    return {"query": "\n".join(parts), "variables": json.dumps(variables, indent=2),
            "headers": json.dumps({"Authorization": "Bearer <your API key>"}, indent=2)}


@cache
def _page() -> str:
    template = resources.files("segmentql").joinpath("static", "graphiql.html").read_text()
    document = json.dumps(default_document()).replace("</", "<\\/")
    return template.replace("{{ASSETS}}", ASSETS_URL).replace("{{DEFAULT_DOCUMENT}}", document)


def graphiql_page() -> Response:
    missing = [name for name, path in ASSETS.items() if not (node_modules() / path).exists()]
    if missing:
        return PlainTextResponse(
            "GraphiQL's files are not installed; run `make install` (npm ci in graphiql/). Missing: "
            + html.escape(", ".join(missing)), status_code=503, headers=SECURITY_HEADERS)
    return HTMLResponse(_page(), headers=SECURITY_HEADERS)


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name in OWN_ASSETS:
        path = Path(str(resources.files("segmentql").joinpath("static", name)))
    elif name in ASSETS:
        path = node_modules() / ASSETS[name]
    else:
        return PlainTextResponse("no such asset", status_code=404, headers=SECURITY_HEADERS)
    if not path.exists():
        return PlainTextResponse("GraphiQL's files are not installed; run `make install`", status_code=503,
                                 headers=SECURITY_HEADERS)
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix],
                        headers={"Cache-Control": "public, max-age=86400", **SECURITY_HEADERS})
