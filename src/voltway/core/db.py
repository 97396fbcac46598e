"""Database plumbing: declarative base, async engine, request-scoped sessions, a fast read path.

SQLite (the embedded default) runs in WAL mode with foreign keys and a busy timeout. PostgreSQL runs through
asyncpg. Hot read queries (geo search) can go through `Database.fetch`, which skips the ORM engine: on SQLite
it runs the (sub-millisecond) query on a dedicated read-only connection, without aiosqlite's thread hop; on
PostgreSQL on a small read-only asyncpg pool, one round trip a statement where the engine's connection costs
four (pre-ping, BEGIN, the statement, the ROLLBACK that resets it). A read that may take long (`slow=True`,
e.g. the map's grouping of a whole continent) runs on SQLite in a thread of its own instead: run in place it
would hold every other request of the process for its whole duration. The bulk write engine's SQLite chunks
run whole on a thread of their own too (`Database.sqlite_write`).
"""

import asyncio
import concurrent.futures
import functools
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import orjson
from sqlalchemy import MetaData, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import NullPool

from voltway.core.metrics import instrument_engine, observe_query

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


T = TypeVar("T")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


def stored_time(moment: datetime, *, sqlite: bool) -> datetime | str:
    """`moment` as a bound value comparable with a stored timestamp column: on SQLite the naive UTC text
    SQLAlchemy stores (compared as text), else the aware datetime itself."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else moment


# Each connection's page cache (KiB) and memory-mapped window (bytes).
SQLITE_CACHE_KIB = 65536
SQLITE_MMAP_BYTES = 268435456
# The page cache of bulk work that passes over a table once (an import, a first load's index builds, duplicate
# linking's sweep): a larger one would fill with pages not read again, all of it resident memory.
SQLITE_ONE_PASS_CACHE_KIB = 8192
# What such work switches on its connection, each as (the one-pass setting, the default it goes back to).
SQLITE_NO_MMAP = ("PRAGMA mmap_size=0", f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
SQLITE_SMALL_CACHE = (f"PRAGMA cache_size=-{SQLITE_ONE_PASS_CACHE_KIB}", f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
    "PRAGMA synchronous=NORMAL",
    SQLITE_SMALL_CACHE[1],
    SQLITE_NO_MMAP[1],
    "PRAGMA temp_store=MEMORY",
)


# SQLite's own lower() folds ASCII letters only; this one folds all of Unicode, as PostgreSQL's lower() does.
SQLITE_UNICODE_LOWER = "unicode_lower"


def _unicode_lower(value: str | None) -> str | None:
    return value.lower() if isinstance(value, str) else value


def _apply_sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """Connection set-up: the pragmas and the `unicode_lower` SQL function."""
    cursor = dbapi_conn.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()
    dbapi_conn.create_function(SQLITE_UNICODE_LOWER, 1, _unicode_lower, deterministic=True)


def sqlite_path(url: str) -> str:
    return make_url(url).database or ":memory:"


# A bind parameter as SQLAlchemy's text() reads one: `:name`, not a `::type` cast.
_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


@functools.lru_cache(maxsize=1024)
def _positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """`sql` with its `:name` parameters as asyncpg's `$n`, and the names in order."""
    names: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return f"${names.setdefault(match.group(1), len(names) + 1)}"

    return _BIND.sub(number, sql), tuple(names)


# A read pool connection the server closed (a restart, a failover, an administrator): the statement is run
# again on fresh connections. A connection whose server's goodbye is still in flight when it is used fails
# with asyncpg's InternalClientError ("cannot switch to state ...") rather than as closed.
_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
)


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """The read pool's connections only ever run single read-only statements: nothing to reset between uses
    (asyncpg's default reset is one more round trip per release)."""


def _read_all(conn: sqlite3.Connection, sql: str, params: Mapping[str, Any]) -> list[Any]:
    return conn.execute(sql, params).fetchall()


