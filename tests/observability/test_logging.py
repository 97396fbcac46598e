"""JSON log lines: request correlation, slow requests, error log, redaction, uvicorn through the same handlers."""

import asyncio
import gc
import json
import logging
import logging.handlers
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from tests.observability.conftest import read_log, scrape, value
from voltway.accounts.keys import hash_key
from voltway.accounts.models import ApiKey
from voltway.core.logging import BACKUP_COUNT, MAX_BYTES, REDACTED, JsonFormatter, LogFile, redact, request_context


@pytest.fixture
def backend() -> str:
    """Logging does not depend on the database: SQLite only."""
    return "sqlite"


def _routes(app: FastAPI) -> None:
    log = logging.getLogger("voltway.test")

    @app.get("/test/chatty")
    async def chatty() -> dict[str, str]:
        log.info("inside the handler", extra={"station_id": 7})
        return {"ok": "yes"}

    @app.get("/test/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(0.6)
        return {"ok": "slow"}

    @app.get("/test/leak")
    async def leak() -> None:
        log.warning(
            "login for api key vw_AbCdEf123456789 with Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOjF9.c2ln",
            extra={"password": "hunter2", "form": {"username": "ann", "client_secret": "s3cr3t"}},
        )
        raise RuntimeError("db said: password=hunter2 token=abc.def")


async def test_every_line_of_a_request_carries_its_request_id(app_factory, log_dir: Path) -> None:
    async with app_factory(_routes) as client:
        own = await client.get("/test/chatty", headers={"X-Request-ID": "client-id_1.2"})
        generated = await client.get("/test/chatty")
        invalid = await client.get("/test/chatty", headers={"X-Request-ID": "no spaces allowed"})
    assert own.headers["x-request-id"] == "client-id_1.2"
    generated_id = generated.headers["x-request-id"]
    assert len(generated_id) == 32 and generated_id != "client-id_1.2"
    assert invalid.headers["x-request-id"] not in ("no spaces allowed", generated_id)
    assert float(own.headers["x-process-time"]) > 0

    lines = read_log(log_dir / "app.log")
    for request_id in ("client-id_1.2", generated_id, invalid.headers["x-request-id"]):
        mine = [line for line in lines if line.get("request_id") == request_id]
        handler_line = next(line for line in mine if line["logger"] == "voltway.test")
        assert handler_line["message"] == "inside the handler" and handler_line["station_id"] == 7
        access = next(line for line in mine if line["logger"] == "voltway.access")
        assert access["level"] == ("WARNING" if access["slow"] else "INFO")  # a loaded test machine may be slow
        assert access["method"] == "GET" and access["route"] == "/test/chatty" and access["status"] == 200
        assert access["client"] == "127.0.0.1" and access["duration_ms"] > 0
        assert {"timestamp", "level", "logger", "message"} <= set(access)
    # Lines outside a request carry no request id.
    assert not any("request_id" in line for line in lines if line["logger"] == "voltway.core.logging.outside")


async def test_slow_request_logged_at_warning_and_counted(app_factory, log_dir: Path) -> None:
    # A full collection now, not during the timed requests: late in the suite the test process holds a large
    # heap, and a collection inside a 1 ms request can take longer than the threshold.
    gc.collect()
    async with app_factory(_routes, slow_request_threshold=0.4) as client:
        before = await scrape(client)
        slow = await client.get("/test/slow")
        await client.get("/test/chatty")
        after = await scrape(client)
    slow_id = slow.headers["x-request-id"]
    lines = [line for line in read_log(log_dir / "app.log") if line["logger"] == "voltway.access"]
    lines = [line for line in lines if line["route"] != "/metrics"]  # a cold first scrape may be slow too
    slow_lines = [line for line in lines if line["slow"]]
    assert [line["request_id"] for line in slow_lines] == [slow_id]
    assert slow_lines[0]["level"] == "WARNING" and slow_lines[0]["duration_ms"] >= 600
    assert value(after, "voltway_http_slow_requests_total", method="GET", route="/test/slow") - value(
        before, "voltway_http_slow_requests_total", method="GET", route="/test/slow"
    ) == 1
    # The registry is the process's: earlier tests' requests are in it, so compare with `before`.
    assert value(after, "voltway_http_slow_requests_total", method="GET", route="/test/chatty") == value(
        before, "voltway_http_slow_requests_total", method="GET", route="/test/chatty"
    )


async def test_no_secret_reaches_a_log_line(app_factory, log_dir: Path) -> None:
    async with app_factory(_routes) as client:
        response = await client.get(
            "/test/leak?api_key=vw_QueryKey987654", headers={"X-API-Key": "vw_HeaderKey12345678"}
        )
    assert response.status_code == 500
    text = (log_dir / "app.log").read_text() + (log_dir / "error.log").read_text()
    for secret in ("hunter2", "s3cr3t", "vw_AbCdEf123456789", "eyJhbGciOiJIUzI1NiJ9", "abc.def", "QueryKey987654",
                   "HeaderKey12345678"):
        assert secret not in text, secret
    warning = next(line for line in read_log(log_dir / "app.log") if line["logger"] == "voltway.test")
    assert warning["password"] == REDACTED
    assert warning["form"] == {"username": "ann", "client_secret": REDACTED}
    assert warning["message"] == f"login for api key vw_{REDACTED} with Authorization: Bearer {REDACTED}"


def test_redact_keeps_ordinary_text() -> None:
    assert redact("GET /api/v1/stations?lat=52.5&lon=13.4 200") == "GET /api/v1/stations?lat=52.5&lon=13.4 200"
    assert redact({"token_type": "bearer", "count": 3}) == {"token_type": REDACTED, "count": 3}
    assert redact("password: 'x y'") == f"password: '{REDACTED} y'"
    assert redact(["refresh_token=abc", 5]) == [f"refresh_token={REDACTED}", 5]


async def test_errors_go_to_error_log_with_traceback(app_factory, log_dir: Path) -> None:
    async with app_factory(_routes) as client:
        await client.get("/test/chatty")
        failed = await client.get("/test/leak")
    errors = read_log(log_dir / "error.log")
    assert [line["level"] for line in errors] == ["ERROR"]
    assert errors[0]["request_id"] == failed.headers["x-request-id"]
    assert errors[0]["logger"] == "voltway.errors"
    assert "RuntimeError" in errors[0]["exception"] and "Traceback" in errors[0]["exception"]


async def test_uvicorn_and_library_loggers_use_the_json_handlers(app_factory, log_dir: Path) -> None:
    async with app_factory():
        logging.getLogger("uvicorn.error").info("Started server process [1]")
        logging.getLogger("sqlalchemy.engine").warning("pool is full")
    lines = read_log(log_dir / "app.log")
    assert {"logger": "uvicorn.error", "message": "Started server process [1]", "level": "INFO"}.items() <= next(
        line for line in lines if line["logger"] == "uvicorn.error"
    ).items()
    assert any(line["logger"] == "sqlalchemy.engine" and line["level"] == "WARNING" for line in lines)
    assert request_context.get() is None


async def test_log_files_rotate_at_10_mb(app_factory, log_dir: Path) -> None:
    async with app_factory():
        handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.handlers.RotatingFileHandler)]
    by_file = {Path(h.baseFilename).name: h for h in handlers}
    assert set(by_file) == {"app.log", "error.log"}
    assert all(h.maxBytes == 10 * 1024 * 1024 == MAX_BYTES and h.backupCount == BACKUP_COUNT for h in handlers)
    assert by_file["error.log"].level == logging.ERROR
    assert Path(by_file["app.log"].baseFilename).parent == log_dir.resolve()


