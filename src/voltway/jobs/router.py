"""Background jobs over HTTP: start imports and exports, follow, list, cancel, download results."""

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from voltway.accounts.dependencies import OperatorKey
from voltway.core.db_dependencies import Session
from voltway.core.errors import Conflict, InvalidInput, NotFound, error_responses
from voltway.core.jobs import JobStatus, enqueue
from voltway.core.ratelimit import rate_limit
from voltway.ingest.export import MEDIA_TYPES, ExportFormat
from voltway.jobs.schemas import ExportRequest, ImportFromUrl, JobAccepted, JobOut, JobPage
from voltway.jobs.service import cancel_job, export_file, get_job, list_jobs, save_upload

router = APIRouter(tags=["jobs"])
# Starting jobs costs work in the background: limited per API key (override with RATE_LIMITS).
WRITE_LIMIT = [Depends(rate_limit("jobs.write", "30/minute", scope="key"))]
READ_LIMIT = [Depends(rate_limit("jobs.read", "600/minute", scope="key"))]

IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "format": {"type": "string", "enum": ["ocm", "csv"], "default": "ocm"},
                        "country": {"type": "string", "minLength": 2, "maxLength": 2},
                    },
                }
            },
            "application/json": {"schema": ImportFromUrl.model_json_schema(ref_template="#/components/schemas/{model}")},
        },
    }
}
EXTENSIONS = {"ocm": "json", "csv": "csv"}


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"invalid input: {field} ({message})", details=[{"field": field, "in": "body", "message": message}])


async def _import_params(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload, fmt, country = form.get("file"), form.get("format") or "ocm", form.get("country") or None
        if not isinstance(upload, UploadFile):
            raise _invalid("file", "an uploaded file is required")
        if fmt not in EXTENSIONS:
            raise _invalid("format", "must be ocm or csv")
        if country is not None and (not isinstance(country, str) or len(country) != 2 or not country.isalpha()):
            raise _invalid("country", "an ISO 3166 alpha-2 code")
        path = await save_upload(request.app.state.settings, upload, EXTENSIONS[fmt])
        return {"format": fmt, "path": str(path), "filename": upload.filename, "country": country and country.upper()}
    try:
        body = ImportFromUrl.model_validate_json(await request.body())
    except ValidationError as exc:
        details = [{"field": ".".join(str(p) for p in e["loc"]) or "body", "in": "body", "message": e["msg"]} for e in exc.errors()]
        raise InvalidInput("invalid input: " + ", ".join(d["field"] for d in details), details=details) from None
    return {"format": body.format, "url": str(body.url), "country": body.country and body.country.upper()}


@router.post(
    "/imports",
    status_code=202,
    summary="Start an import job",
    description=(
        "Import stations from an uploaded file (`multipart/form-data`: `file`, `format` = `ocm`|`csv`, optional "
        "`country`) or from a URL (JSON `{\"url\", \"format\", \"country\"}`), in the background. Imports upsert "
        "on (source, external id), so running one twice changes nothing. Follow it at `GET /api/v1/jobs/{id}`; "
        "its result holds the counts and the rejected records."
    ),
    openapi_extra=IMPORT_BODY,
    dependencies=WRITE_LIMIT,
    responses=error_responses(401, 403, 422, 429),
)
async def start_import(_key: OperatorKey, session: Session, request: Request) -> JobAccepted:
    params = await _import_params(request)
    return JobAccepted(job_id=await enqueue("import", params, session=session))


@router.post(
    "/exports",
    status_code=202,
    summary="Start an export job",
    description=(
        "Export the stations the filters select (those of `GET /api/v1/stations`) as CSV, GeoJSON or JSON in the "
        "background; download the file at `GET /api/v1/jobs/{id}/download` once the job has completed."
    ),
    dependencies=WRITE_LIMIT,
    responses=error_responses(401, 403, 422, 429),
)
async def start_export(_key: OperatorKey, session: Session, body: ExportRequest) -> JobAccepted:
    params = {"format": body.format.value, "filters": body.filters.model_dump(mode="json", exclude_defaults=True)}
    return JobAccepted(job_id=await enqueue("export", params, session=session))


@router.get(
    "/jobs",
    summary="List jobs",
    description="Jobs, newest first, optionally of one status or kind; page with `cursor`.",
    dependencies=READ_LIMIT,
    responses=error_responses(401, 403, 422, 429),
)
async def jobs(
    _key: OperatorKey,
    session: Session,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status")] = None,
    kind: Annotated[str | None, Query(max_length=64, description="Only jobs of this kind (`import`, `export`, ...)")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size")] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> JobPage:
    if cursor is not None and not cursor.isdigit():
        raise InvalidInput("invalid input: cursor", details=[{"field": "cursor", "in": "query", "message": "not a cursor of this list"}])
    page, next_id = await list_jobs(
        session, status=status, kind=kind, limit=limit, before_id=int(cursor) if cursor else None
    )
    return JobPage(items=[JobOut.model_validate(j) for j in page], next_cursor=str(next_id) if next_id else None)


@router.get(
    "/jobs/{job_id}",
    summary="A job's status",
    description="Status (`pending`, `running`, `completed`, `failed`, `cancelled`), progress 0..1, attempts, result, error.",
    dependencies=READ_LIMIT,
    responses=error_responses(401, 403, 404, 429),
)
async def job_status(_key: OperatorKey, session: Session, job_id: int) -> JobOut:
    return JobOut.model_validate(await get_job(session, job_id=job_id))


@router.delete(
    "/jobs/{job_id}",
    summary="Cancel a job",
    description="Cancels a pending or running job (a running one stops within a few seconds); 409 once it has finished.",
    responses=error_responses(401, 403, 404, 409),
)
async def cancel(_key: OperatorKey, session: Session, job_id: int) -> JobOut:
    return JobOut.model_validate(await cancel_job(session, job_id=job_id))


@router.get(
    "/jobs/{job_id}/download",
    summary="Download an export's file",
    description="The file a completed export job wrote; 409 while the job has not completed.",
    response_class=FileResponse,
    responses={
        200: {"content": {media: {} for media in MEDIA_TYPES.values()}, "description": "The export file"},
        **error_responses(401, 403, 404, 409),
    },
)
async def download(_key: OperatorKey, session: Session, request: Request, job_id: int) -> FileResponse:
    job = await get_job(session, job_id=job_id)
    if job.kind != "export":
        raise NotFound(f"job {job_id} is not an export")
    if job.status != JobStatus.completed or not job.result:
        raise Conflict(f"export job {job_id} is {job.status}, not completed")
    fmt = ExportFormat(job.params["format"])
    path: Path = export_file(request.app.state.settings, job_id, fmt.value)
    if not path.exists():
        raise NotFound(f"the file of export job {job_id} has been cleaned up")
    return FileResponse(path, media_type=MEDIA_TYPES[fmt], filename=f"stations-{job_id}.{fmt.value}")
