"""The web dashboard at ``/admin/`` on the cluster port: one HTML page, one script, one stylesheet, all
shipped in the package (``admin/static/``, package data) and served by the node — no CDN, no build step.

Why it is open: the page and its assets hold no data. The page asks for the cluster secret and sends it
in the ``X-Marmot-Secret`` header of every API call it makes (the secret lives in the tab's
``sessionStorage``: never in a URL, never in a cookie, so no other site can make the browser send it);
the API routes stay behind the secret as before. Only the exact paths in ``OPEN_PATHS`` are open.

The headers make the page hard to misuse: a Content-Security-Policy that allows only this origin's
script, style and API (no inline script, so injected markup cannot run), no framing, no referrer, no
caching of a page the node may upgrade.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

PAGE = "/admin/"
ASSETS = {  # served name -> content type; the only files served
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
OPEN_PATHS = frozenset({"/admin", PAGE} | {f"/admin/assets/{name}" for name in ASSETS})
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _read(name: str) -> bytes:
    return (resources.files("marmot.admin") / "static" / name).read_bytes()


def add_routes(app: web.Application) -> None:
    """``GET /admin`` (redirect), ``GET /admin/`` (the page), ``GET /admin/assets/{name}``. The files are
    read once, here: a node serves the dashboard of the version it runs."""
    page = _read("index.html")
    assets = {name: (_read(name), ctype) for name, ctype in ASSETS.items()}

    async def index(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", charset="utf-8", headers=HEADERS)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(PAGE)

    async def asset(request: web.Request) -> web.Response:
        found = assets.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        body, ctype = found
        return web.Response(body=body, headers={**HEADERS, "Content-Type": ctype})

    app.add_routes(
        [
            web.get("/admin", redirect),
            web.get(PAGE, index),
            web.get("/admin/assets/{name}", asset),
        ]
    )
