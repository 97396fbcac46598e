"""API documentation that works offline: Swagger UI and ReDoc served from the app, and OpenAPI polish.

The Swagger UI and ReDoc bundles come from the `fastapi-offline` package (its static folder), served under
`/docs/assets`; FastAPI's CDN pages are disabled in `create_app`. The OpenAPI document gets the security
schemes (API key header, OAuth2 bearer token), the error model on every error response (with an example),
and FastAPI's default 422 body replaced by the error model the API actually answers with.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from voltway.core.errors import ERROR_DESCRIPTIONS, ErrorResponse

ASSETS_URL = "/docs/assets"
_ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
TOKEN_URL = "/api/v1/auth/token"
API_KEY_SCHEME = "APIKeyHeader"  # FastAPI's name for accounts' `APIKeyHeader` dependency
BEARER_SCHEME = "OAuth2PasswordBearer"  # FastAPI's name for an `OAuth2PasswordBearer` dependency

API_DESCRIPTION = """
VoltWay: find, book, charge and review electric-vehicle chargers.

**Authentication.** Operators and integrations send an API key in the `X-API-Key` header (keys are created
with `voltway keys create --role admin|operator|readonly`). Drivers register at `POST /api/v1/auth/register`
and get a bearer token from `POST /api/v1/auth/token` (OAuth2 password flow), sent as
`Authorization: Bearer <token>`.

**Errors.** Every error has one shape, `{"error": {"code": "...", "message": "...", "details": ...}}`, with the
HTTP status telling the class of error; for invalid input, `details` lists each bad field.

**Correlation.** Every response carries `X-Request-ID` (send your own to correlate, 1-128 of
`A-Z a-z 0-9 . _ -`) and `X-Process-Time` (seconds). The same id is in every log line of the request.

**Pagination.** Lists answer `{"items": [...], "next_cursor": "..."}`; pass `cursor` to get the next page.

