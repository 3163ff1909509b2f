"""`/`: the web dashboard, a fine-tuning page served as static files that call the same `/v1` API.

Plain HTML, CSS and ES modules in `server/dashboard/`, with no build step. The page asks for the API
key once and keeps it in the browser; the server serves the files without one.
"""

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"


async def index(request: Request) -> FileResponse:
    return FileResponse(DASHBOARD_DIR / "index.html", headers={"cache-control": "no-cache"})


routes = [
    Route("/", index, methods=["GET"]),
    Mount("/dashboard", StaticFiles(directory=DASHBOARD_DIR), name="dashboard"),
]
