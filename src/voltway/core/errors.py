"""One error hierarchy and one error model: `{"error": {"code", "message", "details"}}`.

Features raise subclasses of `AppError`; the handlers of `core/error_handlers.py` render every error,
including FastAPI's validation errors and Starlette's HTTP errors, in the same shape with the right status.
"""

from typing import Any

from pydantic import BaseModel

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


HTTP_CODES = {
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
