"""The web UI on the admin port: `GET /ui/` and the static files beside it.

The UI is plain HTML, CSS and ES modules shipped as package data in `admin/webui/`; it talks
only to the admin API it is served next to (`POST /query`, `PATCH /invocations/...`,
`GET /services`, ...), so this module serves files and nothing else. The files are read once,
through `importlib.resources`, so the route works from a wheel as well as from a checkout.
"""

from __future__ import annotations

from importlib import resources

from perdure.server.httpd import App, Request, Response, json_response, redirect

__all__ = ["add_webui_routes"]

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

# Only this origin, no inline scripts or styles: a value that slipped into the DOM as markup
# still could not run. `style-src` leaves the CSSOM (element.style) alone.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _load_files() -> dict[str, tuple[bytes, str]]:
    """Every servable file of the UI: name -> (content, content type)."""
    folder = resources.files("perdure.server.admin").joinpath("webui")
    files: dict[str, tuple[bytes, str]] = {}
    for item in folder.iterdir():
        name = item.name
        suffix = name[name.rfind("."):] if "." in name else ""
        if item.is_file() and suffix in _CONTENT_TYPES:
            files[name] = (item.read_bytes(), _CONTENT_TYPES[suffix])
    if "index.html" not in files:
        raise RuntimeError(f"the web UI's index.html is missing from {folder}")
    return files


def add_webui_routes(app: App) -> None:
    """Mount the UI at `/ui/` (and redirect `/ui` there)."""
    files = _load_files()

    def answer(name: str) -> Response:
        body, content_type = files[name]
        return Response(body=body, headers={"Content-Type": content_type, **_HEADERS})

    async def to_index(request: Request) -> Response:
        return redirect("/ui/")

    async def index(request: Request) -> Response:
        return answer("index.html")

    async def asset(request: Request) -> Response:
        name = request.match_info["name"]
        if name not in files:
            return json_response({"message": f"no file {name!r} in the web UI"}, status=404)
        return answer(name)

    app.router.add_get("/ui", to_index)
    app.router.add_get("/ui/", index)
    app.router.add_get("/ui/{name}", asset)
