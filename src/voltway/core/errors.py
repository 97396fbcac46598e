"""One error hierarchy and one error model: `{"error": {"code", "message", "details"}}`.

Features raise subclasses of `AppError`; the handlers here render every error, including FastAPI's
validation errors and Starlette's HTTP errors, in the same shape with the right status.
"""

import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from voltway.core.responses import FastJSONResponse


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """The one error model of the API."""

    error: ErrorBody


class AppError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class InvalidInput(AppError):
    status_code = 422
    code = "validation_error"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"


class TooManyRequests(AppError):
    status_code = 429
    code = "rate_limited"


class ServiceUnavailable(AppError):
    status_code = 503
    code = "service_unavailable"


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> FastJSONResponse:
    body = {"error": {"code": code, "message": message, "details": details}}
    return FastJSONResponse(body, status_code=status, headers=headers)


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
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), None, getattr(exc, "headers", None))


# Error responses for OpenAPI: every operation lists those that apply, all with the one model.
ERROR_DESCRIPTIONS = {
    400: "Malformed request",
    401: "Missing or invalid credentials",
    403: "The credentials lack the required role",
    404: "No such resource",
    409: "Conflicts with the current state",
    413: "Request too large",
    422: "Invalid input; `details` names each bad field and the reason",
    429: "Rate limit exceeded; see `Retry-After`",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[s]} for s in statuses}
