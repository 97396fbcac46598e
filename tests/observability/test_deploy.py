"""deploy/: the Grafana dashboard uses only metrics that /metrics declares; the Prometheus config scrapes it."""

import json
import re
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from voltway.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SAMPLE_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
PROMQL_WORDS = {"sum", "by", "rate", "histogram_quantile", "max", "le", "irate", "increase", "avg", "min", "without"}


@pytest.fixture
def backend() -> str:
    return "sqlite"


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "voltway-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def metric_names(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", " ", expr)
    without_by = re.sub(r"\b(?:by|without)\s*\([^)]*\)", " ", without_labels)
    return {w for w in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_by) if w not in PROMQL_WORDS}


async def test_dashboard_metrics_exist_in_metrics_output(client: httpx.AsyncClient) -> None:
    page = (await client.get("/metrics")).text
    exposed = set()
    for family in text_string_to_metric_families(page):
        exposed.add(family.name)
        exposed.update(family.name + suffix for suffix in SAMPLE_SUFFIXES.get(family.type, ()))
    used = set().union(*(metric_names(expr) for expr in dashboard_expressions()))
    assert len(used) >= 12
    assert used <= exposed, sorted(used - exposed)


def test_dashboard_covers_the_operational_questions() -> None:
    exprs = "\n".join(dashboard_expressions())
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (le) (rate(voltway_http_request_duration_seconds_bucket" in exprs
    for needle in ('status=~"5.."', 'result="hit"', "voltway_jobs_total", "voltway_memory_rss_bytes",
                   "voltway_http_slow_requests_total"):
        assert needle in exprs, needle


def test_prometheus_config_scrapes_metrics() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "voltway")
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8000"]


def test_env_example_loads_and_names_every_setting() -> None:
    """Every setting is documented in deploy/.env.example, and the file as written is a valid configuration."""
    text = (DEPLOY / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))
    assert {name.upper() for name in Settings.model_fields} - {"MAP_TILE_ATTRIBUTION"} <= documented
    Settings(_env_file=DEPLOY / ".env.example")  # raises when a value is invalid
