"""Database wiring: the engine (with SQLite made safe for concurrent writers) and write
transactions. The request-scoped session lives in ``moderation.web.sessions``.

SQLite runs in WAL mode with a busy timeout and foreign keys on, and the driver's own transaction
handling is replaced so that a write transaction starts with ``BEGIN IMMEDIATE``: a deferred BEGIN
that reads and then writes fails with "database is locked" under concurrent writers instead of
waiting for the busy timeout.
"""

from __future__ import annotations

import dataclasses
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ClauseElement, Connection, Dialect, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler

WRITE_OPTION = "moderation_write"
_WRITER = "moderation.sqlite_writer"  # connection.info: the transaction began with BEGIN IMMEDIATE
_CHANGES = "moderation.sqlite_changes"  # connection.info: total_changes when it began
SQLITE_BUSY_TIMEOUT_MS = 10_000
WRITE_LOCK_POLL_SECONDS = 0.0003
# A PostgreSQL server that accepts connections but never answers must not hold a request (and a
# worker thread) for ever: libpq has no connect timeout by default. A connect_timeout in the
# database URL wins.
POSTGRESQL_CONNECT_TIMEOUT_SECONDS = 5
# Nor may an open connection whose server stops answering (a partition, a dead host): the kernel
# retransmits unacknowledged data for about a quarter of an hour. tcp_user_timeout gives up on
# data unacknowledged this long, and keepalive probes (themselves bound by it) find a path that
# died while a request waited for a result. A healthy server's kernel acknowledges at once,
# however long its query runs. The same names in the database URL win.
POSTGRESQL_TCP_USER_TIMEOUT_MS = 10_000
POSTGRESQL_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5}
POSTGRESQL_DISK_FULL = "53100"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create the engine for ``url``; SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
        )
        _make_sqlite_safe(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        connect_args = kwargs.setdefault("connect_args", {})
        defaults = {
            "connect_timeout": POSTGRESQL_CONNECT_TIMEOUT_SECONDS,
            "tcp_user_timeout": POSTGRESQL_TCP_USER_TIMEOUT_MS,
            **POSTGRESQL_KEEPALIVES,
        }
        for name, value in defaults.items():
            if name not in parsed.query:
                connect_args.setdefault(name, value)
    # pre_ping: a connection the server dropped (a restart, a failover) is replaced on checkout
    # instead of failing the request that drew it.
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def database_unavailable(error: DBAPIError) -> bool:
    """The database could not be reached or could not do the work (down, restarting, locked, full),
    as opposed to a bug in a statement."""
    return isinstance(error, OperationalError) or error.connection_invalidated


def storage_full(error: DBAPIError) -> bool:
    """The database's disk is full (SQLite's SQLITE_FULL, PostgreSQL's disk_full)."""
    original = error.orig
    return (
        getattr(original, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
        or getattr(original, "sqlstate", None) == POSTGRESQL_DISK_FULL
    )


def _make_sqlite_safe(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite; the "begin" hook below issues BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        if immediate:
            _begin_immediate(connection)
        else:
            connection.exec_driver_sql("BEGIN")
        # For become_writer: how this transaction began, and the changes made before it.
        connection.info[_WRITER] = immediate
        connection.info[_CHANGES] = connection.connection.dbapi_connection.total_changes


def _begin_immediate(connection: Connection) -> None:
    """``BEGIN IMMEDIATE``, waiting for the write lock in steps of a fraction of a millisecond
    (at most the busy timeout). SQLite's own busy handler sleeps ever longer, up to 100 ms a
    time, so under a steady stream of short writes its waiters mostly sleep while the lock is
    free: 16 connections wrote more slowly than one, with a p99 over a second."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    driver = connection.connection.dbapi_connection
    assert driver is not None
    driver.execute("PRAGMA busy_timeout=0")
    try:
        # The attempts go to the driver itself: through SQLAlchemy, each refused one cost its
        # statement events and a wrapped exception, CPU that eight waiting threads paid many
        # times over for each submission.
        while time.monotonic() < deadline:
            try:
                driver.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                    break
            time.sleep(WRITE_LOCK_POLL_SECONDS * random.uniform(0.5, 1.5))  # noqa: S311 (jitter)
        # The last attempt through SQLAlchemy: its error (still busy, or another) is wrapped as
        # every other database error is.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        driver.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


class CommitCounter:
    """A number that changes whenever anyone commits to the SQLite database: ``PRAGMA
    data_version`` read on a connection of its own, which never writes (SQLite changes the value
    for commits by every other connection, in this process or another). Reading it costs
    microseconds, so caches of what the database says can check they are still true without a
    query. Opened lazily per process, so a forked worker never shares the connection.

    One connection for the whole process, under a lock: the values are only comparable when read
    on the same connection (a fresh connection starts counting afresh).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._pid = 0
        self._connection: sqlite3.Connection | None = None
        self._generation = 0  # which connection: a new one counts afresh

    def value(self) -> int | None:
        """The counter now; None when it can't be read (then trust no cache)."""
        with self._lock:
            try:
                if self._connection is None or self._pid != os.getpid():
                    self._connection = sqlite3.connect(self.path, check_same_thread=False)
                    self._pid = os.getpid()
                    self._generation += 1
                row = self._connection.execute("PRAGMA data_version").fetchone()
            except sqlite3.Error:
                self._connection = None
                return None
            # Values of different connections never compare equal.
            return (self._generation << 40) + int(row[0])


def commit_counter(engine: Engine) -> CommitCounter | None:
    """The engine's commit counter: SQLite files only (PostgreSQL has no cheap equivalent)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return CommitCounter(os.path.abspath(database))


def begin_as_writer(session: Session) -> None:
    """Mark the session's next transaction as a writer (``BEGIN IMMEDIATE`` on SQLite).

    Only effective before the session has begun its transaction; a no-op on PostgreSQL.
    """
    if not session.in_transaction():
        session.connection(execution_options={WRITE_OPTION: True})


@contextmanager
def write_transaction(session_factory: Callable[[], Session]) -> Iterator[Session]:
    """A new session in a write transaction (``BEGIN IMMEDIATE`` on SQLite), committed when the
    block ends, rolled back if it raises; closed either way. For work outside a request: the
    workers' short transactions and the CLI's commands."""
    with session_factory() as session:
        begin_as_writer(session)
        yield session
        session.commit()


def become_writer(session: Session) -> None:
    """Take the write lock for the rest of the session's transaction, which has only read so far.

    A request that reads and checks for long and then writes a little (a submission) holds
    SQLite's write lock, which serialises every writer of every process, only while it writes:
    its read snapshot is ended and a write transaction (``BEGIN IMMEDIATE``) begun on the same
    connection, keeping what the ORM loaded. A read transaction cannot just start writing: once
    anyone has committed since its first read, SQLite fails the write ("database is locked")
    instead of waiting. Nothing to do on PostgreSQL, in a transaction that began as a writer or
    has written, or inside a SAVEPOINT (the tests' outer transaction).
    """
    if not session.in_transaction():
        begin_as_writer(session)
        return
    connection = session.connection()
    if (
        connection.dialect.name != "sqlite"
        or connection.info.get(_WRITER, True)
        or connection.in_nested_transaction()
    ):
        return
    if connection.connection.dbapi_connection.total_changes != connection.info[_CHANGES]:  # type: ignore[union-attr]
        return  # it has written, so it holds the lock already (and a COMMIT would end its work)
    connection.exec_driver_sql("COMMIT")
    _begin_immediate(connection)
    connection.info[_WRITER] = True


class DriverQuery:
    """A read on the submission path, compiled once per dialect and run on the driver's own
    cursor in the session's transaction, its rows back as the driver's tuples.

    SQLAlchemy spends 0.03 to 0.1 ms per statement around the driver (a session's ``execute``:
    the statement cache's key, the ORM's context; ``exec_driver_sql``: the result's metadata),
    several times what SQLite itself takes; a submission runs three such reads, which was a
    third of the spam pipeline's budget. What matters of it is kept: the statement is
    SQLAlchemy's (compiled for the dialect, parameters processed as the columns' types say),
    the engine's ``before_cursor_execute`` and ``after_cursor_execute`` listeners see it, and
    the driver's errors are raised as SQLAlchemy's, a lost connection invalidated. No
    expanding parameters (an ``IN`` list): give each value a parameter of its own.
    """

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def rows(self, session: Session, params: Mapping[str, Any]) -> list[Any]:
        connection = session.connection()
        dialect = connection.dialect
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = _Compiled.of(self.statement, dialect)
        values = {**compiled.defaults, **params}
        for name, process in compiled.processors.items():
            values[name] = process(values[name])
        bound: Any = values if compiled.order is None else tuple(map(values.get, compiled.order))
        sql = compiled.sql
        dbapi_connection = connection.connection
        cursor = dbapi_connection.cursor()
        try:
            connection.dispatch.before_cursor_execute(connection, cursor, sql, bound, None, False)
            cursor.execute(sql, bound)
            connection.dispatch.after_cursor_execute(connection, cursor, sql, bound, None, False)
            return list(cursor.fetchall())
        except dialect.loaded_dbapi.Error as error:
            lost = dialect.is_disconnect(error, dbapi_connection, cursor)
            if lost:
                connection.invalidate(error)
            raise DBAPIError.instance(
                sql,
                bound,
                error,
                dialect.loaded_dbapi.Error,
                connection_invalidated=lost,
                dialect=dialect,
            ) from error
        finally:
            cursor.close()


@dataclasses.dataclass(frozen=True)
class _Compiled:
    sql: str
    order: tuple[str, ...] | None  # the parameters' order, for a positional driver (sqlite3)
    defaults: dict[str, Any]  # every parameter, with the values the statement gives some
    processors: Mapping[str, Callable[[Any], Any]]  # what the columns' types do to a value

    @classmethod
    def of(cls, statement: ClauseElement, dialect: Dialect) -> _Compiled:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        defaults = dict(compiled.params)
        processors = {
            name: process
            for name, bind in compiled.binds.items()
            if name in defaults and (process := bind.type.bind_processor(dialect)) is not None
        }
        order = tuple(compiled.positiontup or ()) if compiled.positional else None
        return cls(compiled.string, order, defaults, processors)
