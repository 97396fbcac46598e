"""The write serialisation behind reservations and sessions (core/locking.py), shown directly.

One transaction holds the connector; a second one must wait for it and then see its write — on PostgreSQL
(row lock) and on SQLite (database write lock), including a second *process* holding the SQLite lock.
"""

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from voltway.charging.models import Reservation
from voltway.core.db import sqlite_path
from voltway.core.locking import lock_row
from voltway.stations.models import Connector

START = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)


async def test_second_writer_waits_and_sees_the_first(db, backend, driver, station):
    connector_id = station.connector_ids[0]

    async def second() -> int:
        async with db.sessionmaker() as session:
            await lock_row(session, Connector.__table__, connector_id)
            count = await session.scalar(select(func.count()).select_from(Reservation))
            await session.rollback()
            return count

    async with db.sessionmaker() as first:
        assert await lock_row(first, Connector.__table__, connector_id)
        waiting = asyncio.create_task(second())
        await asyncio.sleep(0.3)
        assert not waiting.done()
        first.add(Reservation(user_id=driver.id, station_id=station.id, connector_id=connector_id,
                              starts_at=START, ends_at=START + timedelta(hours=1), status="active"))
        await first.commit()
    assert await waiting == 1


@pytest.mark.parametrize("backend", ["sqlite"])  # the cross-process case is SQLite's file lock
async def test_sqlite_lock_holds_across_processes(client, settings, backend, driver, other_driver, station):
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"""
import sqlite3, sys, time
conn = sqlite3.connect({sqlite_path(settings.database_url)!r}, isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO reservations (user_id, station_id, connector_id, starts_at, ends_at, status, created_at) "
             "VALUES (?, ?, ?, ?, ?, 'active', ?)",
             ({other_driver.id}, {station.id}, {station.connector_ids[0]}, {START.strftime(fmt)!r},
              {(START + timedelta(hours=1)).strftime(fmt)!r}, {START.strftime(fmt)!r}))
print("locked", flush=True)
time.sleep(1.0)
conn.execute("COMMIT")
"""],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        body = {"station_id": station.id, "connector_id": station.connector_ids[0],
                "starts_at": (START + timedelta(minutes=30)).isoformat(),
                "ends_at": (START + timedelta(minutes=90)).isoformat()}
        response = await client.post("/api/v1/reservations", headers=driver.headers, json=body)
    finally:
        assert holder.wait(timeout=20) == 0
    assert response.status_code == 409
    assert datetime.fromisoformat(response.json()["error"]["details"]["conflicting"]["starts_at"]) == START
