import subprocess
import sys

from voltway import __version__


async def test_liveness(client):
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_api_health_has_version(client):
    response = await client.get("/api/v1/health")
    assert response.json() == {"status": "ok", "version": __version__}


async def test_unknown_path_uses_error_model(client):
    response = await client.get("/api/v1/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_command_line_does_not_import_fastapi() -> None:
    """Commands start without the web framework (about a tenth of a second); only `serve` imports it."""
    check = "import sys, voltway.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'fastapi'))"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
