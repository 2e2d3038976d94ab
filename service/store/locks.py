"""Who waits for whom: PostgreSQL advisory-lock keys (first key of the two-key form), and the transaction that
keeps score writes out while retention or erasure rewrites the score log.

SQLite needs no keys: it has one writer at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, func, select

SCHEMA_LOCK = (0x1EAD, 0)  # schema creation
SCORE_LOG_LOCK = (0x1EAD, 1)  # score writes and index chunks: ids become visible in order
OUTCOME_LOCK_NAMESPACE = 0x1EAE  # outcome reports, one key per lead


@contextmanager
def score_log_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that score writes and index chunks wait for, taken before its first read: on PostgreSQL the
    score-log advisory lock; on SQLite ``BEGIN IMMEDIATE``, the database's one write lock, so what it read cannot
    change before it writes (the writer waits up to its busy timeout; keep these transactions short)."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.execute(select(func.pg_advisory_xact_lock(*SCORE_LOG_LOCK)))
        yield conn
        conn.commit()
