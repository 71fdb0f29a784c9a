"""The segment builder page at ``/builder``, served entirely by segmentql.

A marketer's view of the API: the rule tree as nested ALL / ANY / NOT groups,
a live count, each node's count, errors placed on the node they name, "why is
this contact (not) in it?", and saved segments with their charts. Every
condition's form is built in the browser from introspection of ``RuleInput``
alone, so a plugin's condition gets a working form without any code here.

It is plain JavaScript modules (``static/builder*.js``, one job each, no build
step, no framework) and one style sheet, sent under the same policy as
GraphiQL (:mod:`segmentql.graphiql`): no inline script or style, scripts,
styles and requests from segmentql only, never framed. The page holds no data
and needs no key; the key its user types is sent as ``Authorization: Bearer``
and kept in ``sessionStorage`` (this tab only, gone when it closes), never in
``localStorage``. A link carries the rule (``#rule=<URL-encoded JSON>``),
never a key.
"""

from functools import cache
from importlib import resources
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from .graphiql import MEDIA_TYPES, SECURITY_HEADERS

PAGE_URL = "/builder"
ASSETS_URL = "/builder/assets"


def _static() -> Path:
    return Path(str(resources.files("segmentql").joinpath("static")))


@cache
def assets() -> frozenset[str]:
    """The names served under ``ASSETS_URL``: the page's own modules and style
    sheet, found by name, so a new module is served without being listed here
    and nothing else in ``static/`` is."""
    return frozenset(path.name for path in _static().iterdir()
                     if path.name.startswith("builder") and path.suffix in MEDIA_TYPES)


@cache
def _page() -> str:
    return (_static() / "builder.html").read_text(encoding="utf-8").replace("{{ASSETS}}", ASSETS_URL)


async def builder_page(_request: Request) -> Response:
    return HTMLResponse(_page(), headers=SECURITY_HEADERS)


async def builder_asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in assets():
        return PlainTextResponse("no such asset", status_code=404, headers=SECURITY_HEADERS)
    # Revalidated on each load (ETag), so an upgraded service never runs a
    # cached module next to a newer one it imports.
    return FileResponse(_static() / name, media_type=MEDIA_TYPES[Path(name).suffix],
                        headers={"Cache-Control": "no-cache", **SECURITY_HEADERS})


BUILDER_ROUTES = [Route(PAGE_URL, builder_page), Route(ASSETS_URL + "/{name}", builder_asset)]
