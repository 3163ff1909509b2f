"""`/`: the web dashboard, a fine-tuning page served as static files that call the same `/v1` API.

Plain HTML, CSS and ES modules in `server/dashboard/`, with no build step. The page asks for the API
key once and keeps it in the browser; the server serves the files without one.

Every file goes with a Content-Security-Policy: scripts, styles and requests from this server only
(the page has no inline script or style), and no framing by another page, so that a hostile page
can neither run code in the dashboard's name nor overlay it to trick a click.
"""

import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


class DashboardFiles(StaticFiles):
    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(SECURITY_HEADERS)
        return response


async def index(request: Request) -> FileResponse:
    return FileResponse(DASHBOARD_DIR / "index.html", headers={"cache-control": "no-cache", **SECURITY_HEADERS})


routes = [
    Route("/", index, methods=["GET"]),
    Mount("/dashboard", DashboardFiles(directory=DASHBOARD_DIR), name="dashboard"),
]