Station data includes Open Charge Map records (CC BY 4.0, "Open Charge Map contributors").
""".strip()

TAGS: list[dict[str, str]] = [
    {"name": "stations", "description": "Search, nearest, map clusters, detail and station writes."},
    {"name": "ingest", "description": "Bulk upserts, imports (Open Charge Map, CSV) and streamed exports."},
    {"name": "accounts", "description": "Driver registration, tokens, API keys and favorites."},
    {"name": "reviews", "description": "Station ratings and reviews (one per driver and station)."},
    {"name": "charging", "description": "Reservations and charging sessions."},
    {"name": "analytics", "description": "Usage analytics for operators: popular stations, peak hours and days, "
     "trends, revenue, utilization, ratings."},
    {"name": "recommendations", "description": "Stations recommended to a driver near a place."},
    {"name": "jobs", "description": "Background jobs (imports, exports): status and progress."},
    {"name": "realtime", "description": "Live station status over WebSocket (`/ws/stations`)."},
    {"name": "web", "description": "The map and dashboard pages."},
    {"name": "health", "description": "Liveness, readiness and version, for load balancers and orchestrators."},
]

ERROR_EXAMPLES: dict[int, dict[str, Any]] = {
    400: {"code": "bad_request", "message": "malformed request", "details": None},
    401: {"code": "unauthorized", "message": "an API key is required in the X-API-Key header", "details": None},
    403: {"code": "forbidden", "message": "this action needs one of the roles: admin, operator", "details": None},
    404: {"code": "not_found", "message": "station 42 does not exist", "details": None},
    409: {"code": "conflict", "message": "the connector is already reserved at that time", "details": None},
    413: {"code": "payload_too_large", "message": "at most 1000 items per request", "details": None},
    422: {
        "code": "validation_error",
        "message": "invalid input: lat",
        "details": [{"field": "lat", "in": "query", "message": "Input should be less than or equal to 90",
                     "type": "less_than_equal"}],
    },
    429: {"code": "rate_limited", "message": "rate limit exceeded, retry in 12 s", "details": None},
}
_ERROR_REF = "#/components/schemas/ErrorResponse"
_DEFAULT_VALIDATION_REF = "#/components/schemas/HTTPValidationError"


def _error_content(status: int) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": {"$ref": _ERROR_REF}}
    if status in ERROR_EXAMPLES:
        content["example"] = {"error": ERROR_EXAMPLES[status]}
    return {"application/json": content}


def _ensure_error_schema(schema: dict[str, Any]) -> None:
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    if "ErrorResponse" not in schemas:
        model_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(model_schema.pop("$defs", {}))
        schemas["ErrorResponse"] = model_schema


# Values for common field names, so that generated examples read like VoltWay data rather than "string".
_FIELD_EXAMPLES: dict[str, Any] = {
    "name": "Berlin Hauptbahnhof P+R", "address": "Europaplatz 1", "town": "Berlin", "postcode": "10557",
    "country": "DE", "latitude": 52.5251, "longitude": 13.3694, "lat": 52.5251, "lon": 13.3694,
    "operator": "Ionity", "usage": "Public", "usage_cost": "0,59 EUR/kWh", "currency": "EUR", "source": "voltway",
    "external_id": "ocm-123456", "email": "ann@example.org", "password": "correct horse battery staple",
    "username": "ann@example.org", "display_name": "Ann", "type": "ccs2", "type_name": "CCS (Type 2)",
    "current": "DC", "power_kw": 150.0, "max_power_kw": 150.0, "energy_kwh": 23.4, "rating": 4, "comment":
    "Fast and easy to find.", "kind": "import_ocm", "role": "operator", "token_type": "bearer",
    "access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.signature", "next_cursor": None, "cursor": None,
}


def example_from_schema(node: dict[str, Any], components: dict[str, Any], field: str | None = None, depth: int = 0) -> Any:
    """A plausible example value for a JSON schema: its own example when it has one, else built from the
    types, enums, formats, bounds and field names (for operations whose schemas carry no example)."""
    if depth > 8:
        return None
    if "$ref" in node:
        return example_from_schema(components[node["$ref"].rsplit("/", 1)[1]], components, field, depth + 1)
    for key in ("example", "default"):
        if node.get(key) is not None:
            return node[key]
    if node.get("examples"):
        return node["examples"][0]
    if "const" in node:
        return node["const"]
    if node.get("enum"):
        return node["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in node:
            options = [o for o in node[key] if o.get("type") != "null"] or node[key]
            return example_from_schema(options[0], components, field, depth + 1)
    kind = node.get("type")
    if field in _FIELD_EXAMPLES and kind != "object" and kind != "array":
        return _FIELD_EXAMPLES[field]
    if kind == "object" or "properties" in node:
        properties = node.get("properties", {})
        if not properties and isinstance(node.get("additionalProperties"), dict):
            return {"key": example_from_schema(node["additionalProperties"], components, None, depth + 1)}
        return {name: example_from_schema(sub, components, name, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        return [example_from_schema(node.get("items", {}), components, field, depth + 1)]
    if kind in ("integer", "number"):
        low = node.get("minimum", node.get("exclusiveMinimum", 1))
        high = node.get("maximum", node.get("exclusiveMaximum", max(low, 1) * 10))
        value = min(max(low, 1), high)
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "string":
        return {"date-time": "2026-01-15T08:30:00Z", "date": "2026-01-15", "email": "ann@example.org",
                "uri": "https://example.org/", "binary": "(file contents)"}.get(node.get("format", ""), field or "text")
    return None


def _add_examples(operation: dict[str, Any], components: dict[str, Any]) -> None:
    media_types = list(operation.get("requestBody", {}).get("content", {}).values())
    for status, response in operation["responses"].items():
        if status.startswith("2"):
            media_types += list(response.get("content", {}).values())
    for media in media_types:
        if "example" not in media and "examples" not in media and "schema" in media:
            media["example"] = example_from_schema(media["schema"], components)


def polish_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Make the generated document tell the truth about auth and errors (idempotent)."""
    components = schema.setdefault("components", {})
    schemes = components.setdefault("securitySchemes", {})
    schemes.setdefault(
        API_KEY_SCHEME,
        {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "An API key (`voltway keys create`)"},
    )
    schemes.setdefault(
        BEARER_SCHEME,
        {
            "type": "oauth2",
            "description": "A driver's bearer token from `POST /api/v1/auth/token`",
            "flows": {"password": {"tokenUrl": TOKEN_URL, "scopes": {}}},
        },
    )
    _ensure_error_schema(schema)
    component_schemas = components.get("schemas", {})
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            _add_examples(operation, component_schemas)
            if operation.get("security"):
                # Every credential dependency answers 401 when the credentials are missing or invalid.
                responses.setdefault("401", {"description": ERROR_DESCRIPTIONS[401]})
            for status, response in responses.items():
                if not status.isdigit() or int(status) < 400:
                    continue
                content = response.get("content", {}).get("application/json", {})
                ref = content.get("schema", {}).get("$ref")
                if ref in (None, _DEFAULT_VALIDATION_REF):
                    response["content"] = _error_content(int(status))
                    if ref == _DEFAULT_VALIDATION_REF:
                        response["description"] = ERROR_DESCRIPTIONS[422]
                elif ref == _ERROR_REF and "example" not in content and int(status) in ERROR_EXAMPLES:
                    content["example"] = {"error": ERROR_EXAMPLES[int(status)]}
    if _DEFAULT_VALIDATION_REF.rsplit("/", 1)[1] in component_schemas and _DEFAULT_VALIDATION_REF not in str(
        schema.get("paths")
    ):
        component_schemas.pop("HTTPValidationError", None)
        component_schemas.pop("ValidationError", None)
    return schema


def install_docs(app: FastAPI) -> None:
    """Serve `/docs` (Swagger UI) and `/redoc` (ReDoc) with their assets from the app, and polish the schema."""
    app.mount(ASSETS_URL, StaticFiles(directory=_ASSETS_DIR), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    favicon = f"{ASSETS_URL}/favicon.png"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=favicon,
            oauth2_redirect_url=OAUTH2_REDIRECT_URL,
            # No validator badge: it would call an external service.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True, "displayRequestDuration": True},
        )

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} API reference",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )

    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        return polish_openapi(generate())

    app.openapi = openapi  # type: ignore[method-assign]
