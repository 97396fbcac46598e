"""The app's exception handlers: every error in the one error model of `core/errors.py`.

Apart from the error classes, which the command line imports too, so that it does not import FastAPI.
"""

import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from voltway.core.errors import HTTP_CODES, AppError, error_response
from voltway.core.responses import FastJSONResponse


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        # ("query", "lat") -> field "lat", in "query"; ("body", "items", 3, "latitude") -> "items.3.latitude"
        where = loc[0] if loc and loc[0] in {"query", "path", "body", "header", "cookie"} else None
        field = ".".join(loc[1:] if where else loc)
        details.append({"field": field or where, "in": where, "message": err.get("msg"), "type": err.get("type")})
    return details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> FastJSONResponse:
        return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> FastJSONResponse:
        details = _validation_details(exc)
        fields = ", ".join(d["field"] for d in details if d["field"])
        return error_response(422, "validation_error", f"invalid input: {fields}", details)

    async def _database_busy(_request: Request, exc: Exception) -> FastJSONResponse:
        # SQLite has one writer at a time: a write that waited the whole busy timeout for the lock (a long
        # import holding it, say) is worth retrying, not a server fault. Anything else stays a 500. The bulk
        # engine's SQLite writes raise the driver's own error (`Database.sqlite_write`), the others SQLAlchemy's.
        if "database is locked" not in str(getattr(exc, "orig", exc)):
            raise exc
        return error_response(
            503, "service_unavailable", "the database is busy with other writes: retry shortly", None,
            {"Retry-After": "2"},
        )

    app.add_exception_handler(OperationalError, _database_busy)
    app.add_exception_handler(sqlite3.OperationalError, _database_busy)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> FastJSONResponse:
        code = HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), None, getattr(exc, "headers", None))
