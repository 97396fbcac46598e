"""Driver flows against a real `voltway serve` process (one worker): sign-in latency, authenticated reads,
review writes (station row locked, rating recomputed), reservation races, session start/stop.

    python bench/accounts.py [--database-url URL] [--duration 5] [--concurrency 16]

Default database: a fresh SQLite file in a temporary directory. Client and server share the machine's
cores, so read the figures as orders of magnitude on this machine, not as capacity.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from search_http import free_port


def voltway(env: dict[str, str], *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "voltway", *args], env=env, check=True, capture_output=True,
                          text=True).stdout


async def rate(client: httpx.AsyncClient, make_request, *, duration: float, concurrency: int) -> tuple[float, float]:
    """Requests per second and median latency (ms) of `make_request(i)` run by `concurrency` workers."""
    latencies: list[float] = []
    counter = iter(range(10**9))
    stop = time.perf_counter() + duration

    async def worker() -> None:
        while time.perf_counter() < stop:
            t = time.perf_counter()
            response = await make_request(next(counter))
            assert response.status_code < 300, response.text
            latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - start), statistics.median(latencies) * 1000


async def bench(base: str, admin_key: str, duration: float, concurrency: int) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        station = (await client.post("/api/v1/stations", headers={"X-API-Key": admin_key}, json={
            "name": "Bench", "latitude": 52.5, "longitude": 13.4, "status": "available",
            "price": {"currency": "EUR", "per_kwh": 0.59, "per_minute": None, "per_session": None, "free": False},
            "connectors": [{"type": "ccs2", "power_kw": 150, "status": "available"} for _ in range(64)],
        })).json()
        connectors = [c["id"] for c in station["connectors"]]
        password = "bench passphrase 1"
        await client.post("/api/v1/auth/register", json={"email": "bench@example.org", "password": password})
        logins = []
        for _ in range(5):
            t = time.perf_counter()
            token = await client.post("/api/v1/auth/token", data={"username": "bench@example.org", "password": password})
            logins.append((time.perf_counter() - t) * 1000)
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        print(f"sign-in (argon2id verify + JWT): median {statistics.median(logins):.0f} ms over 5")

        rps, p50 = await rate(client, lambda i: client.get("/health"), duration=duration, concurrency=concurrency)
        print(f"baseline GET /health: {rps:.0f} req/s, median {p50:.1f} ms (concurrency {concurrency})")
        rps, p50 = await rate(client, lambda i: client.get("/api/v1/me", headers=headers),
                              duration=duration, concurrency=concurrency)
        print(f"GET /api/v1/me: {rps:.0f} req/s, median {p50:.1f} ms")

        rps, p50 = await rate(
            client,
            lambda i: client.post(f"/api/v1/stations/{station['id']}/reviews", headers=headers,
                                  json={"rating": i % 5 + 1}),
            duration=duration, concurrency=concurrency,
        )
        print(f"POST review (lock + upsert + exact rating): {rps:.0f} req/s, median {p50:.1f} ms")

        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
        t = time.perf_counter()
        race = await asyncio.gather(*(
            client.post("/api/v1/reservations", headers=headers, json={
                "station_id": station["id"], "connector_id": connectors[0],
                "starts_at": (start + timedelta(minutes=i)).isoformat(),
                "ends_at": (start + timedelta(minutes=60 + i)).isoformat()})
            for i in range(50)
        ))
        codes = sorted(r.status_code for r in race)
        print(f"50 concurrent overlapping reservations: {codes.count(201)} x 201, {codes.count(409)} x 409 "
              f"in {(time.perf_counter() - t) * 1000:.0f} ms")

        async def cycle(i: int) -> httpx.Response:
            connector = connectors[1 + i % (len(connectors) - 1)]
            started = await client.post("/api/v1/sessions", headers=headers,
                                        json={"station_id": station["id"], "connector_id": connector})
            if started.status_code == 409:  # another worker holds this connector right now
                return httpx.Response(204)
            return await client.post(f"/api/v1/sessions/{started.json()['id']}/stop", headers=headers,
                                     json={"energy_kwh": 10})

        rps, p50 = await rate(client, cycle, duration=duration, concurrency=concurrency)
        print(f"session start+stop cycles (2 requests, status history): {rps:.0f} cycles/s, median {p50:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url")
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        env = {**os.environ, "DATABASE_URL": args.database_url or f"sqlite+aiosqlite:///{directory / 'bench.db'}",
               "LOG_DIR": str(directory / "logs"), "DATA_DIR": str(directory / "data"), "LOG_LEVEL": "WARNING",
               "SECRET_KEY": "bench-" + "k" * 40}
        admin_key = voltway(env, "keys", "create", "--role", "admin").strip().splitlines()[-1]
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "voltway", "serve", "--port", str(port)], env=env,
                                  cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            asyncio.run(bench(base, admin_key, args.duration, args.concurrency))
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
