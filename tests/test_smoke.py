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


def test_the_command_line_starts_without_the_web_and_database_layers() -> None:
    """`voltway --help` starts without FastAPI, SQLAlchemy and Alembic (most of a second together): only the
    commands that need them import them."""
    check = "import sys, voltway.cli; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True)
    assert set(result.stdout.split()) & {"fastapi", "sqlalchemy", "alembic"} == set()
