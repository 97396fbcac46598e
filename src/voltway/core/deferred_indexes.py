"""Deferred index builds on SQLite: a first load writes its rows, then builds each index once, from sorted rows.

SQLite maintains every index of a table row by row, in whatever order the rows arrive. Filling an empty
database with 100,000 stations that way costs ~120 µs of SQLite's time a station (ten b-trees and the R*Tree,
written in random order), against ~32 µs for the rows followed by one `CREATE INDEX` per index, which sorts,
and one set-based fill of the R*Tree (bench/README.md).

`defer` drops the non-unique indexes of some tables, and some triggers, and remembers in `deferred_schema` (in
the same transaction) the SQL that re-creates each one; a trigger comes with the statement that catches up on
the rows it missed. `restore` runs that SQL, all of it or some parts by name, and forgets what it ran, in the
caller's transaction. Unique indexes are never
deferred, so keys stay enforced; only what the dropped parts derive lags: index-driven plans, and whatever a
deferred trigger maintains (for the stations, their R*Tree entries, so geo searches do not see the stations of
a first load until it ends).

A process killed in between leaves the remembered SQL behind, never a half-built index: every migration run
(`voltway serve`, `voltway db upgrade`) restores first, and so does the next import.
"""

from collections.abc import Collection, Mapping

from sqlalchemy.engine import Connection

TABLE = "deferred_schema"


def _deferred_table_exists(conn: Connection) -> bool:
    found = conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,))
    return found.first() is not None


def defer(
    conn: Connection, *, tables: Collection[str], keep: Collection[str] = (), triggers: Mapping[str, str]
) -> list[str]:
    """Drop the non-unique indexes of `tables` (except those in `keep`) and the `triggers` (name -> the
    statement that catches up on what the trigger would have done), remembering how to restore them.

    Runs in the caller's transaction; returns the names dropped (none when something is deferred already:
    the first deferral's restore covers the rows written since)."""
    if conn.exec_driver_sql(f"SELECT 1 FROM {TABLE} LIMIT 1").first() is not None:
        return []
    table_marks = ", ".join("?" for _ in tables)
    trigger_marks = ", ".join("?" for _ in triggers) or "NULL"
    found = conn.exec_driver_sql(
        f"SELECT type, name, sql FROM sqlite_master WHERE tbl_name IN ({table_marks}) AND sql IS NOT NULL "
        f"AND ((type = 'index' AND sql NOT LIKE 'CREATE UNIQUE%') OR (type = 'trigger' AND name IN ({trigger_marks}))) "
        "ORDER BY type, name",
        (*tables, *triggers),
    ).all()
    dropped = []
    for kind, name, sql in found:
        if name in keep:
            continue
        restore_sql = [sql] if kind == "index" else [triggers[name], sql]  # catch up, then fire again
        for statement in restore_sql:
            conn.exec_driver_sql(f"INSERT INTO {TABLE} (name, sql) VALUES (?, ?)", (name, statement))
        conn.exec_driver_sql(f'DROP {kind.upper()} "{name}"')
        dropped.append(name)
    return dropped


def restore(conn: Connection, names: Collection[str] | None = None) -> list[str]:
    """Re-create whatever `defer` dropped, or only the parts called `names` (in the caller's transaction); the
    names restored, in the order they were deferred."""
    if not _deferred_table_exists(conn):  # a database older than the migration that adds the table
        return []
    remembered = conn.exec_driver_sql(f"SELECT position, name, sql FROM {TABLE} ORDER BY position").all()
    if names is not None:
        remembered = [row for row in remembered if row[1] in names]
    for position, _name, sql in remembered:
        conn.exec_driver_sql(sql)
        conn.exec_driver_sql(f"DELETE FROM {TABLE} WHERE position = ?", (position,))
    return list(dict.fromkeys(name for _position, name, _sql in remembered))


def deferred(conn: Connection) -> list[str]:
    """The names of what is deferred, in the order they were."""
    if not _deferred_table_exists(conn):
        return []
    rows = conn.exec_driver_sql(f"SELECT name FROM {TABLE} ORDER BY position").all()
    return list(dict.fromkeys(name for (name,) in rows))
