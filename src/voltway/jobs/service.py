"""Job records as the API sees them: listing, lookup, cancellation, uploaded import files, export files."""

import uuid
from pathlib import Path

from starlette.datastructures import UploadFile
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from voltway.core.db import utcnow
from voltway.core.errors import Conflict, NotFound
from voltway.core.jobs import Job, JobStatus
from voltway.settings import Settings

UPLOAD_CHUNK = 1 << 20


class JobNotFound(NotFound):
    code = "job_not_found"


async def get_job(session: AsyncSession, *, job_id: int) -> Job:
    job = await session.get(Job, job_id)
    if job is None:
        raise JobNotFound(f"no job with id {job_id}")
    return job


async def list_jobs(
    session: AsyncSession, *, status: JobStatus | None, kind: str | None, limit: int, before_id: int | None
) -> tuple[list[Job], int | None]:
    """Newest first; returns the page and the id to continue before (None on the last page)."""
    query = select(Job).order_by(Job.id.desc()).limit(limit + 1)
    if status is not None:
        query = query.where(Job.status == status)
    if kind is not None:
        query = query.where(Job.kind == kind)
    if before_id is not None:
        query = query.where(Job.id < before_id)
    jobs = list((await session.scalars(query)).all())
    return jobs[:limit], (jobs[limit - 1].id if len(jobs) > limit else None)


async def cancel_job(session: AsyncSession, *, job_id: int) -> Job:
    """Cancel a pending or running job (a running handler stops at its next heartbeat); 409 once finished."""
    job = await get_job(session, job_id=job_id)
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_([JobStatus.pending, JobStatus.running]))
        .values(status=JobStatus.cancelled, finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise Conflict(f"job {job_id} has already finished ({job.status})")
    await session.refresh(job)
    return job


def export_file(settings: Settings, job_id: int, extension: str) -> Path:
    """Where the export job `job_id` writes its result (`DATA_DIR/exports`, shared storage at scale)."""
    return settings.data_dir / "exports" / f"job-{job_id}.{extension}"


async def save_upload(settings: Settings, upload: UploadFile, extension: str) -> Path:
    """Store an uploaded import file under `DATA_DIR/imports` for the job that reads it."""
    directory = settings.data_dir / "imports"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{uuid.uuid4().hex}.{extension}"
    with path.open("wb") as out:
        while chunk := await upload.read(UPLOAD_CHUNK):
            out.write(chunk)
    return path
