"""The bare reference for bench/cache_hit.py: FastAPI returning fixed bytes (read from BARE_BODY_FILE) at
/api/v1/stations, no middleware, no cache, no database — what serving those bytes costs at the least.

    BARE_BODY_FILE=/tmp/body.json uvicorn bare_bytes_app:app --workers 1 --loop uvloop --http httptools
"""

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response

BODY = Path(os.environ["BARE_BODY_FILE"]).read_bytes()
app = FastAPI()


@app.get("/api/v1/stations")
async def stations() -> Response:
    return Response(BODY, media_type="application/json")


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
