"""Reaching the database: the URL, the engine for each dialect (SQLite's pragmas), errors told apart and redacted."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    StatementError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

CONNECT_TIMEOUT_S = 3
POOL_TIMEOUT_S = 5
SQLITE_BUSY_TIMEOUT_MS = 10_000
WAL_SWITCH_ATTEMPTS = 10
_TRANSIENT_ERRORS = (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)


class StoreUnavailable(Exception):
    """The database cannot be reached; the message is safe to show (no password)."""


def database_url(url: str) -> URL:
    """Parse the configured URL; plain PostgreSQL URLs go to the psycopg 3 driver this project ships."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(
            "the database URL is not valid; expected sqlite:///path/to/leadscore.db or "
            "postgresql+psycopg://user:password@host:5432/dbname"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def redact_url(url: URL) -> str:
    """The URL with its password masked, for messages and logs."""
    return url.render_as_string(hide_password=True)


def describe_error(exc: BaseException, secret: str | None = None) -> str:
    """One line about a database error: the driver's own first line, never the SQL parameters or the password."""
    cause = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    message = f"{type(cause).__name__}: {lines[0] if lines else 'no message'}"
    return message.replace(secret, "***") if secret else message


def is_transient(exc: BaseException) -> bool:
    """Whether the error is about reaching the database (worth retrying) rather than about the data."""
    if isinstance(exc, _TRANSIENT_ERRORS):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _set_sqlite_pragmas(dbapi_connection: Any, _connection_record: Any) -> None:
    """Let worker processes share one file: wait for locks, readers never block the writer, durable commits."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")  # first, so the switch to WAL waits too
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """WAL mode, retried: while other connections open the same new file at the same moment, SQLite can refuse
    the switch at once as locked, without waiting out the busy timeout (seen with four workers starting)."""
    for attempt in range(1, WAL_SWITCH_ATTEMPTS + 1):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == WAL_SWITCH_ATTEMPTS:
                raise
            time.sleep(0.01 * attempt)


def build_engine(url: URL) -> Engine:
    """An engine that checks pooled connections before use and fails fast when the server is down."""
    options: dict[str, Any] = {
        "pool_pre_ping": True,
        "hide_parameters": True,  # lead fields must never reach an exception message or a log
    }
    if url.get_backend_name() == "postgresql":
        options |= {
            "pool_size": 5,
            "max_overflow": 10,
            "pool_timeout": POOL_TIMEOUT_S,
            "connect_args": {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "leadscore"},
        }
    engine = create_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _set_sqlite_pragmas)
    return engine