async def test_log_level_setting(app_factory, log_dir: Path) -> None:
    async with app_factory(_routes, log_level="WARNING") as client:
        await client.get("/test/chatty")
        await client.get("/test/leak")
    levels = {line["level"] for line in read_log(log_dir / "app.log")}
    assert levels == {"WARNING", "ERROR"}


async def test_access_line_names_the_api_key(client: httpx.AsyncClient, db, admin_headers, log_dir: Path) -> None:
    async with db.sessionmaker() as session:
        key_id = await session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(admin_headers["X-API-Key"])))
    response = await client.get("/api/v1/admin/keys", headers=admin_headers)
    assert response.status_code == 200
    access = next(
        line for line in read_log(log_dir / "app.log")
        if line["logger"] == "voltway.access" and line["request_id"] == response.headers["x-request-id"]
    )
    assert access["key_id"] == key_id and access["route"] == "/api/v1/admin/keys"
    assert admin_headers["X-API-Key"] not in (log_dir / "app.log").read_text()


async def test_other_handlers_get_ordinary_records(app_factory, caplog: pytest.LogCaptureFixture) -> None:
    """The access line skips LogRecords only for VoltWay's JSON handlers; others (here pytest's) get a record."""
    with caplog.at_level(logging.INFO, logger="voltway.access"):
        async with app_factory(_routes, slow_request_threshold=60) as client:  # never slow on a busy machine
            response = await client.get("/test/chatty")
    record = next(r for r in caplog.records if r.name == "voltway.access")
    assert record.getMessage().startswith("GET /test/chatty 200 ")
    assert record.route == "/test/chatty" and record.status == 200 and record.levelno == logging.INFO
    assert response.status_code == 200


