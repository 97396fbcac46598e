"""Bulk station endpoints: upsert, status updates and streamed export.

Included before the stations router, so that `/stations/bulk`, `/stations/status` and `/stations/export` are
not read as `/stations/{station_id}`.

Bulk bodies are read by `read_body`, not by FastAPI's body parsing: the size is checked against
`Content-Length` before anything is read and counted while the stream is read, so an oversized body is
refused with 413 after at most `MAX_BODY_BYTES`; the bulk functions then validate the items, reporting
each bad one by its index.
"""

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from voltway.accounts.dependencies import OperatorKey
from voltway.core.cache import invalidate, invalidate_after_commit
from voltway.core.db_dependencies import DB, Session
from voltway.core.errors import PayloadTooLarge, error_responses
from voltway.core.responses import FastJSONResponse
from voltway.ingest.bulk import (
    MAX_BULK_ITEMS,
    BulkResult,
    StatusItem,
    StatusResult,
    bulk_status,
    bulk_upsert,
    json_items,
)
from voltway.ingest.duplicates import link_duplicates_since
from voltway.ingest.export import MEDIA_TYPES, ExportFormat, export_stations
from voltway.stations.dependencies import AreaParams
from voltway.stations.schemas import StationIn

router = APIRouter(prefix="/stations", tags=["ingest"])

# 1,000 stations with a dozen connectors each are about 1.5 MB of JSON.
MAX_BODY_BYTES = 8 * 1024 * 1024


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of a list of `model`, with its `$defs` inlined (for `openapi_extra`)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    body = {"type": "array", "maxItems": MAX_BULK_ITEMS, "items": resolve(schema)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": body}}}}


async def read_body(request: Request) -> bytes:
    """The body, refusing more than MAX_BODY_BYTES early."""
    too_large = PayloadTooLarge(
        f"the request body is larger than {MAX_BODY_BYTES} bytes; send at most {MAX_BULK_ITEMS} items per request",
        details={"max_bytes": MAX_BODY_BYTES, "max_items": MAX_BULK_ITEMS},
    )
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/bulk",
    response_model=BulkResult,
    summary="Upsert up to 1,000 stations",
    description=(
        "A JSON array of at most 1,000 stations (the `POST /stations` body), upserted by (`source`, `external_id`): "
        "new keys are created, changed stations updated (connectors replaced), identical ones left `unchanged`. "
        "Each item is validated on its own: a bad item is listed in `errors` by its index and the others are "
        "written. `external_id` is required here (an upsert needs the key). More than 1,000 items, or a body over "
        "8 MiB, is refused with 413. Operator or admin key."
    ),
    responses=error_responses(401, 403, 413, 422),
    openapi_extra=_inline_schema(StationIn),
)
async def upsert(_key: OperatorKey, db: DB, request: Request, background: BackgroundTasks) -> Any:
    result, written_since = await bulk_upsert(db, body=await read_body(request))
    if written_since is not None:
        # The duplicate rule runs once the answer is sent: the answer does not depend on it.
        background.add_task(link_duplicates_since, db, written_since)
        background.add_task(invalidate, "stations")  # links hide duplicates from the cached answers
    return FastJSONResponse(result.model_dump())


@router.post(
    "/status",
    response_model=StatusResult,
    summary="Set the status of many stations and connectors",
    description=(
        "A JSON array of at most 1,000 items, each naming a station by `station_id` or by (`source`, "
        "`external_id`) with a new `status` and/or `connectors: [{id, status}]`. Items are applied in one "
        "transaction and recorded in the status history; an item naming an unknown station or a connector of "
        "another station is listed in `errors` by index and the others are applied. Operator or admin key."
    ),
    responses=error_responses(401, 403, 413, 422),
    openapi_extra=_inline_schema(StatusItem),
)
async def set_status(_key: OperatorKey, session: Session, request: Request) -> Any:
    result = await bulk_status(session, items=json_items(await read_body(request)))
    await invalidate_after_commit(session, "stations")
    return FastJSONResponse(result.model_dump())


@router.get(
    "/export",
    response_class=StreamingResponse,
    summary="Export stations (streamed)",
    description=(
        "Every station the search filters select (the same filters as `GET /stations`; no paging), streamed in "
        "constant memory as CSV (the `voltway import csv` columns), GeoJSON (RFC 7946 FeatureCollection) or a "
        "JSON array of Station objects, in id order."
    ),
    responses={
        200: {"content": {media: {} for media in MEDIA_TYPES.values()}, "description": "The export, streamed"},
        **error_responses(422),
    },
)
async def export(
    db: DB,
    area: Annotated[AreaParams, Query()],
    format: Annotated[ExportFormat, Query(description="csv, geojson or json")] = ExportFormat.geojson,
) -> StreamingResponse:
    query = area.query()
    return StreamingResponse(
        export_stations(db, fmt=format, query=query),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="stations.{format.value}"'},
    )
