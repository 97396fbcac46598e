"""`voltway serve --demo`: the bundled real Open Charge Map sample, loaded into an empty database.

The sample (`data/ocm-demo.json.gz`, CC BY 4.0, "Open Charge Map contributors, openchargemap.org"; see
`data/ATTRIBUTION.md`) holds every record of the shared samples: 152 POIs in the compact form (Andorra, the
United Arab Emirates, New Zealand), 60 in the verbose form (United States, 2015) and 1,046 in the verbose
form of 2020 (19 countries). One POI appears in two samples; the later copy wins.
"""

import gzip
from importlib import resources

from sqlalchemy import func, select

from voltway.analytics.demo import load_demo_activity
from voltway.core.db import Database
from voltway.ingest.reader import import_ocm_stream
from voltway.settings import Settings
from voltway.stations.models import Station

DEMO_FILE = "ocm-demo.json.gz"


async def load_demo(settings: Settings) -> str:
    """Load the bundled sample when the database has no stations; a one-line summary of what happened."""
    db = Database(settings.database_url)
    try:
        async with db.engine.connect() as conn:
            existing = (await conn.execute(select(func.count()).select_from(Station))).scalar_one()
        if existing:
            return f"demo data not loaded: the database already holds {existing} stations"
        with resources.files("voltway").joinpath("data", DEMO_FILE).open("rb") as raw, gzip.open(raw) as stream:
            report = await import_ocm_stream(db, stream)
        activity = await load_demo_activity(db)  # demo drivers, sessions, reviews; analytics rollups
    finally:
        await db.dispose()
    return (
        f"demo data loaded: {report.created} stations from Open Charge Map (CC BY 4.0, Open Charge Map "
        f"contributors), {len(report.rejected)} records rejected, {len(report.repeated)} repeated\n{activity}"
    )
