"""The operator dashboard page at `/dashboard` (its script reads the analytics endpoints with an API key).

Charts are drawn by Chart.js 4.6.1, the build of the npm package `chart.js` vendored in `web/static/chartjs/`
(MIT, LICENSE.md beside it), so the page needs no CDN.
"""

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from voltway.web.router import render_page

router = APIRouter(tags=["pages"])


@router.get(
    "/dashboard",
    response_class=HTMLResponse,
    include_in_schema=False,
    summary="Operator dashboard",
    description="Charts of trends, peak hours and days, revenue and popular stations, with filters.",
)
async def dashboard_page() -> HTMLResponse:
    return render_page("dashboard.html", {})