class _ConnectionThread:
    """A SQLite connection of its own (made by `connect` when first needed) and one thread of its own that runs
    the work given to it on that connection, one piece at a time."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], name: str) -> None:
        self._connect = connect
        self._name = name
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # used by the executor's thread only

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=self._name)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, work)

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = self._connect()
        return work(self._conn)

    def close(self) -> None:
        """After the work in flight, if any."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Database:
    """Owns the engine, the session factory and the fast read connection of one process."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            # SQLite writes are serialised by the file lock; a small pool avoids lock ping-pong.
            self.engine: AsyncEngine = create_async_engine(
                url, echo=echo, pool_size=4, max_overflow=4, connect_args={"timeout": 30}
            )
            event.listen(self.engine.sync_engine, "connect", _apply_sqlite_pragmas)
        else:
            self.engine = create_async_engine(
                url, echo=echo, pool_size=10, max_overflow=20, pool_pre_ping=True
            )
        instrument_engine(self.engine)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self._reader: sqlite3.Connection | None = None
        self._slow_reads = _ConnectionThread(self._read_only_connection, "voltway-slow-read")
        self._writes = _ConnectionThread(self._sqlite_connection, "voltway-sqlite-write")
        self._pg_reader: asyncpg.Pool | None = None
        self._pg_reader_lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def dialect(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql"

    def any_of(self, column: str, values: Iterable[Any], placeholder: str) -> tuple[str, Any]:
        """`column` is one of `values`: a condition with a single array parameter at `placeholder` (`json_each`
        on SQLite, `= ANY` on PostgreSQL) and that parameter's value. Its SQL text is the same whatever the
        number of values: an expanded `IN (:v0, ...)` list makes a new statement for every count, each compiled,
        cached and prepared anew on PostgreSQL (a first import's duplicate linking grew the process by a few
        hundred MB that way)."""
        values = list(values)
        if self.is_sqlite:
            return f"{column} IN (SELECT value FROM json_each({placeholder}))", orjson.dumps(values).decode()
        return f"{column} = ANY({placeholder})", values

    def one_of(self, column: str, ids: Iterable[int]) -> tuple[str, dict[str, Any]]:
        """`any_of` with the named parameter `:ids`, for `fetch` and `text()`."""
        condition, value = self.any_of(column, ids, ":ids")
        return condition, {"ids": value}

    def _sqlite_connection(self) -> sqlite3.Connection:
        """A DB-API connection of our own, set up as the engine's are, in autocommit mode (transactions are
        begun explicitly), usable from the thread that works with it."""
        conn = sqlite3.connect(sqlite_path(self.url), check_same_thread=False, isolation_level=None)
        _apply_sqlite_pragmas(conn, None)
        return conn

    def _read_only_connection(self) -> sqlite3.Connection:
        conn = self._sqlite_connection()
        conn.execute("PRAGMA query_only=ON")
        return conn

    def _sqlite_reader(self) -> sqlite3.Connection:
        if self._reader is None:
            self._reader = self._read_only_connection()
        return self._reader

    async def sqlite_write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` (SQLite) with the write connection, on its thread, and return its result.

        For the bulk write engine: a chunk's statements and the Python between them run there in one go. Through
        the engine's aiosqlite connection each statement cost several hops between the event loop and the
        connection's thread (cursor, execute, fetch, close), each waiting for the other side's turn, so a first
        load's writes and its reading took turns instead of overlapping (see `ingest/upsert.py`). One chunk at a
        time: SQLite has one writer at a time anyway."""
        return await self._writes.run(work)

    async def _postgres_reader(self) -> asyncpg.Pool:
        if self._pg_reader is None:
            async with self._pg_reader_lock:
                if self._pg_reader is None:
                    dsn = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
                    self._pg_reader = await asyncpg.create_pool(
                        dsn,
                        min_size=1,
                        max_size=10,
                        reset=_keep_session,
                        server_settings={"default_transaction_read_only": "on", "application_name": "voltway-read"},
                    )
        return self._pg_reader

    async def fetch(self, sql: str, params: Mapping[str, Any], *, slow: bool = False) -> Sequence[Sequence[Any]]:
        """Run a read-only SQL statement with `:name` parameters and return all rows as tuples.

        `slow`: the statement may run for many milliseconds; on SQLite it then runs on a thread of its own
        (one at a time) rather than in place, a thread hop (~0.1 ms) that keeps the event loop serving."""
        if self.is_sqlite:
            started = time.perf_counter()
            if slow:
                # On that thread's own connection: SQLite releases the GIL while it works, so the loop runs on.
                rows = await self._slow_reads.run(functools.partial(_read_all, sql=sql, params=params))
            else:
                rows = self._sqlite_reader().execute(sql, params).fetchall()
            observe_query(sql, time.perf_counter() - started)
            return rows
        pool = await self._postgres_reader()
        statement, names = _positional(sql)
        args = [params[name] for name in names]
        started = time.perf_counter()
        try:
            records = await pool.fetch(statement, *args)
        except _CONNECTION_LOST:
            # Every idle connection of the pool is likely as dead as this one (the ORM engine pings each
            # before use instead): replace them all, then read again (a read is safe to repeat).
            await pool.expire_connections()
            records = await pool.fetch(statement, *args)
        observe_query(sql, time.perf_counter() - started)
        return [tuple(record) for record in records]

    def keep_until_disposed(self, work: Coroutine[Any, Any, T]) -> "asyncio.Task[T]":
        """Run `work` as a task of its own, which `dispose` waits for before it closes the connections: work a
        request started and may stop waiting for (a refresh that every later request needs)."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def dispose(self) -> None:
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._slow_reads.close()
        self._writes.close()
        if self._pg_reader is not None:
            await self._pg_reader.close()
            self._pg_reader = None
        await self.engine.dispose()


async def to_the_end(work: Awaitable[T]) -> T:
    """Await `work` (a write transaction, a background loop's statements) to its end even when the caller is
    cancelled (Ctrl-C, shutdown), then let the cancellation through.

    A statement cancelled mid-way makes SQLAlchemy close its aiosqlite connection while SQLite still runs the
    statement; the closed connection lives on until the statement is finalized, holding the write lock, and
    every later write of the process (restoring a first load's indexes) failed with "database is locked".
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


def null_pool_engine(url: str) -> AsyncEngine:
    """An engine without pooling, for one-shot CLI commands and migrations."""
    engine = create_async_engine(url, poolclass=NullPool)
    if url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _apply_sqlite_pragmas)
    return engine
