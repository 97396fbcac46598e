"""Helpers for the observability tests: scrape `/metrics` and read the JSON log files."""

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from voltway.app import create_app
from voltway.settings import Settings

Sample = tuple[str, frozenset[tuple[str, str]]]


def parse_metrics(text: str) -> dict[Sample, float]:
    """Every sample of a Prometheus text page, keyed by (sample name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(client: httpx.AsyncClient) -> dict[Sample, float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return parse_metrics(response.text)


def value(samples: dict[Sample, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def read_log(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a log file (every line must be JSON)."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def app_factory(settings: Settings) -> Callable[..., Any]:
    """Build an app from the test settings with some fields replaced; use as `async with app_factory(...) as client`."""

    class _Running:
        def __init__(self, routes: Callable[[FastAPI], None] | None, overrides: dict[str, Any]) -> None:
            self.app = create_app(settings.model_copy(update=overrides))
            if routes is not None:
                routes(self.app)
            self._lifespan: Any = None
            self._client: httpx.AsyncClient | None = None

        async def __aenter__(self) -> httpx.AsyncClient:
            self._lifespan = self.app.router.lifespan_context(self.app)
            await self._lifespan.__aenter__()
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            self._client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
            return self._client

        async def __aexit__(self, *exc: object) -> None:
            assert self._client is not None
            await self._client.aclose()
            await self._lifespan.__aexit__(*exc)

    def factory(routes: Callable[[FastAPI], None] | None = None, **overrides: Any) -> _Running:
        return _Running(routes, overrides)

    return factory


@pytest.fixture
def log_dir(settings: Settings) -> Path:
    return Path(settings.log_dir)
