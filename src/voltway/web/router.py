"""Pages for people: the driver map at `/`, and the static files (`/static/...`) of every page.

`/static/leaflet/` serves the Leaflet build shipped by the `xstatic-leaflet` package, so the map needs no CDN.
`/static/` serves `web/static/` (page scripts and styles; the dashboard keeps its files there too).
"""

import json
from functools import lru_cache
from pathlib import Path
from string import Template

import xstatic.pkg.leaflet as leaflet
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

WEB_DIR = Path(__file__).parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATES_DIR = WEB_DIR / "templates"

router = APIRouter(tags=["pages"])
router.mount("/static/leaflet", StaticFiles(directory=leaflet.BASE_DIR), name="leaflet")
router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


@lru_cache
def page_template(name: str) -> Template:
    return Template((TEMPLATES_DIR / name).read_text(encoding="utf-8"))


def render_page(name: str, config: dict[str, object]) -> HTMLResponse:
    """Fill a page template; `config` reaches the page's script as JSON (escaped for an HTML script tag)."""
    payload = json.dumps(config).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return HTMLResponse(page_template(name).substitute(config=payload, leaflet_version=leaflet.VERSION))


@router.get(
    "/",
    response_class=HTMLResponse,
    include_in_schema=False,
    summary="Charging map",
    description="The interactive map of charging stations for drivers.",
)
async def map_page(request: Request) -> HTMLResponse:
    settings = request.app.state.settings
    return render_page(
        "map.html",
        {"tileUrl": settings.map_tile_url, "tileAttribution": settings.map_tile_attribution},
    )
