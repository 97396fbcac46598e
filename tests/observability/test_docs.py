"""API documentation: offline Swagger UI / ReDoc, a valid OpenAPI document, every operation documented."""

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from tests.browser import run_chromium
from tests.processes import voltway_server
from voltway.core.docs import ERROR_EXAMPLES, example_from_schema

ERROR_REF = "#/components/schemas/ErrorResponse"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


@pytest.fixture
def backend() -> str:
    """The documentation does not depend on the database: SQLite only."""
    return "sqlite"


class _AssetCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src", "redoc": "spec-url"}.get(tag)
        for name, url in attrs:
            if name == wanted and url:
                self.urls.append(url)


@pytest.mark.parametrize(("page", "expected_assets"), [("/docs", 4), ("/redoc", 3)])
async def test_docs_pages_load_every_asset_from_the_app(client: httpx.AsyncClient, page: str, expected_assets: int):
    response = await client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert not re.search(r"(?:src|href|url)\s*[=:]\s*['\"]?(?:https?:)?//", html), "a page asset points off-site"
    collector = _AssetCollector()
    collector.feed(html)
    # Swagger UI's spec URL sits in its inline script.
    urls = collector.urls + re.findall(r"url: '([^']+)'", html)
    assert len(set(urls)) == expected_assets, urls
    for url in set(urls):
        assert url.startswith("/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
    assert (await client.get("/docs/oauth2-redirect")).status_code == 200


async def test_openapi_document_is_valid(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    validate(schema)
    assert schema["info"]["title"] == "VoltWay" and "X-API-Key" in schema["info"]["description"]
    assert schema["servers"] == [{"url": "/", "description": "This VoltWay server"}]
    tags = {tag["name"]: tag["description"] for tag in schema["tags"]}
    assert {"stations", "ingest", "accounts", "reviews", "charging", "analytics", "jobs", "realtime", "health"} <= set(tags)
    schemes = schema["components"]["securitySchemes"]
    assert schemes["APIKeyHeader"] == {
        "type": "apiKey", "in": "header", "name": "X-API-Key", "description": schemes["APIKeyHeader"]["description"]
    }
    assert schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"
    assert "HTTPValidationError" not in str(schema), "FastAPI's default 422 body must be replaced by the error model"


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


async def test_every_operation_is_documented(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    declared = {tag["name"] for tag in schema["tags"] if tag.get("description")}
    problems = []
    for method, path, operation in _operations(schema):
        where = f"{method} {path}"
        if not operation.get("summary"):
            problems.append(f"{where}: no summary")
        if not operation.get("description"):
            problems.append(f"{where}: no description")
        if not operation.get("tags"):
            problems.append(f"{where}: no tag")
        problems += [f"{where}: tag {tag!r} has no description" for tag in operation.get("tags", []) if tag not in declared]
        responses = operation["responses"]
        bodies = list(operation.get("requestBody", {}).get("content", {}).items()) + [
            (f"{status} {media_type}", media)
            for status, response in responses.items() if status.startswith("2")
            for media_type, media in response.get("content", {}).items()
        ]
        for name, media in bodies:
            if "schema" in media and "example" not in media and "examples" not in media:  # streams have no schema
                problems.append(f"{where}: {name} has no example")
        errors = {int(s): r for s, r in responses.items() if s.isdigit() and 400 <= int(s) < 500}
        needs = set()
        if operation.get("parameters") or operation.get("requestBody"):
            needs.add(422)
        if operation.get("security"):
            needs.add(401)
        if needs - set(errors):
            problems.append(f"{where}: error responses {sorted(needs - set(errors))} not documented")
        for status, response in errors.items():
            content = response.get("content", {}).get("application/json", {})
            if content.get("schema", {}).get("$ref") != ERROR_REF:
                problems.append(f"{where}: {status} does not use the error model")
            elif status in ERROR_EXAMPLES and "example" not in content and "examples" not in content:
                problems.append(f"{where}: {status} has no example")
    assert not problems, "\n".join(problems)


def _offline_dom(url: str, profile: Path) -> str:
    """The page's DOM in headless Chromium that can resolve no host but 127.0.0.1 (no CDN could load)."""
    offline = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
    return run_chromium([offline, "--window-size=1280,800", "--virtual-time-budget=10000", "--dump-dom", url],
                        profile).stdout


def test_swagger_ui_renders_offline_in_chromium(tmp_path: Path) -> None:
    """A real browser renders the operations with every other host unreachable."""
    with voltway_server(tmp_path) as base:
        dom = _offline_dom(f"{base}/docs", tmp_path / "profile")
        redoc = _offline_dom(f"{base}/redoc", tmp_path / "profile")
    assert 'class="swagger-ui' in dom
    assert "opblock-tag" in dom and "/health/ready" in dom  # operations were rendered from /openapi.json
    assert "/health/ready" in redoc and "VoltWay" in redoc


def test_generated_examples_follow_the_schema() -> None:
    components = {
        "Kind": {"type": "string", "enum": ["ccs2", "type2"]},
        "Item": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "power_kw": {"anyOf": [{"type": "number", "minimum": 3.7, "maximum": 400}, {"type": "null"}]},
                "type": {"$ref": "#/components/schemas/Kind"},
                "quantity": {"type": "integer", "minimum": 1, "default": 2},
                "at": {"type": "string", "format": "date-time"},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
        },
    }
    assert example_from_schema({"$ref": "#/components/schemas/Item"}, components) == {
        "name": "Berlin Hauptbahnhof P+R",
        "power_kw": 150.0,
        "type": "ccs2",
        "quantity": 2,
        "at": "2026-01-15T08:30:00Z",
        "tags": ["tags"],
    }
    assert example_from_schema({"type": "integer", "minimum": 5, "maximum": 9}, {}) == 5
    assert example_from_schema({"type": "object", "examples": [{"a": 1}]}, {}) == {"a": 1}