async def test_text_console_when_json_console_is_off(app_factory, capfd: pytest.CaptureFixture[str], log_dir) -> None:
    async with app_factory(_routes, log_json_console=False) as client:
        response = await client.get("/test/chatty", headers={"X-Request-ID": "text-console-1"})
        for handler in logging.getLogger().handlers:
            handler.flush()
    console = capfd.readouterr().err
    line = next(line for line in console.splitlines() if "GET /test/chatty 200" in line)
    assert not line.startswith("{") and "voltway.access" in line and "[request_id=text-console-1]" in line
    # The files stay JSON.
    assert any(e.get("request_id") == "text-console-1" for e in read_log(log_dir / "app.log"))
    assert response.status_code == 200


def test_log_file_rotates_by_size_and_keeps_whole_lines(tmp_path: Path) -> None:
    handler = LogFile(tmp_path / "app.log")
    handler.maxBytes = 1000  # the real limit is 10 MB; the same code path
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("voltway.test.rotation")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for i in range(100):
            logger.warning("line %d", i)  # ~115 bytes each: more than six files hold
    finally:
        logger.removeHandler(handler)
        handler.close()
    files = sorted(tmp_path.glob("app.log*"))
    assert [f.name for f in files] == ["app.log", *(f"app.log.{n}" for n in range(1, BACKUP_COUNT + 1))]
    assert all(f.stat().st_size <= 1000 for f in files)
    kept = [json.loads(line)["message"] for f in reversed(files) for line in f.read_text().splitlines()]
    # The newest lines are kept, whole and in order; the oldest fell off the last backup.
    assert kept == [f"line {i}" for i in range(100 - len(kept), 100)]
    assert 40 < len(kept) < 60


def test_log_file_follows_a_rotation_by_another_process(tmp_path: Path) -> None:
    """Two handlers on one file stand for two workers: the second never writes into a rotated backup."""
    first, second = LogFile(tmp_path / "app.log"), LogFile(tmp_path / "app.log")
    for handler in (first, second):
        handler.maxBytes = 2000
        handler.setFormatter(JsonFormatter())
    record = logging.LogRecord("voltway.test", logging.WARNING, __file__, 0, "", (), None)
    try:
        for _ in range(12):  # ~230 bytes a line: the first handler rotates
            first.handle(logging.makeLogRecord(record.__dict__ | {"msg": "first " + "x" * 150}))
        for _ in range(12):  # the second, which opened the old file, follows the new one when its count is up
            second.handle(logging.makeLogRecord(record.__dict__ | {"msg": "second " + "x" * 150}))
    finally:
        first.close()
        second.close()
    files = {f.name: [json.loads(line)["message"].split()[0] for line in f.read_text().splitlines()]
             for f in tmp_path.iterdir()}
    assert sum(len(lines) for lines in files.values()) == 24  # nothing lost, every line whole
    # First: 7 lines, rotation, 5 lines. Second (still on the renamed file): 7 lines there, then it follows the
    # new app.log (2 lines, full: rotation) and writes 3 more. Rotating instead of following would have
    # pushed first's 5 lines out of app.log at once.
    assert {name: len(lines) for name, lines in files.items()} == {"app.log.2": 14, "app.log.1": 7, "app.log": 3}
    assert files["app.log.1"] == ["first"] * 5 + ["second"] * 2
