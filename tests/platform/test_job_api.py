"""The job API: imports (upload or URL), exports with download, listing, status, cancellation, roles."""

import asyncio
import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import orjson
import pytest
from tests.platform.conftest import free_port, wait_for_job

from tests.ingest.conftest import bundled_ocm_samples
from voltway.core.db import Database

pytestmark = pytest.mark.usefixtures("backend")

# The compact OCM sample (152 real POIs) as bundled in the package.
OCM_SAMPLE = orjson.dumps(bundled_ocm_samples()["compact"])


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[str]:
    """A real HTTP server over `tmp_path/www`, for imports from a URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def start_import(client: httpx.AsyncClient, headers: dict[str, str], **kwargs: object) -> int:
    response = await client.post("/api/v1/imports", headers=headers, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


async def test_an_uploaded_ocm_file_imports_once_and_again_changes_nothing(
    client: httpx.AsyncClient, db: Database, operator_headers: dict[str, str]
) -> None:
    upload = {"file": ("poi.json", OCM_SAMPLE, "application/json")}
    first = await wait_for_job(db, await start_import(client, operator_headers, files=upload, data={"format": "ocm"}))
    assert first.status == "completed", first.error
    assert first.result is not None and first.result["records"] == 152
    created = first.result["created"]
    assert created > 100 and created + first.result["rejected_count"] + first.result.get("skipped", 0) <= 152
    second = await wait_for_job(db, await start_import(client, operator_headers, files=upload, data={"format": "ocm"}))
    assert second.result is not None
    assert (second.result["created"], second.result["updated"], second.result["unchanged"]) == (0, 0, created)

    status = await client.get(f"/api/v1/jobs/{second.id}", headers=operator_headers)
    body = status.json()
    assert {k: body[k] for k in ("id", "kind", "status", "progress", "attempts", "error")} == {
        "id": second.id, "kind": "import", "status": "completed", "progress": 1.0, "attempts": 1, "error": None,
    }
    assert body["result"]["unchanged"] == created


async def test_a_csv_from_a_url_imports_and_exports_round_trip(
    client: httpx.AsyncClient, db: Database, operator_headers: dict[str, str], file_server: str, tmp_path: Path
) -> None:
    # Stations in, via the upload of the OCM sample; then a CSV export job; then that CSV imported from a URL.
    upload = {"file": ("poi.json", OCM_SAMPLE, "application/json")}
    imported = await wait_for_job(db, await start_import(client, operator_headers, files=upload))
    assert imported.status == "completed"
    response = await client.post("/api/v1/exports", headers=operator_headers, json={"format": "csv", "filters": {"min_power_kw": 50}})
    assert response.status_code == 202
    export = await wait_for_job(db, response.json()["job_id"])
    assert export.status == "completed", export.error
    download = await client.get(f"/api/v1/jobs/{export.id}/download", headers=operator_headers)
    streamed = await client.get("/api/v1/stations/export", params={"format": "csv", "min_power_kw": 50})
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert download.content == streamed.content and download.content.count(b"\n") > 1
    assert export.result == {"format": "csv", "bytes": len(download.content), "download": f"/api/v1/jobs/{export.id}/download"}

    (tmp_path / "www" / "fast.csv").write_bytes(download.content)
    job_id = await start_import(client, operator_headers, json={"url": f"{file_server}/fast.csv", "format": "csv"})
    again = await wait_for_job(db, job_id)
    assert again.status == "completed", again.error
    assert again.result is not None and again.result["unchanged"] == download.content.count(b"\n") - 1


async def test_bad_requests_name_the_field(client: httpx.AsyncClient, operator_headers: dict[str, str]) -> None:
    cases = [
        ({"json": {"url": "not a url"}}, "url"),
        ({"json": {"url": "http://x/y", "format": "xml"}}, "format"),
        ({"files": {"file": ("a.csv", b"x")}, "data": {"format": "xml"}}, "format"),
        ({"data": {"format": "csv"}, "files": {"other": ("a", b"x")}}, "file"),
    ]
    for kwargs, field in cases:
        response = await client.post("/api/v1/imports", headers=operator_headers, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"][0]["field"] == field
    bad_export = await client.post("/api/v1/exports", headers=operator_headers, json={"format": "xls"})
    assert bad_export.status_code == 422 and bad_export.json()["error"]["details"][0]["field"] == "format"
    radius = await client.post("/api/v1/exports", headers=operator_headers, json={"filters": {"radius_km": 3}})
    assert radius.status_code == 422


async def test_roles_listing_and_missing_jobs(
    client: httpx.AsyncClient, db: Database, operator_headers: dict[str, str], readonly_headers: dict[str, str]
) -> None:
    assert (await client.post("/api/v1/exports", json={})).status_code == 401
    assert (await client.post("/api/v1/exports", headers=readonly_headers, json={})).status_code == 403
    assert (await client.get("/api/v1/jobs", headers=readonly_headers)).status_code == 403
    ids = [(await client.post("/api/v1/exports", headers=operator_headers, json={"format": "json"})).json()["job_id"] for _ in range(3)]
    for job_id in ids:
        await wait_for_job(db, job_id)
    page = (await client.get("/api/v1/jobs?limit=2", headers=operator_headers)).json()
    assert [j["id"] for j in page["items"]] == ids[::-1][:2] and page["next_cursor"] == str(ids[1])
    rest = (await client.get(f"/api/v1/jobs?limit=2&cursor={page['next_cursor']}", headers=operator_headers)).json()
    assert [j["id"] for j in rest["items"]] == [ids[0]] and rest["next_cursor"] is None
    assert (await client.get("/api/v1/jobs?status=failed", headers=operator_headers)).json()["items"] == []
    missing = await client.get("/api/v1/jobs/999999", headers=operator_headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "job_not_found"
    assert (await client.delete("/api/v1/jobs/999999", headers=operator_headers)).status_code == 404


async def test_download_before_completion_is_a_conflict(
    client: httpx.AsyncClient, db: Database, operator_headers: dict[str, str]
) -> None:
    from voltway.core.jobs import enqueue

    job_id = await enqueue("test.steps", {"log": "/dev/null", "steps": 20, "pause": 0.05})
    await asyncio.sleep(0.1)
    response = await client.get(f"/api/v1/jobs/{job_id}/download", headers=operator_headers)
    assert response.status_code == 404  # not an export
    export_id = (await client.post("/api/v1/exports", headers=operator_headers, json={})).json()["job_id"]
    early = await client.get(f"/api/v1/jobs/{export_id}/download", headers=operator_headers)
    assert early.status_code in (200, 409)
    await wait_for_job(db, export_id)
    assert (await client.get(f"/api/v1/jobs/{export_id}/download", headers=operator_headers)).status_code == 200
